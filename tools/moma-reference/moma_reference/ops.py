"""The ``moma`` dialect's ops, one Python function each.

Every function implements the rule of the same name in
``dialects/moma/Semantics.md`` and nothing else, in plain PyTorch so that
autograd provides the gradients.  Routing selections (top-k, expert choice,
depth routing) are discrete: no gradient flows through *which* tokens are
chosen, only through the gates.

Conventions: token tensors are flattened to ``[N, D]`` with ``t = b * L + l``
where an op speaks of tokens; modality ids are int64 tensors, ``-1`` marks a
padding row; an untied (per-modality) weight has a leading dimension ``M``.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import depth_capacity, expert_choice_capacity


def _modality_masks(modality, count, dtype):
    """``[count]`` float masks ``modality == i`` with a trailing unit dim."""
    return [(modality == i).unsqueeze(-1).to(dtype) for i in range(count)]


def embed(ids, table):
    """``embed(ids, table)[b, l] = table[ids[b, l]]``."""
    return table[ids]


def per_token(weight, modality, dtype):
    """Selects ``weight[modality[t]]`` for every token (0 for padding).

    ``weight`` is ``[M, ...]``; the result has ``modality``'s shape followed
    by ``weight.shape[1:]``.
    """
    out = 0
    for i, mask in enumerate(_modality_masks(modality, weight.shape[0], dtype)):
        w = weight[i]
        mask = mask.reshape(mask.shape[:-1] + (1,) * w.dim())
        out = out + mask * w
    return out


def norm(x, weight, bias, kind, eps, modality=None):
    """``norm rms``: ``x / sqrt(mean(x^2) + eps) * w``; ``norm layer``:
    ``(x - mean) / sqrt(var + eps) * w + bias`` (biased variance, last dim).

    An untied weight (``[M, D]``) is selected per token by ``modality``.
    """
    if weight.dim() == 2:
        weight = per_token(weight, modality, x.dtype)
        if bias is not None:
            bias = per_token(bias, modality, x.dtype)
    if kind == "rms":
        y = x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight
    else:
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        y = (x - mean) / torch.sqrt(var + eps) * weight
    if bias is not None:
        y = y + bias
    return y


def linear(x, weight, modality=None, lora=None):
    """``y = x W (+ lora_scale * (x A) B)``.

    An untied weight ``[M, Din, Dout]``: token ``t`` uses ``W[modality[t]]``
    (padding rows give 0).  ``lora`` is ``(A, B, scale)`` or None.
    """
    if weight.dim() == 3:
        out = 0
        for i, mask in enumerate(_modality_masks(modality, weight.shape[0], x.dtype)):
            out = out + mask * (x @ weight[i])
        y = out
    else:
        y = x @ weight
    if lora is not None:
        a, b, scale = lora
        y = y + scale * ((x @ a) @ b)
    return y


def ffn(x, w_in, w_out, activation, lora_in=None, lora_out=None):
    """``ffn swiglu``: ``silu(x w_in[:, :F]) * (x w_in[:, F:])`` then
    ``@ w_out``; ``ffn gelu``: ``gelu(x w_in) @ w_out`` (exact erf GELU).

    ``lora_in``/``lora_out`` are ``(A, B, scale)`` added to each projection.
    """
    h = linear(x, w_in, lora=lora_in)
    if activation == "swiglu":
        hidden = w_out.shape[0]
        h = F.silu(h[..., :hidden]) * h[..., hidden:]
    else:
        h = F.gelu(h)
    return linear(h, w_out, lora=lora_out)


def untied_ffn(x, modality, w_in, w_out, activation):
    """A dense FFN whose weights are ``[M, ...]``: token ``t`` uses slice
    ``modality[t]`` (padding rows give 0)."""
    out = 0
    for i, mask in enumerate(_modality_masks(modality, w_in.shape[0], x.dtype)):
        out = out + mask * ffn(x, w_in[i], w_out[i], activation)
    return out


def rope(x, positions, theta):
    """Rotate-half RoPE on ``x [B, L, heads, d]`` at ``positions [B, L]``:
    ``freq_i = theta^(-2i/d)``, angle ``p * freq_i``, ``(x_i, x_{i+d/2}) ->
    (x_i cos - x_{i+d/2} sin, x_{i+d/2} cos + x_i sin)``."""
    d = x.shape[-1]
    half = d // 2
    i = torch.arange(half, dtype=torch.float64)
    freq = theta ** (-2.0 * i / d)
    angle = positions.to(torch.float64).unsqueeze(-1) * freq  # [B, L, d/2]
    cos = torch.cos(angle).to(x.dtype).unsqueeze(2)
    sin = torch.sin(angle).to(x.dtype).unsqueeze(2)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(x, positions, wq, wk, wv, wo, heads, kv_heads, head_dim, rope_theta, causal,
              modality=None):
    """Multi-head (grouped-query) self-attention over ``x [B, L, D]``.

    Query head ``h`` uses kv head ``h // (heads / kv_heads)``; key ``j`` is
    visible to query ``i`` iff ``p_j >= 0`` and (not causal or
    ``p_j <= p_i``).  A query without visible keys (padding) outputs 0 here
    (Semantics.md leaves it unspecified).  Untied projections select their
    slice by ``modality``.
    """
    B, L, _ = x.shape
    q = linear(x, wq, modality).reshape(B, L, heads, head_dim)
    k = linear(x, wk, modality).reshape(B, L, kv_heads, head_dim)
    v = linear(x, wv, modality).reshape(B, L, kv_heads, head_dim)
    if rope_theta > 0:
        q = rope(q, positions, rope_theta)
        k = rope(k, positions, rope_theta)
    group = heads // kv_heads
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(head_dim)
    p_query = positions.unsqueeze(2)  # [B, L, 1]
    p_key = positions.unsqueeze(1)    # [B, 1, L]
    visible = p_key >= 0
    if causal:
        visible = visible & (p_key <= p_query)
    visible = visible.expand(B, L, L)
    any_visible = visible.any(-1)  # [B, L]
    # Rows without a visible key would be all -inf; give them zeros instead
    # and mask their output, so no NaN reaches values or gradients.
    mask = visible | ~any_visible.unsqueeze(-1)
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    o = torch.einsum("bhij,bjhd->bihd", probs, v).reshape(B, L, heads * head_dim)
    o = o * any_visible.unsqueeze(-1).to(o.dtype)
    return linear(o, wo, modality)


# ----------------------------------------------------------------------------
# Routing


def router(x, modality, router_weights, groups, e_max):
    """``logits[t, j] = x[t] . W_g[:, j]`` for the group ``g`` of
    ``modality[t]`` and ``j < E_g``; 0 elsewhere.  ``x`` is ``[N, D]``."""
    logits = x.new_zeros(x.shape[0], e_max)
    for g, w in zip(groups, router_weights):
        member = group_members_mask(modality, g).unsqueeze(-1).to(x.dtype)
        part = member * (x @ w)
        logits = logits + F.pad(part, (0, e_max - g.experts))
    return logits


def group_members_mask(modality, group):
    """Boolean mask of the tokens routed by ``group``."""
    mask = torch.zeros_like(modality, dtype=torch.bool)
    for m in group.modality_ids:
        mask = mask | (modality == m)
    return mask


def group_scores(logits_g, score):
    """``softmax`` over the group's ``E_g`` logits, or element-wise sigmoid."""
    return torch.softmax(logits_g, dim=-1) if score == "softmax" else torch.sigmoid(logits_g)


def top_indices(values, k):
    """Indices of the ``k`` largest entries of a 1-D tensor, ties broken
    towards the lower index (stable descending sort)."""
    return torch.sort(values.detach(), descending=True, stable=True).indices[:k]


@dataclass
class RoutingPlan:
    """The expert-major plan of ``route``: slots ``[off[e], off[e+1])``
    belong to global expert ``e``, sorted by ascending token index.  (The
    reference keeps no empty trailing slots.)"""
    slot_token: torch.Tensor     # [S] int64
    slot_gate: torch.Tensor      # [S]
    expert_offsets: torch.Tensor  # [E_total + 1] int64

    def count(self, e):
        return int(self.expert_offsets[e + 1] - self.expert_offsets[e])


def route(logits, modality, groups, aux=None):
    """Builds the routing plan (``route`` in Semantics.md).

    * token_choice ``top_k = k``: a token takes its ``k`` highest-scoring
      experts (ties: lower expert index first);
    * expert_choice ``capacity = c``: each expert takes the
      ``floor(b_g * c / E_g)`` highest-scoring group tokens (ties: lower token
      index first); with ``aux`` (``[N, E_max]`` logits of the auxiliary
      routers), expert ``j`` takes token ``t`` iff ``aux[t, j] > 0``;
    * gate = score; ``renormalize`` divides a token's gates by their sum.
    """
    dtype = logits.dtype
    tokens, gates, counts = [], [], []
    for g in groups:
        members = torch.nonzero(group_members_mask(modality, g)).flatten()  # ascending
        b = members.numel()
        s = group_scores(logits[members, :g.experts], g.score)  # [b, E_g]
        chosen = torch.zeros(b, g.experts, dtype=torch.bool)
        if g.routing == "token_choice":
            # Stable descending sort along the experts: ties keep the lower
            # expert index first.
            best = torch.sort(s.detach(), dim=1, descending=True, stable=True).indices[:, :g.top_k]
            chosen.scatter_(1, best, True)
        elif aux is not None:
            chosen = aux[members, :g.experts].detach() > 0
        else:
            k = expert_choice_capacity(b, g.capacity_factor, g.experts)
            for j in range(g.experts):
                chosen[top_indices(s[:, j], k), j] = True
        gate = s * chosen.to(dtype)
        if g.renormalize:
            total = gate.sum(-1, keepdim=True)
            gate = gate / torch.where(total > 0, total, torch.ones_like(total))
        for j in range(g.experts):
            rows = torch.nonzero(chosen[:, j]).flatten()  # ascending token order
            tokens.append(members[rows])
            gates.append(gate[rows, j])
            counts.append(rows.numel())
    slot_token = torch.cat(tokens) if tokens else torch.zeros(0, dtype=torch.int64)
    slot_gate = torch.cat(gates) if gates else logits.new_zeros(0)
    offsets = torch.tensor([0] + counts, dtype=torch.int64).cumsum(0)
    return RoutingPlan(slot_token, slot_gate, offsets)


def dispatch(x, plan):
    """``dispatch(x, slot_token)[s] = x[slot_token[s]]``."""
    return x[plan.slot_token]


def experts(xs, plan, w_in, w_out, activation, lora=None):
    """Runs expert ``e``'s FFN on its slots ``[off[e], off[e+1])``.

    ``lora`` is ``(in_a, in_b, out_a, out_b, scale)`` with a leading expert
    dimension on each tensor, or None.
    """
    outputs = []
    offsets = plan.expert_offsets.tolist()
    for e in range(len(offsets) - 1):
        rows = xs[offsets[e]:offsets[e + 1]]
        if lora is None:
            outputs.append(ffn(rows, w_in[e], w_out[e], activation))
        else:
            in_a, in_b, out_a, out_b, scale = lora
            outputs.append(ffn(rows, w_in[e], w_out[e], activation,
                               (in_a[e], in_b[e], scale), (out_a[e], out_b[e], scale)))
    return torch.cat(outputs) if outputs else xs.new_zeros(0, w_out.shape[-1])


def combine(ys, plan, num_tokens, residual=None):
    """``residual[t] + sum over slots s with slot_token[s] = t (ascending s)
    of gate[s] * ys[s]``."""
    base = residual if residual is not None else ys.new_zeros(num_tokens, ys.shape[-1])
    return base.index_add(0, plan.slot_token, plan.slot_gate.unsqueeze(-1) * ys)


def aux_router(x, w1, w2):
    """The logits ``silu(x W1) W2`` (the probability is their sigmoid)."""
    return F.silu(x @ w1) @ w2


def route_mask(plan, modality, groups, e_max):
    """``[N, E_max]``: 1 where local expert ``j`` of the token's group picked
    it, 0 where it did not, -1 for ``j >= E_g`` and tokens without a group."""
    mask = torch.full((modality.shape[0], e_max), -1.0, dtype=torch.float64)
    for g in groups:
        members = group_members_mask(modality, g)
        mask[members, :g.experts] = 0.0
        for j in range(g.experts):
            e = g.first_expert + j
            start, stop = int(plan.expert_offsets[e]), int(plan.expert_offsets[e + 1])
            mask[plan.slot_token[start:stop], j] = 1.0
    return mask


# ----------------------------------------------------------------------------
# Mixture of depths


def depth_route(x, w, capacity, aux=None):
    """``(idx [B, K], gate [B, K])``: score ``r = sigmoid(x . w)``; each
    sequence keeps its ``K = floor(L * c)`` best positions (ties: lower
    position first) in ascending order.  With ``aux [B, L, 1]`` (logits):
    positions with ``aux > 0``, ``K = L``, trailing ``idx = -1``, gate 0."""
    B, L, _ = x.shape
    r = torch.sigmoid((x @ w).squeeze(-1))  # [B, L]
    if aux is None:
        K = depth_capacity(L, capacity)
        idx = torch.stack([torch.sort(top_indices(r[b], K)).values for b in range(B)]) \
            if K else torch.zeros(B, 0, dtype=torch.int64)
        return idx, torch.gather(r, 1, idx)
    idx = torch.full((B, L), -1, dtype=torch.int64)
    for b in range(B):
        kept = torch.nonzero(aux[b, :, 0].detach() > 0).flatten()
        idx[b, :kept.numel()] = kept
    gate = torch.gather(r, 1, idx.clamp(min=0)) * (idx >= 0).to(r.dtype)
    return idx, gate


def depth_region(x, modality, idx, gate, body):
    """Runs ``body(xs, ms, ps)`` on the selected positions and writes back.

    ``xs[b, k] = x[b, idx[b, k]]`` (0 for empty slots), ``ms``/``ps`` the
    modality and position (``-1`` for empty slots).  Result: ``y = x``, then
    each non-empty slot gets ``o`` (``gate`` None) or ``xs + gate * (o - xs)``.
    """
    B, L, D = x.shape
    valid = idx >= 0
    safe = idx.clamp(min=0)
    xs = torch.gather(x, 1, safe.unsqueeze(-1).expand(B, idx.shape[1], D)) * valid.unsqueeze(-1).to(x.dtype)
    ms = torch.where(valid, torch.gather(modality, 1, safe), torch.full_like(safe, -1))
    ps = idx
    o = body(xs, ms, ps)
    if gate is None:
        new = o
    else:
        # bf16/f16: the blend computes in float32, rounded once (Semantics.md).
        wide = torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype
        xw = xs.to(wide)
        new = (xw + gate.unsqueeze(-1).to(wide) * (o.to(wide) - xw)).to(x.dtype)
    rows = (torch.arange(B).unsqueeze(1) * L + safe)[valid]
    return x.reshape(B * L, D).index_copy(0, rows, new[valid]).reshape(B, L, D)


def depth_mask(idx, length):
    """``[B, L, 1]``: 1 at kept positions, 0 elsewhere."""
    mask = torch.zeros(idx.shape[0], length, 1, dtype=torch.float64)
    for b in range(idx.shape[0]):
        kept = idx[b][idx[b] >= 0]
        mask[b, kept, 0] = 1.0
    return mask


# ----------------------------------------------------------------------------
# Losses


def cross_entropy(logits, targets, target_modality, num_modalities):
    """``(per_modality [M], total, counts [M])``: mean of
    ``-log softmax(logits[t])[targets[t]]`` over the targets of each modality
    (0 if none) and over all targets; targets ``-1`` are ignored."""
    V = logits.shape[-1]
    flat = logits.reshape(-1, V)
    tgt = targets.reshape(-1)
    tmod = target_modality.reshape(-1)
    valid = tgt >= 0
    nll = -torch.log_softmax(flat, dim=-1).gather(1, tgt.clamp(min=0).unsqueeze(1)).squeeze(1)
    per, counts = [], []
    for m in range(num_modalities):
        sel = valid & (tmod == m)
        n = int(sel.sum())
        counts.append(n)
        per.append(nll[sel].sum() / n if n else nll.new_zeros(()))
    n = int(valid.sum())
    total = nll[valid].sum() / n if n else nll.new_zeros(())
    return torch.stack(per), total, counts


def load_balancing_loss(logits, modality, plan, groups):
    """Mean over token-choice groups with tokens of ``E_g * sum_j f_j P_j``,
    ``f_j = count_j / (b_g k_g)``, ``P_j`` = mean score (0 if no group)."""
    values = []
    for g in groups:
        if g.routing != "token_choice":
            continue
        members = torch.nonzero(group_members_mask(modality, g)).flatten()
        b = members.numel()
        if b == 0:
            continue
        s = group_scores(logits[members, :g.experts], g.score)
        f = torch.tensor([plan.count(g.first_expert + j) for j in range(g.experts)],
                         dtype=logits.dtype) / (b * g.top_k)
        values.append(g.experts * (f * s.mean(0)).sum())
    return torch.stack(values).mean() if values else logits.new_zeros(())


def router_z_loss(logits, modality, groups):
    """Mean over routed tokens of ``logsumexp(logits[t, :E_g])^2``."""
    values = []
    for g in groups:
        members = torch.nonzero(group_members_mask(modality, g)).flatten()
        if members.numel():
            values.append(torch.logsumexp(logits[members, :g.experts], dim=-1) ** 2)
    if not values:
        return logits.new_zeros(())
    return torch.cat(values).mean()


def aux_router_loss(logits, target):
    """Mean over entries with ``target >= 0`` of the binary cross entropy
    with logits, ``max(z, 0) - t z + log1p(exp(-|z|))`` (0 when no entry
    counts)."""
    target = target.to(logits.dtype)
    counted = target >= 0
    if not bool(counted.any()):
        return logits.new_zeros(())
    return F.binary_cross_entropy_with_logits(logits[counted], target[counted])
