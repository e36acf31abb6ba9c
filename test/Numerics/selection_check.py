"""Numerical check of the parallel selections (issue 9) against the PyTorch
reference at sizes the routing check does not reach: moma.route's expert
choice (one threshold search per expert over selection keys) and token
choice (a rank per expert) on B x L tokens with L not a power of two (the
keys' tie bits are not all used), in f32 (i64 keys) and f64 (i128 keys),
with scores drawn from a few levels (many ties, also across -0 and +0
logits), and capacities of 0, of some and of every group token.

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
]


def group_attr(modality, experts, routing, amount, score):
    how = (f"expert_choice(capacity = {float(amount)!r})" if routing == "expert_choice"
           else f"token_choice(top_k = {amount})")
    return (f"#moma.expert_group<modality = {modality}, experts = {experts}, "
            f"{how}, score = {score}>")


def run_case(runner, name, element, groups, kind, rng):
    E = max(g[1] for g in groups)
    dtype = np.float32 if element == "f32" else np.float64
    mod = rng.integers(0, 2, size=(B, L)).astype(np.int32)
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
    func = (f"func.func @op(%l: {lt}, %m: {mt}) -> ({', '.join(results)}) {{\n"
            f"  %t, %g, %o = moma.route %l, %m groups [{attrs}] : ({lt}, {mt}) -> "
            f"({', '.join(results)})\n"
            f"  return %t, %g, %o : {', '.join(results)}\n}}")
    got = runner.run(func, [logits, mod], results, modalities=["text", "image"])

    ref_groups, first = [], 0
    for i, (m, experts, routing, amount, score) in enumerate(groups):
        ec = routing == "expert_choice"
        ref_groups.append(ExpertGroup(
            f"g{i}", (["text", "image"][m],), (m,), experts, routing,
            amount if ec else None, None if ec else amount, score, False, first))
        first += experts
    plan = ops.route(torch.from_numpy(logits).reshape(N, E),
                     torch.from_numpy(mod).reshape(N).long(), ref_groups)
    used = plan.slot_token.numel()
    tok = np.full(S, -1, dtype=np.int32)
    tok[:used] = plan.slot_token.numpy()
    gate = np.zeros(S, dtype=dtype)
    gate[:used] = plan.slot_gate.numpy()
    off = plan.expert_offsets.numpy().astype(np.int32)
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
