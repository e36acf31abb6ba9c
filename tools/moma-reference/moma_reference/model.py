"""The whole model: forward pass, losses and gradients.

The forward pass composes the ops of :mod:`moma_reference.ops` exactly as
``examples/README.md`` ("Model semantics") describes:

* ``h = embed(ids)``; positions are ``0 .. L-1``;
* each layer is a *block*; on a mixture-of-depths layer the block runs inside
  ``depth_region`` on the positions that ``depth_route`` keeps (the router
  looks at the residual stream ``h``);
* block, pre-norm:  ``a = x + attn(norm1(x))``, ``y = a + ffn(norm2(a))``;
  block, post-norm: ``a = x + norm1(attn(x))``, ``y = a + norm2(ffn(a))``;
* an MoE FFN is ``router -> route -> dispatch -> experts -> combine`` on the
  flattened tokens of the block;
* ``logits = final_norm(h) @ lm_head`` (``embed.weight^T`` when tied).

The training objective is ``ce + w_lb * load_balancing + w_z * router_z +
w_aux * aux_router`` where ``ce`` averages over all targets and each
auxiliary term is the mean of its per-layer op results.  Auxiliary routers
see their input through a stop-gradient: their loss trains only their own
weights.
"""

from dataclasses import dataclass, field
from typing import Dict, List

import torch

from . import ops
from .errors import MomaError


@dataclass
class LossParts:
    """Per-layer auxiliary loss values collected during the forward pass."""
    load_balancing: List[torch.Tensor] = field(default_factory=list)
    router_z: List[torch.Tensor] = field(default_factory=list)
    aux_router: List[torch.Tensor] = field(default_factory=list)


@dataclass
class Output:
    """Result of :func:`forward`.

    ``ce`` is ``[M]`` (one entry per modality), ``ce_counts`` the number of
    targets of each modality; the scalar losses are 0-d tensors; ``total``
    is the training objective.
    """
    logits: torch.Tensor
    ce: torch.Tensor
    ce_counts: List[int]
    ce_total: torch.Tensor
    load_balancing: torch.Tensor
    router_z: torch.Tensor
    aux_router: torch.Tensor
    total: torch.Tensor


#: Storage dtypes whose ops compute in float32 (Semantics.md, "Precision").
NARROW_DTYPES = (torch.bfloat16, torch.float16)

#: Ops that only move values: they run on the stored dtype unchanged.
_MOVES_VALUES = {"embed", "dispatch", "route_mask", "depth_mask", "group_members_mask",
                 "depth_region"}


def _convert(value, src, dst):
    """``value`` (a tensor, a routing plan, or a tuple/list of them) with
    every float tensor of dtype ``src`` converted to ``dst``."""
    if isinstance(value, torch.Tensor):
        return value.to(dst) if value.dtype == src else value
    if isinstance(value, ops.RoutingPlan):
        return ops.RoutingPlan(value.slot_token, _convert(value.slot_gate, src, dst),
                               value.expert_offsets)
    if isinstance(value, (tuple, list)):
        return type(value)(_convert(v, src, dst) for v in value)
    return value


class MixedPrecisionOps:
    """:mod:`ops` under the mixed-precision rule of a bf16/f16 model: every
    op reads its ``storage`` operands as float32 (exact), computes and
    accumulates in float32, and rounds each float result to ``storage``
    once (round to nearest even); ops that only move values run as they
    are."""

    def __init__(self, storage):
        self.storage = storage

    def __getattr__(self, name):
        fn = getattr(ops, name)
        if name in _MOVES_VALUES or not callable(fn) or isinstance(fn, type):
            return fn

        def op(*args, **kwargs):
            args = _convert(args, self.storage, torch.float32)
            kwargs = {k: _convert(v, self.storage, torch.float32) for k, v in kwargs.items()}
            return _convert(fn(*args, **kwargs), torch.float32, self.storage)
        return op


def _mean(values, like):
    if not values:
        return like.new_zeros(())
    if like.dtype in NARROW_DTYPES:
        # As the compiled program: a chain of rounded additions, then a
        # product with the rounded 1 / n.
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total * torch.tensor(1.0 / len(values), dtype=like.dtype)
    return torch.stack(values).mean()


class Model:
    """A model configuration bound to a set of weights.

    ``weights`` maps every name of :func:`~moma_reference.weights.weight_specs`
    to a tensor of the compute dtype.  ``routing`` is ``"batch"`` (training
    semantics: top-k over the batch) or ``"aux"`` (causal inference: the
    auxiliary routers decide expert-choice and mixture-of-depths selection).
    """

    def __init__(self, cfg, weights: Dict[str, torch.Tensor], routing="batch"):
        if routing not in ("batch", "aux"):
            raise MomaError(f"unknown routing mode {routing!r}")
        if routing == "aux" and not cfg.aux_routers.enabled:
            raise MomaError(f"model {cfg.name!r}: routing by auxiliary routers needs aux_routers.enabled")
        self.cfg = cfg
        self.w = weights
        self.routing = routing
        dtype = weights["embed.weight"].dtype
        self.ops = MixedPrecisionOps(dtype) if dtype in NARROW_DTYPES else ops

    # -- pieces --------------------------------------------------------------

    def _norm(self, name, x, modality):
        return self.ops.norm(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias"),
                        self.cfg.norm.kind, self.cfg.norm.eps, modality)

    def _attention(self, layer, x, modality, positions):
        p = f"layers.{layer.index}.attn"
        a = layer.attention
        return self.ops.attention(x, positions, self.w[f"{p}.wq"], self.w[f"{p}.wk"], self.w[f"{p}.wv"],
                             self.w[f"{p}.wo"], a.heads, a.kv_heads, a.head_dim, a.rope_theta,
                             a.causal, modality)

    def _dense_ffn(self, layer, x, modality):
        p = f"layers.{layer.index}.ffn"
        w_in, w_out = self.w[f"{p}.w_in"], self.w[f"{p}.w_out"]
        if w_in.dim() == 3:
            return self.ops.untied_ffn(x, modality, w_in, w_out, layer.ffn.activation)
        return self.ops.ffn(x, w_in, w_out, layer.ffn.activation)

    def _moe(self, layer, x, modality, parts, residual=None):
        """The MoE FFN on ``x [B, L, D]``; returns ``[B, L, D]`` (plus
        ``residual`` when given, as ``combine``'s residual operand)."""
        f = layer.ffn
        p = f"layers.{layer.index}.moe"
        B, L, D = x.shape
        N = B * L
        xf, mf = x.reshape(N, D), modality.reshape(N)
        e_max = f.max_group_experts
        logits = self.ops.router(xf, mf, [self.w[f"{p}.router.{g.name}"] for g in f.groups], f.groups, e_max)

        aux_groups = [g for g in f.groups if g.routing == "expert_choice"] if self.cfg.aux_routers.enabled else []
        aux = None
        if aux_groups:
            aux = xf.new_zeros(N, e_max)
            for g in aux_groups:
                zg = self.ops.aux_router(xf.detach(), self.w[f"{p}.aux.{g.name}.w1"], self.w[f"{p}.aux.{g.name}.w2"])
                member = self.ops.group_members_mask(mf, g).unsqueeze(-1).to(x.dtype)
                aux = aux + torch.nn.functional.pad(member * zg, (0, e_max - g.experts))

        plan = self.ops.route(logits, mf, f.groups, aux if self.routing == "aux" else None)
        xs = self.ops.dispatch(xf, plan)
        lora = None
        if f.lora.rank:
            lora = (self.w[f"{p}.w_in_lora_a"], self.w[f"{p}.w_in_lora_b"],
                    self.w[f"{p}.w_out_lora_a"], self.w[f"{p}.w_out_lora_b"], f.lora.scale)
        ys = self.ops.experts(xs, plan, self.w[f"{p}.w_in"], self.w[f"{p}.w_out"], f.activation, lora)
        res = residual.reshape(N, D) if residual is not None else None
        out = self.ops.combine(ys, plan, N, res)

        if any(g.routing == "token_choice" for g in f.groups):
            parts.load_balancing.append(self.ops.load_balancing_loss(logits, mf, plan, f.groups))
        parts.router_z.append(self.ops.router_z_loss(logits, mf, f.groups))
        if aux is not None:
            target = self.ops.route_mask(plan, mf, f.groups, e_max)
            # Only expert-choice groups have auxiliary routers.
            for g in f.groups:
                if g.routing != "expert_choice":
                    target[self.ops.group_members_mask(mf, g)] = -1.0
            parts.aux_router.append(self.ops.aux_router_loss(aux, target))
        return out.reshape(B, L, D)

    def block(self, layer, x, modality, positions, parts):
        """One transformer block (attention + FFN) with its residuals."""
        p = f"layers.{layer.index}"
        moe = layer.ffn.kind == "moe"
        if self.cfg.norm.placement == "pre":
            a = x + self._attention(layer, self._norm(f"{p}.attn_norm", x, modality), modality, positions)
            h = self._norm(f"{p}.ffn_norm", a, modality)
            if moe:
                return self._moe(layer, h, modality, parts, residual=a)
            return a + self._dense_ffn(layer, h, modality)
        a = x + self._norm(f"{p}.attn_norm", self._attention(layer, x, modality, positions), modality)
        f = self._moe(layer, a, modality, parts) if moe else self._dense_ffn(layer, a, modality)
        return a + self._norm(f"{p}.ffn_norm", f, modality)

    def layer(self, layer, x, modality, positions, parts):
        """A layer: the block, or the block inside a mixture-of-depths region."""
        if not layer.mod:
            return self.block(layer, x, modality, positions, parts)
        p = f"layers.{layer.index}.mod"
        aux = None
        if self.cfg.aux_routers.enabled:
            aux = self.ops.aux_router(x.detach(), self.w[f"{p}.aux.w1"], self.w[f"{p}.aux.w2"])
        idx, gate = self.ops.depth_route(x, self.w[f"{p}.router"], self.cfg.mod.capacity,
                                    aux if self.routing == "aux" else None)
        body = lambda xs, ms, ps: self.block(layer, xs, ms, ps, parts)  # noqa: E731
        y = self.ops.depth_region(x, modality, idx, gate if self.cfg.mod.gated else None, body)
        if aux is not None:
            parts.aux_router.append(self.ops.aux_router_loss(aux, self.ops.depth_mask(idx, x.shape[1])))
        return y

    # -- whole model ---------------------------------------------------------

    def forward(self, ids, modality):
        """Runs the model on ``ids``/``modality`` (``[B, L]`` int64)."""
        cfg = self.cfg
        B, L = ids.shape
        positions = torch.arange(L, dtype=torch.int64).unsqueeze(0).expand(B, L)
        parts = LossParts()
        h = self.ops.embed(ids, self.w["embed.weight"])
        for layer in cfg.layers:
            h = self.layer(layer, h, modality, positions, parts)
        if cfg.norm.final:
            h = self._norm("final_norm", h, modality)
        head = self.w["embed.weight"].t() if cfg.tie_embeddings else self.w["lm_head.weight"]
        logits = self.ops.linear(h, head)

        pad = torch.full((B, 1), -1, dtype=torch.int64)
        targets = torch.cat([ids[:, 1:], pad], 1)
        target_modality = torch.cat([modality[:, 1:], pad], 1)
        ce, ce_total, counts = self.ops.cross_entropy(logits, targets, target_modality, cfg.num_modalities)
        lb = _mean(parts.load_balancing, ce_total)
        z = _mean(parts.router_z, ce_total)
        aux = _mean(parts.aux_router, ce_total)
        if self.ops is ops:
            total = ce_total + cfg.loss.load_balancing * lb + cfg.loss.router_z * z + cfg.loss.aux_router * aux
        else:
            # As the compiled program: rounded weights, rounded steps, terms
            # of weight 0 left out.
            total = ce_total
            for w, term in ((cfg.loss.load_balancing, lb), (cfg.loss.router_z, z),
                            (cfg.loss.aux_router, aux)):
                if w != 0:
                    total = total + term * torch.tensor(w, dtype=term.dtype)
        return Output(logits, ce, counts, ce_total, lb, z, aux, total)


def run(cfg, weights, ids, modality, routing="batch", grads=False):
    """Forward (and optionally backward) pass.

    Returns ``(output, gradients)`` where ``gradients`` maps every weight
    name to d(total)/d(weight) (zeros for weights the objective does not
    reach), or None when ``grads`` is false.
    """
    params = {n: t.detach().clone().requires_grad_(grads) for n, t in weights.items()}
    out = Model(cfg, params, routing).forward(ids, modality)
    if not grads:
        return out, None
    names = list(params)
    g = torch.autograd.grad(out.total, [params[n] for n in names], allow_unused=True)
    gradients = {n: (gi if gi is not None else torch.zeros_like(params[n])) for n, gi in zip(names, g)}
    return out, gradients
