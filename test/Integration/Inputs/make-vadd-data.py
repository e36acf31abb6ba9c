#!/usr/bin/env python3
# ===- make-vadd-data.py - Inputs and references for runtime-vadd.test ---=== #
#
# Writes into DIR: a.bin (input a, f32[1000]), w.safetensors (weight b, stored
# as F16 so that the runtime converts it), and the exact references c.ref,
# y.ref and z.ref of the schedule in vadd.json:
#   c = a + b;  y = 0.5 * c + 2;  z = y + b
# All values are small multiples of 1/8, so f32 arithmetic is exact.
# Standard library only (the GPU machine may lack numpy).
#
# ===---------------------------------------------------------------------=== #
import json
import os
import struct
import sys

N = 1000


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def main():
    out = sys.argv[1]
    a = [0.25 * i for i in range(N)]
    b = [float(i % 7 - 3) for i in range(N)]
    c = [x + y for x, y in zip(a, b)]
    y = [0.5 * x + 2.0 for x in c]
    z = [x + w for x, w in zip(y, b)]
    with open(os.path.join(out, "a.bin"), "wb") as f:
        f.write(f32(a))
    data = struct.pack("<%de" % N, *b)
    header = json.dumps({
        "__metadata__": {"note": "runtime-vadd.test"},
        "b": {"dtype": "F16", "shape": [N], "data_offsets": [0, len(data)]},
    }).encode()
    with open(os.path.join(out, "w.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)
    for name, values in (("c", c), ("y", y), ("z", z)):
        with open(os.path.join(out, name + ".ref"), "wb") as f:
            f.write(f32(values))


if __name__ == "__main__":
    main()
