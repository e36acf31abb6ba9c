"""Numerical check of the parallel selections (issue 9) against the PyTorch
reference at sizes the routing check does not reach: moma.route's expert
choice (one threshold search per expert over selection keys) and token
choice (a rank per expert) on B x L tokens with L not a power of two (the
keys' tie bits are not all used), in f32 (i64 keys) and f64 (i128 keys),
with scores drawn from a few levels (many ties, also across -0 and +0
logits), and capacities of 0, of some and of every group token. The
`positions` cases give the route the tokens' positions in the unpermuted
program (moma-hoist-modality-permutation) as a depth region's body has
them: distinct positions of a longer sequence, shuffled within each row,
and padding rows (modality and position -1); their ties must follow
`(b, positions)`, so the plan must be the reference's on the tokens put
back in that order (each expert's tokens listed by ascending index of the
permuted program).

The plan (slot tokens, expert offsets) must match exactly, the gates to
1e-6 relative.
"""

import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "moma-reference"))

import opcheck  # noqa: E402
from moma_reference import ops  # noqa: E402
from moma_reference.config import ExpertGroup  # noqa: E402

B, L = 2, 75
N = B * L

# (name, element, groups: (modality, experts, routing, capacity or top-k,
# score), logits kind)
CASES = [
    ("expert_choice_f32", "f32",
     [(0, 4, "expert_choice", 1.0, "sigmoid"), (1, 3, "expert_choice", 2.0, "softmax")],
     "normal"),
    ("expert_choice_ties_f32", "f32",
     [(0, 4, "expert_choice", 0.5, "sigmoid"), (1, 4, "expert_choice", 4.0, "sigmoid")],
     "levels"),
    ("expert_choice_f64", "f64",
     [(0, 4, "expert_choice", 1.0, "sigmoid"), (1, 3, "expert_choice", 0.01, "softmax")],
     "levels"),
    ("token_choice_ties_f32", "f32",
     [(0, 6, "token_choice", 2, "softmax"), (1, 4, "expert_choice", 1.0, "sigmoid")],
     "levels"),
    ("token_choice_f64", "f64",
     [(0, 5, "token_choice", 3, "sigmoid"), (1, 2, "token_choice", 2, "softmax")],
     "normal"),
    ("expert_choice_positions_ties_f32", "f32",
     [(0, 4, "expert_choice", 0.5, "sigmoid"), (1, 3, "expert_choice", 1.0, "softmax")],
     "levels+positions"),
    ("expert_choice_positions_f64", "f64",
     [(0, 4, "expert_choice", 1.0, "sigmoid"), (1, 4, "token_choice", 2, "sigmoid")],
     "levels+positions"),
]

# Padding rows per batch row in the `positions` cases.
PADDING = 5


def shuffled_positions(rng):
    """Per row: L distinct positions of a 3L-long sequence, the last PADDING
    rows -1 (padding), shuffled. Returns (positions, unpermuted), where
    unpermuted[b, l] is the token's index b * L + k in the unpermuted order
    (ascending position, padding last)."""
    positions = np.empty((B, L), dtype=np.int32)
    unpermuted = np.empty((B, L), dtype=np.int64)
    for b in range(B):
        row = np.sort(rng.choice(3 * L, size=L - PADDING, replace=False))
        row = np.concatenate([row, np.full(PADDING, -1)]).astype(np.int32)
        order = rng.permutation(L)
        positions[b] = row[order]
        unpermuted[b] = b * L + order
    return positions, unpermuted


def group_attr(modality, experts, routing, amount, score):
    how = (f"expert_choice(capacity = {float(amount)!r})" if routing == "expert_choice"
           else f"token_choice(top_k = {amount})")
    return (f"#moma.expert_group<modality = {modality}, experts = {experts}, "
            f"{how}, score = {score}>")


def run_case(runner, name, element, groups, kind, rng):
    E = max(g[1] for g in groups)
    dtype = np.float32 if element == "f32" else np.float64
    mod = rng.integers(0, 2, size=(B, L)).astype(np.int32)
    positions = None
    if kind.endswith("+positions"):
        kind = kind.removesuffix("+positions")
        positions, unpermuted = shuffled_positions(rng)
        mod[positions < 0] = -1
    if kind == "levels":
        levels = np.array([-1.0, -0.0, 0.0, 0.5, 2.0], dtype=dtype)
        logits = levels[rng.integers(0, len(levels), size=(B, L, E))]
    else:
        logits = rng.standard_normal((B, L, E)).astype(dtype)
    slots = 0.0
    for g in groups:
        per_token = g[3] if g[2] == "expert_choice" else float(g[3])
        slots = max(slots, per_token)
    S = int(np.ceil(N * slots))
    E_total = sum(g[1] for g in groups)
    attrs = ", ".join(group_attr(*g) for g in groups)
    lt = opcheck.tensor_type((B, L, E), element)
    mt = opcheck.tensor_type((B, L), "i32")
    results = [opcheck.tensor_type((S,), "i32"), opcheck.tensor_type((S,), element),
               opcheck.tensor_type((E_total + 1,), "i32")]
    args, operands, types, inputs = (f"%l: {lt}, %m: {mt}", "%l, %m", f"{lt}, {mt}",
                                     [logits, mod])
    if positions is not None:
        args += f", %p: {mt}"
        operands += " positions %p"
        types += f", {mt}"
        inputs.append(positions)
    func = (f"func.func @op({args}) -> ({', '.join(results)}) {{\n"
            f"  %t, %g, %o = moma.route {operands} groups [{attrs}] : ({types}) -> "
            f"({', '.join(results)})\n"
            f"  return %t, %g, %o : {', '.join(results)}\n}}")
    got = runner.run(func, inputs, results, modalities=["text", "image"])

    # The reference runs on the tokens in unpermuted order (token u of it is
    # token permuted[u] of the program).
    flat_logits, flat_mod = logits.reshape(N, E), mod.reshape(N)
    permuted = np.arange(N)
    if positions is not None:
        permuted = np.empty(N, dtype=np.int64)
        permuted[unpermuted.reshape(N)] = np.arange(N)
        flat_logits, flat_mod = flat_logits[permuted], flat_mod[permuted]

    ref_groups, first = [], 0
    for i, (m, experts, routing, amount, score) in enumerate(groups):
        ec = routing == "expert_choice"
        ref_groups.append(ExpertGroup(
            f"g{i}", (["text", "image"][m],), (m,), experts, routing,
            amount if ec else None, None if ec else amount, score, False, first))
        first += experts
    plan = ops.route(torch.from_numpy(np.ascontiguousarray(flat_logits)),
                     torch.from_numpy(flat_mod).long(), ref_groups)
    used = plan.slot_token.numel()
    tok = np.full(S, -1, dtype=np.int32)
    gate = np.zeros(S, dtype=dtype)
    off = plan.expert_offsets.numpy().astype(np.int32)
    ref_tok = permuted[plan.slot_token.numpy()]
    ref_gate = plan.slot_gate.numpy()
    for e in range(E_total):
        # Each expert's tokens by ascending index of the program.
        lo, hi = off[e], off[e + 1]
        order = np.argsort(ref_tok[lo:hi], kind="stable")
        tok[lo:hi] = ref_tok[lo:hi][order]
        gate[lo:hi] = ref_gate[lo:hi][order]
    opcheck.assert_close(f"{name}: slot_token", got[0], tok, rtol=0, atol=0)
    opcheck.assert_close(f"{name}: expert_offsets", got[2], off, rtol=0, atol=0)
    opcheck.assert_close(f"{name}: slot_gate", got[1], gate, rtol=1e-6, atol=0)
    return f"{name}: plan matches ({used}/{S} slots used)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-opt", default="moma-opt")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runner = opcheck.Runner(args.moma_opt)
    failures = 0
    for index, (name, element, groups, kind) in enumerate(CASES):
        try:
            print(run_case(runner, name, element, groups, kind,
                           np.random.default_rng(args.seed + index)))
        except AssertionError as error:
            failures += 1
            print(f"FAIL {name}: {error}")
    print("selection numerics: " + ("ok" if not failures else f"{failures} FAILED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
