"""CPU benchmark: moma's compiled programs against PyTorch eager.

For each model, on one seeded set of weights and one generated token batch
(B x L, every modality of the model): momac compiles a CPU program, moma-run
times its forward (its own per-run wall clock, load excluded), and the
PyTorch reference (tools/moma-reference) runs the same forward in float32
with the same thread count. It prints counted FLOPs (momac --emit=flops),
the time and GFLOP/s of both, moma's speed relative to PyTorch, and moma's
GFLOP/s relative to an OpenBLAS sgemm of the model's FFN shape
([B*L, d_model] x [d_model, hidden]) run for at least the forward's FLOPs.
Both losses are printed; when they disagree the benchmark says so and exits
with status 1, so that a fast but wrong program is visible.

Run it through bench/run.sh (which installs OpenBLAS); see bench/README.md.
"""

import argparse
import glob
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import (best_cpu_level, blas_library, configure_threads, cpuinfo,
                      sgemm_rate)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QUICK_MODEL = os.path.join(ROOT, "examples", "tiny-moma-t4i4.json")


def default_models():
    """Every tiny example, then the d_model 256 MoMa and its dense baseline."""
    tiny = sorted(glob.glob(os.path.join(ROOT, "examples", "tiny-*.json")))
    return tiny + [os.path.join(HERE, "models", "moma-t4i4-d256.json"),
                   os.path.join(HERE, "models", "dense-d256.json")]


def parse_args(argv):
    build = os.environ.get("MOMA_BUILD_DIR", os.path.join(ROOT, "build"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", metavar="MODEL.json",
                   help="models to run (default: every tiny example and the "
                        "two models of bench/models)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads of both sides (default: all cores, %(default)s)")
    p.add_argument("--cpu", default=best_cpu_level(),
                   help="momac's CPU level: x86-64-v3 (AVX2 + FMA) or x86-64-v4 "
                   "(AVX-512); default: the best this CPU runs, as OpenBLAS "
                   "uses its best kernels")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--warmup", type=int, default=1, help="untimed runs (default 1)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs (default 5)")
    p.add_argument("--seed", type=int, default=1, help="weights and tokens seed")
    p.add_argument("--quick", action="store_true",
                   help="one tiny model at 2 x 64 tokens, no warm-up, 1 repeat "
                        "(what the test suite runs)")
    p.add_argument("--no-install", action="store_true",
                   help="accepted for bench/run.sh, which installs nothing with it")
    p.add_argument("--loss-rtol", type=float, default=1e-4,
                   help="relative tolerance of the loss check (default 1e-4)")
    p.add_argument("--momac", default=os.path.join(build, "bin", "momac"))
    p.add_argument("--moma-run", default=os.path.join(build, "bin", "moma-run"))
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.models = args.models or [QUICK_MODEL]
        args.seq_len, args.warmup, args.repeat = 64, 0, 1
    args.models = args.models or default_models()
    if args.threads < 1 or args.batch < 1 or args.seq_len < 2 or args.repeat < 1 or args.warmup < 0:
        p.error("--threads, --batch, --repeat must be >= 1, --seq-len >= 2, --warmup >= 0")
    for tool in (args.momac, args.moma_run):
        if not os.access(tool, os.X_OK):
            p.error(f"{tool} is not an executable: build it first "
                    "(bash tools/bootstrap.sh build && ninja -C build moma-run)")
    return args


# OpenBLAS and OpenMP read these when torch loads them.
ARGS = parse_args(sys.argv[1:])
configure_threads(ARGS.threads)

import torch  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools", "moma-reference"))
from moma_reference import config as ref_config  # noqa: E402
from moma_reference import model as ref_model  # noqa: E402
from moma_reference import tokens as ref_tokens  # noqa: E402
from moma_reference import weights as ref_weights  # noqa: E402


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: command failed: {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def write_tokens(cfg, batch, length, seed, path):
    """A moma-tokens/1 file of ``batch`` sequences of ``length`` tokens:
    segments of 4..32 tokens cycling through every modality of the model."""
    rng = random.Random(seed)
    sequences = []
    for b in range(batch):
        segments, left, m = [], length, b % len(cfg.modalities)
        while left:
            n = min(left, rng.randint(4, 32))
            mod = cfg.modalities[m]
            segments.append({"modality": mod.name,
                             "tokens": [rng.randrange(mod.begin, mod.end) for _ in range(n)]})
            left -= n
            m = (m + 1) % len(cfg.modalities)
        sequences.append(segments)
    with open(path, "w") as f:
        json.dump({"format": "moma-tokens/1",
                   "source": f"bench/bench.py, seed {seed}",
                   "sequences": sequences}, f)


def forward_flops(args, model, batch):
    """Counted FLOPs of one forward on ``batch``: momac's per-token
    ``forward total`` of each modality times that modality's tokens."""
    out = run([args.momac, model, f"--batch={args.batch}", f"--seq-len={args.seq_len}",
               "--emit=flops"]).splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("flops @forward"))
    names = out[header + 1].split()
    total = next(line for line in out if line.startswith("forward total "))
    per_token = [float(v) for v in total.split()[2:]]
    _, modality = batch.tensors()
    counts = [int((modality == m).sum()) for m in range(len(names))]
    return sum(c * f for c, f in zip(counts, per_token))


def moma_side(args, model, weights, tokens, tmp):
    program = os.path.join(tmp, "model.momaprog")
    run([args.momac, model, "--target=cpu", f"--cpu={args.cpu}",
         f"--batch={args.batch}",
         f"--seq-len={args.seq_len}", "-o", program])
    cmd = [args.moma_run, program, "--weights", weights, "--tokens", tokens,
           "--warmup", str(args.warmup), "--repeat", str(args.repeat),
           "--threads", str(args.threads)]
    out = run(cmd)
    timing = re.search(r"^moma-run: ran .*: median ([0-9.eE+-]+) ms", out, re.M)
    loss = re.search(r"^total (\S+)$", out, re.M)
    if not timing or not loss:
        raise SystemExit(f"bench: no timing or loss line in moma-run's output:\n{out}")
    return float(timing.group(1)), float(loss.group(1))


def torch_side(args, cfg, weights_file, batch):
    weights = ref_weights.load_weights(cfg, weights_file, torch.float32)
    ids, modality = batch.tensors()
    model = ref_model.Model(cfg, weights)
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.repeat):
            t = time.perf_counter()
            out = model.forward(ids, modality)
            if i >= args.warmup:
                times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), float(out.total)


def bench_model(args, model):
    cfg = ref_config.load_model(model)
    with tempfile.TemporaryDirectory(prefix="moma-bench-") as tmp:
        tokens = os.path.join(tmp, "tokens.json")
        weights = os.path.join(tmp, "weights.safetensors")
        write_tokens(cfg, args.batch, args.seq_len, args.seed, tokens)
        batch = ref_tokens.load_tokens(tokens, cfg)
        run([args.momac, model, f"--init-weights={weights}", f"--seed={args.seed}"])
        flops = forward_flops(args, model, batch)
        moma_ms, moma_loss = moma_side(args, model, weights, tokens, tmp)
        torch_ms, torch_loss = torch_side(args, cfg, weights, batch)
    hidden = cfg.layers[0].ffn.hidden
    shape = [args.batch * args.seq_len, cfg.d_model, hidden]
    sgemm = sgemm_rate(*shape, min_flops=flops)
    moma_gflops = flops / moma_ms / 1e6
    agree = abs(moma_loss - torch_loss) <= args.loss_rtol * max(abs(torch_loss), 1e-30)
    return {
        "model": cfg.name, "tokens": [args.batch, args.seq_len], "flops": flops,
        "moma_ms": moma_ms, "moma_gflops": moma_gflops,
        "torch_ms": torch_ms, "torch_gflops": flops / torch_ms / 1e6,
        "speed_vs_torch": torch_ms / moma_ms,
        "sgemm_shape": shape, "sgemm_gflops": sgemm,
        "vs_sgemm": moma_gflops / sgemm,
        "moma_loss": moma_loss, "torch_loss": torch_loss, "losses_agree": agree,
    }


COLUMNS = [("model", "{model}"), ("tokens", "{tokens[0]}x{tokens[1]}"),
           ("MFLOP", "{mflop:.1f}"), ("moma ms", "{moma_ms:.3f}"),
           ("moma GFLOP/s", "{moma_gflops:.3f}"), ("torch ms", "{torch_ms:.3f}"),
           ("moma/torch", "{speed_vs_torch:.3f}x"),
           ("sgemm M,K,N", "{sgemm_shape[0]},{sgemm_shape[1]},{sgemm_shape[2]}"),
           ("sgemm GFLOP/s", "{sgemm_gflops:.1f}"), ("moma/sgemm", "{vs_sgemm:.4f}"),
           ("moma loss", "{moma_loss:.7g}"), ("torch loss", "{torch_loss:.7g}"),
           ("agree", "{agree}")]


def print_table(rows):
    cells = [[h for h, _ in COLUMNS]]
    for r in rows:
        values = dict(r, mflop=r["flops"] / 1e6, agree="yes" if r["losses_agree"] else "NO")
        cells.append([fmt.format(**values) for _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for row in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())


def main():
    args = ARGS
    sys.stdout.reconfigure(line_buffering=True)
    torch.set_num_threads(args.threads)
    blas, openblas_details = blas_library()
    openblas = openblas_details is not None
    check = sgemm_rate(512, 256, 1024)
    cpu = cpuinfo("model name") or "unknown"
    print(f"cpu: {cpu} ({os.cpu_count()} cores)")
    print(f"threads: {args.threads} (torch.set_num_threads, OPENBLAS_NUM_THREADS); "
          f"moma-run --threads {args.threads}; momac --cpu={args.cpu}")
    print(f"torch {torch.__version__}, BLAS: {blas}"
          + ("" if openblas else " -- NOT OpenBLAS: PyTorch is not a fair peer"))
    print(f"OpenBLAS: {openblas_details[0]} kernels, {openblas_details[1]} threads"
          if openblas else "OpenBLAS: not loaded")
    print(f"sgemm 512x256x1024: {check:.1f} GFLOP/s")
    print(f"runs: {args.warmup} warm-up, {args.repeat} timed (median), seed {args.seed}")
    rows = [bench_model(args, m) for m in args.models]
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "cores": os.cpu_count(), "threads": args.threads,
                       "moma_threads": args.threads, "moma_cpu": args.cpu,
                       "torch": torch.__version__, "blas": blas, "openblas": openblas,
                       "openblas_kernels": openblas_details[0] if openblas else None,
                       "sgemm_512x256x1024_gflops": check,
                       "warmup": args.warmup, "repeat": args.repeat, "seed": args.seed,
                       "models": rows}, f, indent=2)
    bad = [r["model"] for r in rows if not r["losses_agree"]]
    if bad:
        print(f"bench: error: moma's loss differs from the reference's on "
              f"{', '.join(bad)} (rtol {args.loss_rtol})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
