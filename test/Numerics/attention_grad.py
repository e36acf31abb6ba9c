"""Numerics of the moma.attention_grad lowering against torch autograd.

Each case builds a func @op with one `moma.attention_grad`, runs it through
`moma-opt --moma-to-cpu` and `mlir-runner` (opcheck.py) on random x, weights
and dy, and compares dx, dWq, dWk, dWv and dWo with the gradients torch
autograd computes, in float64, of `sum(y * dy)` for the forward attention of
Semantics.md written out below (RoPE rotate-half, grouped-query heads, the
causal mask over positions, padding keys never visible). Queries at padding
positions contribute nothing (moma.attention_grad's contract: their output,
which Semantics.md leaves unspecified, is taken as 0 here).

Tolerance: |actual - expected| <= rtol * max|expected| per tensor, with rtol
1e-5 for f32 and 1e-12 for f64. Prints one `<case>: ok` line per case.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import opcheck  # noqa: E402

MODALITIES = ["text", "image"]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ELEMENT = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
           np.dtype(np.int32): "i32"}

rng = np.random.default_rng(20250611)


def ttype(array):
    return opcheck.tensor_type(array.shape, ELEMENT[array.dtype])


def rope(x, positions, theta):
    """Rotate-half RoPE on x [B, L, N, d] at positions [B, L]."""
    d = x.shape[-1]
    half = d // 2
    freq = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / d)
    angle = positions.to(torch.float64).unsqueeze(-1) * freq
    cos, sin = torch.cos(angle).unsqueeze(2), torch.sin(angle).unsqueeze(2)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def project(x, w, modality):
    """x [B, L, K] times w [K, N], or slice modality[b, l] of w [M, K, N]."""
    if modality is None:
        return x @ w
    return torch.einsum("blk,blkn->bln", x, w[modality])


def attention(x, wq, wk, wv, wo, positions, modality, H, G, d, theta,
              causal):
    """The forward attention of Semantics.md, padding queries' output 0."""
    B, L, _ = x.shape
    q = project(x, wq, modality).reshape(B, L, H, d)
    k = project(x, wk, modality).reshape(B, L, G, d)
    v = project(x, wv, modality).reshape(B, L, G, d)
    if theta > 0:
        q, k = rope(q, positions, theta), rope(k, positions, theta)
    k = k.repeat_interleave(H // G, dim=2)
    v = v.repeat_interleave(H // G, dim=2)
    scores = torch.einsum("bihc,bjhc->bhij", q, k) / math.sqrt(d)
    p_query, p_key = positions.unsqueeze(2), positions.unsqueeze(1)
    visible = (p_key >= 0).expand(B, L, L)
    if causal:
        visible = visible & (p_key <= p_query)
    any_visible = visible.any(-1)
    # A row without visible keys gets a harmless softmax, then weight 0.
    allowed = visible | ~any_visible.unsqueeze(-1)
    scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    o = torch.einsum("bhij,bjhc->bihc", probs, v)
    keep = (any_visible & (positions >= 0)).to(o.dtype)
    o = (o * keep[:, :, None, None]).reshape(B, L, H * d)
    return project(o, wo, modality)


def expected_grads(x, wq, wk, wv, wo, dy, positions, modality, H, G, d,
                   theta, causal):
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True)
              for a in (x, wq, wk, wv, wo)]
    mod = torch.from_numpy(modality).long() if modality is not None else None
    y = attention(*leaves, torch.from_numpy(positions).long(), mod, H, G, d,
                  theta, causal)
    (y * torch.from_numpy(dy.astype(np.float64))).sum().backward()
    return [leaf.grad.numpy() for leaf in leaves]


def case(runner, name, B=2, L=8, D=16, H=4, G=2, d=8, theta=1.0e4,
         causal=True, positions=None, untied=False, dtype=np.float32,
         keep=None, verbose=False):
    M = len(MODALITIES)
    lead = (M,) if untied else ()

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    # The weights' (rows, columns), each scaled by rows^-1/2.
    shapes = {"wq": (D, H * d), "wk": (D, G * d), "wv": (D, G * d),
              "wo": (H * d, D)}
    weights = [randn(*lead, *shape, scale=shape[0] ** -0.5)
               for shape in shapes.values()]
    x, dy = randn(B, L, D), randn(B, L, D)
    args = [("x", x)] + list(zip(shapes, weights)) + [("dy", dy)]
    modality = None
    if untied:
        modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
        modality[0, :2] = [0, 1]  # both modalities present
    operands = "%x, %wq, %wk, %wv, %wo, %dy"
    for arg, keyword, value in (("pos", "positions", positions),
                                ("mod", "modality", modality)):
        if value is not None:
            args.append((arg, value))
            operands += f" {keyword} %{arg}"
    rtypes = [ttype(a) for a in [x] + weights]
    types = ", ".join(ttype(a) for _, a in args)
    attrs = (f"rope_theta = {float(theta):.17e} : f64, "
             f"causal = {'true' if causal else 'false'}")
    results = ", ".join(rtypes)
    func = (f"  func.func @op("
            + ", ".join(f"%{n}: {ttype(a)}" for n, a in args)
            + f") -> ({results}) {{\n"
            f"    %dx, %dwq, %dwk, %dwv, %dwo = moma.attention_grad {operands} "
            f"heads {H} kv_heads {G} head_dim {d} {{{attrs}}} : ({types}) -> "
            f"({results})\n"
            f"    return %dx, %dwq, %dwk, %dwv, %dwo : {results}\n  }}")
    pos = positions if positions is not None else \
        np.broadcast_to(np.arange(L, dtype=np.int32), (B, L)).copy()
    expected = expected_grads(x, *weights, dy, pos, modality, H, G, d, theta,
                              causal)
    rtol = RTOL[dtype]
    try:
        outputs = runner.run(func, [a for _, a in args], rtypes,
                             modalities=MODALITIES, keep=keep)
        for what, out, exp in zip(("dx", "dWq", "dWk", "dWv", "dWo"), outputs,
                                  expected):
            scale = np.abs(exp).max()
            if not scale > 0:
                raise AssertionError(f"{what}: expected gradient is all 0")
            opcheck.assert_close(f"{name} {what}", out, exp, rtol=0.0,
                                 atol=rtol * scale)
            if verbose:
                used = np.abs(out - exp).max() / (rtol * scale)
                print(f"  {what}: {used:.3f} of the tolerance")
        print(f"{name}: ok")
        return True
    except (AssertionError, RuntimeError) as error:
        print(f"{name}: FAILED\n{error}")
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    parser.add_argument("--keep", help="write the last module here")
    parser.add_argument("--verbose", action="store_true",
                        help="print how much of the tolerance each result uses")
    args = parser.parse_args()
    runner = opcheck.Runner(args.moma_opt)
    L = 8
    permuted = np.stack([rng.permutation(L), rng.permutation(L)]).astype(
        np.int32)
    # Padding: tokens at -1 (never visible as keys; as queries they see no
    # key when causal and every real key when not), the others permuted.
    padded = np.array([[0, 1, -1, 2, 3, 4, 5, 6],
                       [-1, 4, 0, 3, 6, 1, 5, -1]], dtype=np.int32)
    cases = [
        ("mha rope causal", dict(H=2, G=2)),
        ("gqa rope causal", dict(H=4, G=2)),
        ("mqa rope non-causal", dict(H=4, G=1, causal=False)),
        ("gqa no-rope non-causal", dict(theta=0.0, causal=False)),
        ("mqa no-rope causal", dict(H=4, G=1, theta=0.0)),
        ("gqa permuted positions causal", dict(positions=permuted)),
        ("gqa padding causal", dict(positions=padded)),
        ("gqa padding non-causal", dict(positions=padded, causal=False)),
        ("untied gqa rope causal", dict(untied=True)),
        ("untied mqa padding non-causal",
         dict(H=4, G=1, untied=True, positions=padded, causal=False)),
        ("f64 untied gqa rope padding causal",
         dict(untied=True, positions=padded, dtype=np.float64)),
        ("f64 mha no-rope non-causal",
         dict(H=2, G=2, theta=0.0, causal=False, dtype=np.float64)),
    ]
    failures = sum(not case(runner, name, keep=args.keep, verbose=args.verbose,
                        **kw)
                   for name, kw in cases)
    if failures:
        print(f"attention-grad: {failures} case(s) FAILED")
        sys.exit(1)
    print("attention-grad: all ok")


if __name__ == "__main__":
    main()
