#!/usr/bin/env python3
"""Checks the buffers of a compiled train program (`moma-pack --manifest P`,
on stdin) against examples/Training.md ("Train programs") and prints one
summary line per aspect, for FileCheck:

    target sm_90 cubin
    inputs ids modality targets target_modality i32 [4, 16], step i64 []
    weights 18 f32, state 36 (adam.m and adam.v of every weight)
    outputs 18 gradients, grad_norm f32 [], lr f32 [], losses ce ..., 0 expert_offsets
    updates: 18 weight(s) updated with their moments in one launch
    ok

usage: train_program_check.py --rows A*B --seq-len L --dtype f32|f64

Every problem is printed as a `problem: ...` line and the exit status is 1.
What it checks:
  - the four token inputs are i32 [A*B, L] and `step` is i64 [];
  - the weights all have the model's float type;
  - the state buffers are exactly `adam.m:NAME` and `adam.v:NAME` for every
    weight NAME, each of the weight's type and shape;
  - the outputs are the losses (`total`, `ce`, `ce_per_modality`, ...),
    `grad:NAME` for every weight (its type and shape), `grad_norm` and `lr`
    (rank 0, the model's float type) and `expert_offsets:ROUTE` (i32, rank
    1); nothing else, in particular no output that would be an updated copy
    of a weight or a state buffer (they are updated in place);
  - the inputs, weights, state and outputs lie in the arena, aligned, and do
    not overlap;
  - every weight and every state buffer is an argument of some launch (a
    GPU program updates them on the device), and for every weight one
    launch takes the weight and both its moments (AdamW's element-wise
    update);
  - a GPU program's kernel module carries a cubin beside its PTX.
"""
import argparse
import json
import sys

TOKEN_INPUTS = ["ids", "modality", "targets", "target_modality"]
LOSSES = ["ce_per_modality", "ce", "load_balancing", "router_z", "aux_router",
          "total"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, required=True,
                        help="A*B: micro-batches times batch")
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--dtype", required=True, choices=["f32", "f64"])
    args = parser.parse_args()
    m = json.load(sys.stdin)
    problems = []
    buffers = m["buffers"]
    by_role = {}
    for b in buffers:
        by_role.setdefault(b["role"], []).append(b)
    unknown = set(by_role) - {"input", "weight", "state", "output", "scratch"}
    if unknown:
        problems.append("unexpected roles %s" % sorted(unknown))

    # The kernel images.
    if m["target"] != "cpu":
        formats = [[mod["format"]] + [a["format"]
                                      for a in mod.get("alternatives", [])]
                   for mod in m["modules"]]
        if len(formats) != 1 or formats[0] != ["ptx", "cubin"]:
            problems.append("expected one module of PTX with a cubin, got %s"
                            % formats)
        print("target %s %s" % (m["target"], "+".join(sum(formats, []))))

    # Inputs.
    inputs = {b["name"]: b for b in by_role.get("input", [])}
    want_inputs = {n: ("i32", [args.rows, args.seq_len]) for n in TOKEN_INPUTS}
    want_inputs["step"] = ("i64", [])
    got_inputs = {n: (b["type"], b["shape"]) for n, b in inputs.items()}
    if got_inputs != want_inputs:
        problems.append("inputs %s, expected %s" % (got_inputs, want_inputs))
    print("inputs %s i32 %s, step i64 []" % (" ".join(TOKEN_INPUTS),
                                             [args.rows, args.seq_len]))

    # Weights and their state.
    weights = by_role.get("weight", [])
    for w in weights:
        if w["type"] != args.dtype:
            problems.append("weight %s is %s" % (w["name"], w["type"]))
    state = {b["name"]: b for b in by_role.get("state", [])}
    want_state = {}
    for w in weights:
        for moment in ("adam.m:", "adam.v:"):
            want_state[moment + w["name"]] = (w["type"], w["shape"])
    got_state = {n: (b["type"], b["shape"]) for n, b in state.items()}
    if got_state != want_state:
        missing = sorted(set(want_state) - set(got_state))
        extra = sorted(set(got_state) - set(want_state))
        wrong = sorted(n for n in set(want_state) & set(got_state)
                       if want_state[n] != got_state[n])
        problems.append("state buffers: missing %s, unexpected %s, wrong "
                        "type or shape %s" % (missing, extra, wrong))
    print("weights %d %s, state %d (adam.m and adam.v of every weight)" % (
        len(weights), args.dtype, len(state)))

    # Outputs.
    outputs = {b["name"]: b for b in by_role.get("output", [])}
    grads = 0
    for w in weights:
        g = outputs.get("grad:" + w["name"])
        if not g:
            problems.append("no output grad:%s" % w["name"])
        elif (g["type"], g["shape"]) != (w["type"], w["shape"]):
            problems.append("grad:%s is %s %s, its weight %s %s" % (
                w["name"], g["type"], g["shape"], w["type"], w["shape"]))
        else:
            grads += 1
    for name in ("grad_norm", "lr"):
        b = outputs.get(name)
        if not b or (b["type"], b["shape"]) != (args.dtype, []):
            problems.append("output %s: expected %s [], got %s" % (
                name, args.dtype, b and (b["type"], b["shape"])))
    losses = [n for n in LOSSES if n in outputs]
    for required in ("total", "ce", "ce_per_modality"):
        if required not in outputs:
            problems.append("no output %s" % required)
    routes = [n for n in outputs if n.startswith("expert_offsets:")]
    for n in routes:
        b = outputs[n]
        if b["type"] != "i32" or len(b["shape"]) != 1 or b["shape"][0] < 2:
            problems.append("%s is %s %s, expected i32 [E + 1]" % (
                n, b["type"], b["shape"]))
    weight_names = {w["name"] for w in weights}
    expected = set(losses) | {"grad_norm", "lr"} | set(routes) | {
        "grad:" + n for n in weight_names}
    extra = sorted(set(outputs) - expected)
    if extra:
        problems.append("unexpected outputs %s (an in-place update must not "
                        "be an output buffer)" % extra)
    print("outputs %d gradients, grad_norm %s [], lr %s [], losses %s, "
          "%d expert_offsets %s" % (grads, args.dtype, args.dtype,
                                    " ".join(losses), len(routes),
                                    " ".join("%s %s" % (
                                        n, outputs[n]["shape"])
                                        for n in routes)))

    # The arena.
    size, alignment = m["arena"]["size"], m["arena"]["alignment"]
    placed = sorted((b for b in buffers if b["role"] != "scratch"),
                    key=lambda b: b["offset"])
    for b in placed:
        if b["offset"] % alignment or b["offset"] + b["size"] > size:
            problems.append("%s at %d (%d bytes) is not aligned inside the "
                            "arena of %d" % (b["name"], b["offset"], b["size"],
                                             size))
    for a, b in zip(placed, placed[1:]):
        if a["offset"] + a["size"] > b["offset"]:
            problems.append("%s and %s overlap" % (a["name"], b["name"]))

    # Weights and state are passed to the kernels that update them.
    if m["target"] != "cpu":
        passed = {a["offset"] for launch in m["launches"]
                  for a in launch["args"] if a["kind"] == "buffer"}
        unused = [b["name"] for b in weights + list(state.values())
                  if b["offset"] not in passed]
        if unused:
            problems.append("%d weight or state buffer(s) no launch takes: "
                            "%s" % (len(unused), ", ".join(unused[:5])))
        # AdamW's element-wise update of a weight writes the weight and both
        # moments: one launch takes all three.
        offset = {b["name"]: b["offset"] for b in placed}
        updated = 0
        for w in weights:
            three = {offset.get(k + w["name"])
                     for k in ("", "adam.m:", "adam.v:")}
            if any({a["offset"] for a in launch["args"]
                    if a["kind"] == "buffer"} >= three
                   for launch in m["launches"]):
                updated += 1
            else:
                problems.append("no launch takes %s with its moments" %
                                w["name"])
        print("updates: %d weight(s) updated with their moments in one "
              "launch" % updated)

    for problem in problems:
        print("problem: " + problem)
    print("ok" if not problems else "FAIL")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
