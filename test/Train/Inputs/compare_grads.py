"""Compares two gradient files as test/Numerics/model_grads.py does.

Usage: compare_grads.py GOT.safetensors REFERENCE.safetensors [--rtol R]

Both files must hold the same tensors, and every tensor must agree within
rtol (default 1e-4) of its largest magnitude in the reference (an absolute
floor of 1e-6 * rtol for a gradient of 0). Prints the count and the worst
relative error; exits with 1 naming the first tensor that differs.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Numerics"))
from model_grads import tensors  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("got")
parser.add_argument("reference")
parser.add_argument("--rtol", type=float, default=1e-4)
args = parser.parse_args()
got, ref = tensors(args.got), tensors(args.reference)
if sorted(got) != sorted(ref):
    sys.exit(f"gradient tensors differ: only in {args.got} "
             f"{sorted(set(got) - set(ref))}, only in {args.reference} "
             f"{sorted(set(ref) - set(got))}")
worst, worst_name = 0.0, ""
for name in sorted(ref):
    r, g = ref[name], got[name].reshape(ref[name].shape)
    scale = float(np.abs(r).max()) if r.size else 0.0
    error = float(np.abs(g - r).max()) if r.size else 0.0
    if not np.isfinite(g).all() or error > args.rtol * max(scale, 1e-6):
        sys.exit(f"d total / d {name} differs: max |diff| {error:.3e} > "
                 f"{args.rtol} * max |ref| ({scale:.3e})")
    if error / max(scale, 1e-6) >= worst:
        worst, worst_name = error / max(scale, 1e-6), name
print(f"{len(ref)} gradients agree; worst relative error {worst:.1e} "
      f"({worst_name})")
