"""Numerics of the backward ops of the dense path (MomaGradientOps.td).

Runs each backward op through `moma-opt --moma-to-cpu` and `mlir-runner`
(opcheck.py) on random f32 inputs and compares every result with torch
autograd through the reference's forward op (tools/moma-reference, in
float64): `moma.embed_grad`, `moma.norm_grad`, `moma.bias_grad`,
`moma.linear_grad` (LoRA included), `moma.ffn_grad`,
`moma.cross_entropy_grad`, tied and untied, and `moma.experts_grad` (ragged
expert slots, with and without LoRA, f32 and f64). Tolerance: max |compiled -
expected| <= 1e-5 * max |expected| per result. Prints one `<case>: ok` line
per case.
"""
import argparse
import os
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "moma-reference"))
import opcheck  # noqa: E402
from moma_reference import ops  # noqa: E402

RTOL = 1e-5
MODALITIES = ["text", "image", "speech"]
M = len(MODALITIES)
rng = np.random.default_rng(20261201)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def ttype(array):
    element = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
               np.dtype(np.int32): "i32", np.dtype(np.int64): "i64"}[array.dtype]
    return opcheck.tensor_type(array.shape, element)


def f64(value):
    return f"{float(value):.17e} : f64"


def leaf(array):
    """A float64 torch leaf that records its gradient."""
    return torch.from_numpy(array.astype(np.float64)).requires_grad_(True)


def ids_t(array):
    return torch.from_numpy(array).long()


def expected_grads(forward, inputs, dy):
    """d(sum(forward(*inputs) * dy)) / d(input) for every input (float64)."""
    out = forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    dys = dy if isinstance(dy, tuple) else (dy,)
    total = sum((o * torch.from_numpy(d.astype(np.float64))).sum()
                for o, d in zip(outs, dys))
    total.backward()
    return [i.grad.numpy() for i in inputs]


class Checker:
    def __init__(self, moma_opt):
        self.runner = opcheck.Runner(moma_opt)
        self.failures = 0

    def run(self, name, args, body, results, expected):
        params = ", ".join(f"%{n}: {ttype(a)}" for n, a in args)
        rtypes = ", ".join(ty for _, ty in results)
        values = ", ".join(v for v, _ in results)
        lines = "\n".join(f"    {line}" for line in body)
        func = (f"  func.func @op({params}) -> ({rtypes}) {{\n{lines}\n"
                f"    return {values} : {rtypes}\n  }}")
        try:
            outputs = self.runner.run(func, [a for _, a in args],
                                      [ty for _, ty in results],
                                      modalities=MODALITIES)
            for i, (out, exp) in enumerate(zip(outputs, expected)):
                exp = np.asarray(exp, dtype=np.float64)
                if not np.isfinite(out).all():
                    raise AssertionError(f"result {i} has non-finite values")
                scale = max(np.abs(exp).max(), 1e-30)
                err = np.abs(out.astype(np.float64) - exp).max()
                if not err <= RTOL * scale:
                    where = np.unravel_index(
                        np.abs(out - exp).argmax(), exp.shape)
                    raise AssertionError(
                        f"result {i}: max |diff| {err:.3g} > {RTOL} * "
                        f"{scale:.3g} at {where}: {out[where]} vs "
                        f"{exp[where]}")
            print(f"{name}: ok")
        except (AssertionError, RuntimeError) as error:
            self.failures += 1
            print(f"{name}: FAILED\n{error}")


def modality_ids(B, L):
    return rng.integers(0, M, size=(B, L)).astype(np.int32)


def embed_cases(chk):
    B, L, V, D = 2, 9, 12, 8
    for untied in (False, True):
        ids = rng.integers(0, V, size=(B, L)).astype(np.int32)
        ids[0, 0] = ids[1, 3] = ids[0, 4]  # repeated ids add up
        ids[1, 5] = -1  # out of range: no contribution
        ids[1, 6] = V
        dy = randn(B, L, D)
        args = [("ids", ids), ("dy", dy)]
        lead = (M,) if untied else ()
        table_type = opcheck.tensor_type(lead + (V, D), "f32")
        operands = "%ids, %dy"
        expected = np.zeros(lead + (V, D))
        if untied:
            mod = modality_ids(B, L)
            args.append(("mod", mod))
            operands += " modality %mod"
        for b in range(B):
            for l in range(L):
                v = ids[b, l]
                if 0 <= v < V:
                    if untied:
                        expected[mod[b, l], v] += dy[b, l]
                    else:
                        expected[v] += dy[b, l]
        types = ", ".join(ttype(a) for _, a in args)
        chk.run(f"embed_grad{' untied' if untied else ''}", args,
                [f"%g = moma.embed_grad {operands} : ({types}) -> {table_type}"],
                [("%g", table_type)], [expected])


def norm_cases(chk):
    B, L, D = 2, 5, 16
    for kind in ("rms", "layer"):
        for untied in (False, True):
            x = randn(B, L, D, scale=2.0) + 0.5
            w = randn(*((M,) if untied else ()), D) + 1.0
            dy = randn(B, L, D)
            args = [("x", x), ("w", w), ("dy", dy)]
            operands = "%x, %w, %dy"
            mod = None
            if untied:
                mod = modality_ids(B, L)
                args.append(("mod", mod))
                operands += " modality %mod"
            types = ", ".join(ttype(a) for _, a in args)
            eps = 1e-5
            xl, wl = leaf(x), leaf(w)
            exp = expected_grads(
                lambda a, c: ops.norm(a, c, None, kind, eps,
                                      ids_t(mod) if untied else None),
                [xl, wl], dy)
            chk.run(f"norm_grad {kind}{' untied' if untied else ''}", args,
                    [f"%dx, %dw = moma.norm_grad {kind} {operands} "
                     f"{{epsilon = {f64(eps)}}} : ({types}) -> "
                     f"({ttype(x)}, {ttype(w)})"],
                    [("%dx", ttype(x)), ("%dw", ttype(w))], exp)


def bias_cases(chk):
    B, L, D = 2, 6, 8
    for untied in (False, True):
        dy = randn(B, L, D)
        args = [("dy", dy)]
        operands = "%dy"
        if untied:
            mod = modality_ids(B, L)
            mod[0, 0] = 7  # outside [0, M): no contribution
            args.append(("mod", mod))
            operands += " modality %mod"
            expected = np.zeros((M, D))
            for b in range(B):
                for l in range(L):
                    if 0 <= mod[b, l] < M:
                        expected[mod[b, l]] += dy[b, l]
            rtype = opcheck.tensor_type((M, D), "f32")
        else:
            expected = dy.astype(np.float64).sum((0, 1))
            rtype = opcheck.tensor_type((D,), "f32")
        types = ", ".join(ttype(a) for _, a in args)
        chk.run(f"bias_grad{' untied' if untied else ''}", args,
                [f"%g = moma.bias_grad {operands} : ({types}) -> {rtype}"],
                [("%g", rtype)], [expected])


def linear_cases(chk):
    B, L, K, N, R = 2, 7, 12, 10, 3
    for untied in (False, True):
        for lora in (False, True):
            lead = (M,) if untied else ()
            x = randn(B, L, K)
            w = randn(*lead, K, N, scale=K ** -0.5)
            dy = randn(B, L, N)
            args = [("x", x), ("w", w), ("dy", dy)]
            operands = "%x, %w, %dy"
            leaves = [leaf(x), leaf(w)]
            results = [("%dx", ttype(x)), ("%dw", ttype(w))]
            scale = 0.75
            if lora:
                a = randn(*lead, K, R)
                bm = randn(*lead, R, N)
                args += [("a", a), ("b", bm)]
                operands += " lora(%a, %b)"
                leaves += [leaf(a), leaf(bm)]
                results += [("%da", ttype(a)), ("%db", ttype(bm))]
            mod = None
            if untied:
                mod = modality_ids(B, L)
                args.append(("mod", mod))
                operands += " modality %mod"

            def forward(x_, w_, a_=None, b_=None):
                if not untied:
                    return ops.linear(x_, w_, lora=(a_, b_, scale) if lora else None)
                masks = [(ids_t(mod) == i).unsqueeze(-1).double() for i in range(M)]
                y = sum(m * (x_ @ w_[i]) for i, m in enumerate(masks))
                if lora:
                    y = y + sum(m * (scale * ((x_ @ a_[i]) @ b_[i]))
                                for i, m in enumerate(masks))
                return y

            exp = expected_grads(forward, leaves, dy)
            types = ", ".join(ttype(a_) for _, a_ in args)
            rtypes = ", ".join(ty for _, ty in results)
            names = ", ".join(v for v, _ in results)
            chk.run(f"linear_grad{' untied' if untied else ''}"
                    f"{' lora' if lora else ''}", args,
                    [f"{names} = moma.linear_grad {operands} "
                     f"{{lora_scale = {f64(scale)}}} : ({types}) -> ({rtypes})"],
                    results, exp)


def ffn_cases(chk):
    B, L, D, F = 2, 5, 8, 6
    for activation in ("swiglu", "gelu"):
        for untied in (False, True):
            lead = (M,) if untied else ()
            cols = 2 * F if activation == "swiglu" else F
            x = randn(B, L, D)
            wi = randn(*lead, D, cols, scale=D ** -0.5)
            wo = randn(*lead, F, D, scale=F ** -0.5)
            dy = randn(B, L, D)
            args = [("x", x), ("wi", wi), ("wo", wo), ("dy", dy)]
            operands = "%x, %wi, %wo, %dy"
            mod = None
            if untied:
                mod = modality_ids(B, L)
                args.append(("mod", mod))
                operands += " modality %mod"

            def forward(x_, wi_, wo_):
                if untied:
                    return ops.untied_ffn(x_, ids_t(mod), wi_, wo_, activation)
                return ops.ffn(x_, wi_, wo_, activation)

            exp = expected_grads(forward, [leaf(x), leaf(wi), leaf(wo)], dy)
            types = ", ".join(ttype(a) for _, a in args)
            chk.run(f"ffn_grad {activation}{' untied' if untied else ''}", args,
                    [f"%dx, %dwi, %dwo = moma.ffn_grad {activation} {operands} "
                     f": ({types}) -> ({ttype(x)}, {ttype(wi)}, {ttype(wo)})"],
                    [("%dx", ttype(x)), ("%dwi", ttype(wi)),
                     ("%dwo", ttype(wo))], exp)


def cross_entropy_cases(chk):
    B, L, V = 2, 6, 11
    for name, absent in (("cross_entropy_grad", False),
                         ("cross_entropy_grad absent modality", True)):
        logits = randn(B, L, V, scale=3.0)
        targets = rng.integers(0, V, size=(B, L)).astype(np.int32)
        targets[:, -1] = -1  # no target at the last position
        targets[0, 2] = -1
        tmod = rng.integers(0, 2 if absent else M, size=(B, L)).astype(np.int32)
        tmod[1, 1] = 9  # counts in the total only
        dper = randn(M)
        dtotal = np.array(0.8, dtype=np.float32)
        lg = leaf(logits)

        def forward(lg_):
            per, total, _ = ops.cross_entropy(lg_, ids_t(targets), ids_t(tmod), M)
            return per, total

        exp = expected_grads(forward, [lg], (dper, dtotal))
        args = [("logits", logits), ("tgt", targets), ("tmod", tmod),
                ("dper", dper), ("dtotal", dtotal)]
        types = ", ".join(ttype(a) for _, a in args)
        chk.run(name, args,
                [f"%g = moma.cross_entropy_grad %logits, %tgt, %tmod, %dper, "
                 f"%dtotal : ({types}) -> {ttype(logits)}"],
                [("%g", ttype(logits))], exp)


def experts_cases(chk):
    """Ragged expert slots: slot 0 precedes off[0], expert 0 has one slot,
    expert 1 none, expert 2 seven, expert 3 three, and the last two slots
    follow off[E]; those outside slots carry non-zero rows and dy."""
    S, D, F, E, R = 14, 8, 6, 4, 3
    off = np.array([1, 2, 2, 9, 12], dtype=np.int32)
    plan = types.SimpleNamespace(expert_offsets=torch.from_numpy(off).long())
    scale = 0.5
    cases = [(act, lora, np.float32) for act in ("swiglu", "gelu")
             for lora in (False, True)]
    cases.append(("swiglu", True, np.float64))
    for activation, lora, dtype in cases:
        cols = 2 * F if activation == "swiglu" else F
        xs = randn(S, D).astype(dtype)
        wi = randn(E, D, cols, scale=D ** -0.5).astype(dtype)
        wo = randn(E, F, D, scale=F ** -0.5).astype(dtype)
        dy = randn(S, D).astype(dtype)
        args = [("xs", xs), ("off", off), ("wi", wi), ("wo", wo), ("dy", dy)]
        operands = "%xs, %off, %wi, %wo, %dy"
        arrays = [xs, wi, wo]
        results = [("%dxs", ttype(xs)), ("%dwi", ttype(wi)), ("%dwo", ttype(wo))]
        if lora:
            adapters = [("ai", randn(E, D, R)), ("bi", randn(E, R, cols)),
                        ("ao", randn(E, F, R)), ("bo", randn(E, R, D))]
            adapters = [(n, a.astype(dtype)) for n, a in adapters]
            args += adapters
            operands += " lora(" + ", ".join(f"%{n}" for n, _ in adapters) + ")"
            arrays += [a for _, a in adapters]
            results += [(f"%d{n}", ttype(a)) for n, a in adapters]

        def forward(xs_, wi_, wo_, *adapters_):
            ys = ops.experts(xs_, plan, wi_, wo_, activation,
                             (*adapters_, scale) if lora else None)
            return torch.cat([xs_.new_zeros(off[0], D), ys,
                              xs_.new_zeros(S - off[-1], D)])

        exp = expected_grads(forward, [leaf(a) for a in arrays], dy)
        types_ = ", ".join(ttype(a) for _, a in args)
        rtypes = ", ".join(ty for _, ty in results)
        names = ", ".join(v for v, _ in results)
        name = (f"experts_grad {activation}{' lora' if lora else ''}"
                f"{' f64' if dtype == np.float64 else ''}")
        chk.run(name, args,
                [f"{names} = moma.experts_grad {activation} {operands} "
                 f"{{lora_scale = {f64(scale)}}} : ({types_}) -> ({rtypes})"],
                results, exp)


def run_cases(title, case_functions):
    """Runs every `case_function(checker)` on one Checker (the `--moma-opt`
    of the command line) and prints `<title>: all ok` or the failure count;
    returns the exit status."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    args = parser.parse_args()
    chk = Checker(args.moma_opt)
    for cases in case_functions:
        cases(chk)
    print(f"{title}: all ok" if chk.failures == 0 else
          f"{title}: {chk.failures} FAILED")
    return 1 if chk.failures else 0


def main():
    return run_cases("gradient-ops", [
        embed_cases, norm_cases, bias_cases, linear_cases, ffn_cases,
        cross_entropy_cases, experts_cases])

if __name__ == "__main__":
    sys.exit(main())
