"""moma_reference: the PyTorch executable specification of moma models.

Modules:
    config      model-definition format (moma-model/1): parse, validate, expand
    tokens      token-file format (moma-tokens/1)
    safetensors strict safetensors reader/writer (struct + json)
    weights     weight names and shapes, seeded initialisation, loading
    ops         one function per op of dialects/moma/Semantics.md
    model       the forward pass, losses and gradients
    train_config training configs (moma-train-config/1), the schedule
    data        packed corpora, training rows, batch order
    train       the training step (AdamW, clipping, accumulation)
    cli         the command line (validate, init, run, train)
"""

from .config import ModelConfig, load_model, parse_model
from .errors import ConfigError, MomaError, SafetensorsError
from .model import Model, run
from .tokens import TokenBatch, load_tokens, parse_tokens
from .weights import init_weights, load_weights, weight_specs

__all__ = ["ModelConfig", "load_model", "parse_model", "ConfigError", "MomaError", "SafetensorsError",
           "Model", "run", "TokenBatch", "load_tokens", "parse_tokens", "init_weights", "load_weights",
           "weight_specs"]
