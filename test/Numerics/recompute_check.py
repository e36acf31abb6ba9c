"""Layer recomputation against kept activations, on compiled CPU programs.

For each MODEL:TOKENS pair: momac writes seeded weights and compiles the
gradients program (or, with --train-config, the train program) for the token
file's shape twice, with `--recompute=none` and `--recompute=layer`;
`moma-run --grads` writes each program's gradients, which must agree within
`--rtol` (default 0: bit for bit) of each tensor's largest magnitude. With
`--arena MODEL`, the programs are only compiled (at --batch and --seq-len)
and their arena and scratch buffer sizes are compared instead: the arena
with layer recomputation must be the smaller. Prints one line per check;
needs only the standard library.
"""

import argparse
import array
import json
import os
import struct
import subprocess
import sys
import tempfile


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def load_safetensors(path):
    """name -> (dtype, shape, raw bytes) of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    base = 8 + length
    return {
        name: (entry["dtype"], entry["shape"],
               data[base + entry["data_offsets"][0]:
                    base + entry["data_offsets"][1]])
        for name, entry in header.items() if name != "__metadata__"
    }


def floats(dtype, raw):
    code = {"F32": "f", "F64": "d"}.get(dtype)
    if code is None:
        raise SystemExit(f"unexpected gradient dtype {dtype}")
    return array.array(code, raw)


def compare(kept_file, recomputed_file, rtol):
    """(number of tensors, bit-identical ones, worst relative difference)."""
    kept = load_safetensors(kept_file)
    recomputed = load_safetensors(recomputed_file)
    if kept.keys() != recomputed.keys():
        raise SystemExit(f"different tensors: {sorted(kept)} vs "
                         f"{sorted(recomputed)}")
    identical, worst = 0, 0.0
    for name, (dtype, shape, raw) in kept.items():
        other = recomputed[name]
        if (dtype, shape) != other[:2]:
            raise SystemExit(f"{name}: {dtype}{shape} vs {other[0]}{other[1]}")
        if raw == other[2]:
            identical += 1
            continue
        a, b = floats(dtype, raw), floats(dtype, other[2])
        scale = max((abs(v) for v in a), default=0.0) or 1.0
        diff = max(abs(x - y) for x, y in zip(a, b)) / scale
        worst = max(worst, diff)
        if not diff <= rtol:
            raise SystemExit(f"{name}: recomputed gradient differs by {diff:g} "
                             f"of its max-abs (allowed {rtol:g})")
    return len(kept), identical, worst


def program_args(args):
    if args.train_config:
        return ["--program=train", f"--train-config={args.train_config}"]
    return ["--program=gradients"]


def check_gradients(args, model, tokens_file, tmp):
    with open(tokens_file) as f:
        sequences = json.load(f)["sequences"]
    batch = len(sequences)
    length = sum(len(run_["tokens"]) for run_ in sequences[0])
    weights = os.path.join(tmp, "w.safetensors")
    run([args.momac, model, f"--init-weights={weights}", f"--seed={args.seed}"])
    grads = {}
    for mode in ("none", "layer"):
        program = os.path.join(tmp, f"{mode}.momaprog")
        grads[mode] = os.path.join(tmp, f"{mode}.safetensors")
        run([args.momac, model, *program_args(args), "--target=cpu",
             f"--recompute={mode}", f"--batch={batch}", f"--seq-len={length}",
             "-o", program] + args.momac_arg)
        run([args.moma_run, program, "--weights", weights, "--tokens",
             tokens_file, "--grads", grads[mode]])
    count, identical, worst = compare(grads["none"], grads["layer"], args.rtol)
    print(f"{os.path.basename(model)} {os.path.basename(tokens_file)}: ok "
          f"({count} gradients, {identical} bit-identical, worst {worst:g})")


def arena_sizes(args, program):
    manifest = json.loads(run([args.moma_pack, "--manifest", program]))
    scratch = sum(b["size"] for b in manifest["buffers"]
                  if b["role"] == "scratch")
    return manifest["arena"]["size"], scratch


def check_arena(args, model, tmp):
    sizes = {}
    for mode in ("none", "layer"):
        program = os.path.join(tmp, f"{mode}.momaprog")
        run([args.momac, model, *program_args(args), "--target=cpu",
             f"--recompute={mode}", f"--batch={args.batch}",
             f"--seq-len={args.seq_len}", "-o", program] + args.momac_arg)
        sizes[mode] = arena_sizes(args, program)
    (arena_none, scratch_none), (arena_layer, scratch_layer) = (
        sizes["none"], sizes["layer"])
    print(f"{os.path.basename(model)} batch {args.batch} seq-len "
          f"{args.seq_len}: arena none {arena_none} layer {arena_layer}, "
          f"scratch none {scratch_none} layer {scratch_layer}")
    if not arena_layer < arena_none:
        raise SystemExit("the arena with layer recomputation is not smaller")
    print(f"smaller by {arena_none - arena_layer} bytes "
          f"({100.0 * (arena_none - arena_layer) / arena_none:.1f}% of the "
          f"arena, {100.0 * (scratch_none - scratch_layer) / scratch_none:.1f}% "
          f"of the scratch buffer)")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pairs", nargs="*", metavar="MODEL:TOKENS")
    parser.add_argument("--momac", required=True)
    parser.add_argument("--moma-run", default="moma-run")
    parser.add_argument("--moma-pack", default="moma-pack")
    parser.add_argument("--momac-arg", action="append", default=[])
    parser.add_argument("--train-config")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rtol", type=float, default=0.0)
    parser.add_argument("--arena", action="append", default=[],
                        metavar="MODEL")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()
    for pair in args.pairs:
        model, tokens_file = pair.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            check_gradients(args, model, tokens_file, tmp)
    for model in args.arena:
        with tempfile.TemporaryDirectory() as tmp:
            check_arena(args, model, tmp)


if __name__ == "__main__":
    sys.exit(main())
