"""The training configuration (``moma-train-config/1``) and its schedule.

The format, its defaults and the update rule are specified in
``examples/Training.md`` ("Training configuration"); this module reads it
with the rules of the model file (:mod:`moma_reference.jsonio`: strict JSON,
unknown keys and wrong types are errors naming the JSON path) and computes
the learning rate of a step exactly as that page writes it.
"""

import math
from dataclasses import dataclass
from typing import Optional

from .jsonio import REQUIRED, Context, Obj, load_json_file

FORMAT = "moma-train-config/1"

_TOP_KEYS = ("accumulation_steps", "clip_grad_norm", "format", "optimizer", "schedule")
_OPTIMIZER_KEYS = ("beta1", "beta2", "decay_norms_and_biases", "eps", "lr", "weight_decay")
_SCHEDULE_KEYS = ("decay", "final_lr_ratio", "total_steps", "warmup_steps")
DECAYS = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """A checked training configuration (field meanings: Training.md)."""
    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decay_norms_and_biases: bool = False
    warmup_steps: int = 0
    total_steps: int = 1
    decay: str = "linear"
    final_lr_ratio: float = 0.0
    clip_grad_norm: Optional[float] = None
    accumulation_steps: int = 1

    def lr_at(self, step):
        """``lr(s)`` of Training.md ("The update, exactly"); steps from 1."""
        if step < 1:
            raise ValueError(f"steps are numbered from 1, not {step}")
        eta, w, t, f = self.lr, self.warmup_steps, self.total_steps, self.final_lr_ratio
        if w > 0 and step <= w:
            return eta * step / w
        if self.decay == "constant":
            return eta
        p = min(1.0, (step - w) / max(1, t - w))
        if self.decay == "linear":
            return eta * (f + (1.0 - f) * (1.0 - p))
        return eta * (f + (1.0 - f) * (1.0 + math.cos(math.pi * p)) / 2.0)


def _number(obj, key, default=REQUIRED, **bounds):
    """A finite number (a JSON number such as 1e999 reads as infinity)."""
    value = obj.number(key, default, **bounds)
    if not math.isfinite(value):
        raise obj.error(key, "must be finite")
    return value


def _unit(obj, key, default, closed):
    """A number in [0, 1) (or [0, 1] when ``closed``)."""
    value = _number(obj, key, default)
    if not (0.0 <= value < 1.0 or (closed and value == 1.0)):
        raise obj.error(key, f"must be in [0, 1{']' if closed else ')'}")
    return value


def parse_train_config(value, filename=""):
    """Validates a parsed ``moma-train-config/1`` document."""
    ctx = Context(filename)
    top = Obj(value, (), ctx, _TOP_KEYS)
    fmt = top.string("format")
    if fmt != FORMAT:
        raise top.error("format", f"unsupported format {fmt!r} (this reader knows {FORMAT!r})")
    opt = top.obj("optimizer", _OPTIMIZER_KEYS)
    sched = top.obj("schedule", _SCHEDULE_KEYS)
    clip = top.raw("clip_grad_norm", None)
    if clip is not None:
        clip = _number(top, "clip_grad_norm", above=0.0)
    return TrainConfig(
        lr=_number(opt, "lr", above=0.0),
        beta1=_unit(opt, "beta1", 0.9, closed=False),
        beta2=_unit(opt, "beta2", 0.999, closed=False),
        eps=_number(opt, "eps", 1e-8, above=0.0),
        weight_decay=_number(opt, "weight_decay", 0.0, minimum=0.0),
        decay_norms_and_biases=opt.boolean("decay_norms_and_biases", False),
        warmup_steps=sched.integer("warmup_steps", 0, minimum=0),
        total_steps=sched.integer("total_steps", minimum=1),
        decay=sched.string("decay", "linear", choices=DECAYS),
        final_lr_ratio=_unit(sched, "final_lr_ratio", 0.0, closed=True),
        clip_grad_norm=clip,
        accumulation_steps=top.integer("accumulation_steps", 1, minimum=1),
    )


def load_train_config(filename):
    """Reads and checks a training-configuration file."""
    return parse_train_config(load_json_file(filename), filename)
