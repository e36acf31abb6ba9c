"""The CPU pipeline's f32 <-> bf16/f16 casts (moma-expand-narrow-float-casts)
against numpy/torch, bit-exactly.

Widening: every one of the 65536 bf16 and f16 bit patterns. Rounding (round
to nearest even): every f16 midpoint (the exact ties, then one f32 ulp
either side), the bf16 midpoints of every bf16 exponent and sign, the
overflow and subnormal boundaries, infinities, zeros, NaNs and 2^16 random
f32 bit patterns. A NaN must stay a NaN (payloads are not compared).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opcheck  # noqa: E402

WIDEN = """  func.func @op(%bits: tensor<65536xi32>) -> (tensor<65536xf32>, tensor<65536xf32>) {{
    %i = arith.trunci %bits : tensor<65536xi32> to tensor<65536xi16>
    %b = arith.bitcast %i : tensor<65536xi16> to tensor<65536xbf16>
    %h = arith.bitcast %i : tensor<65536xi16> to tensor<65536xf16>
    %wb = arith.extf %b : tensor<65536xbf16> to tensor<65536xf32>
    %wh = arith.extf %h : tensor<65536xf16> to tensor<65536xf32>
    return %wb, %wh : tensor<65536xf32>, tensor<65536xf32>
  }}"""

ROUND = """  func.func @op(%x: tensor<{n}xf32>) -> (tensor<{n}xi32>, tensor<{n}xi32>) {{
    %b = arith.truncf %x : tensor<{n}xf32> to tensor<{n}xbf16>
    %h = arith.truncf %x : tensor<{n}xf32> to tensor<{n}xf16>
    %bi = arith.bitcast %b : tensor<{n}xbf16> to tensor<{n}xi16>
    %hi = arith.bitcast %h : tensor<{n}xf16> to tensor<{n}xi16>
    %be = arith.extui %bi : tensor<{n}xi16> to tensor<{n}xi32>
    %he = arith.extui %hi : tensor<{n}xi16> to tensor<{n}xi32>
    return %be, %he : tensor<{n}xi32>, tensor<{n}xi32>
  }}"""


def check_bits(what, got, want, nan_in):
    """`got`, `want`: uint32 bit patterns of f32 results; `nan_in`: where
    the expected value is a NaN (then only NaN-ness is compared)."""
    got_nan = np.isnan(got.view(np.float32))
    bad = np.flatnonzero((got != want) & ~nan_in | (nan_in != got_nan))
    if bad.size:
        i = bad[0]
        raise SystemExit(f"{what}: {bad.size} differ, first at {i}: "
                         f"got 0x{got[i]:08x}, want 0x{want[i]:08x}")


def f32_bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def rounding_inputs():
    f16 = np.arange(0, 0x7c00, dtype=np.uint16).view(np.float16).astype(np.float64)
    mids = (f16[:-1] + f16[1:]) / 2  # exact in f32 (12 significant bits)
    mids = np.concatenate([mids, [65504.0 + 16.0]]).astype(np.float32)
    up = np.nextafter(mids, np.float32(np.inf))
    down = np.nextafter(mids, np.float32(0))
    # bf16 ties: the midpoint of two bf16 neighbours in every binade.
    exps = np.arange(-133, 128, dtype=np.float64)
    bf_ties = (2.0 ** exps * (1 + 2.0 ** -8) + 0).astype(np.float32)
    bf_ties2 = (2.0 ** exps * (1 + 3 * 2.0 ** -8)).astype(np.float32)
    special = np.array([0.0, np.inf, np.nan, 65504.0, 65519.996, 65520.0,
                        65536.0, 3.4028235e38, 2.0 ** -24, 2.0 ** -25,
                        3 * 2.0 ** -26, 2.0 ** -14, 2.0 ** -149,
                        np.float32(2.0 ** -14) - np.float32(2.0 ** -24)],
                       dtype=np.float32)
    rand = np.random.default_rng(9).integers(0, 2 ** 32, 65536, dtype=np.uint64)
    rand = rand.astype(np.uint32).view(np.float32)
    x = np.concatenate([mids, up, down, bf_ties, bf_ties2, special])
    x = np.concatenate([x, -x, rand]).astype(np.float32)
    # A few NaNs with payloads and the sign set.
    nans = np.array([0x7fc00000, 0xffc00000, 0x7f800001, 0x7fffffff],
                    dtype=np.uint32).view(np.float32)
    return np.concatenate([x, nans])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    args = parser.parse_args()
    runner = opcheck.Runner(moma_opt=args.moma_opt)

    bits = np.arange(65536, dtype=np.int32)
    wb, wh = runner.run(WIDEN.format(), [bits],
                        ["tensor<65536xf32>", "tensor<65536xf32>"])
    u16 = bits.astype(np.uint16)
    want_b = u16.astype(np.uint32) << 16
    want_h = f32_bits(u16.view(np.float16).astype(np.float32))
    check_bits("extf bf16", wb.view(np.uint32), want_b,
               np.isnan(want_b.view(np.float32)))
    check_bits("extf f16", wh.view(np.uint32), want_h,
               np.isnan(want_h.view(np.float32)))

    x = rounding_inputs()
    n = x.size
    rb, rh = runner.run(ROUND.format(n=n), [x],
                        [f"tensor<{n}xi32>", f"tensor<{n}xi32>"])
    want_b = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy()
    with np.errstate(over="ignore"):  # overflow to infinity is the point
        want_h = x.astype(np.float16).view(np.uint16)
    # Compare as widened f32 patterns, so NaN-ness is checked the same way.
    to_f32 = lambda h: h.astype(np.uint32) << 16  # noqa: E731
    nan_in = np.isnan(x)
    check_bits("truncf bf16", to_f32(rb.astype(np.uint16)),
               to_f32(want_b.astype(np.uint16)), nan_in)
    check_bits("truncf f16", f32_bits(rh.astype(np.uint16).view(np.float16).astype(np.float32)),
               f32_bits(want_h.view(np.float16).astype(np.float32)), nan_in)
    print(f"narrow casts: ok ({65536 * 2} widened, {n} rounded twice)")


if __name__ == "__main__":
    main()
