"""Numerics of the attention, mixture-of-depths and dense moma lowerings.

Runs each op through `moma-opt --moma-to-cpu` and `mlir-runner` (opcheck.py)
on random f32 inputs and compares the results with the PyTorch reference
ops (tools/moma-reference, computed in f32). Prints one `<case>: ok` line per
case. Tolerance: rtol 1e-5 with an absolute floor of 1e-6 for every float
result (attention and depth regions included; `--verbose` prints how much
of it each result uses); indices and masks must match exactly.
Outputs of padding rows (Semantics.md leaves them unspecified) are only
required to be finite.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "moma-reference"))
import opcheck  # noqa: E402
from moma_reference import ops  # noqa: E402

RTOL = 1e-5
ATOL = 1e-6
MODALITIES = ["text", "image", "speech"]

rng = np.random.default_rng(20240607)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def ttype(array):
    element = {np.dtype(np.float32): "f32", np.dtype(np.int32): "i32"}[array.dtype]
    return opcheck.tensor_type(array.shape, element)


def t(array):
    """numpy -> torch (i32 ids become int64, as the reference expects)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.long() if array.dtype == np.int32 else tensor


def f64(value):
    return f"{float(value):.17e} : f64"


class Checker:
    def __init__(self, moma_opt, verbose=False):
        self.runner = opcheck.Runner(moma_opt)
        self.failures = 0
        self.verbose = verbose

    def run(self, name, func, inputs, result_types, expected, atol,
            masks=None):
        """Runs `func` and compares each result with `expected`. `masks`
        (optional, per result) selects the rows whose values are specified;
        the others must merely be finite."""
        try:
            outputs = self.runner.run(func, inputs, result_types,
                                      modalities=MODALITIES)
            for i, (out, exp) in enumerate(zip(outputs, expected)):
                exp = np.asarray(exp)
                if out.dtype.kind == "f" and not np.isfinite(out).all():
                    raise AssertionError(f"result {i} has non-finite values")
                mask = masks[i] if masks else None
                if mask is not None:
                    out, exp = out[mask], exp[mask]
                opcheck.assert_close(f"{name} result {i}", out,
                                     exp.astype(out.dtype), rtol=RTOL,
                                     atol=atol)
                if self.verbose and out.dtype.kind == "f" and out.size:
                    diff = np.abs(out.astype(np.float64) - exp)
                    used = diff / (atol + RTOL * np.abs(exp))
                    print(f"  result {i}: max |diff| {diff.max():.3g}, "
                          f"{used.max():.3f} of the tolerance")
            print(f"{name}: ok")
        except (AssertionError, RuntimeError) as error:
            self.failures += 1
            print(f"{name}: FAILED\n{error}")


def func_text(args, body, results):
    """`args`: list of (name, array); `body`: op lines; `results`:
    list of (value, type)."""
    params = ", ".join(f"%{n}: {ttype(a)}" for n, a in args)
    rtypes = ", ".join(ty for _, ty in results)
    values = ", ".join(v for v, _ in results)
    lines = "\n".join(f"    {line}" for line in body)
    return (f"  func.func @op({params}) -> ({rtypes}) {{\n{lines}\n"
            f"    return {values} : {rtypes}\n  }}")


# ---------------------------------------------------------------------------
# Attention


def attention_case(chk, name, B, L, D, H, G, d, theta, causal,
                   positions=None, untied=False):
    M = len(MODALITIES)
    lead = (M,) if untied else ()
    x = randn(B, L, D)
    wq = randn(*lead, D, H * d, scale=D ** -0.5)
    wk = randn(*lead, D, G * d, scale=D ** -0.5)
    wv = randn(*lead, D, G * d, scale=D ** -0.5)
    wo = randn(*lead, H * d, D, scale=(H * d) ** -0.5)
    args = [("x", x), ("wq", wq), ("wk", wk), ("wv", wv), ("wo", wo)]
    operands = "%x, %wq, %wk, %wv, %wo"
    if positions is not None:
        args.append(("pos", positions))
        operands += " positions %pos"
    modality = None
    if untied:
        modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
        args.append(("mod", modality))
        operands += " modality %mod"
    types = ", ".join(ttype(a) for _, a in args)
    attrs = f"rope_theta = {f64(theta)}, causal = {'true' if causal else 'false'}"
    body = [f"%y = moma.attention {operands} heads {H} kv_heads {G} "
            f"head_dim {d} {{{attrs}}} : ({types}) -> {ttype(x)}"]
    func = func_text(args, body, [("%y", ttype(x))])
    pos = positions if positions is not None else \
        np.broadcast_to(np.arange(L, dtype=np.int32), (B, L))
    expected = ops.attention(t(x), t(pos), t(wq), t(wk), t(wv), t(wo), H, G,
                             d, theta, causal,
                             t(modality) if untied else None).numpy()
    # Queries at padding positions have unspecified outputs.
    mask = np.asarray(pos) >= 0
    chk.run(name, func, [a for _, a in args], [ttype(x)], [expected],
            ATOL, masks=[mask])


def attention_cases(chk):
    attention_case(chk, "attention gqa rope causal", 2, 8, 16, 4, 2, 8,
                   1.0e4, True)
    attention_case(chk, "attention mqa rope causal", 2, 8, 16, 4, 1, 8,
                   500.0, True)
    attention_case(chk, "attention mha no-rope non-causal", 2, 8, 16, 2, 2, 8,
                   0.0, False)
    padded = np.array([[0, 2, 3, 7, 9, 12, -1, -1],
                       [-1, -1, -1, -1, -1, -1, -1, -1],
                       [5, 1, 4, 4, 0, 6, 2, -1]], dtype=np.int32)
    attention_case(chk, "attention positions padding causal", 3, 8, 16, 4, 2,
                   8, 1.0e4, True, positions=padded)
    attention_case(chk, "attention positions padding non-causal", 3, 8, 16, 4,
                   2, 8, 1.0e4, False, positions=padded)
    far = np.sort(rng.integers(0, 20000, size=(2, 8)), axis=1).astype(np.int32)
    attention_case(chk, "attention large positions rope", 2, 8, 16, 4, 2, 16,
                   1.0e4, True, positions=far)
    attention_case(chk, "attention untied 3 modalities gqa rope", 2, 8, 16, 4,
                   2, 8, 1.0e4, True, untied=True)
    attention_case(chk, "attention untied non-causal positions", 3, 8, 16, 2,
                   1, 8, 1.0e4, False, positions=padded, untied=True)


# ---------------------------------------------------------------------------
# Dense ops


def per_token_np(weight, modality):
    return weight[modality]


def norm_cases(chk):
    B, L, D, M = 2, 8, 16, len(MODALITIES)
    modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
    for kind in ("rms", "layer"):
        for untied in (False, True):
            for with_bias in ((False, True) if kind == "layer" else (False,)):
                lead = (M,) if untied else ()
                x = randn(B, L, D, scale=3.0) + 0.5
                w = randn(*lead, D) + 1.0
                args = [("x", x), ("w", w)]
                operands = "%x, %w"
                bias = None
                if with_bias:
                    bias = randn(*lead, D)
                    args.append(("bias", bias))
                    operands += " bias %bias"
                if untied:
                    args.append(("mod", modality))
                    operands += " modality %mod"
                eps = 1e-6 if kind == "layer" else 1e-5
                types = ", ".join(ttype(a) for _, a in args)
                body = [f"%y = moma.norm {kind} {operands} "
                        f"{{epsilon = {f64(eps)}}} : ({types}) -> {ttype(x)}"]
                expected = ops.norm(t(x), t(w),
                                    t(bias) if bias is not None else None,
                                    kind, eps,
                                    t(modality) if untied else None).numpy()
                name = (f"norm {kind}{' untied' if untied else ''}"
                        f"{' bias' if with_bias else ''}")
                chk.run(name, func_text(args, body, [("%y", ttype(x))]),
                        [a for _, a in args], [ttype(x)], [expected],
                        ATOL)


def linear_cases(chk):
    B, L, K, N, R, M = 2, 8, 16, 24, 4, len(MODALITIES)
    modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
    configs = [("linear bias", False, True, False),
               ("linear lora", False, False, True),
               ("linear bias lora", False, True, True),
               ("linear untied", True, False, False),
               ("linear untied bias lora", True, True, True)]
    for name, untied, with_bias, lora in configs:
        lead = (M,) if untied else ()
        x = randn(B, L, K)
        w = randn(*lead, K, N, scale=K ** -0.5)
        args = [("x", x), ("w", w)]
        operands = "%x, %w"
        scale = 0.75
        if with_bias:
            bias = randn(*lead, N)
            args.append(("bias", bias))
            operands += " bias %bias"
        if lora:
            a = randn(*lead, K, R, scale=K ** -0.5)
            b = randn(*lead, R, N, scale=R ** -0.5)
            args += [("la", a), ("lb", b)]
            operands += " lora(%la, %lb)"
        if untied:
            args.append(("mod", modality))
            operands += " modality %mod"
        out = np.zeros((B, L, N), np.float32)
        types = ", ".join(ttype(a_) for _, a_ in args)
        body = [f"%y = moma.linear {operands} {{lora_scale = {f64(scale)}}} : "
                f"({types}) -> {opcheck.tensor_type(out.shape, 'f32')}"]
        xt, mt = t(x), t(modality)
        if untied:
            y = ops.linear(xt, t(w), mt)
            if with_bias:
                y = y + ops.per_token(t(bias), mt, xt.dtype)
            if lora:
                low = 0
                for i, m in enumerate(ops._modality_masks(mt, M, xt.dtype)):
                    low = low + m * ((xt @ t(a)[i]) @ t(b)[i])
                y = y + scale * low
        else:
            y = ops.linear(xt, t(w))
            if with_bias:
                y = y + t(bias)
            if lora:
                y = y + scale * ((xt @ t(a)) @ t(b))
        rtype = opcheck.tensor_type(out.shape, "f32")
        chk.run(name, func_text(args, body, [("%y", rtype)]),
                [a_ for _, a_ in args], [rtype], [y.numpy()], ATOL)


def ffn_cases(chk):
    B, L, D, F, M = 2, 8, 16, 32, len(MODALITIES)
    modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
    for act in ("swiglu", "gelu"):
        for untied in (False, True):
            lead = (M,) if untied else ()
            cols = 2 * F if act == "swiglu" else F
            x = randn(B, L, D)
            w_in = randn(*lead, D, cols, scale=D ** -0.5)
            w_out = randn(*lead, F, D, scale=F ** -0.5)
            args = [("x", x), ("wi", w_in), ("wo", w_out)]
            operands = "%x, %wi, %wo"
            if untied:
                args.append(("mod", modality))
                operands += " modality %mod"
                expected = ops.untied_ffn(t(x), t(modality), t(w_in),
                                          t(w_out), act)
            else:
                expected = ops.ffn(t(x), t(w_in), t(w_out), act)
            types = ", ".join(ttype(a) for _, a in args)
            body = [f"%y = moma.ffn {act} {operands} : ({types}) -> "
                    f"{ttype(x)}"]
            chk.run(f"ffn {act}{' untied' if untied else ''}",
                    func_text(args, body, [("%y", ttype(x))]),
                    [a for _, a in args], [ttype(x)], [expected.numpy()],
                    ATOL)


def misc_dense_cases(chk):
    B, L, D, V, M = 2, 8, 16, 12, len(MODALITIES)
    ids = rng.integers(0, V, size=(B, L)).astype(np.int32)
    modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
    table = randn(V, D)
    tables = randn(M, V, D)
    x = randn(B, L, D)
    s = randn(B, L)
    rtype = ttype(x)
    args = [("ids", ids), ("table", table), ("tables", tables),
            ("mod", modality), ("x", x), ("s", s)]
    body = [
        f"%e = moma.embed %ids, %table : ({ttype(ids)}, {ttype(table)}) -> "
        f"{rtype}",
        f"%u = moma.embed %ids, %tables modality %mod : ({ttype(ids)}, "
        f"{ttype(tables)}, {ttype(modality)}) -> {rtype}",
        f"%sc = moma.scale %x, %s : ({rtype}, {ttype(s)}) -> {rtype}",
        f"%sg = moma.stop_gradient %x : {rtype}",
    ]
    func = func_text(args, body, [(v, rtype) for v in ("%e", "%u", "%sc",
                                                        "%sg")])
    expected = [ops.embed(t(ids), t(table)).numpy(), tables[modality, ids],
                s[..., None] * x, x]
    chk.run("embed scale stop_gradient", func, [a for _, a in args],
            [rtype] * 4, expected, ATOL)

    # Out-of-range ids and modality ids must not read out of bounds; their
    # rows are unspecified, the others must be right.
    bad = ids.copy()
    bad[0, 1], bad[1, 3] = -5, V + 100
    bad_mod = modality.copy()
    bad_mod[1, 5] = 7
    args = [("ids", bad), ("tables", tables), ("mod", bad_mod)]
    body = [f"%u = moma.embed %ids, %tables modality %mod : ({ttype(bad)}, "
            f"{ttype(tables)}, {ttype(bad_mod)}) -> {rtype}"]
    valid = (bad >= 0) & (bad < V) & (bad_mod < M)
    expected = tables[np.clip(bad_mod, 0, M - 1), np.clip(bad, 0, V - 1)]
    chk.run("embed out-of-range ids", func_text(args, body, [("%u", rtype)]),
            [a for _, a in args], [rtype], [expected], ATOL,
            masks=[valid])


# ---------------------------------------------------------------------------
# Mixture of depths


def depth_route_case(chk, name, x, w, capacity, aux=None):
    B, L, _ = x.shape
    K = L if aux is not None else int(math.floor(L * capacity))
    args = [("x", x), ("w", w)]
    operands = "%x, %w"
    if aux is not None:
        args.append(("aux", aux))
        operands += " aux %aux"
    itype = opcheck.tensor_type((B, K), "i32")
    gtype = opcheck.tensor_type((B, K), "f32")
    mtype = opcheck.tensor_type((B, L, 1), "f32")
    types = ", ".join(ttype(a) for _, a in args)
    body = [f"%i, %g = moma.depth_route {operands} "
            f"{{capacity_factor = {f64(capacity)}}} : ({types}) -> "
            f"({itype}, {gtype})",
            f"%m = moma.depth_mask %i : ({itype}) -> {mtype}"]
    idx, gate = ops.depth_route(t(x), t(w), capacity,
                                t(aux) if aux is not None else None)
    mask = ops.depth_mask(idx, L).float()
    chk.run(name, func_text(args, body, [("%i", itype), ("%g", gtype),
                                         ("%m", mtype)]),
            [a for _, a in args], [itype, gtype, mtype],
            [idx.numpy().astype(np.int32), gate.numpy(), mask.numpy()],
            ATOL)


def depth_route_cases(chk):
    B, L, D = 3, 16, 8
    w = randn(D, 1, scale=D ** -0.5)
    for capacity in (0.125, 0.25, 0.5, 1.0):
        depth_route_case(chk, f"depth_route capacity {capacity}",
                         randn(B, L, D), w, capacity)
    # Exact ties: entries and weights on a coarse dyadic grid make every
    # dot product exact, and only a handful of distinct rows exist, so many
    # positions share one score (ties go to the lower position).
    grid_w = (rng.integers(-2, 3, size=(D, 1)) * 0.5).astype(np.float32)
    rows = (rng.integers(-2, 3, size=(3, D)) * 0.25).astype(np.float32)
    tied = rows[rng.integers(0, 3, size=(B, L))]
    depth_route_case(chk, "depth_route ties", tied, grid_w, 0.25)
    depth_route_case(chk, "depth_route ties half", tied, grid_w, 0.5)
    equal = np.zeros((B, L, D), np.float32)
    depth_route_case(chk, "depth_route all equal", equal, grid_w, 0.375)
    # Auxiliary-router mode: keep the positive logits aux > 0 (0 and -0
    # are not kept; the smallest normal floats on either side decide).
    aux = randn(B, L, 1, scale=3.0)
    tiny = np.finfo(np.float32).tiny
    aux[0, 3:7, 0] = [0.0, -0.0, tiny, -tiny]
    aux[2, :, 0] = -0.25  # keeps nothing
    aux[1, :, 0] = 0.75   # keeps everything
    positive = [np.flatnonzero(aux[b, :, 0] > 0) for b in range(B)]
    want = np.full((B, L), -1, np.int64)
    for b in range(B):
        want[b, :positive[b].size] = positive[b]
    x = randn(B, L, D)
    # The reference the compiled op is compared with keeps exactly these.
    assert np.array_equal(ops.depth_route(t(x), t(w), 0.25, t(aux))[0].numpy(), want)
    depth_route_case(chk, "depth_route aux", x, w, 0.25, aux)


def depth_region_case(chk, name, gated, aux_routed):
    """A depth region around a pre-norm attention + untied FFN block."""
    B, L, D, H, G, d, F, M = 2, 8, 16, 4, 2, 4, 24, len(MODALITIES)
    x = randn(B, L, D)
    modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
    w_route = randn(D, 1, scale=D ** -0.5)
    g1, g2 = randn(D) + 1.0, randn(D) + 1.0
    wq = randn(D, H * d, scale=D ** -0.5)
    wk = randn(D, G * d, scale=D ** -0.5)
    wv = randn(D, G * d, scale=D ** -0.5)
    wo = randn(H * d, D, scale=(H * d) ** -0.5)
    w_in = randn(M, D, 2 * F, scale=D ** -0.5)
    w_out = randn(M, F, D, scale=F ** -0.5)
    capacity = 0.5
    args = [("x", x), ("mod", modality), ("wr", w_route), ("g1", g1),
            ("g2", g2), ("wq", wq), ("wk", wk), ("wv", wv), ("wo", wo),
            ("wi", w_in), ("wd", w_out)]
    aux = None
    if aux_routed:
        aux = randn(B, L, 1)  # logits
        aux[1, :, 0] = 0.0  # an all-padding sequence
        args.append(("aux", aux))
    K = L if aux_routed else int(math.floor(L * capacity))
    xt = ttype(x)
    rows = opcheck.tensor_type((B, K, D), "f32")
    ids = opcheck.tensor_type((B, K), "i32")
    gtype = opcheck.tensor_type((B, K), "f32")
    route_in = f"%x, %wr aux %aux" if aux_routed else "%x, %wr"
    route_types = f"{xt}, {ttype(w_route)}" + (f", {ttype(aux)}"
                                               if aux_routed else "")
    gate_operand = " gate %g" if gated else ""
    gate_type = f", {gtype}" if gated else ""
    body = [
        f"%i, %g = moma.depth_route {route_in} {{capacity_factor = "
        f"{f64(capacity)}}} : ({route_types}) -> ({ids}, {gtype})",
        f"%y = moma.depth_region %x, %mod, %i{gate_operand} : ({xt}, "
        f"{ttype(modality)}, {ids}{gate_type}) -> {xt} {{",
        f"^bb0(%xs: {rows}, %ms: {ids}, %ps: {ids}):",
        f"  %n1 = moma.norm rms %xs, %g1 : ({rows}, {ttype(g1)}) -> {rows}",
        f"  %a = moma.attention %n1, %wq, %wk, %wv, %wo positions %ps heads "
        f"{H} kv_heads {G} head_dim {d} {{rope_theta = {f64(1.0e4)}}} : "
        f"({rows}, {ttype(wq)}, {ttype(wk)}, {ttype(wv)}, {ttype(wo)}, "
        f"{ids}) -> {rows}",
        f"  %r = arith.addf %xs, %a : {rows}",
        f"  %n2 = moma.norm rms %r, %g2 : ({rows}, {ttype(g2)}) -> {rows}",
        f"  %f = moma.ffn swiglu %n2, %wi, %wd modality %ms : ({rows}, "
        f"{ttype(w_in)}, {ttype(w_out)}, {ids}) -> {rows}",
        f"  %o = arith.addf %r, %f : {rows}",
        f"  moma.yield %o : {rows}",
        "}",
    ]
    func = func_text(args, body, [("%y", xt), ("%i", ids)])

    def block(xs, ms, ps):
        a = xs + ops.attention(ops.norm(xs, t(g1), None, "rms", 1e-5), ps,
                               t(wq), t(wk), t(wv), t(wo), H, G, d, 1.0e4,
                               True)
        return a + ops.untied_ffn(ops.norm(a, t(g2), None, "rms", 1e-5), ms,
                                  t(w_in), t(w_out), "swiglu")

    idx, gate = ops.depth_route(t(x), t(w_route), capacity,
                                t(aux) if aux_routed else None)
    y = ops.depth_region(t(x), t(modality), idx, gate if gated else None,
                         block)
    chk.run(name, func, [a for _, a in args], [xt, ids],
            [y.numpy(), idx.numpy().astype(np.int32)], ATOL)


def depth_region_identity_case(chk):
    """An ungated region whose body yields its kept rows unchanged, plus
    the gathered modality ids and positions as extra results: y = x, and
    ms / ps are -1 at empty slots."""
    B, L, D, M = 3, 8, 16, len(MODALITIES)
    x = randn(B, L, D)
    modality = rng.integers(0, M, size=(B, L)).astype(np.int32)
    idx = np.array([[0, 3, 4, 7, -1, -1], [1, 2, 3, 5, 6, -1],
                    [-1, -1, -1, -1, -1, -1]], dtype=np.int32)
    K = idx.shape[1]
    xt, ids = ttype(x), ttype(idx)
    rows = opcheck.tensor_type((B, K, D), "f32")
    args = [("x", x), ("mod", modality), ("idx", idx)]
    body = [
        f"%y, %m, %p = moma.depth_region %x, %mod, %idx : ({xt}, "
        f"{ttype(modality)}, {ids}) -> ({xt}, {ids}, {ids}) {{",
        f"^bb0(%xs: {rows}, %ms: {ids}, %ps: {ids}):",
        f"  moma.yield %xs, %ms, %ps : {rows}, {ids}, {ids}",
        "}",
    ]
    func = func_text(args, body, [("%y", xt), ("%m", ids), ("%p", ids)])
    seen = {}

    def block(xs, ms, ps):
        seen["ms"], seen["ps"] = ms, ps
        return xs

    y = ops.depth_region(t(x), t(modality), t(idx), None, block)
    chk.run("depth_region identity extras", func, [a for _, a in args],
            [xt, ids, ids],
            [y.numpy(), seen["ms"].numpy().astype(np.int32),
             seen["ps"].numpy().astype(np.int32)], ATOL)


def depth_region_cases(chk):
    depth_region_case(chk, "depth_region gated", True, False)
    depth_region_case(chk, "depth_region ungated", False, False)
    depth_region_case(chk, "depth_region gated aux padding", True, True)
    depth_region_case(chk, "depth_region ungated aux padding", False, True)
    depth_region_identity_case(chk)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    parser.add_argument("--verbose", action="store_true",
                        help="print how much of the tolerance each result uses")
    args = parser.parse_args()
    chk = Checker(args.moma_opt, args.verbose)
    attention_cases(chk)
    norm_cases(chk)
    linear_cases(chk)
    ffn_cases(chk)
    misc_dense_cases(chk)
    depth_route_cases(chk)
    depth_region_cases(chk)
    if chk.failures:
        print(f"attention-depth: {chk.failures} case(s) FAILED")
        sys.exit(1)
    print("attention-depth: all ok")


if __name__ == "__main__":
    main()
