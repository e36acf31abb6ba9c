"""Self-test of opcheck.py: exact round trip of f32/f64/i32 data."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opcheck  # noqa: E402

FUNC = """  func.func @op(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>,
                %d: tensor<4xf64>, %i: tensor<3xi32>)
      -> (tensor<2x3xf32>, tensor<4xf64>, tensor<3xi32>, tensor<f32>) {
    %s = arith.addf %x, %y : tensor<2x3xf32>
    %z = arith.constant dense<1.5> : tensor<f32>
    return %s, %d, %i, %z : tensor<2x3xf32>, tensor<4xf64>, tensor<3xi32>, tensor<f32>
  }"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = rng.standard_normal((2, 3)).astype(np.float32)
    d = rng.standard_normal(4)
    i = np.array([-1, 0, 2147483647], dtype=np.int32)
    out = opcheck.Runner(args.moma_opt).run(
        FUNC, [x, y, d, i],
        ["tensor<2x3xf32>", "tensor<4xf64>", "tensor<3xi32>", "tensor<f32>"])
    opcheck.assert_close("sum", out[0], x + y, rtol=0, atol=0)
    opcheck.assert_close("f64 passthrough", out[1], d, rtol=0, atol=0)
    opcheck.assert_close("i32 passthrough", out[2], i)
    opcheck.assert_close("scalar", out[3], np.float32(1.5), rtol=0, atol=0)
    print("opcheck self-test: ok")


if __name__ == "__main__":
    main()
