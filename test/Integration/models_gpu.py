#!/usr/bin/env python3
"""Compiled GPU programs against compiled CPU programs, whole models.

Three steps, so that the compiling (momac: LLVM/MLIR, the CUDA toolkit's
libdevice) and the running (moma-run: a GPU and its driver) can happen on
different machines:

  prepare  momac writes seeded weights, a CPU program and one GPU program per
           --arch for every MODEL.json:TOKENS.json case (by default: every
           tiny example on its sample tokens, the routing edge cases of
           test/Numerics/models.test, and a random 2 x 128 batch), and the
           token batch's inputs as raw int32 files, into DIR, described by
           DIR/cases.json.
  check    moma-run runs the CPU program (on the CPU) and the GPU program of
           --arch (on the GPU, loading the kernel images --kernel-image
           chooses: by default the cubin momac carries when it runs on this
           GPU, else the PTX) of every prepared case on the same weights and
           inputs; every output must agree: float outputs within
           |gpu - cpu| <= rtol * max(|cpu|) (scale-relative, rtol 1e-4 by
           default: elementwise relative error is undefined for logits near
           0), integer outputs exactly. Prints one line per case and a
           summary; exits 1 on any mismatch or failed run.
           Train cases (`.train`: momac --program=train with
           examples/train-tiny.json, one step, number TRAIN_STEP) compare
           the outputs too (losses, every grad:NAME, grad_norm, lr, expert
           offsets) and, after the step, the AdamW moments (state buffers
           adam.m:NAME, adam.v:NAME) within rtol; the GPU's updated weights
           must be AdamW's update (examples/Training.md, "The update,
           exactly") of the initial weights with the GPU's own moments and
           lr, within --update-rtol of each weight's largest magnitude,
           before or after the step (the
           weights themselves are not compared with the CPU's: where a
           gradient is near 0 its sign, and so that element's first update
           of about lr, is rounding noise).
  losses   moma-run --tokens runs the CPU and the GPU program of every case
           whose tokens are an example file, and the per-modality losses it
           prints must agree (rtol relative to max(1, |loss|)).
  sanitize runs the GPU program of the first case under compute-sanitizer
           (memcheck); exits 1 if it reports errors.
  all      prepare into a temporary directory, then check and losses (one
           machine).

Only the Python standard library is needed (the GPU machine may have no
numpy).
"""

import argparse
import array
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, os.path.join(ROOT, "test", "Numerics"))
from token_cases import edge_token_files, write_tokens  # noqa: E402

# The cases of test/Numerics/models.test: every tiny model on its sample
# token file, and the routing edge cases on the models that route.
DEFAULT_CASES = [
    ("tiny-moma-t4i4.json", "sample-tokens.json"),
    ("tiny-moma-mod.json", "sample-tokens.json"),
    ("tiny-mot.json", "sample-tokens-speech.json"),
    ("tiny-uni-moe-top2.json", "sample-tokens-speech.json"),
    ("tiny-dense.json", "sample-tokens.json"),
    ("tiny-hybrid.json", "sample-tokens.json"),
]
DEFAULT_EDGE_MODELS = ["tiny-moma-t4i4.json", "tiny-uni-moe-top2.json",
                       "tiny-moma-mod.json"]
# Models also run on a longer random batch (2 x 128 tokens).
DEFAULT_LONG_MODELS = ["tiny-moma-t4i4.json", "tiny-moma-mod.json",
                       "tiny-hybrid.json", "tiny-uni-moe-top2.json"]
# Train cases: one optimizer step of the routed tiny examples (expert
# choice, MoD, token choice top-2) on their sample tokens, at a step after
# examples/train-tiny.json's 20 warm-up steps (cosine decay, clipping, bias
# corrections of a later step). Three, so that the prepared directory stays
# small enough to carry to the GPU machine.
DEFAULT_TRAIN_CASES = [
    ("tiny-moma-t4i4.json", "sample-tokens.json"),
    ("tiny-moma-mod.json", "sample-tokens.json"),
    ("tiny-uni-moe-top2.json", "sample-tokens-speech.json"),
]
TRAIN_CONFIG = "train-tiny.json"
TRAIN_STEP = 25
# Cases whose outputs are not a function of the inputs at float32 precision,
# so that two correct implementations with different rounding disagree.
# tiny-moma-t4i4 on one-token-repeated: 24 text tokens with the same id and
# a same-id prefix have hidden states that are equal up to rounding, so
# expert choice selects among near-ties; in the PyTorch reference itself,
# 1e-6 relative noise on the weights moves the cross-entropy by 1.3e-3 (the
# GPU's fused multiply-adds and libdevice give the same 1.3e-3).
ILL_CONDITIONED = {("tiny-moma-t4i4.json", "one-token-repeated.json")}


class Failure(Exception):
    pass


def run(cmd, log=None):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if log is not None:
        log.append("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise Failure("command failed (exit %d): %s\n%s%s" % (
            proc.returncode, " ".join(cmd), proc.stdout[-2000:],
            proc.stderr[-4000:]))
    return proc.stdout


def read_json(path):
    with open(path) as f:
        return json.load(f)


def token_inputs(model_file, tokens_file):
    """ids, modality, targets, target_modality as B x L int32 lists (as
    test/Numerics/model_vs_reference.py builds them)."""
    model = read_json(model_file)
    index = {m["name"]: i for i, m in enumerate(model["modalities"])}
    ids, modality = [], []
    for sequence in read_json(tokens_file)["sequences"]:
        row_ids, row_mod = [], []
        for segment in sequence:
            if segment["modality"] not in index:
                raise Failure("%s: modality %r is not one of %s's" % (
                    tokens_file, segment["modality"], model_file))
            row_ids += segment["tokens"]
            row_mod += [index[segment["modality"]]] * len(segment["tokens"])
        ids.append(row_ids)
        modality.append(row_mod)
    if len({len(r) for r in ids}) != 1:
        raise Failure("%s: sequences of different lengths" % tokens_file)
    shift = lambda rows: [r[1:] + [-1] for r in rows]  # noqa: E731
    return {"ids": ids, "modality": modality, "targets": shift(ids),
            "target_modality": shift(modality)}


def long_token_file(directory, seed):
    """Two random sequences of 128 tokens in text and image segments of 1 to
    24 tokens: several blocks per launch and longer routing loops."""
    rng = random.Random(seed + 1)
    sequences = []
    for _ in range(2):
        segments, left = [], 128
        while left:
            n = min(left, rng.randrange(1, 25))
            if rng.random() < 0.5:
                segments.append(("text", [rng.randrange(0, 64)
                                          for _ in range(n)]))
            else:
                segments.append(("image", [rng.randrange(64, 96)
                                           for _ in range(n)]))
            left -= n
        sequences.append(segments)
    path = os.path.join(directory, "random-long.json")
    write_tokens(path, sequences)
    return path


def prepare(args):
    out = os.path.abspath(args.dir)
    os.makedirs(out, exist_ok=True)
    tokens_dir = os.path.join(out, "tokens")
    os.makedirs(tokens_dir, exist_ok=True)
    cases = []
    chosen = args.cases or args.train_cases
    pairs = [(os.path.join(EXAMPLES, m), os.path.join(EXAMPLES, t))
             for m, t in DEFAULT_CASES] if not chosen else \
        [tuple(c.split(":")) for c in args.cases]
    edge_models = DEFAULT_EDGE_MODELS if not chosen else args.edge_cases
    long_models = DEFAULT_LONG_MODELS if not chosen else []
    # Train cases come after the forward ones.
    train_pairs = [(os.path.join(EXAMPLES, m), os.path.join(EXAMPLES, t))
                   for m, t in DEFAULT_TRAIN_CASES] if not chosen else \
        [tuple(c.split(":")) for c in args.train_cases]
    if edge_models:
        edge_files = edge_token_files(tokens_dir, args.seed)
        for model in edge_models:
            model = model if os.path.isabs(model) else \
                os.path.join(EXAMPLES, model)
            pairs += [(model, t) for t in edge_files]
    if long_models:
        long_file = long_token_file(tokens_dir, args.seed)
        pairs += [(os.path.join(EXAMPLES, m), long_file) for m in long_models]
    work = [(m, t, False) for m, t in pairs] + \
        [(m, t, True) for m, t in train_pairs]
    for model_file, tokens_file, train in work:
        if (os.path.basename(model_file),
                os.path.basename(tokens_file)) in ILL_CONDITIONED:
            print("skipped %s on %s: ill-conditioned at float32 (see "
                  "ILL_CONDITIONED)" % (os.path.basename(model_file),
                                        os.path.basename(tokens_file)))
            continue
        name = "%s.%s%s" % (os.path.basename(model_file)[:-5],
                            os.path.basename(tokens_file)[:-5],
                            ".train" if train else "")
        case_dir = os.path.join(out, name)
        os.makedirs(case_dir, exist_ok=True)
        inputs = token_inputs(model_file, tokens_file)
        B, L = len(inputs["ids"]), len(inputs["ids"][0])
        weights = os.path.join(case_dir, "w.safetensors")
        run([args.momac, model_file, "--init-weights=" + weights,
             "--seed=%d" % args.seed])
        programs = {}
        for target in ["cpu"] + args.arch:
            path = os.path.join(case_dir, target + ".momaprog")
            cmd = [args.momac, model_file, "--target=" + target,
                   "--batch=%d" % B, "--seq-len=%d" % L, "-o", path]
            if target in args.ptx_only:
                cmd.append("--cubin=never")
            if train:
                cmd += ["--program=train", "--train-config=" +
                        os.path.join(EXAMPLES, TRAIN_CONFIG)]
            run(cmd)
            programs[target] = os.path.relpath(path, out)
        input_files = {}
        for key, rows in inputs.items():
            path = os.path.join(case_dir, key + ".bin")
            values = array.array("i", [v for row in rows for v in row])
            if sys.byteorder != "little":
                values.byteswap()
            with open(path, "wb") as f:
                values.tofile(f)
            input_files[key] = os.path.relpath(path, out)
        case = {"name": name, "model": os.path.basename(model_file),
                "tokens": os.path.basename(tokens_file),
                "weights": os.path.relpath(weights, out),
                "programs": programs, "inputs": input_files}
        if train:
            # The step number: an i64 scalar input.
            path = os.path.join(case_dir, "step.bin")
            with open(path, "wb") as f:
                f.write(struct.pack("<q", TRAIN_STEP))
            input_files["step"] = os.path.relpath(path, out)
            config = os.path.join(case_dir, TRAIN_CONFIG)
            shutil.copyfile(os.path.join(EXAMPLES, TRAIN_CONFIG), config)
            case["train"] = {"config": os.path.relpath(config, out),
                             "step": TRAIN_STEP}
        cases.append(case)
        print("prepared %s (%s)" % (name, ", ".join(sorted(programs))))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"format": "moma-gpu-cases/1", "seed": args.seed,
                   "cases": cases}, f, indent=1)
    return 0


def manifest(moma_pack, program):
    return json.loads(run([moma_pack, "--manifest", program]))


def read_buffer(path, dtype):
    codes = {"f32": "f", "f64": "d", "i32": "i", "i64": "q"}
    if dtype not in codes:
        raise Failure("cannot compare %s buffers" % dtype)
    values = array.array(codes[dtype])
    with open(path, "rb") as f:
        values.frombytes(f.read())
    if sys.byteorder != "little":
        values.byteswap()
    return values


def run_program(args, root, case, target, work, tag, log, images=None):
    """Runs one program; returns {output name: (dtype, path)}, and adds the
    formats of the kernel images a GPU run loaded to `images`."""
    program = os.path.join(root, case["programs"][target])
    # A train step also leaves its weights and AdamW state to compare.
    roles = ("output", "weight", "state") if "train" in case else ("output",)
    outputs = {b["name"]: b["type"]
               for b in manifest(args.moma_pack, program)["buffers"]
               if b["role"] in roles}
    cmd = [args.moma_run, program, "--device",
           "cpu" if target == "cpu" else "cuda",
           "--weights", os.path.join(root, case["weights"])]
    if target != "cpu":
        cmd += ["--kernel-image", args.kernel_image]
    for name, path in sorted(case["inputs"].items()):
        cmd += ["--input", "%s=%s" % (name, os.path.join(root, path))]
    dumps = {}
    for name, dtype in sorted(outputs.items()):
        path = os.path.join(work, "%s.%s.out" % (tag, name))
        dumps[name] = (dtype, path)
        cmd += ["--dump", "%s=%s" % (name, path)]
    output = run(cmd, log)
    # "moma-run: device cuda:0 (NAME, sm_90, driver 13.0; cubin)": the
    # formats of the kernel images loaded.
    for line in output.splitlines():
        if (images is not None and line.startswith("moma-run: device ")
                and "; " in line):
            images.add(line.rsplit("; ", 1)[1].rstrip(")"))
    return dumps


def compare(cpu, gpu, rtol):
    """Returns (worst error, message or None)."""
    worst = 0.0
    for name, (dtype, cpu_path) in sorted(cpu.items()):
        if name not in gpu:
            return worst, "output %s missing from the GPU program" % name
        ref = read_buffer(cpu_path, dtype)
        got = read_buffer(gpu[name][1], gpu[name][0])
        if len(ref) != len(got):
            return worst, "%s: %d elements on the CPU, %d on the GPU" % (
                name, len(ref), len(got))
        if dtype in ("i32", "i64"):
            bad = [i for i in range(len(ref)) if ref[i] != got[i]]
            if bad:
                i = bad[0]
                return worst, "%s: %d of %d integers differ (first at %d: " \
                    "cpu %d, gpu %d)" % (name, len(bad), len(ref), i, ref[i],
                                         got[i])
            continue
        if not all(math.isfinite(v) for v in got):
            i = next(i for i, v in enumerate(got) if not math.isfinite(v))
            return worst, "%s: non-finite value on the GPU at %d (%r; cpu " \
                "%r)" % (name, i, got[i], ref[i])
        scale = max([abs(v) for v in ref] + [1e-30])
        diffs = [abs(a - b) for a, b in zip(got, ref)]
        error = max(diffs) / scale if diffs else 0.0
        worst = max(worst, error)
        if error > rtol:
            i = max(range(len(diffs)), key=diffs.__getitem__)
            return worst, "%s: relative error %.3e > %g (worst at element " \
                "%d: cpu %.9g, gpu %.9g; scale %.3g)" % (
                    name, error, rtol, i, ref[i], got[i], scale)
    return worst, None


def read_safetensors(path):
    """{name: (dtype, values)} of a safetensors file's F32/F64 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        code = {"F32": "f", "F64": "d"}.get(info["dtype"])
        if code is None:
            raise Failure("%s: tensor %s is %s, not F32 or F64" % (
                path, name, info["dtype"]))
        begin, end = info["data_offsets"]
        values = array.array(code)
        values.frombytes(data[8 + size + begin:8 + size + end])
        if sys.byteorder != "little":
            values.byteswap()
        tensors[name] = values
    return tensors


def decays_weight(name):
    """Whether AdamW decays weight NAME by default: not the weights of
    normalisation layers (`...norm.weight`, `...norm.bias`) nor biases
    (examples/Training.md)."""
    return not (name.endswith("norm.weight") or name.endswith("norm.bias")
                or name.endswith(".bias"))


def check_update(root, case, dumps, rtol):
    """The GPU's updated weights against AdamW's update of the initial
    weights with the GPU's own new moments and lr (examples/Training.md,
    "The update, exactly"): |w - expected| <= rtol * max(|w0|, |w|) per
    weight.
    Returns (worst error, message or None)."""
    config = read_json(os.path.join(root, case["train"]["config"]))
    opt = config["optimizer"]
    beta1, beta2 = opt.get("beta1", 0.9), opt.get("beta2", 0.999)
    eps, decay = opt.get("eps", 1e-8), opt.get("weight_decay", 0.0)
    decay_all = opt.get("decay_norms_and_biases", False)
    s = case["train"]["step"]
    lr = read_buffer(dumps["lr"][1], dumps["lr"][0])[0]
    step_size = lr / (1 - beta1 ** s)
    bias2_sqrt = math.sqrt(1 - beta2 ** s)
    initial = read_safetensors(os.path.join(root, case["weights"]))
    worst = 0.0
    for name, w0 in sorted(initial.items()):
        if name not in dumps:
            return worst, "weight %s was not dumped" % name
        w = read_buffer(*reversed(dumps[name]))
        m = read_buffer(*reversed(dumps["adam.m:" + name]))
        v = read_buffer(*reversed(dumps["adam.v:" + name]))
        keep = 1 - lr * (decay if decay_all or decays_weight(name) else 0.0)
        # (A weight initialised to zeros, such as a LoRA B, is as large as
        # its update.)
        scale = max([abs(x) for x in w0] + [abs(x) for x in w] + [1e-30])
        error, at = 0.0, 0
        for i in range(len(w0)):
            expected = w0[i] * keep - step_size * m[i] / (
                math.sqrt(v[i]) / bias2_sqrt + eps)
            e = abs(w[i] - expected) / scale
            if e > error:
                error, at = e, i
        worst = max(worst, error)
        if error > rtol:
            return worst, "updated weight %s: relative error %.3e > %g " \
                "against AdamW's update with the GPU's moments (element %d: " \
                "%.9g, initial %.9g, m %.9g, v %.9g)" % (
                    name, error, rtol, at, w[at], w0[at], m[at], v[at])
    return worst, None


def load_cases(args):
    root = os.path.abspath(args.dir)
    path = os.path.join(root, "cases.json")
    if not os.path.exists(path):
        raise Failure("%s does not exist: run the prepare step first" % path)
    cases = read_json(path)["cases"]
    for case in cases:
        if args.arch not in case["programs"]:
            raise Failure("%s has no %s program (prepared: %s); prepare "
                          "with --arch %s" % (case["name"], args.arch,
                                              ", ".join(case["programs"]),
                                              args.arch))
    return root, cases


def check(args):
    root, cases = load_cases(args)
    failures = 0
    images = set()
    work = tempfile.mkdtemp(prefix="moma-gpu-check.")
    try:
        for case in cases:
            log = []
            try:
                cpu = run_program(args, root, case, "cpu", work, "cpu", log)
                gpu = run_program(args, root, case, args.arch, work,
                                  args.arch, log, images)
                # Outputs and AdamW state against the CPU; a train step's
                # weights against AdamW's update on the GPU's own values.
                weights = set(read_safetensors(os.path.join(
                    root, case["weights"]))) if "train" in case else set()
                worst, problem = compare(
                    {n: d for n, d in cpu.items() if n not in weights},
                    gpu, args.rtol)
                if not problem and "train" in case:
                    update, problem = check_update(root, case, gpu,
                                                   args.update_rtol)
                    worst = max(worst, update)
            except Failure as e:
                worst, problem = 0.0, str(e)
            if problem:
                failures += 1
                print("MISMATCH %s on %s: %s" % (case["name"], args.arch,
                                                 problem))
                if args.verbose:
                    print("".join(log))
            else:
                print("ok %s on %s (worst relative error %.1e)" % (
                    case["name"], args.arch, worst))
            sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("summary: %d of %d case(s) match the CPU on %s (rtol %g; kernel "
          "images loaded: %s, --kernel-image %s)" % (
              len(cases) - failures, len(cases), args.arch, args.rtol,
              "+".join(sorted(images)) or "none", args.kernel_image))
    return 1 if failures else 0


def parse_losses(output):
    """{name: value} from the loss report of `moma-run --tokens`: the lines
    after "length N", each "NAME VALUE [targets N]"."""
    losses = {}
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.startswith("length ")), None)
    if start is None:
        raise Failure("no loss report in the output of moma-run --tokens")
    for line in lines[start + 1:]:
        fields = line.split()
        if len(fields) >= 2:
            losses[fields[0]] = float(fields[1])
    return losses


def losses(args):
    """The per-modality losses that `moma-run --tokens` prints, from the GPU
    program against the CPU program, for every case whose token file is an
    example file (the token-file path of moma-run, end to end)."""
    root, cases = load_cases(args)
    failures = checked = 0
    for case in cases:
        tokens = os.path.join(EXAMPLES, case["tokens"])
        if not os.path.exists(tokens):
            continue
        checked += 1
        report = {}
        log = []
        try:
            for target in ["cpu", args.arch]:
                cmd = [args.moma_run,
                       os.path.join(root, case["programs"][target]),
                       "--weights", os.path.join(root, case["weights"]),
                       "--tokens", tokens]
                if target != "cpu":
                    cmd += ["--kernel-image", args.kernel_image]
                report[target] = parse_losses(run(cmd, log))
            cpu, gpu = report["cpu"], report[args.arch]
            if sorted(cpu) != sorted(gpu):
                raise Failure("different losses reported: cpu %s, gpu %s" % (
                    sorted(cpu), sorted(gpu)))
            bad = [name for name in cpu
                   if abs(cpu[name] - gpu[name]) >
                   args.rtol * max(1.0, abs(cpu[name]))]
            if bad:
                raise Failure(", ".join("%s: cpu %.9g, gpu %.9g" % (
                    n, cpu[n], gpu[n]) for n in bad))
            print("ok losses %s on %s: %s" % (
                case["name"], args.arch, ", ".join(
                    "%s %.6g" % (n, gpu[n]) for n in sorted(gpu))))
        except Failure as e:
            failures += 1
            print("MISMATCH losses %s on %s: %s" % (case["name"], args.arch,
                                                    e))
            if args.verbose:
                print("".join(log))
    print("summary: moma-run --tokens: %d of %d case(s) report the CPU's "
          "losses on %s" % (checked - failures, checked, args.arch))
    return 1 if failures or not checked else 0


def sanitize(args):
    root, cases = load_cases(args)
    case = cases[0]
    program = os.path.join(root, case["programs"][args.arch])
    cmd = [args.sanitizer, "--tool", "memcheck", "--error-exitcode", "3",
           args.moma_run, program, "--device", "cuda", "--weights",
           os.path.join(root, case["weights"])]
    for name, path in sorted(case["inputs"].items()):
        cmd += ["--input", "%s=%s" % (name, os.path.join(root, path))]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    summary = [line for line in proc.stdout.splitlines()
               if "ERROR SUMMARY" in line]
    print("compute-sanitizer memcheck %s on %s: exit %d, %s" % (
        case["name"], args.arch, proc.returncode,
        summary[-1].strip() if summary else "no summary"))
    if proc.returncode != 0:
        print(proc.stdout[-6000:])
        return 1
    return 0


def detect_arch():
    """The program arch for GPU 0: sm_90 on compute capability 9.0, sm_80 on
    any other 8.x or newer GPU (the driver JIT-compiles the PTX)."""
    import ctypes
    lib = ctypes.CDLL(os.environ.get("MOMA_LIBCUDA") or "libcuda.so.1")
    device = ctypes.c_int()
    major, minor = ctypes.c_int(), ctypes.c_int()
    if (lib.cuInit(0) or lib.cuDeviceGet(ctypes.byref(device), 0) or
            lib.cuDeviceGetAttribute(ctypes.byref(major), 75, device) or
            lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)):
        raise Failure("cannot query GPU 0 through the CUDA driver")
    if major.value < 8:
        raise Failure("GPU 0 has compute capability %d.%d; moma targets "
                      "sm_80 and newer" % (major.value, minor.value))
    return "sm_90" if (major.value, minor.value) == (9, 0) else "sm_80"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("step", choices=["prepare", "check", "losses",
                                         "sanitize", "all"])
    parser.add_argument("--dir", help="the prepared cases (prepare, check, "
                        "sanitize)")
    parser.add_argument("--momac", default="momac")
    parser.add_argument("--moma-run", default="moma-run")
    parser.add_argument("--moma-pack", default="moma-pack")
    parser.add_argument("--sanitizer", default="compute-sanitizer")
    parser.add_argument("--arch", action="append", default=[],
                        help="GPU architecture(s): sm_80, sm_90, sm_90a, or "
                        "auto (GPU 0's) (prepare: any number; check: one)")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--update-rtol", type=float, default=1e-5,
                        help="check: a train step's updated weights against "
                        "AdamW's update with the GPU's moments, relative to "
                        "each weight's largest magnitude")
    parser.add_argument("--kernel-image", default="auto",
                        choices=["auto", "ptx", "cubin"],
                        help="check: which kernel images moma-run loads")
    parser.add_argument("--ptx-only", action="append", default=[],
                        metavar="ARCH",
                        help="prepare: compile ARCH with --cubin=never")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--edge-cases", action="append", default=[],
                        metavar="MODEL.json")
    parser.add_argument("--train-case", dest="train_cases", action="append",
                        default=[], metavar="MODEL.json:TOKENS.json",
                        help="prepare: a train case (one step of momac "
                        "--program=train); with cases or train cases given, "
                        "only those are prepared")
    parser.add_argument("--verbose", action="store_true",
                        help="print the moma-run logs of mismatching cases")
    parser.add_argument("cases", nargs="*", metavar="MODEL.json:TOKENS.json",
                        help="cases to prepare (default: every tiny example "
                        "and the routing edge cases)")
    args = parser.parse_args()
    try:
        args.arch = [detect_arch() if a == "auto" else a for a in args.arch]
        if args.step in ("check", "losses", "sanitize", "all"):
            if len(args.arch) != 1:
                parser.error("%s needs exactly one --arch" % args.step)
        if args.step == "all":
            with tempfile.TemporaryDirectory(prefix="moma-gpu-models.") as d:
                args.dir = d
                prepare(args)
                args.arch = args.arch[0]
                status = check(args)
                return losses(args) or status
        if not args.dir:
            parser.error("%s needs --dir" % args.step)
        if args.step == "prepare":
            if not args.arch:
                parser.error("prepare needs at least one --arch")
            return prepare(args)
        args.arch = args.arch[0]
        return {"check": check, "losses": losses,
                "sanitize": sanitize}[args.step](args)
    except Failure as e:
        print("error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
