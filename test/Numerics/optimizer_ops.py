"""Numerics of moma.adamw (MomaOptimizerOps.td) against torch.optim.AdamW.

Runs moma.adamw through `moma-opt --moma-to-cpu` and `mlir-runner`
(opcheck.py) on random f32 weights, gradients and moments, and compares the
updated weights and moments with one `torch.optim.AdamW` step from the same
state (step counter, moments), with the learning rate of examples/Training.md's
schedule (computed here independently) and `torch.nn.utils.clip_grad_norm_`.
Cases: warm-up, linear, cosine and constant decay, the floor after
`total_steps`, clipping that binds and one that does not, per-weight decay,
the first step, and an f64 model. Tolerance: max |compiled - expected| <=
1e-5 * max |expected| per result. Prints one `<case>: ok` line per case.
"""
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gradient_ops  # noqa: E402
from gradient_ops import f64, rng, ttype  # noqa: E402


def schedule(s, lr, warmup, total, decay, floor):
    """examples/Training.md's learning rate at step s (from 1)."""
    if warmup > 0 and s <= warmup:
        return lr * s / warmup
    if decay == "constant":
        return lr
    p = min(1.0, max(0, s - warmup) / max(1, total - warmup))
    shape = 1.0 - p if decay == "linear" else (1.0 + math.cos(math.pi * p)) / 2
    return lr * (floor + (1.0 - floor) * shape)


def adamw_case(chk, name, step, decay="linear", warmup=10, total=100,
               floor=0.1, clip=None, grad_scale=1.0, dtype=np.float32,
               weight_decay=(0.1, 0.0, 0.1), betas=(0.9, 0.95)):
    shapes = [(4, 6), (6,), (2, 3, 5)]
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gs = [(rng.standard_normal(s) * grad_scale).astype(dtype) for s in shapes]
    first = step == 1
    ms = [np.zeros(s, dtype) if first else
          (rng.standard_normal(s) * 0.1).astype(dtype) for s in shapes]
    vs = [np.zeros(s, dtype) if first else
          (rng.random(s) * 0.01).astype(dtype) for s in shapes]
    lr_peak, eps = 3e-3, 1e-8

    # torch.optim.AdamW from the same state.
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in ws]
    groups = [{"params": [p], "weight_decay": wd}
              for p, wd in zip(params, weight_decay)]
    lr = schedule(step, lr_peak, warmup, total, decay, floor)
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    for p, g, m, v in zip(params, gs, ms, vs):
        p.grad = torch.from_numpy(g.copy())
        if not first:
            opt.state[p] = {"step": torch.tensor(float(step - 1)),
                            "exp_avg": torch.from_numpy(m.copy()),
                            "exp_avg_sq": torch.from_numpy(v.copy())}
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum())
                         for g in gs))
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    expected = [p.detach().numpy() for p in params]
    expected += [opt.state[p]["exp_avg"].numpy() for p in params]
    expected += [opt.state[p]["exp_avg_sq"].numpy() for p in params]
    expected += [np.array(norm), np.array(lr)]

    n = len(shapes)
    args = ([(f"w{i}", w) for i, w in enumerate(ws)] +
            [(f"g{i}", g) for i, g in enumerate(gs)] +
            [(f"m{i}", m) for i, m in enumerate(ms)] +
            [(f"v{i}", v) for i, v in enumerate(vs)] +
            [("s", np.array(step, dtype=np.int64))])
    group = lambda prefix: ", ".join(f"%{prefix}{i}" for i in range(n))
    types = [ttype(w) for w in ws]
    scalar = "tensor<f32>" if dtype == np.float32 else "tensor<f64>"
    attrs = (f"beta1 = {f64(betas[0])}, beta2 = {f64(betas[1])}, "
             f"eps = {f64(eps)}, lr = {f64(lr_peak)}, "
             f"warmup_steps = {warmup} : i64, total_steps = {total} : i64, "
             f'decay = "{decay}", final_lr_ratio = {f64(floor)}, '
             f"weight_decay = array<f64: "
             f"{', '.join(repr(float(d)) for d in weight_decay)}>")
    if clip is not None:
        attrs += f", max_grad_norm = {f64(clip)}"
    body = [f"%r:{3 * n + 2} = moma.adamw step %s weights({group('w')}) "
            f"grads({group('g')}) exp_avg({group('m')}) "
            f"exp_avg_sq({group('v')}) {{{attrs}}} : {', '.join(types)} "
            f"-> {scalar}"]
    results = [(f"%r#{i}", types[i % n]) for i in range(3 * n)]
    results += [(f"%r#{3 * n}", scalar), (f"%r#{3 * n + 1}", scalar)]
    chk.run(name, args, body, results, expected)


def cases(chk):
    adamw_case(chk, "adamw first step", 1)
    adamw_case(chk, "adamw warm-up", 4)
    adamw_case(chk, "adamw linear decay", 40)
    adamw_case(chk, "adamw cosine decay", 40, decay="cosine")
    adamw_case(chk, "adamw constant", 40, decay="constant")
    adamw_case(chk, "adamw floor", 250, decay="cosine", warmup=0)
    adamw_case(chk, "adamw clipped", 7, clip=0.5, grad_scale=3.0)
    adamw_case(chk, "adamw clip not binding", 7, clip=1e3)
    adamw_case(chk, "adamw f64", 9, dtype=np.float64, clip=1.0,
               betas=(0.8, 0.999))


if __name__ == "__main__":
    sys.exit(gradient_ops.run_cases("optimizer-ops", [cases]))
