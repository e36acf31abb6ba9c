"""The model-definition format (``moma-model/1``): parsing and validation.

A model file is a JSON object; ``examples/README.md`` is the normative
description of every field, default and rule.  This module turns a file into
a :class:`ModelConfig` whose ``layers`` list holds the *effective*
configuration of every layer (after the ``layer`` defaults and the
``layer_overrides`` have been applied), so that the rest of the reference
never has to know about the compact form.

Validation errors are :class:`~moma_reference.errors.ConfigError` and name
the JSON path of the offending value.  Values inside a layer are reported at
their effective path (``layers[3].ffn.groups[1].experts``) together with the
place in the file they came from (``layer.ffn.groups[1].experts`` or
``layer_overrides[0].ffn.groups[1].experts``).
"""

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Optional, Tuple

from .errors import ConfigError
from .jsonio import Context, Obj, REQUIRED, format_path, load_json_file, quote

FORMAT = "moma-model/1"

DTYPES = ("f32", "bf16", "f16", "f64")
NORM_KINDS = ("rms", "layer")
NORM_PLACEMENTS = ("pre", "post")
FFN_KINDS = ("dense", "moe")
ACTIVATIONS = ("swiglu", "gelu")
ROUTINGS = ("expert_choice", "token_choice")
SCORES = ("sigmoid", "softmax")
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

TOP_KEYS = ("format", "name", "source", "description", "vocab_size", "modalities",
            "d_model", "num_layers", "norm", "untie", "mod", "aux_routers", "loss",
            "dtype", "tie_embeddings", "init_std", "layer", "layer_overrides")
LAYER_KEYS = ("attention", "ffn")


@dataclass(frozen=True)
class Modality:
    """One modality: its id (position in the list), name and token range."""
    index: int
    name: str
    begin: int
    end: int

    def contains(self, token):
        return self.begin <= token < self.end


@dataclass(frozen=True)
class Attention:
    """Self-attention of one layer (global over the mixed sequence)."""
    heads: int
    kv_heads: int
    head_dim: int
    rope_theta: float
    causal: bool


@dataclass(frozen=True)
class ExpertGroup:
    """One expert group of a modality-aware MoE layer.

    ``modality_ids`` are the ids of the modalities whose tokens this group
    routes; ``first_expert`` is the global number of its expert 0 (experts
    are numbered group by group in group-list order).
    """
    name: str
    modalities: Tuple[str, ...]
    modality_ids: Tuple[int, ...]
    experts: int
    routing: str
    capacity_factor: Optional[float]
    top_k: Optional[int]
    score: str
    renormalize: bool
    first_expert: int


@dataclass(frozen=True)
class Lora:
    """LoRA adapters on every expert projection (rank 0: none)."""
    rank: int = 0
    alpha: float = 0.0

    @property
    def scale(self):
        """The factor of ``(x A) B``: alpha / rank."""
        return self.alpha / self.rank if self.rank else 0.0


@dataclass(frozen=True)
class Ffn:
    """The feed-forward part of one layer: dense, or a modality-aware MoE."""
    kind: str
    hidden: int
    activation: str
    groups: Tuple[ExpertGroup, ...] = ()
    lora: Lora = Lora()

    @property
    def num_experts(self):
        return sum(g.experts for g in self.groups)

    @property
    def max_group_experts(self):
        return max((g.experts for g in self.groups), default=0)

    @property
    def in_columns(self):
        """Columns of ``w_in``: 2F for swiglu (gate then up), F for gelu."""
        return 2 * self.hidden if self.activation == "swiglu" else self.hidden


@dataclass(frozen=True)
class Layer:
    """The effective configuration of layer ``index``."""
    index: int
    attention: Attention
    ffn: Ffn
    mod: bool


@dataclass(frozen=True)
class Norm:
    kind: str = "rms"
    eps: float = 1e-5
    placement: str = "pre"
    bias: bool = False
    final: bool = True


@dataclass(frozen=True)
class Untie:
    """Mixture-of-Transformers untying of per-layer parameters by modality."""
    attention: bool = False
    ffn: bool = False
    norms: bool = False


@dataclass(frozen=True)
class MixtureOfDepths:
    layers: Tuple[int, ...] = ()
    capacity: float = 0.25
    gated: bool = True


@dataclass(frozen=True)
class AuxRouters:
    enabled: bool = False
    hidden: int = 0


@dataclass(frozen=True)
class LossWeights:
    load_balancing: float = 0.0
    router_z: float = 0.0
    aux_router: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    """A validated model definition with every layer expanded."""
    name: str
    source: str
    description: str
    vocab_size: int
    modalities: Tuple[Modality, ...]
    d_model: int
    num_layers: int
    norm: Norm
    untie: Untie
    mod: MixtureOfDepths
    aux_routers: AuxRouters
    loss: LossWeights
    dtype: str
    tie_embeddings: bool
    init_std: float
    layers: Tuple[Layer, ...] = field(default_factory=tuple)

    @property
    def num_modalities(self):
        return len(self.modalities)

    def modality(self, name):
        """The modality called ``name`` (KeyError if absent)."""
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(name)

    def modality_of_token(self, token):
        """The modality whose range holds ``token``, or None."""
        for m in self.modalities:
            if m.contains(token):
                return m
        return None

    def to_json(self):
        """The expanded, canonical form: every default filled in and, instead
        of ``layer``/``layer_overrides``, a ``layers`` list with the effective
        configuration of every layer (plus its ``index`` and whether it is a
        mixture-of-depths layer).  Printed by ``validate --expand`` so that
        another implementation can compare its reading of a file; it is an
        output form, not an input."""
        def group_json(g):
            out = {"name": g.name, "modalities": list(g.modalities), "experts": g.experts,
                   "routing": g.routing}
            if g.routing == "expert_choice":
                out["capacity_factor"] = g.capacity_factor
            else:
                out["top_k"] = g.top_k
            out["score"] = g.score
            out["renormalize"] = g.renormalize
            return out

        def layer_json(layer):
            a, f = layer.attention, layer.ffn
            ffn = {"kind": f.kind, "hidden": f.hidden, "activation": f.activation}
            if f.kind == "moe":
                ffn["groups"] = [group_json(g) for g in f.groups]
                ffn["lora"] = {"rank": f.lora.rank, "alpha": f.lora.alpha}
            return {"index": layer.index, "mod": layer.mod,
                    "attention": {"heads": a.heads, "kv_heads": a.kv_heads, "head_dim": a.head_dim,
                                  "rope_theta": a.rope_theta, "causal": a.causal},
                    "ffn": ffn}

        return {
            "format": FORMAT,
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "vocab_size": self.vocab_size,
            "modalities": [{"name": m.name, "tokens": [m.begin, m.end]} for m in self.modalities],
            "d_model": self.d_model,
            "num_layers": self.num_layers,
            "norm": {"kind": self.norm.kind, "eps": self.norm.eps, "placement": self.norm.placement,
                     "bias": self.norm.bias, "final": self.norm.final},
            "untie": {"attention": self.untie.attention, "ffn": self.untie.ffn, "norms": self.untie.norms},
            "mod": {"layers": list(self.mod.layers), "capacity": self.mod.capacity, "gated": self.mod.gated},
            "aux_routers": {"enabled": self.aux_routers.enabled, "hidden": self.aux_routers.hidden},
            "loss": {"load_balancing": self.loss.load_balancing, "router_z": self.loss.router_z,
                     "aux_router": self.loss.aux_router},
            "dtype": self.dtype,
            "tie_embeddings": self.tie_embeddings,
            "init_std": self.init_std,
            "layers": [layer_json(layer) for layer in self.layers],
        }


# ----------------------------------------------------------------------------
# Loading


def load_model(filename):
    """Reads and validates a model file; raises ConfigError on any problem."""
    value = load_json_file(filename)
    stem = os.path.basename(filename)
    if stem.endswith(".json"):
        stem = stem[:-5]
    return parse_model(value, filename, default_name=stem)


def parse_model(value, filename="", default_name="model"):
    """Validates a model definition given as parsed JSON."""
    ctx = Context(filename)
    top = Obj(value, (), ctx, TOP_KEYS)

    fmt = top.string("format", FORMAT)
    if fmt != FORMAT:
        raise top.error("format", f"unsupported format {quote(fmt)} (this reader knows {quote(FORMAT)})")
    name = top.string("name", default_name)
    source = top.string("source", "")
    description = top.string("description", "")
    vocab_size = top.integer("vocab_size", minimum=1)
    modalities = _parse_modalities(top, vocab_size)
    d_model = top.integer("d_model", minimum=1)
    num_layers = top.integer("num_layers", minimum=1)
    norm = _parse_norm(top.obj("norm", ("kind", "eps", "placement", "bias", "final"), {}))
    u = top.obj("untie", ("attention", "ffn", "norms"), {})
    untie = Untie(u.boolean("attention", False), u.boolean("ffn", False), u.boolean("norms", False))
    mod = _parse_mod(top, num_layers)
    a = top.obj("aux_routers", ("enabled", "hidden"), {})
    aux = AuxRouters(a.boolean("enabled", False), a.integer("hidden", max(1, d_model // 2), minimum=1))
    lw = top.obj("loss", ("load_balancing", "router_z", "aux_router"), {})
    loss = LossWeights(lw.number("load_balancing", 0.0, minimum=0.0),
                       lw.number("router_z", 0.0, minimum=0.0),
                       lw.number("aux_router", 1.0, minimum=0.0))
    dtype = top.string("dtype", "f32", choices=DTYPES)
    tie_embeddings = top.boolean("tie_embeddings", False)
    init_std = top.number("init_std", 0.02, above=0.0)

    partial = ModelConfig(name=name, source=source, description=description, vocab_size=vocab_size,
                          modalities=modalities, d_model=d_model, num_layers=num_layers, norm=norm,
                          untie=untie, mod=mod, aux_routers=aux, loss=loss, dtype=dtype,
                          tie_embeddings=tie_embeddings, init_std=init_std)
    layers = tuple(_expand_layers(top, partial, filename))

    for layer in layers:
        if untie.ffn and layer.ffn.kind != "dense":
            value, origins = _layer_sources(top, layer.index)
            rctx = Context(filename, origins=origins, base=("layers", layer.index), document=value)
            raise rctx.error(("layers", layer.index, "ffn", "kind"),
                             "must be \"dense\" when untie.ffn is true "
                             "(an MoE layer is modality-aware through its expert groups)")
    return ModelConfig(**{**partial.__dict__, "layers": layers})


def _parse_modalities(top, vocab_size):
    items = top.array("modalities", min_length=1)
    result = []
    for i, item in enumerate(items):
        m = Obj(item, top.at("modalities") + (i,), top.ctx, ("name", "tokens"))
        name = m.string("name", pattern=NAME_PATTERN)
        for prev in result:
            if prev.name == name:
                raise m.error("name", f"duplicate modality name {quote(name)} (also modalities[{prev.index}])")
        rng = m.array("tokens")
        if (len(rng) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in rng)):
            raise m.error("tokens", "must be [begin, end]: two integers, the half-open range of token ids")
        begin, end = rng
        if not 0 <= begin < end <= vocab_size:
            raise m.error("tokens", f"range [{begin}, {end}) must be non-empty and inside the vocabulary [0, {vocab_size})")
        for prev in result:
            if begin < prev.end and prev.begin < end:
                raise m.error("tokens", f"range [{begin}, {end}) overlaps modalities[{prev.index}] "
                                        f"({quote(prev.name)}: [{prev.begin}, {prev.end}))")
        result.append(Modality(i, name, begin, end))
    return tuple(result)


def _parse_norm(n):
    kind = n.string("kind", "rms", choices=NORM_KINDS)
    eps = n.number("eps", 1e-5, above=0.0)
    placement = n.string("placement", "pre", choices=NORM_PLACEMENTS)
    bias = n.boolean("bias", kind == "layer")
    if bias and kind != "layer":
        raise n.error("bias", "only layer norm has a bias (kind is \"rms\")")
    final = n.boolean("final", True)
    return Norm(kind, eps, placement, bias, final)


def parse_layer_selector(value, path, ctx, num_layers, allow_empty):
    """A set of layer indices, as a sorted tuple.

    Either a list of distinct indices, or an object ``{"start": a, "stop": b,
    "step": s}`` meaning ``range(a, b, s)`` (defaults 0, num_layers, 1).
    """
    if isinstance(value, list):
        seen = set()
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ctx.error(path + (i,), "must be an integer layer index")
            if not 0 <= v < num_layers:
                raise ctx.error(path + (i,), f"layer index {v} out of range [0, {num_layers})")
            if v in seen:
                raise ctx.error(path + (i,), f"layer {v} listed twice")
            seen.add(v)
        layers = tuple(sorted(seen))
    elif isinstance(value, dict):
        s = Obj(value, path, ctx, ("start", "stop", "step"))
        start = s.integer("start", 0, minimum=0, maximum=num_layers)
        stop = s.integer("stop", num_layers, minimum=start, maximum=num_layers)
        step = s.integer("step", 1, minimum=1)
        layers = tuple(range(start, stop, step))
    else:
        raise ctx.error(path, "must be a list of layer indices or an object {\"start\", \"stop\", \"step\"}")
    if not layers and not allow_empty:
        raise ctx.error(path, "selects no layer")
    return layers


def _parse_mod(top, num_layers):
    if not top.has("mod"):
        return MixtureOfDepths()
    m = top.obj("mod", ("layers", "capacity", "gated"))
    layers = parse_layer_selector(m.raw("layers"), m.at("layers"), top.ctx, num_layers, allow_empty=True)
    capacity = m.number("capacity", 0.25, above=0.0, maximum=1.0)
    gated = m.boolean("gated", True)
    return MixtureOfDepths(layers, capacity, gated)


# ----------------------------------------------------------------------------
# Layer expansion: `layer` defaults + `layer_overrides` (JSON merge patches)


def merge_patch(target, patch, origins, rel, src):
    """Applies ``patch`` to ``target`` as an RFC 7386 JSON merge patch.

    Objects merge key by key, ``null`` deletes a key, any other value
    (including a list) replaces.  ``origins`` records, for every effective
    sub-path ``rel`` that the patch wrote, the file path ``src`` it came from.
    Returns the new target.
    """
    if not isinstance(patch, dict):
        _forget(origins, rel)
        origins[rel] = src
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
        _forget(origins, rel)
        origins[rel] = src
    else:
        target = dict(target)
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
            _forget(origins, rel + (key,))
        else:
            target[key] = merge_patch(target.get(key), value, origins, rel + (key,), src + (key,))
    return target


def _forget(origins, rel):
    for key in [k for k in origins if k[:len(rel)] == rel]:
        del origins[key]


def _layer_sources(top, index):
    """The effective raw layer object of ``index`` and its origins map."""
    raw = top.raw("layer", {})
    origins = {(): ("layer",)}
    value = merge_patch({}, raw, origins, (), ("layer",)) if isinstance(raw, dict) else raw
    for k, override in enumerate(top.raw("layer_overrides", [])):
        if index in _override_layers(top, k):
            patch = {key: v for key, v in override.items() if key != "layers"}
            value = merge_patch(value, patch, origins, (), ("layer_overrides", k))
    return value, origins


def _override_layers(top, k):
    override = top.value["layer_overrides"][k]
    return parse_layer_selector(override["layers"], ("layer_overrides", k, "layers"), top.ctx,
                                top.value["num_layers"], allow_empty=False)


def _expand_layers(top, model, filename):
    raw_default = top.raw("layer", {})
    if not isinstance(raw_default, dict):
        raise top.error("layer", "must be an object")
    overrides = top.array("layer_overrides", [])
    for k, override in enumerate(overrides):
        path = ("layer_overrides", k)
        if not isinstance(override, dict):
            raise top.ctx.error(path, "must be an object")
        if "layers" not in override:
            raise top.ctx.error(path + ("layers",), "required (which layers this override applies to)")
        for key in sorted(override):
            if key != "layers" and key not in LAYER_KEYS:
                raise top.ctx.error(path + (key,), f"unknown key (expected one of: layers, {', '.join(LAYER_KEYS)})")
        _override_layers(top, k)
    for i in range(model.num_layers):
        value, origins = _layer_sources(top, i)
        ctx = Context(filename, origins=origins, base=("layers", i), document=value)
        yield parse_layer(value, ("layers", i), ctx, model, i)


def parse_layer(value, path, ctx, model, index):
    """Validates one effective layer object."""
    lay = Obj(value, path, ctx, LAYER_KEYS)
    attention = _parse_attention(lay.obj("attention", ("heads", "kv_heads", "head_dim", "rope_theta", "causal")),
                                 model.d_model)
    ffn = _parse_ffn(lay, model)
    return Layer(index, attention, ffn, index in model.mod.layers)


def _parse_attention(a, d_model):
    heads = a.integer("heads", minimum=1)
    kv_heads = a.integer("kv_heads", heads, minimum=1)
    if heads % kv_heads:
        raise a.error("kv_heads", f"must divide heads ({heads})")
    if a.has("head_dim"):
        head_dim = a.integer("head_dim", minimum=1)
    elif d_model % heads:
        raise a.error("head_dim", f"required because d_model ({d_model}) is not divisible by heads ({heads})")
    else:
        head_dim = d_model // heads
    rope_theta = a.number("rope_theta", 10000.0, minimum=0.0)
    if rope_theta > 0 and head_dim % 2:
        raise a.error("head_dim", f"must be even when rope_theta > 0 (is {head_dim})")
    causal = a.boolean("causal", True)
    return Attention(heads, kv_heads, head_dim, rope_theta, causal)


def _parse_ffn(lay, model):
    base = lay.obj("ffn", ("kind", "hidden", "activation", "groups", "lora"))
    kind = base.string("kind", choices=FFN_KINDS)
    if kind == "dense":
        f = Obj(base.value, base.path, base.ctx, ("kind", "hidden", "activation"))
    else:
        f = base
    hidden = f.integer("hidden", minimum=1)
    activation = f.string("activation", "swiglu", choices=ACTIVATIONS)
    if kind == "dense":
        return Ffn(kind, hidden, activation)
    groups = _parse_groups(f, model)
    lo = f.obj("lora", ("rank", "alpha"), {})
    rank = lo.integer("rank", 0, minimum=0)
    alpha = lo.number("alpha", float(rank), above=0.0) if rank else lo.number("alpha", 0.0, minimum=0.0)
    return Ffn(kind, hidden, activation, groups, Lora(rank, alpha))


def _parse_groups(f, model):
    items = f.array("groups", min_length=1)
    groups = []
    owner = {}  # modality name -> index of the group that routes it
    first = 0
    keys = ("name", "modality", "modalities", "experts", "routing", "capacity_factor", "top_k",
            "score", "renormalize")
    for i, item in enumerate(items):
        g = Obj(item, f.at("groups") + (i,), f.ctx, keys)
        if g.has("modality") == g.has("modalities"):
            raise g.ctx.error(g.path, "needs exactly one of \"modality\" (a name) or \"modalities\" (a list of names)")
        if g.has("modality"):
            names = [g.string("modality")]
            name_paths = [g.at("modality")]
        else:
            raw = g.array("modalities", min_length=1)
            names, name_paths = [], []
            for j, n in enumerate(raw):
                if not isinstance(n, str):
                    raise g.ctx.error(g.at("modalities") + (j,), "must be a modality name")
                names.append(n)
                name_paths.append(g.at("modalities") + (j,))
        ids = []
        for n, p in zip(names, name_paths):
            try:
                ids.append(model.modality(n).index)
            except KeyError:
                known = ", ".join(m.name for m in model.modalities)
                raise g.ctx.error(p, f"unknown modality {quote(n)} (modalities: {known})") from None
            if n in owner:
                raise g.ctx.error(p, f"modality {quote(n)} already has an expert group (groups[{owner[n]}])")
            owner[n] = i
        if g.has("name"):
            name = g.string("name", pattern=NAME_PATTERN)
        elif len(names) == 1:
            name = names[0]
        else:
            raise g.error("name", "required for a group of several modalities")
        for prev in groups:
            if prev.name == name:
                raise g.error("name", f"duplicate group name {quote(name)}")
        experts = g.integer("experts", minimum=1)
        routing = g.string("routing", choices=ROUTINGS)
        if routing == "expert_choice":
            if g.has("top_k"):
                raise g.error("top_k", "only for token_choice groups (expert_choice uses capacity_factor)")
            capacity = g.number("capacity_factor", 1.0, above=0.0, maximum=float(experts))
            top_k = None
        else:
            if g.has("capacity_factor"):
                raise g.error("capacity_factor", "only for expert_choice groups (token_choice uses top_k)")
            top_k = g.integer("top_k", 1, minimum=1, maximum=experts)
            capacity = None
        score = g.string("score", "sigmoid" if routing == "expert_choice" else "softmax", choices=SCORES)
        renormalize = g.boolean("renormalize", False)
        groups.append(ExpertGroup(name, tuple(names), tuple(ids), experts, routing, capacity, top_k,
                                  score, renormalize, first))
        first += experts
    return tuple(groups)


def expert_choice_capacity(num_tokens, capacity_factor, experts):
    """Tokens each expert of an expert-choice group picks:
    ``floor(b_g * c / E_g)``, evaluated in IEEE double left to right."""
    return int(math.floor(num_tokens * capacity_factor / experts))


def depth_capacity(length, capacity):
    """Positions a mixture-of-depths layer keeps per sequence: ``floor(L * c)``."""
    return int(math.floor(length * capacity))


__all__ = ["FORMAT", "ModelConfig", "Layer", "Attention", "Ffn", "ExpertGroup", "Lora", "Norm",
           "Untie", "MixtureOfDepths", "AuxRouters", "LossWeights", "Modality", "load_model",
           "parse_model", "merge_patch", "expert_choice_capacity", "depth_capacity",
           "format_path", "ConfigError", "REQUIRED"]
