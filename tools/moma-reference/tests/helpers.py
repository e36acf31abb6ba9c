"""Shared helpers of the reference's tests: small configurations, weights
and token batches built in memory."""

import copy
import os

import torch

from moma_reference.config import parse_model
from moma_reference.weights import weight_specs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")
SCRIPT = os.path.join(ROOT, "tools", "moma-reference", "moma_reference.py")


def tiny_dict(**top):
    """A small two-modality (text [0, 16), image [16, 32)) model definition.

    Keyword arguments replace top-level keys; ``ffn=`` and ``attention=``
    replace the default layer's sections.
    """
    ffn = top.pop("ffn", {"kind": "dense", "hidden": 12, "activation": "swiglu"})
    attention = top.pop("attention", {"heads": 2, "kv_heads": 1, "rope_theta": 10000.0})
    value = {
        "name": "t",
        "vocab_size": 32,
        "modalities": [{"name": "text", "tokens": [0, 16]}, {"name": "image", "tokens": [16, 32]}],
        "d_model": 8,
        "num_layers": 2,
        "layer": {"attention": attention, "ffn": ffn},
    }
    value.update(top)
    return value


def moe_ffn(*groups, hidden=6, activation="swiglu", lora=None):
    ffn = {"kind": "moe", "hidden": hidden, "activation": activation, "groups": list(groups)}
    if lora:
        ffn["lora"] = lora
    return ffn


def ec_group(modality, experts, capacity=1.0, score="sigmoid", **extra):
    return dict({"modality": modality, "experts": experts, "routing": "expert_choice",
                 "capacity_factor": capacity, "score": score}, **extra)


def tc_group(modality, experts, top_k, score="softmax", **extra):
    return dict({"modality": modality, "experts": experts, "routing": "token_choice",
                 "top_k": top_k, "score": score}, **extra)


def config(**top):
    return parse_model(tiny_dict(**top), "test.json")


def random_weights(cfg, seed=0, std=0.5, dtype=torch.float64):
    """Random weights with every tensor random (norm weights around 1 and
    non-zero LoRA B), so that no gradient is trivially zero."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for spec in weight_specs(cfg):
        t = torch.randn(spec.shape, generator=g, dtype=torch.float64) * std
        if spec.init == "ones":
            t = 1.0 + 0.1 * t
        out[spec.name] = t.to(dtype)
    return out


def random_tokens(cfg, batch, length, seed=0, modalities=None):
    """Random ids/modality ``[B, L]`` tensors; ``modalities`` restricts the
    modality names used."""
    g = torch.Generator().manual_seed(seed)
    allowed = [m for m in cfg.modalities if modalities is None or m.name in modalities]
    choice = torch.randint(len(allowed), (batch, length), generator=g)
    ids = torch.zeros(batch, length, dtype=torch.int64)
    mod = torch.zeros(batch, length, dtype=torch.int64)
    for b in range(batch):
        for l in range(length):
            m = allowed[int(choice[b, l])]
            ids[b, l] = int(torch.randint(m.begin, m.end, (1,), generator=g))
            mod[b, l] = m.index
    return ids, mod


def deep(value):
    return copy.deepcopy(value)
