"""The training loop of the reference: what one run of a train program does.

Each optimizer step (``examples/Training.md``, "The update, exactly"):

1. takes the step's ``A * B`` rows in batch order (:mod:`.data`); micro-batch
   ``a`` is rows ``[aB, (a+1)B)``;
2. runs the model on each micro-batch and accumulates ``(1/A) d total_a / dw``
   (autograd; a weight the objective does not reach gets a zero gradient,
   so that it is still decayed, as in the compiled program);
3. measures the global gradient norm and clips with
   ``torch.nn.utils.clip_grad_norm_`` when ``clip_grad_norm`` is set;
4. sets the learning rate of the step (:meth:`TrainConfig.lr_at`, steps from
   1) and calls ``torch.optim.AdamW``, with weight decay on every weight but
   the norms' and the biases (:func:`is_norm_or_bias`), which are decayed only
   if ``decay_norms_and_biases``.

The step's reported losses are means over its micro-batches.
"""

from dataclasses import dataclass
from typing import Dict, List

import torch

from .model import Model


@dataclass
class StepRecord:
    """What one step reports (``train --json`` prints it as one line)."""
    step: int
    total: float
    ce: float
    ce_per_modality: Dict[str, float]
    lr: float
    grad_norm: float
    expert_load: Dict[str, List[int]]

    def to_json(self):
        """The object of one line: the keys of ``metrics.jsonl``."""
        loss = {"total": self.total, "ce": self.ce}
        loss.update(self.ce_per_modality)
        return {"step": self.step, "loss": loss, "lr": self.lr, "grad_norm": self.grad_norm,
                "expert_load": self.expert_load}


class _RecordingOps:
    """:mod:`ops` (or a mixed-precision wrapper of it) that keeps every
    routing plan that ``route`` returns, in call order."""

    def __init__(self, inner):
        self.inner = inner
        self.plans = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def route(self, *args, **kwargs):
        plan = self.inner.route(*args, **kwargs)
        self.plans.append(plan)
        return plan


def _expert_load(cfg, plans):
    """Per routed group (``layers.I.moe.GROUP``), its experts' token counts."""
    load = {}
    moe_layers = [layer for layer in cfg.layers if layer.ffn.kind == "moe"]
    for layer, plan in zip(moe_layers, plans):
        for g in layer.ffn.groups:
            load[f"layers.{layer.index}.moe.{g.name}"] = [
                plan.count(g.first_expert + j) for j in range(g.experts)]
    return load


def is_norm_or_bias(name):
    """Whether weight ``name`` is a normalisation layer's (``...norm.weight``,
    ``...norm.bias``) or a bias (``....bias``): not decayed by default."""
    owner, _, last = name.rpartition(".")
    return last == "bias" or owner.rpartition(".")[2].endswith("norm")


def param_groups(params, config):
    """AdamW's two parameter groups: decayed, and the norms' weights and the
    biases (:func:`is_norm_or_bias`) not decayed unless
    ``decay_norms_and_biases``."""
    def decays(name):
        return config.decay_norms_and_biases or not is_norm_or_bias(name)
    decayed = [p for n, p in params.items() if decays(n)]
    plain = [p for n, p in params.items() if not decays(n)]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}]
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


class Trainer:
    """Weights, AdamW state and the step counter of one training run."""

    def __init__(self, cfg, weights, config, routing="batch"):
        self.cfg = cfg
        self.config = config
        self.routing = routing
        self.params = {n: torch.nn.Parameter(t.detach().clone()) for n, t in weights.items()}
        self.optimizer = torch.optim.AdamW(param_groups(self.params, config), lr=config.lr,
                                           betas=(config.beta1, config.beta2), eps=config.eps,
                                           weight_decay=config.weight_decay)
        self.step_number = 0

    def weights(self):
        """The current weights (name -> detached tensor, canonical order)."""
        return {n: p.detach() for n, p in self.params.items()}

    def step(self, ids, modality):
        """One optimizer step on ``A * B`` rows (``ids``/``modality``
        ``[A*B, L]``); returns its :class:`StepRecord`."""
        A = self.config.accumulation_steps
        if ids.shape[0] % A:
            raise ValueError(f"{ids.shape[0]} rows do not split into {A} micro-batches")
        B = ids.shape[0] // A
        self.step_number += 1
        names = list(self.params)
        tensors = [self.params[n] for n in names]
        grads = [torch.zeros_like(p) for p in tensors]
        total = ce = 0.0
        per = torch.zeros(self.cfg.num_modalities, dtype=torch.float64)
        plans = []
        for a in range(A):
            model = Model(self.cfg, self.params, self.routing)
            recorder = _RecordingOps(model.ops)
            model.ops = recorder
            out = model.forward(ids[a * B:(a + 1) * B], modality[a * B:(a + 1) * B])
            g = torch.autograd.grad(out.total, tensors, allow_unused=True)
            for acc, gi in zip(grads, g):
                if gi is not None:
                    acc.add_(gi)
            total += float(out.total) / A
            ce += float(out.ce_total) / A
            per += out.ce.detach().to(torch.float64) / A
            plans = recorder.plans
        for p, g in zip(tensors, grads):
            p.grad = g / A
        if self.config.clip_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(tensors, self.config.clip_grad_norm)
        else:
            norm = torch.norm(torch.stack([torch.norm(p.grad.detach(), 2) for p in tensors]), 2)
        lr = self.config.lr_at(self.step_number)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepRecord(self.step_number, total, ce,
                          {m.name: float(v) for m, v in zip(self.cfg.modalities, per.tolist())},
                          lr, float(norm), _expert_load(self.cfg, plans))


__all__ = ["StepRecord", "Trainer", "param_groups"]
