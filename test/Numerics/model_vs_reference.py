"""Compiled CPU programs against the PyTorch reference, whole models.

For each model file: momac writes seeded weights and compiles a CPU
program for the token batch's shape; moma-run executes it on the token
file's ids and modalities (and the next-token targets); the reference runs
the same model on the same weights in float32. Logits and every loss must
agree: `|compiled - reference| <= rtol * max(|reference|)` per output, with
rtol 1e-5 (a scale-relative bound: elementwise relative error is undefined
for logits near 0).

With `--dtype bf16` or `f16` the model file's dtype is replaced by it: the
weights are written, the program compiled and the reference run (its
mixed-precision mode: stored in that dtype, every op computed in float32,
Semantics.md "Precision") in that dtype, and outputs are compared after
widening both to float32, at the `--rtol` the test gives (examples/README.md,
"Numerics tolerances", says why those values).

With `--outputs loss` the program is compiled without its logits (momac
--outputs=loss: the LM head is fused with cross-entropy), every loss is
compared, and the program must have no `logits` buffer at all;
`--vocab-chunk` sets the fused head's vocabulary chunk.

With `--routing aux` the program is compiled with momac --routing=aux and
the reference runs with routing "aux": the auxiliary routers' logits decide
expert-choice and mixture-of-depths selection (taken where > 0).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "moma-reference"))
from moma_reference import config as ref_config  # noqa: E402
from moma_reference import model as ref_model  # noqa: E402
from moma_reference import safetensors as ref_safetensors  # noqa: E402
from moma_reference import tokens as ref_tokens  # noqa: E402
from moma_reference import weights as ref_weights  # noqa: E402
from token_cases import edge_token_files  # noqa: E402 (beside this file)

OUTPUTS = ["logits", "ce_per_modality", "ce", "load_balancing", "router_z",
           "aux_router", "total"]


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def zero_routers(weights_file):
    """Sets every router weight (MoE groups' and mixture-of-depths') to 0,
    so that all router scores tie and the tie rules alone select tokens."""
    f = ref_safetensors.load(weights_file)
    tensors = {name: torch.zeros_like(t) if ".router" in name else t
               for name, t in f.tensors.items()}
    ref_safetensors.save(weights_file, tensors, f.metadata)


def randomize_norms(weights_file, seed):
    """Replaces the norm weights (ones) and biases (zeros) of a weights file
    by random values, so that norms cannot hide behind their initial value
    (a zero bias adds nothing)."""
    f = ref_safetensors.load(weights_file)
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, t in f.tensors.items():
        if "norm." in name:
            t = torch.randn(t.shape, generator=g, dtype=torch.float32) * 0.5
            t = t + 1.0 if name.endswith(".weight") else t
        tensors[name] = t
    ref_safetensors.save(weights_file, tensors, f.metadata)


#: --dtype -> (numpy dtype of a dumped element, torch dtype of the
#: reference's weights).
DTYPES = {
    "f32": ("<f4", torch.float32),
    "bf16": ("<u2", torch.bfloat16),
    "f16": ("<f2", torch.float16),
}


def read_output(path, dtype):
    """A dumped output as float32 (bf16 as its 16-bit patterns)."""
    raw = np.fromfile(path, dtype=DTYPES[dtype][0])
    if dtype == "bf16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def with_dtype(model, dtype, tmp):
    """`model`, or a copy of it in `tmp` whose dtype is `dtype`."""
    if dtype == "f32":
        return model
    with open(model) as f:
        definition = json.load(f)
    definition["dtype"] = dtype
    path = os.path.join(tmp, os.path.basename(model))
    with open(path, "w") as f:
        json.dump(definition, f)
    return path


def check_model(args, model, tokens_file, seed, tmp):
    model = with_dtype(model, args.dtype, tmp)
    cfg = ref_config.load_model(model)
    batch = ref_tokens.load_tokens(tokens_file, cfg)
    ids, modality = batch.tensors()
    B, L = ids.shape
    weights_file = os.path.join(tmp, "w.safetensors")
    program = os.path.join(tmp, "m.momaprog")
    run([args.momac, model, f"--init-weights={weights_file}", f"--seed={seed}"])
    if args.random_norms:
        randomize_norms(weights_file, seed)
    if args.zero_routers:
        zero_routers(weights_file)
    compile_cmd = [args.momac, model, "--target=cpu", f"--batch={B}",
                   f"--seq-len={L}", f"--outputs={args.outputs}",
                   f"--combine={args.combine}", f"--routing={args.routing}",
                   "-o", program]
    if args.vocab_chunk:
        compile_cmd.append(f"--vocab-chunk={args.vocab_chunk}")
    run(compile_cmd + args.momac_arg)
    outputs = [name for name in OUTPUTS
               if args.outputs == "all" or name != "logits"]

    pad = torch.full((B, 1), -1, dtype=ids.dtype)
    inputs = {
        "ids": ids, "modality": modality,
        "targets": torch.cat([ids[:, 1:], pad], 1),
        "target_modality": torch.cat([modality[:, 1:], pad], 1),
    }
    cmd = [args.moma_run, program, "--weights", weights_file]
    for name, value in inputs.items():
        path = os.path.join(tmp, f"{name}.bin")
        value.numpy().astype("<i4").tofile(path)
        cmd += ["--input", f"{name}={path}"]
    for name in outputs:
        cmd += ["--dump", f"{name}={os.path.join(tmp, name + '.out')}"]
    run(cmd)
    if args.outputs == "loss":
        # A loss-only program has no logits buffer: asking for it fails.
        missing = subprocess.run(
            cmd + ["--dump", f"logits={os.path.join(tmp, 'logits.out')}"],
            capture_output=True, text=True)
        if missing.returncode == 0 or "no buffer named 'logits'" not in \
                missing.stderr:
            raise SystemExit(f"{os.path.basename(model)}: the loss-only "
                             f"program has a logits buffer\n{missing.stderr}")

    weights = ref_weights.load_weights(cfg, weights_file, DTYPES[args.dtype][1])
    out, _ = ref_model.run(cfg, weights, ids, modality, routing=args.routing)
    expected = {
        "logits": out.logits, "ce_per_modality": out.ce, "ce": out.ce_total,
        "load_balancing": out.load_balancing, "router_z": out.router_z,
        "aux_router": out.aux_router, "total": out.total,
    }
    worst = 0.0
    for name in outputs:
        ref = expected[name].detach().float().numpy()
        got = read_output(os.path.join(tmp, name + ".out"), args.dtype)
        got = got.reshape(ref.shape)
        scale = max(float(np.max(np.abs(ref))), 1e-30)
        error = float(np.max(np.abs(got - ref))) / scale if ref.size else 0.0
        worst = max(worst, error)
        if not np.all(np.isfinite(got)) or error > args.rtol:
            raise SystemExit(f"{os.path.basename(model)}: {name} differs: "
                             f"relative error {error:.3e} > {args.rtol}\n"
                             f"compiled {got.ravel()[:8]}\n"
                             f"reference {ref.ravel()[:8]}")
    ce = " ".join(f"{m.name}={v:.6f}" for m, v in
                  zip(cfg.modalities, out.ce.tolist()))
    dtype = "" if args.dtype == "f32" else f" {args.dtype}"
    if args.outputs == "loss":
        dtype += " loss-only"
    if args.routing == "aux":
        dtype += " routing-aux"
    print(f"{os.path.basename(model)}{dtype} {os.path.basename(tokens_file)}: ok "
          f"(worst relative error {worst:.1e}; ce {ce})")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--momac", default="momac")
    parser.add_argument("--moma-run", default="moma-run")
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--combine", choices=["deterministic", "fast"],
                        default="deterministic",
                        help="momac --combine: moma.combine's mode")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f32",
                        help="run the models in this dtype instead of "
                             "their own (the examples are f32)")
    parser.add_argument("--outputs", choices=["all", "loss"], default="all",
                        help="momac --outputs: loss compiles the program "
                             "without logits (the fused LM head)")
    parser.add_argument("--routing", choices=["batch", "aux"], default="batch",
                        help="momac --routing and the reference's routing")
    parser.add_argument("--vocab-chunk", type=int, default=0,
                        help="momac --vocab-chunk (0: the cost model's)")
    parser.add_argument("--random-norms", action="store_true",
                        help="random norm weights and biases instead of "
                             "ones and zeros")
    parser.add_argument("--zero-routers", action="store_true",
                        help="zero router weights: every score ties")
    parser.add_argument("--momac-arg", action="append", default=[],
                        help="pass this option to momac's compile")
    parser.add_argument("--edge-cases", action="append", default=[],
                        metavar="MODEL.json",
                        help="also run MODEL (text+image) on generated token "
                             "files: one modality absent, uneven loads")
    parser.add_argument("cases", nargs="*",
                        help="MODEL.json:TOKENS.json pairs")
    args = parser.parse_args()
    for case in args.cases:
        model, tokens_file = case.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            check_model(args, model, tokens_file, args.seed, tmp)
    with tempfile.TemporaryDirectory() as tokens_dir:
        edge_files = edge_token_files(tokens_dir, args.seed)
        for model in args.edge_cases:
            for tokens_file in edge_files:
                with tempfile.TemporaryDirectory() as tmp:
                    check_model(args, model, tokens_file, args.seed, tmp)


if __name__ == "__main__":
    main()
