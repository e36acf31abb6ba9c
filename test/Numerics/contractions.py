"""The CPU mapping of matmul-class kernels (moma-cpu-vectorize-contractions)
against numpy, at shapes that exercise every tail of the tiling.

Each case is one linalg op on tensors, lowered by `moma-opt --moma-to-cpu`
(which vectorises it) and run by mlir-runner (opcheck.py). The expected
value is computed in float64. Shapes are chosen so that M is not a multiple
of the register tile's rows, N not a multiple of its columns (masked last
panel), K spans several kc slices, and M several mc blocks; the row-selected
cases mix slices inside one register tile and select out of range (the op
clamps); the output starts non-zero, since the op accumulates into it. Results
must agree to 1e-5 of the output's largest magnitude.
"""

import argparse
import math
import sys

import numpy as np

import opcheck

# Scale-relative, like the model checks: |out - ref| <= RTOL * max |ref|
# (the sums cancel, so elementwise relative error is meaningless near 0).
RTOL = 1e-5


def matmul_case(m, k, n):
    func = f"""
  func.func @op(%a: tensor<{m}x{k}xf32>, %b: tensor<{k}x{n}xf32>,
                %c: tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32> {{
    %r = linalg.matmul ins(%a, %b : tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>)
                       outs(%c : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>
    return %r : tensor<{m}x{n}xf32>
  }}"""
    def inputs(rng):
        return [rng.standard_normal((m, k)).astype(np.float32),
                rng.standard_normal((k, n)).astype(np.float32),
                rng.standard_normal((m, n)).astype(np.float32)]
    def expected(a, b, c):
        return c.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    return func, inputs, expected, f"tensor<{m}x{n}xf32>"


def row_selected_product(result, selector, t, k, n, g):
    """`result[t, n] = c[t, n] + sum_k x[t, k] w[sel[t], k, n]` (the slice
    clamped to the groups), the generic tokenMatmul builds."""
    return f"""
    %zero = arith.constant 0 : i32
    %last = arith.constant {g - 1} : i32
    {result} = linalg.generic {{
        indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                         affine_map<(t, n, k) -> (t)>,
                         affine_map<(t, n, k) -> (t, n)>],
        iterator_types = ["parallel", "parallel", "reduction"]}}
        ins(%x, {selector} : tensor<{t}x{k}xf32>, tensor<{t}xi32>)
        outs(%c : tensor<{t}x{n}xf32>) {{
    ^bb0(%in: f32, %s: i32, %out: f32):
      %lo = arith.maxsi %s, %zero : i32
      %cl = arith.minsi %lo, %last : i32
      %slice = arith.index_cast %cl : i32 to index
      %col = linalg.index 1 : index
      %red = linalg.index 2 : index
      %wv = tensor.extract %w[%slice, %red, %col] : tensor<{g}x{k}x{n}xf32>
      %p = arith.mulf %in, %wv : f32
      %sum = arith.addf %out, %p : f32
      linalg.yield %sum : f32
    }} -> tensor<{t}x{n}xf32>"""


def row_selected_case(t, k, n, g, selector):
    func = f"""
  func.func @op(%x: tensor<{t}x{k}xf32>, %sel: tensor<{t}xi32>,
                %w: tensor<{g}x{k}x{n}xf32>,
                %c: tensor<{t}x{n}xf32>) -> tensor<{t}x{n}xf32> {{
{row_selected_product("%r", "%sel", t, k, n, g)}
    return %r : tensor<{t}x{n}xf32>
  }}"""
    def inputs(rng):
        return [rng.standard_normal((t, k)).astype(np.float32),
                np.asarray(selector, dtype=np.int32),
                rng.standard_normal((g, k, n)).astype(np.float32),
                rng.standard_normal((t, n)).astype(np.float32)]
    def expected(x, sel, w, c):
        s = np.clip(sel, 0, g - 1)
        y = np.einsum("tk,tkn->tn", x.astype(np.float64),
                      w[s].astype(np.float64))
        return c.astype(np.float64) + y
    return func, inputs, expected, f"tensor<{t}x{n}xf32>"


def gathered_case(tokens, slots, k, n, g):
    """The grouped expert GEMM reading its rows through slot_token (the row
    gather moma-fuse-row-gathers fuses in): empty slots (-1) read zeros,
    experts own runs of slots, and some experts get no slot at all."""
    func = f"""
  func.func @op(%x: tensor<{tokens}x{k}xf32>, %st: tensor<{slots}xi32>,
                %e: tensor<{slots}xi32>, %w: tensor<{g}x{k}x{n}xf32>,
                %c: tensor<{slots}x{n}xf32>) -> tensor<{slots}x{n}xf32> {{
    %c0 = arith.constant 0 : i32
    %glast = arith.constant {g - 1} : i32
    %tlast = arith.constant {tokens - 1} : i32
    %tend = arith.constant {tokens} : i32
    %zero = arith.constant 0.0 : f32
    %empty = tensor.empty() : tensor<{slots}x{k}xf32>
    %rows = linalg.generic {{
        indexing_maps = [affine_map<(s, d) -> (s)>, affine_map<(s, d) -> (s, d)>],
        iterator_types = ["parallel", "parallel"]}}
        ins(%st : tensor<{slots}xi32>) outs(%empty : tensor<{slots}x{k}xf32>) {{
    ^bb0(%t: i32, %out: f32):
      %lo = arith.cmpi sge, %t, %c0 : i32
      %hi = arith.cmpi slt, %t, %tend : i32
      %valid = arith.andi %lo, %hi : i1
      %a = arith.maxsi %t, %c0 : i32
      %b = arith.minsi %a, %tlast : i32
      %row = arith.index_cast %b : i32 to index
      %col = linalg.index 1 : index
      %v = tensor.extract %x[%row, %col] : tensor<{tokens}x{k}xf32>
      %r = arith.select %valid, %v, %zero : f32
      linalg.yield %r : f32
    }} -> tensor<{slots}x{k}xf32>
    %y = linalg.generic {{
        indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                         affine_map<(t, n, k) -> (t)>,
                         affine_map<(t, n, k) -> (t, n)>],
        iterator_types = ["parallel", "parallel", "reduction"]}}
        ins(%rows, %e : tensor<{slots}x{k}xf32>, tensor<{slots}xi32>)
        outs(%c : tensor<{slots}x{n}xf32>) {{
    ^bb0(%in: f32, %s: i32, %out: f32):
      %a = arith.maxsi %s, %c0 : i32
      %b = arith.minsi %a, %glast : i32
      %slice = arith.index_cast %b : i32 to index
      %col = linalg.index 1 : index
      %red = linalg.index 2 : index
      %wv = tensor.extract %w[%slice, %red, %col] : tensor<{g}x{k}x{n}xf32>
      %p = arith.mulf %in, %wv : f32
      %sum = arith.addf %out, %p : f32
      linalg.yield %sum : f32
    }} -> tensor<{slots}x{n}xf32>
    return %y : tensor<{slots}x{n}xf32>
  }}"""
    def inputs(rng):
        st = rng.integers(0, tokens, size=slots).astype(np.int32)
        st[::7] = -1  # empty slots
        experts = np.sort(rng.choice([0, 2, 3], size=slots)).astype(np.int32)
        return [rng.standard_normal((tokens, k)).astype(np.float32), st,
                experts, rng.standard_normal((g, k, n)).astype(np.float32),
                rng.standard_normal((slots, n)).astype(np.float32)]
    def expected(x, st, e, w, c):
        rows = np.where((st >= 0)[:, None],
                        x[np.clip(st, 0, tokens - 1)].astype(np.float64), 0.0)
        y = np.einsum("sk,skn->sn", rows, w[np.clip(e, 0, g - 1)]
                      .astype(np.float64))
        return c.astype(np.float64) + y
    return func, inputs, expected, f"tensor<{slots}x{n}xf32>"


def dot_case(batch, m, n, k):
    """C[b, m, n] += sum_k A[b, m, k] B[b, n, k]: k contiguous in both."""
    func = f"""
  func.func @op(%a: tensor<{batch}x{m}x{k}xf32>, %b: tensor<{batch}x{n}x{k}xf32>,
                %c: tensor<{batch}x{m}x{n}xf32>) -> tensor<{batch}x{m}x{n}xf32> {{
    %r = linalg.generic {{
        indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>,
                         affine_map<(b, m, n, k) -> (b, n, k)>,
                         affine_map<(b, m, n, k) -> (b, m, n)>],
        iterator_types = ["parallel", "parallel", "parallel", "reduction"]}}
        ins(%a, %b : tensor<{batch}x{m}x{k}xf32>, tensor<{batch}x{n}x{k}xf32>)
        outs(%c : tensor<{batch}x{m}x{n}xf32>) {{
    ^bb0(%x: f32, %y: f32, %out: f32):
      %p = arith.mulf %x, %y : f32
      %sum = arith.addf %out, %p : f32
      linalg.yield %sum : f32
    }} -> tensor<{batch}x{m}x{n}xf32>
    return %r : tensor<{batch}x{m}x{n}xf32>
  }}"""
    def inputs(rng):
        return [rng.standard_normal((batch, m, k)).astype(np.float32),
                rng.standard_normal((batch, n, k)).astype(np.float32),
                rng.standard_normal((batch, m, n)).astype(np.float32)]
    def expected(a, b, c):
        return c.astype(np.float64) + np.einsum(
            "bmk,bnk->bmn", a.astype(np.float64), b.astype(np.float64))
    return func, inputs, expected, f"tensor<{batch}x{m}x{n}xf32>"


def masked_case(m, k, n):
    """C[m, n] += sum_k [key[k] <= query[m]] P[m, k] V[k, n] (causal P V)."""
    func = f"""
  func.func @op(%p: tensor<{m}x{k}xf32>, %v: tensor<{k}x{n}xf32>,
                %key: tensor<{k}xi32>, %query: tensor<{m}xi32>,
                %c: tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32> {{
    %zero = arith.constant 0 : i32
    %r = linalg.generic {{
        indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                         affine_map<(m, n, k) -> (k, n)>,
                         affine_map<(m, n, k) -> (k)>,
                         affine_map<(m, n, k) -> (m)>,
                         affine_map<(m, n, k) -> (m, n)>],
        iterator_types = ["parallel", "parallel", "reduction"]}}
        ins(%p, %v, %key, %query : tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>,
                                   tensor<{k}xi32>, tensor<{m}xi32>)
        outs(%c : tensor<{m}x{n}xf32>) {{
    ^bb0(%x: f32, %y: f32, %kp: i32, %qp: i32, %out: f32):
      %valid = arith.cmpi sge, %kp, %zero : i32
      %causal = arith.cmpi sle, %kp, %qp : i32
      %keep = arith.andi %valid, %causal : i1
      %prod = arith.mulf %x, %y : f32
      %sum = arith.addf %out, %prod : f32
      %sel = arith.select %keep, %sum, %out : f32
      linalg.yield %sel : f32
    }} -> tensor<{m}x{n}xf32>
    return %r : tensor<{m}x{n}xf32>
  }}"""
    def inputs(rng):
        key = np.arange(k, dtype=np.int32)
        key[::5] = -1  # padding keys
        return [rng.standard_normal((m, k)).astype(np.float32),
                rng.standard_normal((k, n)).astype(np.float32), key,
                rng.integers(-1, k, size=m).astype(np.int32),
                rng.standard_normal((m, n)).astype(np.float32)]
    def expected(p, v, key, query, c):
        mask = (key[None, :] >= 0) & (key[None, :] <= query[:, None])
        return c.astype(np.float64) + (p.astype(np.float64) * mask) @ \
            v.astype(np.float64)
    return func, inputs, expected, f"tensor<{m}x{n}xf32>"


def epilogue_case(t, k, n, g, experts):
    """The grouped expert GEMM with its epilogue (moma-cpu-vectorize-
    contractions fuses it): out[t, n] = e[t] >= 0 ? gelu(h + bias[n]) : 0
    for h = c + x w[e[t]], the bias read by column, slots outside every
    expert (-1) masked."""
    func = f"""
  func.func @op(%x: tensor<{t}x{k}xf32>, %e: tensor<{t}xi32>,
                %w: tensor<{g}x{k}x{n}xf32>, %bias: tensor<{n}xf32>,
                %c: tensor<{t}x{n}xf32>) -> tensor<{t}x{n}xf32> {{
    %fzero = arith.constant 0.0 : f32
    %half = arith.constant 0.5 : f32
    %one = arith.constant 1.0 : f32
    %rsqrt2 = arith.constant 0.707106769 : f32
{row_selected_product("%h", "%e", t, k, n, g)}
    %empty = tensor.empty() : tensor<{t}x{n}xf32>
    %r = linalg.generic {{
        indexing_maps = [affine_map<(t, n) -> (t, n)>,
                         affine_map<(t, n) -> (t)>,
                         affine_map<(t, n) -> (t, n)>],
        iterator_types = ["parallel", "parallel"]}}
        ins(%h, %e : tensor<{t}x{n}xf32>, tensor<{t}xi32>)
        outs(%empty : tensor<{t}x{n}xf32>) {{
    ^bb0(%in: f32, %s: i32, %out: f32):
      %col = linalg.index 1 : index
      %b = tensor.extract %bias[%col] : tensor<{n}xf32>
      %v = arith.addf %in, %b : f32
      %0 = arith.mulf %v, %rsqrt2 : f32
      %1 = math.erf %0 : f32
      %2 = arith.addf %1, %one : f32
      %3 = arith.mulf %v, %half : f32
      %4 = arith.mulf %3, %2 : f32
      %valid = arith.cmpi sge, %s, %zero : i32
      %5 = arith.select %valid, %4, %fzero : f32
      linalg.yield %5 : f32
    }} -> tensor<{t}x{n}xf32>
    return %r : tensor<{t}x{n}xf32>
  }}"""
    def inputs(rng):
        return [rng.standard_normal((t, k)).astype(np.float32),
                np.array(experts, dtype=np.int32),
                rng.standard_normal((g, k, n)).astype(np.float32),
                rng.standard_normal(n).astype(np.float32),
                rng.standard_normal((t, n)).astype(np.float32)]
    def expected(x, e, w, bias, c):
        h = c.astype(np.float64) + np.einsum(
            "tk,tkn->tn", x.astype(np.float64),
            w[np.clip(e, 0, g - 1)].astype(np.float64))
        v = h + bias.astype(np.float64)
        gelu = v * 0.5 * (1 + np.vectorize(math.erf)(v / math.sqrt(2)))
        return np.where((e >= 0)[:, None], gelu, 0.0)
    return func, inputs, expected, f"tensor<{t}x{n}xf32>"


def swiglu_case(t, k, f, g, experts):
    """The first expert GEMM of a SwiGLU FFN with gate.up in its epilogue
    (both column halves of one product in one register tile):
    out[t, j] = silu(h[t, j]) * h[t, f + j] for h = c + x w[e[t]] of 2f
    columns, slots outside every expert (-1) masked. With `g` = 0, a plain
    matmul (the dense FFN)."""
    n = 2 * f
    if g:
        product = row_selected_product("%h", "%e", t, k, n, g)
        weights = f"%w: tensor<{g}x{k}x{n}xf32>"
    else:
        product = f"""
    %h = linalg.matmul ins(%x, %w : tensor<{t}x{k}xf32>, tensor<{k}x{n}xf32>)
                       outs(%c : tensor<{t}x{n}xf32>) -> tensor<{t}x{n}xf32>"""
        weights = f"%w: tensor<{k}x{n}xf32>"
    func = f"""
  func.func @op(%x: tensor<{t}x{k}xf32>, %e: tensor<{t}xi32>, {weights},
                %c: tensor<{t}x{n}xf32>) -> tensor<{t}x{f}xf32> {{
    %fzero = arith.constant 0.0 : f32
    %one = arith.constant 1.0 : f32
{product}
    %gate = tensor.extract_slice %h[0, 0] [{t}, {f}] [1, 1]
        : tensor<{t}x{n}xf32> to tensor<{t}x{f}xf32>
    %up = tensor.extract_slice %h[0, {f}] [{t}, {f}] [1, 1]
        : tensor<{t}x{n}xf32> to tensor<{t}x{f}xf32>
    %empty = tensor.empty() : tensor<{t}x{f}xf32>
    %r = linalg.generic {{
        indexing_maps = [affine_map<(t, n) -> (t, n)>,
                         affine_map<(t, n) -> (t, n)>,
                         affine_map<(t, n) -> (t)>,
                         affine_map<(t, n) -> (t, n)>],
        iterator_types = ["parallel", "parallel"]}}
        ins(%gate, %up, %e : tensor<{t}x{f}xf32>, tensor<{t}x{f}xf32>,
            tensor<{t}xi32>)
        outs(%empty : tensor<{t}x{f}xf32>) {{
    ^bb0(%a: f32, %b: f32, %s: i32, %out: f32):
      %0 = arith.negf %a : f32
      %1 = math.exp %0 : f32
      %2 = arith.addf %1, %one : f32
      %3 = arith.divf %a, %2 : f32
      %4 = arith.mulf %3, %b : f32
      %none = arith.constant 0 : i32
      %valid = arith.cmpi sge, %s, %none : i32
      %5 = arith.select %valid, %4, %fzero : f32
      linalg.yield %5 : f32
    }} -> tensor<{t}x{f}xf32>
    return %r : tensor<{t}x{f}xf32>
  }}"""
    def inputs(rng):
        w_shape = (g, k, n) if g else (k, n)
        return [rng.standard_normal((t, k)).astype(np.float32),
                np.array(experts, dtype=np.int32),
                rng.standard_normal(w_shape).astype(np.float32),
                rng.standard_normal((t, n)).astype(np.float32)]
    def expected(x, e, w, c):
        x64 = x.astype(np.float64)
        if g:
            h = c + np.einsum("tk,tkn->tn", x64,
                              w[np.clip(e, 0, g - 1)].astype(np.float64))
        else:
            h = c + x64 @ w.astype(np.float64)
        gate, up = h[:, :f], h[:, f:]
        out = gate / (1 + np.exp(-gate)) * up
        return np.where((e >= 0)[:, None], out, 0.0)
    return func, inputs, expected, f"tensor<{t}x{f}xf32>"


def cases():
    yield "matmul 13x24x20 (row and column tails)", matmul_case(13, 24, 20)
    yield "matmul 1x7x3 (one row, one masked vector)", matmul_case(1, 7, 3)
    yield "matmul 150x300x40 (kc slices, mc blocks)", matmul_case(150, 300, 40)
    yield "matmul 9x16x64 (exact panels)", matmul_case(9, 16, 64)
    mixed = [0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, -3, 7, 1, 0, 0]
    yield "row-selected mixed slices", row_selected_case(21, 12, 19, 3, mixed)
    yield "row-selected one slice", row_selected_case(16, 9, 24, 2, [1] * 16)
    runs = [i * 4 // 37 for i in range(37)]
    yield "row-selected sorted runs", row_selected_case(37, 33, 70, 4, runs)
    # Several kc slices: the packed slice is refilled at every slice and
    # every run boundary; runs of 1 and 2 rows split tiles at every offset.
    runs = [0] * 7 + [1] + [2] * 2 + [3] * 13 + [4] * 5 + [5] * 3
    yield "row-selected runs over kc slices", row_selected_case(
        31, 700, 27, 6, runs)
    yield "gathered rows, empty slots and experts", gathered_case(
        20, 45, 24, 40, 4)
    yield "dot 2x13x11x64", dot_case(2, 13, 11, 64)
    yield "dot 3x5x7x13 (masked k)", dot_case(3, 5, 7, 13)
    yield "masked causal 17x23x20", masked_case(17, 23, 20)
    # Expert 1 gets no slot, expert 2 one; the last slots are outside every
    # expert; K spans several kc slices.
    uneven = [0] * 20 + [2] + [3] * 12 + [-1] * 4
    yield "epilogue: empty, single-token experts, masked slots", \
        epilogue_case(37, 300, 20, 4, uneven)
    yield "epilogue: all tokens in one expert", \
        epilogue_case(16, 24, 40, 4, [3] * 16)
    # SwiGLU's halves of 20 columns (a masked vector in each), K over
    # several kc slices, the uneven experts again; then a dense FFN.
    yield "swiglu epilogue: paired halves, uneven experts", \
        swiglu_case(37, 300, 20, 4, uneven)
    yield "swiglu epilogue: dense, exact halves", \
        swiglu_case(21, 40, 32, 0, [0] * 21)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    args = parser.parse_args()
    runner = opcheck.Runner(moma_opt=args.moma_opt)
    rng = np.random.default_rng(7)
    failed = 0
    for name, (func, make_inputs, expected, result_type) in cases():
        inputs = make_inputs(rng)
        try:
            [out] = runner.run(func, inputs, [result_type])
            ref = expected(*inputs)
            opcheck.assert_close(name, out, ref, rtol=0,
                                 atol=RTOL * np.abs(ref).max())
            print(f"{name}: ok")
        except (AssertionError, RuntimeError) as err:
            failed += 1
            print(f"{name}: FAILED\n{err}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
