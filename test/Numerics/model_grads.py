"""Gradients of compiled CPU programs against the PyTorch reference.

For each model file: momac writes seeded weights and compiles a gradients
program (`--program=gradients`) for the token file's shape; `moma-run
--grads` writes d(total)/d(weight) for every weight, and the reference's
`run --grads` (float64) does the same on the same weights and tokens. Both
files must hold the same tensors, and every tensor must agree within
`--rtol` (default 1e-4) of its largest magnitude in the reference:
`max |compiled - reference| <= rtol * max |reference|` (with an absolute
floor of 1e-6 * rtol for tensors the loss does not reach, whose gradient is
0). `--edge-cases MODEL` adds generated batches: one modality absent, one
modality only, and every token the same (token_cases.py). Prints one line
per model and token file.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "moma-reference"))
from moma_reference import config as ref_config  # noqa: E402
from moma_reference import safetensors as ref_safetensors  # noqa: E402
from moma_reference import tokens as ref_tokens  # noqa: E402
from token_cases import edge_token_files  # noqa: E402 (beside this file)

REFERENCE = os.path.join(ROOT, "tools", "moma-reference", "moma_reference.py")


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def tensors(path):
    f = ref_safetensors.load(path)
    return {name: t.double().numpy() for name, t in f.tensors.items()}


COMPILED = {}


def check(args, model, tokens_file, tmp):
    cfg = ref_config.load_model(model)
    batch = ref_tokens.load_tokens(tokens_file, cfg)
    ids, _ = batch.tensors()
    B, L = ids.shape
    # One program and one weights file per model and shape, shared by the
    # token files of that shape (compiling dominates the run time).
    key = (model, B, L)
    if key not in COMPILED:
        index = len(COMPILED)
        weights = os.path.join(tmp, f"w{index}.safetensors")
        program = os.path.join(tmp, f"g{index}.momaprog")
        run([args.momac, model, f"--init-weights={weights}",
             f"--seed={args.seed}"])
        run([args.momac, model, "--program=gradients", "--target=cpu",
             f"--batch={B}", f"--seq-len={L}", "-o", program] + args.momac_arg)
        COMPILED[key] = (weights, program)
    weights, program = COMPILED[key]
    got_file = os.path.join(tmp, "got.safetensors")
    ref_file = os.path.join(tmp, "ref.safetensors")
    run([args.moma_run, program, "--weights", weights, "--tokens", tokens_file,
         "--grads", got_file])
    run([sys.executable, REFERENCE, "run", model, "--weights", weights,
         "--tokens", tokens_file, "--grads", ref_file])
    got, ref = tensors(got_file), tensors(ref_file)
    if sorted(got) != sorted(ref):
        raise SystemExit(f"{os.path.basename(model)}: gradient tensors differ: "
                         f"only compiled {sorted(set(got) - set(ref))}, only "
                         f"reference {sorted(set(ref) - set(got))}")
    worst, worst_name = 0.0, ""
    for name in sorted(ref):
        r, g = ref[name], got[name].reshape(ref[name].shape)
        scale = float(np.abs(r).max()) if r.size else 0.0
        error = float(np.abs(g - r).max()) if r.size else 0.0
        bound = args.rtol * max(scale, 1e-6)
        if not np.isfinite(g).all() or error > bound:
            raise SystemExit(
                f"{os.path.basename(model)} {os.path.basename(tokens_file)}: "
                f"d total / d {name} differs: max |diff| {error:.3e} > "
                f"{args.rtol} * max |ref| ({scale:.3e})\n"
                f"compiled {g.ravel()[:6]}\nreference {r.ravel()[:6]}")
        relative = error / max(scale, 1e-6)
        if relative >= worst:
            worst, worst_name = relative, name
    print(f"{os.path.basename(model)} {os.path.basename(tokens_file)}: ok "
          f"({len(ref)} gradients; worst relative error {worst:.1e}, "
          f"{worst_name})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--momac", default="momac")
    parser.add_argument("--moma-run", default="moma-run")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--momac-arg", action="append", default=[],
                        help="an extra momac argument (repeatable)")
    parser.add_argument("--edge-cases", action="append", default=[],
                        metavar="MODEL")
    parser.add_argument("cases", nargs="*", metavar="MODEL:TOKENS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            model, tokens_file = case.rsplit(":", 1)
            check(args, model, tokens_file, tmp)
        for model in args.edge_cases:
            for tokens_file in edge_token_files(tmp, args.seed):
                check(args, model, tokens_file, tmp)


if __name__ == "__main__":
    main()
