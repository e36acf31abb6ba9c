#!/usr/bin/env python3
"""Runs moma-opt on seeded corruptions of .mlir files and fails on a crash.

Each input file is split at `// -----` markers; every mutant is one chunk
corrupted in one of many ways (truncation, deleted or duplicated spans,
swapped tokens, extreme or negative numbers, wrong keywords, wrong element
types, stray punctuation, flipped bytes). moma-opt must either accept the
mutant or reject it with a located diagnostic (`file:line:col: error:`) and a
non-zero exit; a signal, an assertion, `LLVM ERROR`, a stack dump or a
rejection without a located error is a failure. Mutants that fail are written
to --out-dir for reproduction.
"""

import argparse
import concurrent.futures
import os
import random
import re
import subprocess
import sys
import tempfile

NUMBERS = ["0", "-1", "1", "-9223372036854775808", "9223372036854775807",
           "18446744073709551616", "99999999999999999999999", "2147483648",
           "-2147483649", "1.0e308", "-0.0", "0x7FF8000000000000", "1e-400",
           "4294967296", "3"]
KEYWORDS = ["swiglu", "gelu", "rms", "layer", "token_choice", "expert_choice",
            "softmax", "sigmoid", "renormalize", "modality", "positions",
            "bias", "lora", "gate", "aux", "residual", "groups", "weights",
            "heads", "kv_heads", "head_dim", "tokens", "to", "experts",
            "top_k", "capacity", "score", "moma.yield", "moma.route",
            "moma.depth_region", "func.func", "return", "#moma.modality",
            "#moma.expert_group", "moma.modalities"]
TYPES = ["f32", "f16", "bf16", "f64", "i32", "i64", "i1", "index", "f8E4M3FN",
         "tensor<?xf32>", "tensor<*xf32>", "tensor<0x0xf32>", "none",
         "memref<2xf32>", "vector<4xf32>", "tensor<2x8xi32>"]
PUNCT = list("()[]{}<>,:=%#@^!\"") + ["->", "...", "\\", "\x00", "\xff"]
CRASH_MARKERS = ["Assertion", "LLVM ERROR", "Stack dump", "PLEASE submit",
                 "UNREACHABLE", "Segmentation fault", "AddressSanitizer",
                 "runtime error:"]
LOCATED_ERROR = re.compile(r"^[^\s:]+:\d+:\d+: error: ", re.M)


def mutate(text, rng):
    """Returns one corrupted copy of `text`: one or several corruptions."""
    if rng.randrange(5) == 0:
        for _ in range(rng.randint(2, 5)):
            text = mutate_once(text, rng)
        return text
    return mutate_once(text, rng)


def mutate_once(text, rng):
    """Applies one corruption; kinds that find nothing to change flip a byte."""
    kind = rng.randrange(10)
    n = len(text)
    if n == 0:
        return "}"
    pos = rng.randrange(n)
    if kind == 0:  # truncate
        return text[:pos]
    if kind == 1:  # delete a span
        return text[:pos] + text[pos + rng.randint(1, 40):]
    if kind == 2:  # duplicate a span
        span = text[pos:pos + rng.randint(1, 80)]
        return text[:pos] + span + text[pos:]
    if kind == 3:  # replace a number
        numbers = list(re.finditer(r"-?\d+(\.\d+)?(e[-+]?\d+)?", text))
        if numbers:
            m = rng.choice(numbers)
            return text[:m.start()] + rng.choice(NUMBERS) + text[m.end():]
    if kind == 4:  # replace a keyword
        words = list(re.finditer(r"[A-Za-z_][\w.]*", text))
        if words:
            m = rng.choice(words)
            return text[:m.start()] + rng.choice(KEYWORDS) + text[m.end():]
    if kind == 5:  # replace an element type or a whole type
        types = list(re.finditer(r"\b(f32|f16|bf16|i32|i64|f64)\b", text))
        if types:
            m = rng.choice(types)
            return text[:m.start()] + rng.choice(TYPES) + text[m.end():]
    if kind == 6:  # change one dimension of a shape
        dims = list(re.finditer(r"(?<=[<x])\d+(?=x)", text))
        if dims:
            m = rng.choice(dims)
            return text[:m.start()] + rng.choice(["0", "1", "3", "?", "7", "4096"]) + text[m.end():]
    if kind == 7:  # insert punctuation
        return text[:pos] + rng.choice(PUNCT) + text[pos:]
    if kind == 8:  # swap two SSA values
        values = list(re.finditer(r"%[\w]+", text))
        if len(values) >= 2:
            a, b = sorted(rng.sample(values, 2), key=lambda m: m.start())
            return (text[:a.start()] + b.group() + text[a.end():b.start()] +
                    a.group() + text[b.end():])
    # Flip a byte (kind 9, and the fallback).
    return text[:pos] + chr(rng.randrange(1, 128)) + text[pos + 1:]


def run_one(job):
    """Runs moma-opt on one mutant; returns None or a failure description."""
    moma_opt, text, extra, timeout = job
    with tempfile.NamedTemporaryFile("w", suffix=".mlir", delete=False,
                                     encoding="utf-8", errors="replace") as f:
        f.write(text)
        path = f.name
    try:
        proc = subprocess.run([moma_opt, path, "-o", os.devnull] + extra,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode < 0:
            return f"killed by signal {-proc.returncode}", err
        for marker in CRASH_MARKERS:
            if marker in err:
                return f"crash marker '{marker}'", err
        if proc.returncode != 0 and not LOCATED_ERROR.search(err):
            return "rejected without a located 'error:' diagnostic", err
        return None
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout} s", ""
    finally:
        os.unlink(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--moma-opt", default="moma-opt")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mutants", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args()

    chunks = []
    for path in args.inputs:
        with open(path, encoding="utf-8") as f:
            chunks += [c for c in f.read().split("// -----") if c.strip()]
    rng = random.Random(args.seed)
    pipelines = [[], ["--canonicalize"], ["--canonicalize", "--cse"],
                 ["--mlir-print-op-generic"]]
    jobs = []
    for _ in range(args.mutants):
        text = mutate(rng.choice(chunks), rng)
        jobs.append((args.moma_opt, text, rng.choice(pipelines), args.timeout))

    failures = 0
    accepted = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for index, result in enumerate(pool.map(run_one, jobs)):
            if result is None:
                accepted += 1
                continue
            failures += 1
            reason, err = result
            print(f"mutant {index}: {reason} (moma-opt {' '.join(jobs[index][2])})")
            print(err[-2000:])
            if args.out_dir:
                os.makedirs(args.out_dir, exist_ok=True)
                with open(os.path.join(args.out_dir, f"mutant-{index}.mlir"),
                          "w", encoding="utf-8", errors="replace") as f:
                    f.write(jobs[index][1])
    print(f"mutants: {len(jobs)}, no crash: {accepted}, crashes: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
