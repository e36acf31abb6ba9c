"""Train programs against the reference's training loop (PyTorch).

For each MODEL[:CONFIG] argument: seeded weights (momac --init-weights), a
synthetic corpus (tools/moma-corpus.py), the train program (momac
--program=train, CPU), then

1. one step of moma-train against one step of the reference's `train`
   (torch.optim.AdamW, the schedule, clip_grad_norm_): every weight within
   1e-4 of its max-abs;
2. --steps steps of both, in the same batch order: total, ce and each
   modality's loss within 1e-3 relative at every step, and the learning rate
   and the gradient norm too.

Routing choices are discrete: f32 rounding that differs between the two
implementations can flip a token at a near-tie, after which the runs part.
When they part at step s, the script re-runs the reference to step s - 1,
measures the smallest gap between the last chosen and the first unchosen
score of every top-k selection of step s (expert choice, token choice, MoD),
and reports `parted at step s at a near-tie` when that gap is below 1e-3 of
the scores; a parting without such a tie is a failure. Prints one line per
model.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
REFERENCE = os.path.join(ROOT, "tools", "moma-reference")
sys.path.insert(0, REFERENCE)
from moma_reference import data, model, ops, safetensors  # noqa: E402
from moma_reference.config import load_model  # noqa: E402
from moma_reference.train import Trainer  # noqa: E402
from moma_reference.train_config import load_train_config  # noqa: E402
from moma_reference.weights import COMPUTE_DTYPES, load_weights  # noqa: E402

RTOL_LOSS = 1e-3
RTOL_WEIGHTS = 1e-4
TIE = 1e-3


def sh(*cmd):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{done.stderr}")
    return done.stdout


def reference_train(args, model_file, weights, config, corpus, steps):
    """The reference's training loop (its `train` command, in this process):
    the per-step records and the weights after every step."""
    cfg = load_model(model_file)
    trainer = Trainer(cfg, load_weights(cfg, weights, COMPUTE_DTYPES["f32"]),
                      load_train_config(config))
    rows = data.load_rows(corpus, cfg, args.seq_len)
    stream = data.RowStream(len(rows), args.seed, True)
    per_step = trainer.config.accumulation_steps * args.batch
    records, snapshots = [], []
    for _ in range(steps):
        record = trainer.step(*rows.select(stream.take(per_step)))
        records.append(json.loads(json.dumps(record.to_json())))
        snapshots.append({n: t.clone() for n, t in trainer.weights().items()})
    return records, snapshots


def moma_train(args, program, weights, corpus, steps, out):
    sh(args.moma_train, program, "--weights", weights, "--data", corpus,
       "--steps", steps, "--out", out, "--seed", args.seed, "--threads", 1,
       "--quiet")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def losses(record):
    """{name: value} of a moma-train or reference record (per modality
    under the modality's name; absent modalities are skipped)."""
    loss = record["loss"]
    out = {"total": loss["total"], "ce": loss["ce"]}
    for name, value in loss.get("ce_per_modality", {}).items():
        out[name] = value
    for name, value in loss.items():
        if name not in ("total", "ce", "ce_per_modality", "load_balancing",
                        "router_z", "aux_router") and not isinstance(value, dict):
            out[name] = value
    return {k: v for k, v in out.items() if v is not None}


def parting(ours, theirs):
    """The first step where a loss, the lr or the grad norm differ by more
    than RTOL_LOSS, with what differs, or None."""
    for a, b in zip(ours, theirs):
        la, lb = losses(a), losses(b)
        pairs = [(k, la[k], lb[k]) for k in la if k in lb]
        pairs += [("lr", a["lr"], b["lr"]),
                  ("grad_norm", a["grad_norm"], b["grad_norm"])]
        for name, x, y in pairs:
            if abs(x - y) > RTOL_LOSS * max(abs(y), 1e-6):
                return a["step"], f"{name} {x:.6g} vs {y:.6g}"
    return None


def smallest_gap(args, model_file, w, corpus, step, per_step):
    """The smallest relative gap at the top-k boundary of any selection of
    the reference's forward pass with weights `w` on step `step`'s rows."""
    cfg = load_model(model_file)
    rows = data.load_rows(corpus, cfg, args.seq_len)
    stream = data.RowStream(len(rows), args.seed, True)
    for _ in range(step):
        indices = stream.take(per_step)
    ids, modality = rows.select(indices)
    gaps = []
    original = ops.top_indices

    def recording(values, k):
        v = torch.sort(values.detach(), descending=True, stable=True).values
        if 0 < k < v.numel():
            scale = max(abs(float(v[k - 1])), abs(float(v[k])), 1e-30)
            gaps.append(float(v[k - 1] - v[k]) / scale)
        return original(values, k)

    ops.top_indices = recording
    try:
        model.run(cfg, w, ids, modality)
    finally:
        ops.top_indices = original
    return min(gaps) if gaps else None


def check(args, spec, work):
    model_file, _, config = spec.partition(":")
    config = config or args.train_config
    name = os.path.basename(model_file)
    weights = os.path.join(work, "w.safetensors")
    program = os.path.join(work, "t.momaprog")
    corpus = os.path.join(work, "c.momacorpus")
    sh(args.momac, model_file, f"--init-weights={weights}", "--seed=1")
    sh(args.momac, model_file, "--program=train", f"--train-config={config}",
       "--target=cpu", f"--batch={args.batch}", f"--seq-len={args.seq_len}",
       "-o", program)
    sh(sys.executable, os.path.join(ROOT, "tools", "moma-corpus.py"),
       model_file, "--out", corpus, "--tokens", 20000, "--seed", 1)
    per_step = load_train_config(config).accumulation_steps * args.batch

    # Both loops: the reference's in this process (weights after every
    # step), moma-train's for one step (its weights) and for all of them.
    theirs, snapshots = reference_train(args, model_file, weights, config,
                                        corpus, args.steps)
    moma_train(args, program, weights, corpus, 1, os.path.join(work, "one"))
    ours = safetensors.load(
        os.path.join(work, "one", "checkpoint", "weights.safetensors")).tensors
    worst = 0.0
    for tensor, expected in snapshots[0].items():
        err = (ours[tensor].double() - expected.double()).abs().max().item()
        scale = max(expected.abs().max().item(), 1e-30)
        worst = max(worst, err / scale)
        if err > RTOL_WEIGHTS * scale:
            return (f"{name}: FAILED: after one step, {tensor} differs by "
                    f"{err:.3g} (max-abs {scale:.3g})")

    ours = moma_train(args, program, weights, corpus, args.steps,
                      os.path.join(work, "many"))
    if len(ours) != args.steps:
        return f"{name}: FAILED: moma-train wrote {len(ours)} steps, not {args.steps}"
    parted = parting(ours, theirs)
    head = f"{name}: one step ok (weights within {worst:.1e} of max-abs)"
    if parted is None:
        return f"{head}; {args.steps} steps ok"
    step, what = parted
    cfg = load_model(model_file)
    before = (snapshots[step - 2] if step > 1 else
              load_weights(cfg, weights, COMPUTE_DTYPES["f32"]))
    gap = smallest_gap(args, model_file, before, corpus, step, per_step)
    if gap is not None and gap < TIE:
        return (f"{head}; {step - 1} steps ok, parted at step {step} at a "
                f"near-tie: {what}; the closest top-k boundary of step {step} "
                f"is {gap:.2g} of its scores apart")
    return (f"{name}: FAILED: parted at step {step} ({what}) with no near-tie "
            f"(closest top-k boundary {gap})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--momac", default="momac")
    parser.add_argument("--moma-train", default="moma-train")
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("models", nargs="+", metavar="MODEL[:CONFIG]")
    args = parser.parse_args()
    failures = 0
    for spec in args.models:
        with tempfile.TemporaryDirectory() as work:
            try:
                line = check(args, spec, work)
            except RuntimeError as error:
                line = f"{os.path.basename(spec)}: FAILED: {error}"
        failures += "FAILED" in line
        print(line, flush=True)
    print("train-vs-reference: all ok" if failures == 0 else
          f"train-vs-reference: {failures} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
