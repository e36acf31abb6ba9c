#!/usr/bin/python3
"""Plots training runs: per-modality loss curves and per-expert load.

Usage (Debian's /usr/bin/python3, which has matplotlib):
    moma-plot.py RUN [RUN ...] --out PLOT.png [--labels a,b,...] [--smooth K]

Each RUN is a directory holding ``metrics.jsonl`` (as ``moma-train --out``
writes it) or a ``.jsonl`` file (e.g. the output of the reference's
``train --json``): one JSON object per step with ``step``, ``loss``
(``{"total": ..., "ce": ..., "<modality>": ...}``, or the modalities'
losses in ``loss.ce_per_modality`` as moma-train writes them; auxiliary
losses such as ``router_z`` beside them) and, optionally, ``targets``
(``{"<modality>": count}``), ``lr``, ``grad_norm``, ``tokens_per_s`` and
``expert_load`` (``{"<route>": [tokens per expert]}``). A modality's loss
that is null, or whose ``targets`` count is 0, is no point of its curve: the
step had no target of it.

Writes:

* ``PLOT.png``: one panel per loss (each modality, then ``ce`` and
  ``total``), every run overlaid (e.g. MoMa against its dense baseline),
  plus the learning rate;
* ``PLOT-experts.png`` when a run has ``expert_load``: per route (layer and
  expert group) and run, the fraction of the route's tokens that each expert
  took at each step, stacked.

``--smooth K`` draws the mean of the last K steps (default 1: raw values).
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class PlotError(Exception):
    """An input problem: the message names the file and the line."""


# The losses that are not a modality's cross-entropy, in panel order.
LOSSES = ("ce", "total", "load_balancing", "router_z", "aux_router")


def step_losses(record, where):
    """The losses of one step to plot: name -> value, a modality's loss left
    out when the step has no target of it (null, or a 0 in ``targets``)."""
    loss = dict(record["loss"])
    per = loss.pop("ce_per_modality", {})
    if not isinstance(per, dict):
        raise PlotError(f"{where}: 'loss.ce_per_modality' must be an object")
    loss.update(per)
    targets = record.get("targets") or {}
    out = {}
    for key, value in loss.items():
        if value is None or (key not in LOSSES and targets.get(key) == 0):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PlotError(f"{where}: loss '{key}' must be a number or null")
        out[key] = value
    return out


def read_run(path):
    """The steps of one run (a list of dicts), from a directory or a file."""
    filename = os.path.join(path, "metrics.jsonl") if os.path.isdir(path) else path
    steps = []
    try:
        with open(filename, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PlotError(f"{filename}:{number}: not JSON ({e.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("step"), int) \
                        or not isinstance(record.get("loss"), dict):
                    raise PlotError(f"{filename}:{number}: a step needs an integer 'step' and a 'loss' object")
                record["losses"] = step_losses(record, f"{filename}:{number}")
                steps.append(record)
    except OSError as e:
        raise PlotError(f"{filename}: {e.strerror}") from None
    if not steps:
        raise PlotError(f"{filename}: no steps")
    return steps


def smooth(values, k):
    """Trailing mean over ``k`` values (fewer at the start)."""
    out, window = [], []
    for v in values:
        window.append(v)
        if len(window) > k:
            window.pop(0)
        out.append(sum(window) / len(window))
    return out


def loss_panels(runs):
    """Loss keys in panel order: modalities (first-seen order), ce, total,
    then the auxiliary losses."""
    keys = []
    for steps in runs:
        for record in steps:
            for k in record["losses"]:
                if k not in keys and k not in LOSSES:
                    keys.append(k)
    return keys + [k for k in LOSSES if any(k in r["losses"] for s in runs for r in s)]


def plot_losses(runs, labels, out, k):
    panels = loss_panels(runs)
    has_lr = any("lr" in r for s in runs for r in s)
    count = len(panels) + (1 if has_lr else 0)
    cols = min(3, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    flat = [a for row in axes for a in row]
    for ax, key in zip(flat, panels):
        for steps, label in zip(runs, labels):
            points = [(r["step"], r["losses"][key]) for r in steps if key in r["losses"]]
            if points:
                ax.plot([p[0] for p in points], smooth([p[1] for p in points], k), label=label, linewidth=1.2,
                        marker="." if len(points) == 1 else None)
        ax.set_title(f"loss: {key}" if key in LOSSES else f"ce: {key}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if has_lr:
        ax = flat[len(panels)]
        for steps, label in zip(runs, labels):
            points = [(r["step"], r["lr"]) for r in steps if "lr" in r]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1.2)
        ax.set_title("learning rate")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in flat[count:]:
        ax.set_visible(False)
    title = "per-modality loss" + (f" (mean of the last {k} steps)" if k > 1 else "")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_expert_load(runs, labels, out):
    """Stacked per-expert token fractions; returns False when no run has any."""
    routes = []
    for steps in runs:
        for r in steps:
            for name in r.get("expert_load") or {}:
                if name not in routes:
                    routes.append(name)
    with_load = [(s, l) for s, l in zip(runs, labels) if any(r.get("expert_load") for r in s)]
    if not routes:
        return False
    fig, axes = plt.subplots(len(routes), len(with_load), figsize=(5 * len(with_load), 2.4 * len(routes)),
                             squeeze=False)
    for col, (steps, label) in enumerate(with_load):
        for row, route in enumerate(routes):
            ax = axes[row][col]
            points = [(r["step"], r["expert_load"][route]) for r in steps if route in (r.get("expert_load") or {})]
            if points:
                experts = max(len(p[1]) for p in points)
                x = [p[0] for p in points]
                fractions = []
                for e in range(experts):
                    fractions.append([(c[e] / sum(c) if sum(c) and e < len(c) else 0.0) for _, c in points])
                ax.stackplot(x, *fractions, labels=[f"expert {e}" for e in range(experts)])
                ax.set_ylim(0, 1)
                ax.legend(fontsize=6, loc="upper right", ncol=min(experts, 4))
            ax.set_title(f"{label}: {route}", fontsize=9)
            ax.set_ylabel("token fraction")
            ax.set_xlabel("step")
    fig.suptitle("tokens per expert, per layer and expert group")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(prog="moma-plot", description="Plot moma training runs (metrics.jsonl).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a directory with metrics.jsonl, or a .jsonl file")
    p.add_argument("--out", required=True, metavar="PLOT.png")
    p.add_argument("--labels", help="comma-separated names of the runs (default: their paths)")
    p.add_argument("--smooth", type=int, default=1, metavar="K", help="trailing mean over K steps")
    args = p.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [os.path.basename(os.path.normpath(r)) for r in args.runs]
    if len(labels) != len(args.runs):
        p.error(f"--labels names {len(labels)} runs, but {len(args.runs)} are given")
    if args.smooth < 1:
        p.error("--smooth must be >= 1")
    if not args.out.endswith(".png"):
        p.error("--out must name a .png file")
    try:
        runs = [read_run(r) for r in args.runs]
    except PlotError as e:
        print(f"moma-plot: error: {e}", file=sys.stderr)
        return 1
    plot_losses(runs, labels, args.out, args.smooth)
    print(f"wrote {args.out}")
    experts = args.out[:-len(".png")] + "-experts.png"
    if plot_expert_load(runs, labels, experts):
        print(f"wrote {experts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
