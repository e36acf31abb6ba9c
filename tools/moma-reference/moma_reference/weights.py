"""Parameter naming, shapes, seeded initialisation and loading.

The names and shapes listed by :func:`weight_specs` are the weight naming
convention of the project (``examples/README.md``, "Weights").  Every matrix
is stored in ``x @ W`` layout (input dimension first).  A parameter untied
per modality (Mixture-of-Transformers) has an extra leading dimension ``M``
(the number of modalities, in the order of ``modalities``).
"""

from dataclasses import dataclass
from typing import Tuple

import torch

from . import safetensors
from .errors import SafetensorsError

#: Model ``dtype`` -> safetensors dtype of the stored weights.
STORAGE_DTYPES = {"f32": "F32", "bf16": "BF16", "f16": "F16", "f64": "F64"}
#: ``--dtype`` of the reference -> torch compute dtype.
#: bf16/f16 store weights and activations in that dtype and compute every
#: op in float32 (the mixed-precision rule of Semantics.md).
COMPUTE_DTYPES = {"f64": torch.float64, "f32": torch.float32,
                  "bf16": torch.bfloat16, "f16": torch.float16}


@dataclass(frozen=True)
class WeightSpec:
    """One parameter: its tensor name, shape and initialisation rule.

    ``init`` is ``"normal"`` (normal(0, init_std)), ``"ones"`` or ``"zeros"``.
    """
    name: str
    shape: Tuple[int, ...]
    init: str


def weight_specs(cfg):
    """Every parameter of the model, in canonical order.

    The order is also the order in which ``init`` draws random numbers and
    writes tensors.
    """
    D, V, M = cfg.d_model, cfg.vocab_size, cfg.num_modalities
    specs = [WeightSpec("embed.weight", (V, D), "normal")]

    def untied(flag, shape):
        return (M,) + shape if flag else shape

    def norm(prefix):
        specs.append(WeightSpec(f"{prefix}.weight", untied(cfg.untie.norms, (D,)), "ones"))
        if cfg.norm.bias:
            specs.append(WeightSpec(f"{prefix}.bias", untied(cfg.untie.norms, (D,)), "zeros"))

    def aux(prefix, outputs):
        h = cfg.aux_routers.hidden
        specs.append(WeightSpec(f"{prefix}.w1", (D, h), "normal"))
        specs.append(WeightSpec(f"{prefix}.w2", (h, outputs), "normal"))

    for layer in cfg.layers:
        p = f"layers.{layer.index}"
        if layer.mod:
            specs.append(WeightSpec(f"{p}.mod.router", (D, 1), "normal"))
            if cfg.aux_routers.enabled:
                aux(f"{p}.mod.aux", 1)
        a = layer.attention
        ua = cfg.untie.attention
        norm(f"{p}.attn_norm")
        specs.append(WeightSpec(f"{p}.attn.wq", untied(ua, (D, a.heads * a.head_dim)), "normal"))
        specs.append(WeightSpec(f"{p}.attn.wk", untied(ua, (D, a.kv_heads * a.head_dim)), "normal"))
        specs.append(WeightSpec(f"{p}.attn.wv", untied(ua, (D, a.kv_heads * a.head_dim)), "normal"))
        specs.append(WeightSpec(f"{p}.attn.wo", untied(ua, (a.heads * a.head_dim, D)), "normal"))
        norm(f"{p}.ffn_norm")
        f = layer.ffn
        if f.kind == "dense":
            specs.append(WeightSpec(f"{p}.ffn.w_in", untied(cfg.untie.ffn, (D, f.in_columns)), "normal"))
            specs.append(WeightSpec(f"{p}.ffn.w_out", untied(cfg.untie.ffn, (f.hidden, D)), "normal"))
            continue
        E, F, r = f.num_experts, f.hidden, f.lora.rank
        for g in f.groups:
            specs.append(WeightSpec(f"{p}.moe.router.{g.name}", (D, g.experts), "normal"))
        specs.append(WeightSpec(f"{p}.moe.w_in", (E, D, f.in_columns), "normal"))
        specs.append(WeightSpec(f"{p}.moe.w_out", (E, F, D), "normal"))
        if r:
            specs.append(WeightSpec(f"{p}.moe.w_in_lora_a", (E, D, r), "normal"))
            specs.append(WeightSpec(f"{p}.moe.w_in_lora_b", (E, r, f.in_columns), "zeros"))
            specs.append(WeightSpec(f"{p}.moe.w_out_lora_a", (E, F, r), "normal"))
            specs.append(WeightSpec(f"{p}.moe.w_out_lora_b", (E, r, D), "zeros"))
        if cfg.aux_routers.enabled:
            for g in f.groups:
                if g.routing == "expert_choice":
                    aux(f"{p}.moe.aux.{g.name}", g.experts)
    if cfg.norm.final:
        norm("final_norm")
    if not cfg.tie_embeddings:
        specs.append(WeightSpec("lm_head.weight", (D, V), "normal"))
    return specs


def parameter_count(cfg):
    """The number of scalar parameters of the model."""
    total = 0
    for spec in weight_specs(cfg):
        n = 1
        for d in spec.shape:
            n *= d
        total += n
    return total


def init_tensor(spec, std, generator):
    """Draws one parameter (float32) by the seeded initialisation rule."""
    if spec.init == "ones":
        return torch.ones(spec.shape, dtype=torch.float32)
    if spec.init == "zeros":
        return torch.zeros(spec.shape, dtype=torch.float32)
    return torch.randn(spec.shape, generator=generator, dtype=torch.float32) * std


def init_weights(cfg, seed, std=None):
    """All parameters, freshly initialised (name -> float32 tensor)."""
    generator = torch.Generator().manual_seed(seed)
    std = cfg.init_std if std is None else std
    return {s.name: init_tensor(s, std, generator) for s in weight_specs(cfg)}


def write_init(cfg, seed, filename, storage=None):
    """Streams seeded initial weights into a safetensors file.

    ``storage`` is the safetensors dtype (default: the model's ``dtype``).
    Tensors are drawn one at a time, so big models need little memory.
    """
    storage = storage or STORAGE_DTYPES[cfg.dtype]
    specs = weight_specs(cfg)
    generator = torch.Generator().manual_seed(seed)
    metadata = {"format": "moma-weights", "model": cfg.name, "seed": str(seed),
                "init": f"normal(0, {cfg.init_std!r}) matrices, ones norm weights, "
                        f"zeros norm biases and LoRA B; torch.Generator seed {seed}, canonical order"}
    with safetensors.Writer(filename, [(s.name, storage, s.shape) for s in specs], metadata) as w:
        for s in specs:
            w.write(s.name, init_tensor(s, cfg.init_std, generator))


def check_weights(cfg, tensors, dtypes, filename, dtype):
    """Checks loaded tensors against the model and converts them.

    Every parameter must be present with exactly the documented shape and a
    float dtype; extra tensors are rejected too (they usually mean the file
    belongs to another model).  Returns name -> tensor of torch ``dtype``
    in canonical order.
    """
    result = {}
    specs = weight_specs(cfg)
    for s in specs:
        if s.name not in tensors:
            raise SafetensorsError(f"{filename}: missing tensor {s.name!r} {list(s.shape)} "
                                   f"required by model {cfg.name!r}")
        t = tensors[s.name]
        if dtypes[s.name] not in safetensors.FLOAT_DTYPES:
            raise SafetensorsError(f"{filename}: tensor {s.name!r} has dtype {dtypes[s.name]}; "
                                   f"weights must be F64, F32, F16 or BF16")
        if tuple(t.shape) != s.shape:
            raise SafetensorsError(f"{filename}: tensor {s.name!r} has shape {list(t.shape)}, "
                                   f"model {cfg.name!r} needs {list(s.shape)}")
        result[s.name] = t.to(dtype)
    known = {s.name for s in specs}
    extra = [n for n in tensors if n not in known]
    if extra:
        raise SafetensorsError(f"{filename}: unexpected tensor {extra[0]!r} (not a parameter of model "
                               f"{cfg.name!r}; {len(extra)} unexpected in all)")
    return result


def load_weights(cfg, filename, dtype=torch.float64):
    """Reads a weights file and checks it against the model."""
    f = safetensors.load(filename)
    return check_weights(cfg, f.tensors, f.dtypes, filename, dtype)
