"""Numerics of the backward ops of routing, the routing losses and
mixture-of-depths (MomaGradientOps.td).

Runs each backward op through `moma-opt --moma-to-cpu` and `mlir-runner`
(opcheck.py, with gradient_ops.py's Checker) on random f32 inputs and
compares every result with torch autograd in float64 through the
reference's forward ops (tools/moma-reference): `moma.router_grad`,
`moma.route_grad`, `moma.combine_grad`, `moma.load_balancing_loss_grad`,
`moma.router_z_loss_grad`, `moma.aux_router_loss_grad`,
`moma.aux_router_grad`, `moma.depth_route_grad`, `moma.depth_blend_grad`
and `moma.depth_scatter_grad`.

The discrete choices are function arguments built here (routing plans:
expert-major, ascending tokens, trailing empty slots with token -1; kept
positions: ascending, trailing -1), so autograd differentiates only the
gates and scores. Tolerance: max |compiled - expected| <= 1e-5 * max
|expected| per result. Prints one `<case>: ok` line per case.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "moma-reference"))
from gradient_ops import (M, expected_grads, ids_t, leaf,  # noqa: E402
                          run_cases, ttype)
from moma_reference import ops  # noqa: E402
from moma_reference.config import ExpertGroup  # noqa: E402
from routing_check import ec, group_attr, tc  # noqa: E402

B, L, D = 2, 6, 8
N = B * L
rng = np.random.default_rng(20261207)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def scalar(value):
    return np.array(value, dtype=np.float32)


def modality_ids(present=M):
    """[B, L] ids in [0, present), each of them present."""
    mod = rng.integers(0, present, size=(B, L))
    mod.reshape(-1)[:present] = np.arange(present)
    rng.shuffle(mod.reshape(-1))
    return mod.astype(np.int32)


def reference_groups(groups):
    """moma_reference ExpertGroups of routing_check-style group dicts."""
    refs, first = [], 0
    for i, g in enumerate(groups):
        refs.append(ExpertGroup(f"g{i}", tuple(f"m{m}" for m in g["mods"]),
                                tuple(g["mods"]), g["experts"], g["routing"],
                                g["capacity"], g["top_k"], g["score"],
                                g["renormalize"], first))
        first += g["experts"]
    return refs


def attrs(groups):
    return "[" + ", ".join(group_attr(g) for g in groups) + "]"


def e_max(groups):
    return max(g["experts"] for g in groups)


def types_of(args):
    return ", ".join(ttype(a) for _, a in args)


def plan_of(logits, mod, refs, extra_slots):
    """The reference plan chosen from `logits` (float64), padded with
    `extra_slots` trailing empty slots: (slot_token, expert_offsets) i32."""
    plan = ops.route(torch.from_numpy(logits.astype(np.float64)).reshape(N, -1),
                     ids_t(mod).reshape(N), refs)
    tok = np.concatenate([plan.slot_token.numpy(),
                          np.full(extra_slots, -1)]).astype(np.int32)
    return tok, plan.expert_offsets.numpy().astype(np.int32), plan


def plan_gates(logits_t, mod, refs, tok, off):
    """The gates of every slot of the plan (0 for empty slots) as a
    differentiable function of the logits `[N, E_max]`: the group's score
    `s[t, j]`, over the sum of the token's chosen scores with renormalize."""
    gates = [logits_t.new_zeros(())] * len(tok)
    mod_t = ids_t(mod).reshape(N)
    for g in refs:
        s = ops.group_scores(logits_t[:, :g.experts], g.score)
        chosen = torch.zeros(N, g.experts, dtype=torch.float64)
        for j in range(g.experts):
            for slot in range(off[g.first_expert + j], off[g.first_expert + j + 1]):
                chosen[tok[slot], j] = 1.0
        total = (s * chosen).sum(-1)
        denom = torch.where(total > 0, total, torch.ones_like(total))
        member = ops.group_members_mask(mod_t, g)
        for j in range(g.experts):
            for slot in range(off[g.first_expert + j], off[g.first_expert + j + 1]):
                t = int(tok[slot])
                assert member[t], "plan routes a token outside its group"
                gates[slot] = s[t, j] / denom[t] if g.renormalize else s[t, j]
    return torch.stack(gates)


# ----------------------------------------------------------------------------
# Routers and routing


def router_cases(chk):
    groups = [tc([0], 4, 2), ec([1], 3)]  # modality 2 has no group
    refs = reference_groups(groups)
    mod = modality_ids()
    x = randn(B, L, D)
    ws = [randn(D, g["experts"]) for g in groups]
    dlogits = randn(B, L, e_max(groups))  # non-zero off the groups too
    exp = expected_grads(
        lambda x_, *ws_: ops.router(x_.reshape(N, D), ids_t(mod).reshape(N),
                                    list(ws_), refs, e_max(groups)),
        [leaf(x)] + [leaf(w) for w in ws], dlogits.reshape(N, -1))
    args = [("x", x), ("mod", mod), ("dl", dlogits), ("w0", ws[0]), ("w1", ws[1])]
    results = [("%dx", ttype(x)), ("%dw0", ttype(ws[0])), ("%dw1", ttype(ws[1]))]
    chk.run("router_grad", args,
            [f"%dx, %dw0, %dw1 = moma.router_grad %x, %mod, %dl weights(%w0, %w1) "
             f"groups {attrs(groups)} : ({types_of(args)}) -> "
             f"({', '.join(t for _, t in results)})"],
            results, exp)


def route_case(chk, name, groups, present=M, extra_slots=3, edit=None):
    refs = reference_groups(groups)
    mod = modality_ids(present)
    logits = randn(B, L, e_max(groups), scale=1.5)
    if edit:
        edit(logits, mod)
    tok, off, plan = plan_of(logits, mod, refs, extra_slots)
    dgate = randn(len(tok))  # non-zero on the empty slots too
    lg = leaf(logits.reshape(N, -1))
    gates = plan_gates(lg, mod, refs, tok, off)
    used = int(off[-1])
    if not torch.allclose(gates[:used].detach(), plan.slot_gate, atol=1e-12):
        raise AssertionError(f"{name}: plan_gates disagrees with ops.route")
    (gates * torch.from_numpy(dgate.astype(np.float64))).sum().backward()
    args = [("logits", logits), ("mod", mod), ("tok", tok), ("off", off),
            ("dgate", dgate)]
    chk.run(name, args,
            [f"%dl = moma.route_grad %logits, %mod, %tok, %off, %dgate groups "
             f"{attrs(groups)} : ({types_of(args)}) -> {ttype(logits)}"],
            [("%dl", ttype(logits))], [lg.grad.numpy().reshape(logits.shape)])
    return tok, off


def route_cases(chk):
    route_case(chk, "route_grad top2 softmax renormalize",
               [tc([0], 4, 2, renormalize=True), tc([1, 2], 3, 2, renormalize=True)])
    route_case(chk, "route_grad top1 softmax",
               [tc([0], 4, 1), tc([1], 3, 1)])
    route_case(chk, "route_grad expert_choice sigmoid",
               [ec([0], 4, 1.0), ec([1, 2], 3, 2.0, "softmax", True)])
    route_case(chk, "route_grad expert and token choice",
               [ec([0], 4, 1.5), tc([1], 3, 2, renormalize=True)])

    def starve(logits, mod):
        logits[..., 3] = -20.0  # nobody picks expert 3 of group 0

    tok, off = route_case(
        chk, "route_grad empty experts and slots",
        [tc([0], 4, 2, "sigmoid", True), ec([1], 3, 0.1)], present=2,
        extra_slots=5, edit=starve)
    if not (off[4] == off[3] and off[-1] == off[4] and (tok[off[-1]:] == -1).all()
            and off[-1] < len(tok)):
        raise AssertionError("route_grad empty experts and slots: plan has "
                             f"no empty experts or slots: {off}")


def combine_cases(chk):
    S = 10
    tok = np.array([3, 7, 0, 3, 11, 7, 3, 5, -1, -1], dtype=np.int32)
    # Token 3 has three slots, 7 two; tokens such as 1 none; 2 empty slots.
    ys, gate, dy = randn(S, D), randn(S), randn(B, L, D)
    valid = torch.from_numpy(tok >= 0)
    safe = torch.from_numpy(np.maximum(tok, 0)).long()

    def forward(ys_, gate_):
        plan = ops.RoutingPlan(safe, gate_ * valid.double(), None)
        return ops.combine(ys_, plan, N)

    exp = expected_grads(forward, [leaf(ys), leaf(gate)], dy.reshape(N, D))
    args = [("ys", ys), ("tok", tok), ("gate", gate), ("dy", dy)]
    chk.run("combine_grad", args,
            [f"%dys, %dg = moma.combine_grad %ys, %tok, %gate, %dy : "
             f"({types_of(args)}) -> ({ttype(ys)}, {ttype(gate)})"],
            [("%dys", ttype(ys)), ("%dg", ttype(gate))], exp)


# ----------------------------------------------------------------------------
# Routing losses


def load_balancing_case(chk, name, groups, present):
    refs = reference_groups(groups)
    mod = modality_ids(present)
    logits = randn(B, L, e_max(groups), scale=1.5)
    tok, off, plan = plan_of(logits, mod, refs, 2)
    dloss = scalar(1.7)
    lg = leaf(logits.reshape(N, -1))
    loss = ops.load_balancing_loss(lg, ids_t(mod).reshape(N), plan, refs)
    (loss * float(dloss)).backward()
    args = [("logits", logits), ("mod", mod), ("off", off), ("d", dloss)]
    chk.run(name, args,
            [f"%dl = moma.load_balancing_loss_grad %logits, %mod, %off, %d groups "
             f"{attrs(groups)} : ({types_of(args)}) -> {ttype(logits)}"],
            [("%dl", ttype(logits))], [lg.grad.numpy().reshape(logits.shape)])


def loss_cases(chk):
    load_balancing_case(chk, "load_balancing_loss_grad",
                        [tc([0], 4, 2, renormalize=True), ec([1], 3, 1.0)], M)
    # Group 2's modality has no tokens: n = 2 of the 3 token-choice groups.
    load_balancing_case(chk, "load_balancing_loss_grad group without tokens",
                        [tc([0], 4, 2), tc([1], 3, 1, "sigmoid"), tc([2], 2, 1)], 2)

    groups = [tc([0], 4, 2), ec([1], 3)]  # modality 2's tokens are unrouted
    refs = reference_groups(groups)
    mod = modality_ids()
    logits = randn(B, L, e_max(groups), scale=3.0)
    dloss = scalar(-0.6)
    lg = leaf(logits.reshape(N, -1))
    (ops.router_z_loss(lg, ids_t(mod).reshape(N), refs) * float(dloss)).backward()
    args = [("logits", logits), ("mod", mod), ("d", dloss)]
    chk.run("router_z_loss_grad", args,
            [f"%dl = moma.router_z_loss_grad %logits, %mod, %d groups "
             f"{attrs(groups)} : ({types_of(args)}) -> {ttype(logits)}"],
            [("%dl", ttype(logits))], [lg.grad.numpy().reshape(logits.shape)])

    for name, ignored in (("aux_router_loss_grad", False),
                          ("aux_router_loss_grad all ignored", True)):
        z = randn(B, L, 4, scale=3.0)
        z.reshape(-1)[:4] = [30.0, -30.0, 30.0, -30.0]  # saturated
        targets = rng.choice([-1.0, 0.0, 1.0], size=z.shape).astype(np.float32)
        targets.reshape(-1)[:4] = [1.0, 0.0, 0.0, 1.0]
        if ignored:
            targets[...] = -1.0
        dloss = scalar(1.3)
        zl = leaf(z)
        counted = torch.from_numpy(targets >= 0)
        if counted.any():
            loss = F.binary_cross_entropy_with_logits(
                zl[counted], torch.from_numpy(targets.astype(np.float64))[counted])
            (loss * float(dloss)).backward()
            expected = zl.grad.numpy()
        else:
            expected = np.zeros(z.shape)
        args = [("z", z), ("t", targets), ("d", dloss)]
        chk.run(name, args,
                [f"%dz = moma.aux_router_loss_grad %z, %t, %d : "
                 f"({types_of(args)}) -> {ttype(z)}"],
                [("%dz", ttype(z))], [expected])


# ----------------------------------------------------------------------------
# Auxiliary routers


def two_layer(x, w1, w2):
    """The logits of moma.aux_router: `silu(x W1) W2` (no sigmoid)."""
    return F.silu(x @ w1) @ w2


def aux_router_cases(chk):
    H, C = 5, 3
    x = randn(B, L, D)
    for untied in (False, True):
        lead = (M,) if untied else ()
        w1, w2 = randn(*lead, D, H), randn(*lead, H, C)
        dz = randn(B, L, C)
        mod = modality_ids()
        args = [("x", x), ("dz", dz), ("w1", w1), ("w2", w2)]
        operands = "%x, %dz weights(%w1, %w2)"
        if untied:
            args.append(("mod", mod))
            operands += " modality %mod"

        def forward(x_, w1_, w2_):
            if not untied:
                return two_layer(x_, w1_, w2_)
            masks = [(ids_t(mod) == i).unsqueeze(-1).double() for i in range(M)]
            return sum(m * two_layer(x_, w1_[i], w2_[i])
                       for i, m in enumerate(masks))

        exp = expected_grads(forward, [leaf(x), leaf(w1), leaf(w2)], dz)
        results = [("%dx", ttype(x)), ("%dw1", ttype(w1)), ("%dw2", ttype(w2))]
        chk.run(f"aux_router_grad{' untied' if untied else ''}", args,
                [f"%dx, %dw1, %dw2 = moma.aux_router_grad {operands} : "
                 f"({types_of(args)}) -> ({', '.join(t for _, t in results)})"],
                results, exp)

    groups = [ec([0], 4), tc([1], 3, 2)]  # modality 2 has no group
    refs = reference_groups(groups)
    mod = modality_ids()
    hidden = [4, 6]
    ws = []
    for g, h in zip(groups, hidden):
        ws += [randn(D, h), randn(h, g["experts"])]
    columns = e_max(groups) + 1
    dz = randn(B, L, columns)  # non-zero off the groups too

    def grouped(x_, *ws_):
        z = x_.new_zeros(B, L, columns)
        for i, g in enumerate(refs):
            member = ops.group_members_mask(ids_t(mod), g).unsqueeze(-1).double()
            part = member * two_layer(x_, ws_[2 * i], ws_[2 * i + 1])
            z = z + F.pad(part, (0, columns - g.experts))
        return z

    exp = expected_grads(grouped, [leaf(x)] + [leaf(w) for w in ws], dz)
    names = [f"w{i}" for i in range(len(ws))]
    args = [("x", x), ("dz", dz)] + list(zip(names, ws)) + [("mod", mod)]
    results = [("%dx", ttype(x))] + [(f"%d{n}", ttype(w)) for n, w in zip(names, ws)]
    chk.run("aux_router_grad groups", args,
            [f"{', '.join(v for v, _ in results)} = moma.aux_router_grad %x, %dz "
             f"weights({', '.join('%' + n for n in names)}) modality %mod groups "
             f"{attrs(groups)} : ({types_of(args)}) -> "
             f"({', '.join(t for _, t in results)})"],
            results, exp)


# ----------------------------------------------------------------------------
# Mixture-of-depths

DL = 8  # the depth cases' sequence length


def depth_route_cases(chk):
    x, w = randn(B, DL, D), randn(D, 1, scale=0.7)
    # Auxiliary router logits: a position is kept where its logit is > 0.
    aux = rng.standard_normal(size=(B, DL, 1))
    aux[0, :, 0] = [2.2, -2.1, 0.8, -1.4, 1.3, -0.8, -2.0, 0.4]  # 4 of 8 kept
    aux[1, :, 0] = [-0.3, 1.1, -1.7, 0.6, -0.2, -0.9, 1.5, -1.2]  # 3 of 8 kept
    for name, aux_in in (("depth_route_grad", None),
                         ("depth_route_grad aux", torch.from_numpy(aux))):
        xl, wl = leaf(x), leaf(w)
        idx, gate = ops.depth_route(xl, wl, 0.5, aux_in)
        idx = idx.numpy().astype(np.int32)
        if aux_in is not None and not (idx == -1).any():
            raise AssertionError(f"{name}: no empty slot")
        dgate = randn(*idx.shape)  # non-zero on the empty slots too
        (gate * torch.from_numpy(dgate.astype(np.float64))).sum().backward()
        args = [("x", x), ("w", w), ("idx", idx), ("dg", dgate)]
        chk.run(name, args,
                [f"%dx, %dw = moma.depth_route_grad %x, %w, %idx, %dg : "
                 f"({types_of(args)}) -> ({ttype(x)}, {ttype(w)})"],
                [("%dx", ttype(x)), ("%dw", ttype(w))],
                [xl.grad.numpy(), wl.grad.numpy()])


def kept_rows(x, idx):
    """x[b, idx[b, k]], 0 for empty slots."""
    xs = np.zeros((B, idx.shape[1], x.shape[-1]), dtype=x.dtype)
    for b in range(B):
        for k, l in enumerate(idx[b]):
            if l >= 0:
                xs[b, k] = x[b, l]
    return xs


def depth_region_grads(x, idx, o, gate, dy, body):
    """Autograd through ops.depth_region: the gradients of x, of the body's
    input xs (the region's kept rows), of o and of the gate."""
    xl, ol = leaf(x), leaf(o)
    gl = leaf(gate) if gate is not None else None
    seen = []

    def region_body(xs, ms, ps):
        xs.retain_grad()
        seen.append(xs)
        return body(xs, ol)

    mod = torch.zeros(B, DL, dtype=torch.int64)
    y = ops.depth_region(xl, mod, torch.from_numpy(idx).long(), gl, region_body)
    (y * torch.from_numpy(dy.astype(np.float64))).sum().backward()

    def grad(t):
        return t.grad.numpy() if t.grad is not None else np.zeros(t.shape)

    return (grad(xl), grad(seen[0]), grad(ol),
            grad(gl) if gl is not None else None)


def depth_blend_cases(chk):
    K = 3
    idx = np.array([[1, 4, 6], [0, 5, -1]], dtype=np.int32)  # one empty slot
    for gated in (True, False):
        x, o, dy = randn(B, DL, D), randn(B, K, D), randn(B, DL, D)
        gate = rng.uniform(0.1, 0.9, size=(B, K)).astype(np.float32)
        gate[1, 2] = 0.0  # the empty slot's gate
        _, dxs, do, dg = depth_region_grads(x, idx, o, gate if gated else None,
                                            dy, lambda xs, o_: o_)
        xs = kept_rows(x, idx)
        args = [("dy", dy), ("idx", idx), ("xs", xs), ("o", o)]
        results = [("%do", ttype(xs)), ("%dxs", ttype(xs))]
        operands = "%dy, %idx, %xs, %o"
        expected = [do, dxs]
        if gated:
            args.append(("g", gate))
            operands += " gate %g"
            results.append(("%dg", ttype(gate)))
            expected.append(dg)
        chk.run(f"depth_blend_grad{'' if gated else ' ungated'}", args,
                [f"{', '.join(v for v, _ in results)} = moma.depth_blend_grad "
                 f"{operands} : ({types_of(args)}) -> "
                 f"({', '.join(t for _, t in results)})"],
                results, expected)


def depth_scatter_cases(chk):
    K = 3
    idx = np.array([[0, 3, 7], [2, -1, -1]], dtype=np.int32)
    dy, dkept = randn(B, DL, D), randn(B, K, D)
    expected = dy.astype(np.float64)
    for b in range(B):
        for k, l in enumerate(idx[b]):
            if l >= 0:
                expected[b, l] = dkept[b, k]
    cases = [("depth_scatter_grad", dy, dkept, expected)]
    # Chained with a body that reads xs: the whole gradient of the region's
    # input from the kept rows' gradient (body and blend together).
    x, o = randn(B, DL, D), randn(B, K, D)
    gate = rng.uniform(0.1, 0.9, size=(B, K)).astype(np.float32)
    wb = torch.from_numpy(randn(D, D, scale=0.5).astype(np.float64))
    dx, dxs, _, _ = depth_region_grads(
        x, idx, o, gate, dy, lambda xs, o_: torch.tanh(xs @ wb) * o_)
    cases.append(("depth_scatter_grad region", dy, dxs.astype(np.float32), dx))
    for name, dy_, dkept_, exp in cases:
        args = [("dy", dy_), ("idx", idx), ("dk", dkept_)]
        chk.run(name, args,
                [f"%dx = moma.depth_scatter_grad %dy, %idx, %dk : "
                 f"({types_of(args)}) -> {ttype(dy_)}"],
                [("%dx", ttype(dy_))], [exp])


def main():
    return run_cases("routing-grad-ops", [
        router_cases, route_cases, combine_cases, loss_cases, aux_router_cases,
        depth_route_cases, depth_blend_cases, depth_scatter_cases])

if __name__ == "__main__":
    sys.exit(main())
