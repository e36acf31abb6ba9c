"""Reads a metrics.jsonl (one JSON object per step, `loss: {total, ce,
<modality>...}`) and prints, per modality, its first and last loss and
whether the last (and the mean of the last 10 steps) is at most half the
first."""
import json
import sys

steps = [json.loads(line) for line in open(sys.argv[1])]
first, rest = steps[0]["loss"], steps[-10:]
print(f"steps {len(steps)}")
for name in first:
    if name in ("total", "ce"):
        continue
    last = steps[-1]["loss"][name]
    mean = sum(s["loss"][name] for s in rest) / len(rest)
    verdict = "halved" if last <= first[name] / 2 and mean <= first[name] / 2 else "NOT halved"
    print(f"{name} first {first[name]:.4f} last {last:.4f} mean-of-last-10 {mean:.4f} {verdict}")
