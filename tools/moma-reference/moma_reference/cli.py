"""Command line of the reference: ``validate``, ``init``, ``run`` and ``train``.

::

    moma_reference.py validate MODEL.json [--expand] [--list-weights]
    moma_reference.py init MODEL.json --seed N -o W.safetensors [--storage f32|bf16|f16|f64]
    moma_reference.py run MODEL.json --weights W.safetensors --tokens T.json
                      [--dtype f64|f32|bf16|f16] [--routing batch|aux]
                      [--grads G.safetensors] [--logits X.safetensors] [--json]
    moma_reference.py train MODEL.json --weights W.safetensors --train-config C.json
                      --data D --batch B --seq-len L --steps N [--seed S]
                      [--shuffle seeded|none] [--dtype f32|f64] [--routing batch|aux]
                      [--json] [--out-weights W2.safetensors]

Input errors print one line ``moma-reference: error: <file>: <where>: <rule>``
to stderr and exit with status 1 (usage errors: status 2), without a
traceback and without leaving an output file behind.
"""

import argparse
import json
import math
import os
import sys

from . import safetensors
from .config import load_model
from .data import RowStream, load_rows
from .errors import MomaError
from .model import run as run_model
from .tokens import load_tokens
from .train import Trainer
from .train_config import load_train_config
from .weights import COMPUTE_DTYPES, STORAGE_DTYPES, load_weights, parameter_count, weight_specs, write_init

PROG = "moma-reference"


def _format_value(value):
    """A loss value as printed: Python's shortest round-trip ``repr``."""
    return repr(float(value))


def cmd_validate(args):
    cfg = load_model(args.model)
    if args.expand:
        print(json.dumps(cfg.to_json(), indent=2))
        return
    if args.list_weights:
        for spec in weight_specs(cfg):
            print(f"{spec.name} {list(spec.shape)} {spec.init}")
        return
    moe = sum(1 for layer in cfg.layers if layer.ffn.kind == "moe")
    print(f"ok {cfg.name}: {cfg.num_layers} layers ({moe} moe, {len(cfg.mod.layers)} mod), "
          f"{len(weight_specs(cfg))} tensors, {parameter_count(cfg)} parameters")


def cmd_init(args):
    cfg = load_model(args.model)
    storage = STORAGE_DTYPES[args.storage] if args.storage else None
    write_init(cfg, args.seed, args.output, storage)


def loss_lines(cfg, out, batch_shape, dtype):
    """The ``run`` report, one ``key value`` pair per line (see README)."""
    lines = [f"model {cfg.name}", f"dtype {dtype}", f"batch {batch_shape[0]}", f"length {batch_shape[1]}"]
    for m, value, count in zip(cfg.modalities, out.ce.tolist(), out.ce_counts):
        lines.append(f"ce.{m.name} {_format_value(value)} targets {count}")
    lines.append(f"ce {_format_value(out.ce_total)} targets {sum(out.ce_counts)}")
    lines.append(f"load_balancing {_format_value(out.load_balancing)}")
    lines.append(f"router_z {_format_value(out.router_z)}")
    lines.append(f"aux_router {_format_value(out.aux_router)}")
    lines.append(f"total {_format_value(out.total)}")
    return lines


def loss_json(cfg, out, batch_shape, dtype):
    """The ``run --json`` report."""
    return {
        "model": cfg.name, "dtype": dtype, "batch": batch_shape[0], "length": batch_shape[1],
        "ce": {m.name: {"loss": float(v), "targets": c}
               for m, v, c in zip(cfg.modalities, out.ce.tolist(), out.ce_counts)},
        "ce_total": {"loss": float(out.ce_total), "targets": sum(out.ce_counts)},
        "load_balancing": float(out.load_balancing),
        "router_z": float(out.router_z),
        "aux_router": float(out.aux_router),
        "total": float(out.total),
    }


def cmd_run(args):
    cfg = load_model(args.model)
    if args.routing == "aux" and not cfg.aux_routers.enabled:
        raise MomaError(f"{args.model}: --routing aux needs aux_routers.enabled in the model")
    dtype = COMPUTE_DTYPES[args.dtype]
    weights = load_weights(cfg, args.weights, dtype)
    batch = load_tokens(args.tokens, cfg)
    ids, modality = batch.tensors()
    out, grads = run_model(cfg, weights, ids, modality, routing=args.routing, grads=bool(args.grads))

    outputs = []
    if args.grads:
        outputs.append((args.grads, grads, {"format": "moma-grads", "model": cfg.name, "of": "total"}))
    if args.logits:
        outputs.append((args.logits, {"logits": out.logits.detach()}, {"format": "moma-logits", "model": cfg.name}))
    written = []
    try:
        for filename, tensors, metadata in outputs:
            safetensors.save(filename, tensors, metadata)
            written.append(filename)
    except BaseException:
        for filename in written:
            os.unlink(filename)
        raise
    if args.json:
        print(json.dumps(loss_json(cfg, out, batch.shape, args.dtype), indent=2))
    else:
        print("\n".join(loss_lines(cfg, out, batch.shape, args.dtype)))


def step_line(record, steps):
    """One ``train`` progress line (without ``--json``)."""
    parts = [f"step {record.step}/{steps}", f"total {_format_value(record.total)}",
             f"ce {_format_value(record.ce)}"]
    parts += [f"ce.{name} {_format_value(v)}" for name, v in record.ce_per_modality.items()]
    parts += [f"lr {_format_value(record.lr)}", f"grad_norm {_format_value(record.grad_norm)}"]
    return " ".join(parts)


def cmd_train(args):
    cfg = load_model(args.model)
    if args.routing == "aux" and not cfg.aux_routers.enabled:
        raise MomaError(f"{args.model}: --routing aux needs aux_routers.enabled in the model")
    config = load_train_config(args.train_config)
    dtype_name = args.dtype or ("f64" if cfg.dtype == "f64" else "f32")
    weights = load_weights(cfg, args.weights, COMPUTE_DTYPES[dtype_name])
    rows = load_rows(args.data, cfg, args.seq_len)
    stream = RowStream(len(rows), args.seed, args.shuffle == "seeded")
    trainer = Trainer(cfg, weights, config, args.routing)
    per_step = config.accumulation_steps * args.batch
    for _ in range(args.steps):
        ids, modality = rows.select(stream.take(per_step))
        record = trainer.step(ids, modality)
        if args.json:
            print(json.dumps(record.to_json()), flush=True)
        else:
            print(step_line(record, args.steps), flush=True)
        if not math.isfinite(record.total):
            raise MomaError(f"step {record.step}: the loss is not finite ({record.total!r}); "
                            f"nothing written")
    if args.out_weights:
        safetensors.save(args.out_weights, trainer.weights(),
                         {"format": "moma-weights", "model": cfg.name,
                          "trained": f"{args.steps} steps from {args.weights}"})


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _seed(text):
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 2 ** 64:
        raise argparse.ArgumentTypeError(f"must be in [0, 2^64), not {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description="PyTorch reference of moma models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check a model definition")
    v.add_argument("model", metavar="MODEL.json")
    v.add_argument("--expand", action="store_true", help="print the expanded configuration as JSON")
    v.add_argument("--list-weights", action="store_true", help="print every tensor: name, shape, init rule")
    v.set_defaults(func=cmd_validate)

    i = sub.add_parser("init", help="write seeded initial weights")
    i.add_argument("model", metavar="MODEL.json")
    i.add_argument("--seed", type=int, required=True)
    i.add_argument("-o", "--output", required=True, metavar="W.safetensors")
    i.add_argument("--storage", choices=sorted(STORAGE_DTYPES), help="stored dtype (default: the model's dtype)")
    i.set_defaults(func=cmd_init)

    r = sub.add_parser("run", help="compute logits, losses and gradients")
    r.add_argument("model", metavar="MODEL.json")
    r.add_argument("--weights", required=True, metavar="W.safetensors")
    r.add_argument("--tokens", required=True, metavar="TOKENS.json")
    r.add_argument("--dtype", choices=sorted(COMPUTE_DTYPES), default="f64",
                   help="f64/f32: compute in that type; bf16/f16: store in it, compute every op "
                        "in f32 (the mixed-precision rule of Semantics.md)")
    r.add_argument("--routing", choices=("batch", "aux"), default="batch",
                   help="batch: training semantics; aux: causal inference with the auxiliary routers")
    r.add_argument("--grads", metavar="G.safetensors", help="write d(total)/d(weight) for every weight")
    r.add_argument("--logits", metavar="X.safetensors", help="write the logits [B, L, V]")
    r.add_argument("--json", action="store_true", help="print the losses as JSON")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("train", help="train with AdamW (examples/Training.md)")
    t.add_argument("model", metavar="MODEL.json")
    t.add_argument("--weights", required=True, metavar="W.safetensors", help="the initial weights")
    t.add_argument("--train-config", required=True, metavar="C.json", help="a moma-train-config/1 file")
    t.add_argument("--data", required=True, metavar="D",
                   help="a moma-tokens/1 file of rows of --seq-len tokens, or a moma-corpus/1 corpus")
    t.add_argument("--batch", required=True, type=_positive, metavar="B", help="rows per micro-batch")
    t.add_argument("--seq-len", required=True, type=_positive, metavar="L", help="tokens per row")
    t.add_argument("--steps", required=True, type=_positive, metavar="N", help="optimizer steps")
    t.add_argument("--seed", type=_seed, default=0, help="seed of the batch order (default 0)")
    t.add_argument("--shuffle", choices=("seeded", "none"), default="seeded",
                   help="seeded: a SplitMix64 permutation per epoch; none: rows in file order")
    t.add_argument("--dtype", choices=("f32", "f64"),
                   help="weights, gradients and moments (default: f64 for an f64 model, else f32)")
    t.add_argument("--routing", choices=("batch", "aux"), default="batch",
                   help="batch: training semantics; aux: route by the auxiliary routers")
    t.add_argument("--json", action="store_true", help="print each step as one JSON object per line")
    t.add_argument("--out-weights", metavar="W2.safetensors",
                   help="write the final weights (in the training dtype)")
    t.set_defaults(func=cmd_train)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): not an input error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except MomaError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"{PROG}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0
