"""Compile time and memory of momac against the number of layers.

For a model and a list of layer counts, writes the model with `num_layers`
set to each count (every other field unchanged: the layer pattern repeats),
then times `momac --emit=kernels` and a CPU compile (`momac --target=cpu`)
of each at B x L tokens. Each compile is one child process; its wall time
and peak resident memory (the kernel's rusage of that child) are printed,
with the increment per layer between consecutive counts, which stays flat
when compile time is linear in depth.

Run it through bench/run.sh --compile-scaling (see bench/README.md), or
directly with --momac.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse_args(argv):
    build = os.environ.get("MOMA_BUILD_DIR", os.path.join(ROOT, "build"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?",
                   default=os.path.join(ROOT, "examples", "moma-1.4b-t4i4.json"),
                   help="model file (default: examples/moma-1.4b-t4i4.json)")
    p.add_argument("--layers", default="3,6,12,24",
                   help="comma-separated layer counts (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--cpu", default="x86-64-v3", help="momac --cpu level")
    p.add_argument("--momac", default=os.path.join(build, "bin", "momac"))
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    try:
        args.layers = [int(n) for n in args.layers.split(",")]
    except ValueError:
        p.error(f"--layers: expected comma-separated integers, got "
                f"'{args.layers}'")
    if not args.layers or min(args.layers) < 1:
        p.error("--layers: every count must be at least 1")
    if not (os.path.isfile(args.momac) and os.access(args.momac, os.X_OK)):
        p.error(f"{args.momac} is not an executable: build it first")
    return args


def timed(cmd):
    """(wall seconds, peak RSS in MiB) of one child; exits on failure."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stderr = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"compile_scaling.py: error: {' '.join(cmd)} failed:\n{stderr}")
    return wall, usage.ru_maxrss / 1024.0


def main(argv):
    args = parse_args(argv)
    with open(args.model) as f:
        config = json.load(f)
    name = config.get("name", os.path.basename(args.model))
    print(f"model: {name}, {args.batch}x{args.seq_len} tokens, "
          f"momac --cpu={args.cpu}")
    print("layers kernels_s kernels_MiB cpu_s cpu_MiB cpu_s_per_added_layer")
    rows = []
    with tempfile.TemporaryDirectory(prefix="moma-scaling-") as tmp:
        previous = None
        for layers in args.layers:
            variant = dict(config, num_layers=layers)
            model = os.path.join(tmp, f"{layers}.json")
            with open(model, "w") as f:
                json.dump(variant, f)
            common = [args.momac, model, f"--batch={args.batch}",
                      f"--seq-len={args.seq_len}"]
            k_s, k_mib = timed(common + ["--emit=kernels", "-o", os.devnull])
            c_s, c_mib = timed(common + ["--target=cpu", f"--cpu={args.cpu}",
                                         "-o", os.path.join(tmp, "p.momaprog")])
            step = ("-" if previous is None else
                    f"{(c_s - previous[1]) / (layers - previous[0]):.2f}"
                    if layers != previous[0] else "-")
            print(f"{layers} {k_s:.2f} {k_mib:.0f} {c_s:.2f} {c_mib:.0f} {step}",
                  flush=True)
            rows.append({"layers": layers, "kernels_s": k_s,
                         "kernels_mib": k_mib, "cpu_s": c_s, "cpu_mib": c_mib})
            previous = (layers, c_s)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": name, "batch": args.batch,
                       "seq_len": args.seq_len, "cpu": args.cpu,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
