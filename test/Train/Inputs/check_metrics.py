"""Checks a moma-train metrics.jsonl of a real train program (test/Train).

Usage: check_metrics.py METRICS.jsonl PROGRAM_MANIFEST.json

For every step: the keys of examples/Training.md; the per-modality losses
are finite where the step has targets of the modality and null where it has
none; ce is the target-weighted mean of the per-modality losses (one
micro-batch per step); total is at least ce; and every
expert_load has one count per expert of its route's expert_offsets:ROUTE
output, which sum to at most the step's tokens. Prints a summary.
"""
import json
import math
import sys

metrics, manifest = sys.argv[1:]
buffers = {b["name"]: b for b in json.load(open(manifest))["buffers"]}
routes = {n[len("expert_offsets:"):]: b["shape"][0] - 1
          for n, b in buffers.items() if n.startswith("expert_offsets:")}
steps = [json.loads(line) for line in open(metrics)]
for s in steps:
    where = f"step {s['step']}"
    assert sorted(s) == ["elapsed_s", "expert_load", "grad_norm", "loss", "lr",
                         "step", "targets", "tokens", "tokens_per_s"], where
    loss, targets = s["loss"], s["targets"]
    per = loss["ce_per_modality"]
    assert list(per) == list(targets), where
    for m, count in targets.items():
        assert (per[m] is None) == (count == 0), (where, m, per[m], count)
    weighted = sum(per[m] * c for m, c in targets.items() if c)
    assert math.isclose(loss["ce"], weighted / sum(targets.values()),
                        rel_tol=1e-5), (where, loss)
    assert math.isfinite(loss["total"]) and loss["total"] >= loss["ce"], where
    assert sorted(s["expert_load"]) == sorted(routes), where
    for route, counts in s["expert_load"].items():
        assert len(counts) == routes[route], (where, route)
        assert min(counts) >= 0 and sum(counts) <= s["tokens"], (where, counts)
print(len(steps), "steps:", [s["step"] for s in steps])
print("losses:", sorted(steps[0]["loss"]), "modalities:",
      list(steps[0]["targets"]))
print("routes:", {r: len(c) for r, c in steps[0]["expert_load"].items()})
