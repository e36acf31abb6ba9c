"""Numerical check of the lowered routing ops and losses against the PyTorch
reference (tools/moma-reference/moma_reference/ops.py).

Every case builds one moma function that runs moma.router, moma.route,
moma.dispatch, moma.experts, moma.combine, moma.route_mask,
moma.aux_router, moma.load_balancing_loss (when a group is token-choice),
moma.router_z_loss, moma.aux_router_loss and moma.cross_entropy on random
f32 inputs, runs it through `moma-opt --moma-to-cpu` and mlir-runner
(opcheck.py), and compares every result with the reference ops: integers
(slot tokens, expert offsets) exactly, floats to 1e-5 relative.

moma.route reads its logits (and aux logits) from arguments, so that the
selection is decided by exactly the same numbers on both sides (ties are
built into those arguments); the ops after it consume the lowered plan.
With aux logits, the plan's expert-choice selections are also checked to be
exactly the positive logits (0, -0 and the smallest normal floats around 0
included).

A last check runs moma.aux_router_loss on saturated f32 logits (|z| = 17,
30, 100) against float64 binary cross-entropy with logits at rtol 1e-6
without an absolute tolerance, for confidently wrong and confidently right
routers; the clamped-probability form the op had before cannot pass it.
The reference plan has no trailing empty slots: the expected arrays are
padded to the static slot count with token -1, gate 0 and zero rows.
"""

import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "moma-reference"))

import opcheck  # noqa: E402
from moma_reference import ops  # noqa: E402
from moma_reference.config import ExpertGroup  # noqa: E402


# ----------------------------------------------------------------------------
# Cases


def ec(mods, experts, capacity=1.0, score="sigmoid", renormalize=False):
    return dict(mods=mods, experts=experts, routing="expert_choice",
                capacity=capacity, top_k=None, score=score,
                renormalize=renormalize)


def tc(mods, experts, top_k, score="softmax", renormalize=False):
    return dict(mods=mods, experts=experts, routing="token_choice",
                capacity=None, top_k=top_k, score=score,
                renormalize=renormalize)


CASES = [
    dict(name="expert_choice_sigmoid", modalities=["text", "image"],
         groups=[ec([0], 4), ec([1], 4)], mod="mixed"),
    dict(name="expert_choice_softmax", modalities=["text", "image"],
         groups=[ec([0], 4, 2.0, "softmax"), ec([1], 3, 1.5, "softmax", True)],
         mod="mixed", activation="gelu"),
    dict(name="token_choice_top2_renormalize", modalities=["text", "image"],
         groups=[tc([0], 4, 2, renormalize=True), tc([1], 6, 2, renormalize=True)],
         mod="mixed"),
    dict(name="shared_group", modalities=["text", "image"],
         groups=[tc([0, 1], 4, 2, renormalize=True)], mod="mixed"),
    dict(name="modality_without_group", modalities=["text", "image", "audio"],
         groups=[ec([0], 4), tc([2], 3, 1, score="sigmoid")], mod="mixed3"),
    dict(name="modality_absent", modalities=["text", "image", "speech"],
         groups=[ec([0], 4), tc([1], 4, 2), ec([2], 2, 0.5, "softmax")],
         mod="no_image", targets="no_image"),
    dict(name="one_modality", modalities=["text", "image"],
         groups=[tc([0], 4, 3, renormalize=True), ec([1], 4)], mod="all_text"),
    dict(name="ties", modalities=["text", "image"],
         groups=[ec([0], 4), tc([1], 4, 2, renormalize=True)], mod="mixed",
         ties=True),
    dict(name="aux", modalities=["text", "image"],
         groups=[ec([0], 4), ec([1], 3, 2.0, "softmax"), ], mod="mixed",
         aux=True, aux_columns=5),
    dict(name="aux_with_token_choice", modalities=["text", "image"],
         groups=[tc([0], 4, 2, renormalize=True), ec([1], 4)], mod="mixed",
         aux=True, all_ignored=True),
    dict(name="lora_experts", modalities=["text", "image"],
         groups=[tc([0], 4, 2, renormalize=True), tc([1], 4, 1)], mod="mixed",
         lora=True, activation="gelu"),
    dict(name="lora_swiglu_expert_choice", modalities=["text", "image"],
         groups=[ec([0, 1], 4, 1.0)], mod="mixed", lora=True),
    # Capacity c = E_g (every expert takes every group token) and top-k =
    # E_g; capacity 0 (floor(9 * 0.1 / 4)); every score equal (ties only).
    dict(name="capacity_all_tokens", modalities=["text", "image"],
         groups=[ec([0], 4, 4.0), tc([1], 3, 3)], mod="mixed"),
    dict(name="capacity_zero", modalities=["text", "image"],
         groups=[ec([0], 4, 0.1), ec([1], 4)], mod="uneven"),
    dict(name="equal_scores", modalities=["text", "image"],
         groups=[ec([0], 4, 2.0), tc([1], 4, 2)], mod="mixed", equal=True),
    dict(name="empty_slots", modalities=["text", "image"],
         groups=[ec([0], 4, 1.0), ec([1], 4, 0.75)], mod="uneven",
         extra_slots=5),
]

B, L, D, HIDDEN, VOCAB, RANK = 2, 8, 8, 6, 12, 2
N = B * L


def modality_ids(kind, rng):
    if kind == "mixed":
        mod = rng.integers(0, 2, size=(B, L))
        mod[0, 0], mod[0, 1] = 0, 1  # both present
    elif kind == "mixed3":
        mod = rng.integers(0, 3, size=(B, L))
        mod[0, :3] = [0, 1, 2]
    elif kind == "no_image":
        mod = rng.choice([0, 2], size=(B, L))
        mod[0, :2] = [0, 2]
    elif kind == "all_text":
        mod = np.zeros((B, L), dtype=np.int64)
    elif kind == "uneven":
        mod = np.zeros((B, L), dtype=np.int64)
        mod.reshape(-1)[rng.permutation(N)[:7]] = 1  # 9 text, 7 image
    else:
        raise ValueError(kind)
    return mod.astype(np.int32)


def required_slots(groups, aux):
    per_token = 0.0
    for g in groups:
        slots = float(g["top_k"]) if g["routing"] == "token_choice" else g["capacity"]
        if aux and g["routing"] == "expert_choice":
            slots = float(g["experts"])
        per_token = max(per_token, slots)
    return int(math.ceil(N * per_token))


# ----------------------------------------------------------------------------
# moma IR


def ttype(shape, element="f32"):
    return opcheck.tensor_type(shape, element)


def group_attr(g):
    mods = g["mods"]
    head = (f"modality = {mods[0]}" if len(mods) == 1 else
            f"modalities = [{', '.join(str(m) for m in mods)}]")
    if g["routing"] == "expert_choice":
        routing = f"expert_choice(capacity = {float(g['capacity'])!r})"
    else:
        routing = f"token_choice(top_k = {g['top_k']})"
    text = (f"#moma.expert_group<{head}, experts = {g['experts']}, {routing}, "
            f"score = {g['score']}")
    return text + (", renormalize>" if g["renormalize"] else ">")


class Func:
    """Builds `func.func @op` from named arguments and moma statements."""

    def __init__(self):
        self.args, self.inputs, self.lines = [], [], []
        self.results, self.names = [], []

    def arg(self, name, array):
        element = {np.dtype(np.float32): "f32", np.dtype(np.int32): "i32"}[array.dtype]
        self.args.append((name, ttype(array.shape, element)))
        self.inputs.append(array)
        return f"%{name}", ttype(array.shape, element)

    def op(self, text):
        self.lines.append(f"    {text}")

    def result(self, name, value, type_text):
        self.results.append((value, type_text))
        self.names.append(name)

    def text(self):
        args = ", ".join(f"%{n}: {t}" for n, t in self.args)
        rtypes = ", ".join(t for _, t in self.results)
        values = ", ".join(v for v, _ in self.results)
        body = "\n".join(self.lines)
        return (f"  func.func @op({args}) -> ({rtypes}) {{\n{body}\n"
                f"    return {values} : {rtypes}\n  }}")


# ----------------------------------------------------------------------------
# One case


def run_case(case, runner, seed):
    rng = np.random.default_rng(seed)
    groups = case["groups"]
    M = len(case["modalities"])
    E = max(g["experts"] for g in groups)
    E_total = sum(g["experts"] for g in groups)
    aux_mode = case.get("aux", False)
    S = required_slots(groups, aux_mode) + case.get("extra_slots", 0)
    swiglu = case.get("activation", "swiglu") == "swiglu"
    cols = 2 * HIDDEN if swiglu else HIDDEN
    attrs = ", ".join(group_attr(g) for g in groups)
    ref_groups, first = [], 0
    for i, g in enumerate(groups):
        ref_groups.append(ExpertGroup(
            f"g{i}", tuple(case["modalities"][m] for m in g["mods"]),
            tuple(g["mods"]), g["experts"], g["routing"], g["capacity"],
            g["top_k"], g["score"], g["renormalize"], first))
        first += g["experts"]

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    mod = modality_ids(case["mod"], rng)
    if case.get("ties"):
        mod.reshape(-1)[[2, 5, 9]] = 0  # equal rows in the expert-choice group
        mod.reshape(-1)[3] = 1          # a flat row in the token-choice group
    x = randn(B, L, D)
    router_w = [randn(D, g["experts"]) for g in groups]
    w_in = randn(E_total, D, cols, scale=0.5)
    w_out = randn(E_total, HIDDEN, D, scale=0.5)
    lora = None
    if case.get("lora"):
        lora = [randn(E_total, D, RANK, scale=0.5), randn(E_total, RANK, cols, scale=0.5),
                randn(E_total, HIDDEN, RANK, scale=0.5), randn(E_total, RANK, D, scale=0.5)]
    lora_scale = 0.5
    hidden_g = [4 + 2 * (i % 2) for i in range(len(groups))]
    aux_w = []
    for i, g in enumerate(groups):
        aux_w += [randn(D, hidden_g[i]), randn(hidden_g[i], g["experts"])]
    aux_cols = case.get("aux_columns", E)

    # The logits moma.route reads: the reference router's, or tied values.
    xt, mt = torch.from_numpy(x).reshape(N, D), torch.from_numpy(mod).reshape(N).long()
    ref_logits = ops.router(xt, mt, [torch.from_numpy(w) for w in router_w],
                            ref_groups, E)
    logits_in = ref_logits.reshape(B, L, E).numpy().copy()
    if case.get("ties"):
        # Rows with equal logits (expert choice: token ties) and repeated
        # values inside rows (token choice: expert ties).
        levels = np.array([-1.0, 0.0, 0.5, 1.0], dtype=np.float32)
        logits_in = levels[rng.integers(0, 4, size=(B, L, E))]
        logits_in.reshape(N, E)[5] = logits_in.reshape(N, E)[2]
        logits_in.reshape(N, E)[9] = logits_in.reshape(N, E)[2]
        logits_in.reshape(N, E)[3, :] = 0.5
    if case.get("equal"):
        logits_in[...] = 0.25
    aux_in = None
    if aux_mode:
        # Auxiliary-router logits: taken iff > 0. Exact zeros (0 and -0) are
        # not taken, the smallest normal floats on either side decide.
        aux_in = rng.standard_normal((B, L, E)).astype(np.float32)
        tiny = np.finfo(np.float32).tiny
        aux_in.reshape(-1)[rng.permutation(N * E)[:8]] = [0.0, -0.0, 0.0, -0.0,
                                                          tiny, -tiny, tiny, -tiny]

    # Logits for aux_router_loss, some saturated.
    z_in = (rng.standard_normal((B, L, aux_cols)) * 3).astype(np.float32)
    z_in.reshape(-1)[:4] = [30.0, -30.0, 100.0, -100.0]
    target_in = rng.choice([-1.0, 0.0, 1.0], size=(B, L, aux_cols)).astype(np.float32)
    if case.get("all_ignored"):
        target_in[...] = -1.0
    ce_logits = randn(B, L, VOCAB, scale=2.0)
    targets = rng.integers(0, VOCAB, size=(B, L)).astype(np.int32)
    targets.reshape(-1)[rng.permutation(N)[:4]] = -1
    if case.get("targets") == "no_image":
        tmod = mod.copy()  # no image targets: per-modality loss 0
    else:
        tmod = rng.integers(0, M, size=(B, L)).astype(np.int32)

    # ---- the moma function
    f = Func()
    vx, tx = f.arg("x", x)
    vmod, tmod_t = f.arg("mod", mod)
    vrw = [f.arg(f"rw{i}", w) for i, w in enumerate(router_w)]
    vlog, tlog = f.arg("logits_in", logits_in)
    vwi, twi = f.arg("w_in", w_in)
    vwo, two = f.arg("w_out", w_out)
    vlora = [f.arg(f"lora{i}", a) for i, a in enumerate(lora)] if lora else []
    vaw = [f.arg(f"aw{i}", w) for i, w in enumerate(aux_w)]
    vaux = f.arg("aux_in", aux_in) if aux_mode else None
    vp, tp = f.arg("z_in", z_in)
    vt, _ = f.arg("target_in", target_in)
    vce, tce = f.arg("ce_logits", ce_logits)
    vtg, ttg = f.arg("targets", targets)
    vtm, _ = f.arg("tmod", tmod)

    t_rl = ttype((B, L, E))
    t_tok, t_gate, t_off = ttype((S,), "i32"), ttype((S,)), ttype((E_total + 1,), "i32")
    t_rows = ttype((S, D))
    f.op(f"%logits = moma.router {vx}, {vmod} weights({', '.join(v for v, _ in vrw)}) "
         f"groups [{attrs}] : ({tx}, {tmod_t}, {', '.join(t for _, t in vrw)}) -> {t_rl}")
    f.result("router logits", "%logits", t_rl)
    aux_operand = f" aux {vaux[0]}" if aux_mode else ""
    aux_type = f", {vaux[1]}" if aux_mode else ""
    f.op(f"%tok, %gate, %off = moma.route {vlog}, {vmod}{aux_operand} groups [{attrs}] "
         f": ({tlog}, {tmod_t}{aux_type}) -> ({t_tok}, {t_gate}, {t_off})")
    f.result("route slot_token", "%tok", t_tok)
    f.result("route slot_gate", "%gate", t_gate)
    f.result("route expert_offsets", "%off", t_off)
    f.op(f"%xs = moma.dispatch {vx}, %tok : ({tx}, {t_tok}) -> {t_rows}")
    f.result("dispatch", "%xs", t_rows)
    lora_text = ""
    lora_types = ""
    if lora:
        lora_text = (f" lora({', '.join(v for v, _ in vlora)}) "
                     f"{{lora_scale = {lora_scale!r} : f64}}")
        lora_types = ", " + ", ".join(t for _, t in vlora)
    act = "swiglu" if swiglu else "gelu"
    f.op(f"%ys = moma.experts {act} %xs, %off, {vwi}, {vwo}{lora_text} : "
         f"({t_rows}, {t_off}, {twi}, {two}{lora_types}) -> {t_rows}")
    f.result("experts", "%ys", t_rows)
    f.op(f"%y = moma.combine %ys, %tok, %gate residual {vx} : "
         f"({t_rows}, {t_tok}, {t_gate}, {tx}) -> {tx}")
    f.result("combine", "%y", tx)
    f.op(f"%mask = moma.route_mask %tok, %off, {vmod} groups [{attrs}] : "
         f"({t_tok}, {t_off}, {tmod_t}) -> {t_rl}")
    f.result("route_mask", "%mask", t_rl)
    t_p = ttype((B, L, aux_cols))
    f.op(f"%p = moma.aux_router {vx} weights({', '.join(v for v, _ in vaw)}) modality {vmod} "
         f"groups [{attrs}] : ({tx}, {', '.join(t for _, t in vaw)}, {tmod_t}) -> {t_p}")
    f.result("aux_router (groups)", "%p", t_p)
    scalar = ttype(())
    has_tc = any(g["routing"] == "token_choice" for g in groups)
    if has_tc:
        f.op(f"%lb = moma.load_balancing_loss {vlog}, {vmod}, %off groups [{attrs}] : "
             f"({tlog}, {tmod_t}, {t_off}) -> {scalar}")
        f.result("load_balancing_loss", "%lb", scalar)
    f.op(f"%z = moma.router_z_loss {vlog}, {vmod} groups [{attrs}] : "
         f"({tlog}, {tmod_t}) -> {scalar}")
    f.result("router_z_loss", "%z", scalar)
    f.op(f"%al = moma.aux_router_loss {vp}, {vt} : ({tp}, {tp}) -> {scalar}")
    f.result("aux_router_loss", "%al", scalar)
    t_per = ttype((M,))
    f.op(f"%ce, %cet = moma.cross_entropy {vce}, {vtg}, {vtm} : ({tce}, {ttg}, {ttg}) "
         f"-> ({t_per}, {scalar})")
    f.result("cross_entropy per_modality", "%ce", t_per)
    f.result("cross_entropy total", "%cet", scalar)
    if aux_mode:
        # Tied (mixture-of-depths style) and untied auxiliary routers.
        w1, w2 = randn(D, 4), randn(4, 1)
        u1, u2 = randn(M, D, 4), randn(M, 4, 3)
        v1, t1 = f.arg("tied_w1", w1)
        v2, t2 = f.arg("tied_w2", w2)
        v3, t3 = f.arg("untied_w1", u1)
        v4, t4 = f.arg("untied_w2", u2)
        f.op(f"%pt = moma.aux_router {vx} weights({v1}, {v2}) : ({tx}, {t1}, {t2}) -> "
             f"{ttype((B, L, 1))}")
        f.result("aux_router (tied)", "%pt", ttype((B, L, 1)))
        f.op(f"%pu = moma.aux_router {vx} weights({v3}, {v4}) modality {vmod} : "
             f"({tx}, {t3}, {t4}, {tmod_t}) -> {ttype((B, L, 3))}")
        f.result("aux_router (untied)", "%pu", ttype((B, L, 3)))

    outputs = runner.run(f.text(), f.inputs, [t for _, t in f.results],
                         modalities=case["modalities"])
    got = dict(zip(f.names, outputs))

    # ---- the reference
    T = torch.from_numpy
    lt = T(logits_in).reshape(N, E)
    plan = ops.route(lt, mt, ref_groups, T(aux_in).reshape(N, E) if aux_mode else None)
    used = plan.slot_token.numel()
    assert used <= S, (used, S)
    tok = np.full(S, -1, dtype=np.int32)
    tok[:used] = plan.slot_token.numpy()
    gate = np.zeros(S, dtype=np.float32)
    gate[:used] = plan.slot_gate.numpy()
    xs = ops.dispatch(xt, plan)
    ref_lora = None
    if lora:
        ref_lora = tuple(T(a) for a in lora) + (lora_scale,)
    ys = ops.experts(xs, plan, T(w_in), T(w_out), act, ref_lora)

    def pad_rows(rows):
        out = np.zeros((S, D), dtype=np.float32)
        out[:used] = rows.numpy()
        return out

    y = ops.combine(ys, plan, N, residual=xt)
    mask = ops.route_mask(plan, mt, ref_groups, E)
    for g in ref_groups:
        if g.routing != "expert_choice":
            mask[ops.group_members_mask(mt, g)] = -1.0
    p_ref = torch.zeros(N, aux_cols)
    for g, i in zip(ref_groups, range(len(groups))):
        member = ops.group_members_mask(mt, g).unsqueeze(-1).float()
        pg = ops.aux_router(xt, T(aux_w[2 * i]), T(aux_w[2 * i + 1]))
        p_ref = p_ref + F.pad(member * pg, (0, aux_cols - g.experts))
    per, total, _ = ops.cross_entropy(T(ce_logits), T(targets).long(), T(tmod).long(), M)
    expected = {
        "router logits": ref_logits.reshape(B, L, E).numpy(),
        "route slot_token": tok,
        "route slot_gate": gate,
        "route expert_offsets": plan.expert_offsets.numpy().astype(np.int32),
        "dispatch": pad_rows(xs),
        "experts": pad_rows(ys),
        "combine": y.reshape(B, L, D).numpy(),
        "route_mask": mask.reshape(B, L, E).numpy().astype(np.float32),
        "aux_router (groups)": p_ref.reshape(B, L, aux_cols).numpy(),
        "router_z_loss": ops.router_z_loss(lt, mt, ref_groups).numpy(),
        "aux_router_loss": ops.aux_router_loss(T(z_in), T(target_in)).numpy(),
        "cross_entropy per_modality": per.numpy(),
        "cross_entropy total": total.numpy(),
    }
    if has_tc:
        expected["load_balancing_loss"] = ops.load_balancing_loss(
            lt, mt, plan, ref_groups).numpy()
    if aux_mode:
        expected["aux_router (tied)"] = ops.aux_router(xt, T(w1), T(w2)).reshape(
            B, L, 1).numpy()
        mods = mt.clamp(min=0)
        h = F.silu(torch.einsum("nd,ndh->nh", xt, T(u1)[mods]))
        pu = torch.einsum("nh,nhk->nk", h, T(u2)[mods])  # logits
        expected["aux_router (untied)"] = pu.reshape(B, L, 3).numpy()

    for name in f.names:
        opcheck.assert_close(f"{case['name']}: {name}", got[name], expected[name],
                             rtol=1e-5)
    if aux_mode:
        check_aux_selection(case["name"], got, aux_in, mod, groups)
    return f"{case['name']}: {len(f.names)} results match ({used}/{S} slots used)"


def check_aux_selection(name, got, aux_in, mod, groups):
    """The compiled plan's expert-choice selections are exactly the positive
    aux logits of each group's tokens and experts (independently of the
    reference)."""
    tok, off = got["route slot_token"], got["route expert_offsets"]
    aux = aux_in.reshape(N, -1)
    mods = mod.reshape(N)
    first = 0
    for g in groups:
        for j in range(g["experts"]):
            taken = sorted(tok[off[first + j]:off[first + j + 1]].tolist())
            if g["routing"] == "expert_choice":
                want = [t for t in range(N) if mods[t] in g["mods"] and aux[t, j] > 0]
                if taken != want:
                    raise AssertionError(f"{name}: expert {first + j} took {taken}, "
                                         f"the positive aux logits are {want}")
        first += g["experts"]


def bce_with_logits_f64(z, t):
    """Mean over t >= 0 of max(z, 0) - t z + log1p(exp(-|z|)), in float64."""
    z, t = z.astype(np.float64), t.astype(np.float64)
    counted = t >= 0
    terms = np.maximum(z, 0) - t * z + np.log1p(np.exp(-np.abs(z)))
    return terms[counted].mean()


def clamped_probability_bce_f32(z, t):
    """The form aux_router_loss had before it took logits, in float32:
    p = sigmoid(z) clamped to [1e-7, 1 - 1e-7] (1 - 1e-7 rounds to
    0.99999988)."""
    z, t = z.astype(np.float32), t.astype(np.float32)
    one = np.float32(1)
    with np.errstate(over="ignore"):  # exp(100) is inf: p = 0, as in f32
        p = one / (one + np.exp(-z))
    q = np.clip(p, np.float32(1e-7), np.float32(1 - 1e-7))
    counted = t >= 0
    terms = -(t * np.log(q) + (one - t) * np.log(one - q))
    return np.float32(terms[counted].mean())


def run_saturated_loss(runner):
    """aux_router_loss on saturated logits against float64 (rtol 1e-6)."""
    sets = {
        # Confidently wrong: each term is about |z|.
        "wrong": ([30.0, -30.0, 100.0, -100.0, 17.0, -17.0],
                  [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]),
        # Confidently right: each term is about exp(-|z|), mean ~4.7e-14.
        "right": ([30.0, -30.0, 100.0, -100.0, 30.0, 0.25],
                  [1.0, 0.0, 1.0, 0.0, 1.0, -1.0]),
        # Both, and moderate logits, some ignored.
        "mixed": ([30.0, -30.0, 100.0, -100.0, 17.0, -2.5],
                  [1.0, 1.0, 0.0, 0.0, -1.0, 1.0]),
    }
    f = Func()
    scalar = ttype(())
    for key, (z, t) in sets.items():
        vz, tz = f.arg(f"z_{key}", np.array(z, dtype=np.float32).reshape(1, 2, 3))
        vt, _ = f.arg(f"t_{key}", np.array(t, dtype=np.float32).reshape(1, 2, 3))
        f.op(f"%l_{key} = moma.aux_router_loss {vz}, {vt} : ({tz}, {tz}) -> {scalar}")
        f.result(key, f"%l_{key}", scalar)
    outputs = runner.run(f.text(), f.inputs, [t for _, t in f.results])
    report = []
    for key, got in zip(f.names, outputs):
        z, t = (np.array(v, dtype=np.float32) for v in sets[key])
        want = bce_with_logits_f64(z, t)
        opcheck.assert_close(f"aux_router_loss saturated {key}", got, np.float64(want),
                             rtol=1e-6, atol=0.0)
        # The check can fail: the old clamped-probability form does.
        old = clamped_probability_bce_f32(z, t)
        if abs(old - want) <= 1e-6 * abs(want):
            raise AssertionError(f"saturated {key}: the clamped form {old} passes too")
        report.append(f"{key} {float(got):.7g} (float64 {want:.7g}, clamped form {old:.7g})")
    return "aux_router_loss saturated: ok: " + "; ".join(report)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    parser.add_argument("--case", action="append",
                        help="run only these cases (by name)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runner = opcheck.Runner(args.moma_opt)
    failures = 0
    for index, case in enumerate(CASES):
        if args.case and case["name"] not in args.case:
            continue
        try:
            print(run_case(case, runner, args.seed * 1000 + index), flush=True)
        except (AssertionError, RuntimeError) as error:
            failures += 1
            print(f"FAIL {case['name']}: {error}", flush=True)
    if not args.case:
        try:
            print(run_saturated_loss(runner), flush=True)
        except (AssertionError, RuntimeError) as error:
            failures += 1
            print(f"FAIL aux_router_loss saturated: {error}", flush=True)
    print("routing numerics: " + ("ok" if not failures else f"{failures} FAILED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
