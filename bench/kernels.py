"""Matmul-class kernels of the CPU mapping against OpenBLAS at their shapes.

Each case is one linalg op of a form moma's lowering produces (a plain
matmul: linears, projections, the LM head; row-selected weights: grouped
experts and untied linears, one weight slice per row; the dot form:
attention's Q K^T), at the shapes of the d_model 256 MoMa of
bench/models at 2 x 256 tokens. It goes through the CPU pipeline
(`moma-opt --moma-to-cpu`, which maps it with moma-cpu-vectorize-
contractions and runs its tiles on OpenMP threads), LLVM at -O3 for the
CPU level, and is called through ctypes on seeded inputs: the best of
several trials, each at least --min-mflop. The peer is torch's sgemm
(OpenBLAS) of the same FLOPs at the same thread count: torch.mm at
[M, K] x [K, N] (torch.bmm for the dot form). Every result is checked
against numpy first, so a fast but wrong kernel is visible.

Run it through bench/run.sh --kernels (see bench/README.md).
"""

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time

from benchlib import best_cpu_level, blas_library, configure_threads, cpuinfo

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LLVM_BIN = "/usr/lib/llvm-22/bin"


def parse_args(argv):
    build = os.environ.get("MOMA_BUILD_DIR", os.path.join(ROOT, "build"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--cpu", default=best_cpu_level(),
                   help="x86-64-v3 or x86-64-v4 (default: the best this CPU "
                   "runs)")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--min-mflop", type=float, default=500.0,
                   help="FLOPs each trial runs at least (default 500 MFLOP)")
    p.add_argument("--quick", action="store_true",
                   help="small shapes, one trial (checks that it runs)")
    p.add_argument("--moma-opt", default=os.path.join(build, "bin", "moma-opt"))
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    if not (os.path.isfile(args.moma_opt) and os.access(args.moma_opt, os.X_OK)):
        p.error(f"{args.moma_opt} is not an executable: build it first")
    if args.cpu not in ("x86-64-v3", "x86-64-v4"):
        p.error(f"--cpu: expected x86-64-v3 or x86-64-v4, got '{args.cpu}'")
    if args.quick:
        args.trials, args.min_mflop = 1, 0.0
    return args


ARGS = parse_args(sys.argv[1:])
configure_threads(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402


# The functions work on buffers, the output last: what the kernel does in a
# program (its output is a slice of the arena there), with no allocation or
# copy around it.
def t(shape):
    return f"memref<{'x'.join(str(d) for d in shape)}xf32>"


def zero_init(shape):
    return (f"    %zero = arith.constant 0.0 : f32\n"
            f"    linalg.fill ins(%zero : f32) outs(%c : {t(shape)})\n")


def matmul(name, m, k, n):
    """C = A B (linears, projections, the LM head)."""
    func = (f"  func.func @op(%a: {t((m, k))}, %b: {t((k, n))}, %c: {t((m, n))}) {{\n"
            + zero_init((m, n)) +
            f"    linalg.matmul ins(%a, %b : {t((m, k))}, {t((k, n))})\n"
            f"                  outs(%c : {t((m, n))})\n"
            f"    return\n  }}")

    def inputs(rng):
        return [rng.standard_normal((m, k), dtype=np.float32),
                rng.standard_normal((k, n), dtype=np.float32)]

    def expected(a, b):
        return a.astype(np.float64) @ b.astype(np.float64)

    peer = (torch.randn(m, k), torch.randn(k, n))
    return dict(name=name, shape=(m, k, n), func=func, inputs=inputs,
                expected=expected, out=(m, n), flops=2.0 * m * k * n,
                peer=lambda: torch.mm(*peer))


def row_selected(name, rows, k, n, groups):
    """C[s] = A[s] W[sel[s]]: grouped experts (slots in expert-major
    blocks of rows / groups), the form moma.experts lowers to."""
    func = f"""  func.func @op(%x: {t((rows, k))}, %sel: memref<{rows}xi32>,
                %w: {t((groups, k, n))}, %c: {t((rows, n))}) {{
{zero_init((rows, n))}    %lo0 = arith.constant 0 : i32
    %last = arith.constant {groups - 1} : i32
    linalg.generic {{
        indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                         affine_map<(t, n, k) -> (t)>,
                         affine_map<(t, n, k) -> (t, n)>],
        iterator_types = ["parallel", "parallel", "reduction"]}}
        ins(%x, %sel : {t((rows, k))}, memref<{rows}xi32>)
        outs(%c : {t((rows, n))}) {{
    ^bb0(%in: f32, %s: i32, %out: f32):
      %lo = arith.maxsi %s, %lo0 : i32
      %cl = arith.minsi %lo, %last : i32
      %slice = arith.index_cast %cl : i32 to index
      %col = linalg.index 1 : index
      %red = linalg.index 2 : index
      %wv = memref.load %w[%slice, %red, %col] : {t((groups, k, n))}
      %p = arith.mulf %in, %wv : f32
      %sum = arith.addf %out, %p : f32
      linalg.yield %sum : f32
    }}
    return
  }}"""
    sel = (np.arange(rows) // (rows // groups)).astype(np.int32)

    def inputs(rng):
        return [rng.standard_normal((rows, k), dtype=np.float32), sel,
                rng.standard_normal((groups, k, n), dtype=np.float32)]

    def expected(x, s, w):
        return np.einsum("tk,tkn->tn", x.astype(np.float64),
                         w[s].astype(np.float64))

    peer = (torch.randn(rows, k), torch.randn(k, n))
    return dict(name=name, shape=(rows, k, n), func=func, inputs=inputs,
                expected=expected, out=(rows, n), flops=2.0 * rows * k * n,
                peer=lambda: torch.mm(*peer))


def dot(name, batch, m, n, k):
    """C[b] = A[b] B[b]^T with k contiguous in both (attention's Q K^T)."""
    func = f"""  func.func @op(%a: {t((batch, m, k))}, %b: {t((batch, n, k))},
                %c: {t((batch, m, n))}) {{
{zero_init((batch, m, n))}    linalg.generic {{
        indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>,
                         affine_map<(b, m, n, k) -> (b, n, k)>,
                         affine_map<(b, m, n, k) -> (b, m, n)>],
        iterator_types = ["parallel", "parallel", "parallel", "reduction"]}}
        ins(%a, %b : {t((batch, m, k))}, {t((batch, n, k))})
        outs(%c : {t((batch, m, n))}) {{
    ^bb0(%x: f32, %y: f32, %out: f32):
      %p = arith.mulf %x, %y : f32
      %sum = arith.addf %out, %p : f32
      linalg.yield %sum : f32
    }}
    return
  }}"""

    def inputs(rng):
        return [rng.standard_normal((batch, m, k), dtype=np.float32),
                rng.standard_normal((batch, n, k), dtype=np.float32)]

    def expected(a, b):
        return np.einsum("bmk,bnk->bmn", a.astype(np.float64),
                         b.astype(np.float64))

    pa, pb = torch.randn(batch, m, k), torch.randn(batch, k, n)
    return dict(name=name, shape=(batch * m, k, n), func=func, inputs=inputs,
                expected=expected, out=(batch, m, n),
                flops=2.0 * batch * m * n * k, peer=lambda: torch.bmm(pa, pb))


def cases(quick):
    if quick:
        return [matmul("linear", 64, 32, 48),
                row_selected("experts", 64, 32, 48, 4),
                dot("attention q.k", 2, 16, 16, 8)]
    tokens, d, hidden, vocab, heads = 512, 256, 1024, 4096, 4
    return [matmul("attention projection", tokens, d, d),
            matmul("dense ffn up", tokens, d, hidden),
            matmul("dense ffn down", tokens, hidden, d),
            matmul("lm head", tokens, d, vocab),
            row_selected("experts up (8 x 64 slots)", tokens, d, hidden, 8),
            row_selected("experts down (8 x 64 slots)", tokens, hidden, d, 8),
            dot("attention q.k (2 x 4 heads)", 2 * heads, 256, 256, d // heads)]


def compile_case(case, tmp):
    """The case's function in a shared object; returns its `op`."""
    source = os.path.join(tmp, "op.mlir")
    with open(source, "w") as f:
        f.write("module {\n" + case["func"] + "\n}\n")
    lowered = subprocess.run(
        [ARGS.moma_opt, source,
         f"--moma-to-cpu=bare-pointers=1 cpu={ARGS.cpu}"],
        capture_output=True, text=True)
    if lowered.returncode != 0:
        sys.exit(f"kernels.py: error: moma-opt failed on {case['name']}:\n"
                 f"{lowered.stderr}")
    ll = os.path.join(tmp, "op.ll")
    subprocess.run([os.path.join(LLVM_BIN, "mlir-translate"), "--mlir-to-llvmir",
                    "-o", ll], input=lowered.stdout, text=True, check=True)
    so = os.path.join(tmp, f"op{id(case)}.so")
    subprocess.run([os.path.join(LLVM_BIN, "clang"), "-O3", f"-march={ARGS.cpu}",
                    "-shared", "-fPIC", "-Wno-override-module", ll, "-o", so,
                    "-l:libomp.so.5"], check=True)
    return ctypes.CDLL(so).op


def best_time(fn, flops):
    reps = max(1, int(-(-ARGS.min_mflop * 1e6 // flops)))
    fn()
    best = float("inf")
    for _ in range(ARGS.trials):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def run_case(case, tmp):
    op = compile_case(case, tmp)
    rng = np.random.default_rng(1)
    inputs = [np.ascontiguousarray(a) for a in case["inputs"](rng)]
    out = np.zeros(case["out"], dtype=np.float32)
    pointers = [ctypes.c_void_p(a.ctypes.data) for a in inputs + [out]]
    op(*pointers)
    want = case["expected"](*inputs)
    error = np.max(np.abs(out - want)) / max(np.max(np.abs(want)), 1e-30)
    if not error <= 1e-5:
        sys.exit(f"kernels.py: error: {case['name']} differs from numpy: "
                 f"{error:.3g} of the largest magnitude")
    moma_s = best_time(lambda: op(*pointers), case["flops"])
    torch_s = best_time(case["peer"], case["flops"])
    return {"kernel": case["name"], "m_k_n": list(case["shape"]),
            "mflop": case["flops"] / 1e6,
            "moma_gflops": case["flops"] / moma_s / 1e9,
            "sgemm_gflops": case["flops"] / torch_s / 1e9}


def main():
    torch.set_num_threads(ARGS.threads)
    blas, details = blas_library()
    print(f"cpu: {cpuinfo('model name') or 'unknown'} ({os.cpu_count()} cores)")
    print(f"threads: {ARGS.threads}; moma-opt --moma-to-cpu=cpu={ARGS.cpu}; "
          f"BLAS: {blas}" + (f" ({details[0]} kernels)" if details else ""))
    print("kernel | M,K,N | MFLOP | moma GFLOP/s | sgemm GFLOP/s | moma/sgemm")
    rows = []
    with tempfile.TemporaryDirectory(prefix="moma-kernels-") as tmp:
        for case in cases(ARGS.quick):
            r = run_case(case, tmp)
            rows.append(r)
            print(f"{r['kernel']} | {','.join(map(str, r['m_k_n']))} | "
                  f"{r['mflop']:.1f} | {r['moma_gflops']:.1f} | "
                  f"{r['sgemm_gflops']:.1f} | "
                  f"{r['moma_gflops'] / r['sgemm_gflops']:.2f}", flush=True)
    if ARGS.json:
        import json
        with open(ARGS.json, "w") as f:
            json.dump({"threads": ARGS.threads, "cpu": ARGS.cpu, "blas": blas,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
