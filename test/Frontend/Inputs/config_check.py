"""Differential test of the two model-definition readers.

Compares what the C++ reader (moma-config-check) and the PyTorch reference
(moma_reference.py validate) make of model files: the `validate` line, the
`--expand` JSON (as parsed values; floats compared exactly), the
`--list-weights` text, and for invalid files the error line.

Subcommands (the reference needs Debian's python3 with torch; the others run
with any python3):

  mutate OUT_DIR MODEL.json...
      writes deterministic mutations of the models (wrong types, missing and
      unknown keys, out-of-range values, broken JSON text) to OUT_DIR.
  reference OUT.json PATH...
      runs the reference CLI in-process on every model file (PATH may be a
      directory: its *.json except sample-tokens* and train-*) and records its outputs.
  compare --tool moma-config-check --reference OUT.json PATH...
      runs the C++ reader on the same files and compares.
"""

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "tools", "moma-reference"))

# The C++ reader's documented limits (moma/Frontend/ModelConfig.h): more than
# 2^20 layers, weights of more than 2^63 - 1 elements.
KNOWN_LIMITS = ("this reader supports", "model too large")


def model_files(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, name) for name in os.listdir(path)
                            if name.endswith(".json") and not name.startswith(("sample-tokens", "train-")))
        else:
            files.append(path)
    return files


# ----------------------------------------------------------------------------
# mutate

REPLACEMENTS = [None, True, 2.0, 0, -1, 3, 0.5, "x", "layer", [], {}, [0], 10 ** 30]


def _paths(node, path=()):
    """Every path of the JSON tree (objects are lists of pairs)."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, path + (i,))


def _edit(node, path, fn):
    """A deep copy of node with fn applied to the parent of path."""
    node = json.loads(json.dumps(node))
    parent = node
    for part in path[:-1]:
        parent = parent[part]
    fn(parent, path[-1])
    return node


def _set(value):
    def fn(parent, key):
        parent[key] = value
    return fn


def _delete(parent, key):
    del parent[key]


def mutations(text):
    """(name, text) pairs derived from one model file."""
    model = json.loads(text)
    out = []
    for path in _paths(model):
        if not path:
            continue
        for k, value in enumerate(REPLACEMENTS):
            if path == ("num_layers",) and value == 10 ** 30:
                continue  # The reference would expand 10^30 layers.
            out.append((f"set{k}", json.dumps(_edit(model, path, _set(value)))))
        out.append(("del", json.dumps(_edit(model, path, _delete))))
    for path in _paths(model):
        node = model
        for part in path:
            node = node[part]
        if isinstance(node, dict):
            for key in ("bogus", "odd key", "layers"):
                out.append(("add", json.dumps(_edit(model, path + (key,), _set(1))) if path
                            else json.dumps({**model, key: 1})))
    # Override and selector shapes.
    extra = [
        {"layer_overrides": [{"layers": {"start": 1}, "ffn": None}]},
        {"layer_overrides": [{"layers": {"step": 2}, "attention": {"heads": None}}]},
        {"layer_overrides": [{"layers": [1, 0], "attention": {"kv_heads": 3}}]},
        {"layer_overrides": [{"layers": {"start": 2, "stop": 1}, "ffn": {}}]},
        {"layer_overrides": [{"layers": [0], "ffn": {"kind": "moe", "hidden": 8,
                                                      "groups": [{"modality": "text", "experts": 2,
                                                                  "routing": "token_choice"}]}},
                             {"layers": [0], "ffn": {"groups": [{"modalities": ["text"], "experts": 0}]}}]},
        {"layer_overrides": [{"layers": [1], "ffn": {"kind": "dense", "groups": None, "lora": None}}]},
        {"layer_overrides": [{"layers": [1], "ffn": 7}]},
        {"layer_overrides": [{"layers": [1], "attention": {"heads": {"a": 1}}},
                             {"layers": [1], "attention": {"heads": 2}}]},
        {"mod": {"layers": {"start": 0, "step": 2}, "capacity": 1}},
        {"mod": {"layers": {}, "capacity": 0}},
        {"untie": {"ffn": True}},
        {"norm": {"kind": "layer"}},
        {"norm": {"kind": "rms", "bias": True}},
    ]
    for k, patch in enumerate(extra):
        out.append((f"extra{k}", json.dumps({**model, **patch})))
    # Numbers as llvm::json reads them (both readers share its grammar):
    # integers within [-2^63, 2^64), other numbers, lenient forms.
    for k, number in enumerate(["01", "1.", ".5", "+1", "-2.0", "-0.0", "-0", "2.0", "1e2",
                                "9223372036854775807", "9223372036854775808",
                                "18446744073709551615", "18446744073709551616",
                                "-9223372036854775808", "-9223372036854775809", "1e400",
                                "-1e400", "1e-400", "0" * 30 + "7", "1" * 5000, "1e", "-",
                                "1.5.2", "--1", "0x10", "NaN", "-Infinity"]):
        out.append((f"number{k}", text.replace(": 4,", f": {number},", 1)))
        out.append((f"vocab{k}", text.replace('"vocab_size": 128', f'"vocab_size": {number}', 1)))
    # Duplicate keys (the first repeated key in text order is reported), a
    # duplicate after a syntax error, several unknown keys (the first in
    # sorted order is reported, whatever the file order).
    inner = text.rstrip().rstrip("}")
    out.append(("dup0", inner + ', "d_model": 1, "norm": {"eps": 1, "eps": 2}}'))
    out.append(("dup1", text.replace('{"', '{"kind": 1, "kind": 2, "', 2)))
    out.append(("dup2", inner + ', "\\u0064_model": 1}'))
    out.append(("dup3", inner + ', "x": {"a": 1, "a": 2}, }'))
    out.append(("unknown0", inner + ', "zz": 1, "bogus": 2, "aa": 3}'))
    out.append(("unknown1", text.replace('"attention": {', '"attention": {"zzz": 1, "head": 1, ', 1)))
    out.append(("unknown2", text.replace('"attention": {', '"attention": {"head": 1, "zzz": 1, ', 1)))
    # Strings: lone surrogates read as U+FFFD, escapes, control characters.
    for k, name in enumerate([r"\ud800", r"\udc00x", r"\ud83d\ude00", r"\ud800\u0041", r"\u00e9",
                              r"a\u0000b", r"\x", r"\u12", "\t", "\u2028", "x\n", "x\u00e9"]):
        out.append((f"string{k}", text.replace('"name": "', f'"name": "{name}', 1)))
        out.append((f"key{k}", inner + f', "{name}": 1}}'))
    # Nesting at and beyond the limit, with and without an earlier error.
    out.append(("deep0", inner + ', "layer": ' + "[" * 63 + "]" * 63 + "}"))
    out.append(("deep1", inner + ', "layer": ' + "[" * 64 + "]" * 64 + "}"))
    out.append(("deep2", '{"a" 1, "b": ' + "{" * 70))
    # Bytes: not UTF-8, a byte-order mark.
    raw = text.encode("utf-8")
    out.append(("utf0", raw.replace(b'"', b'"\xff', 1)))
    out.append(("utf1", raw.replace(b'"', b'"\xe2\x82', 1)))
    out.append(("utf2", raw.replace(b'"', b'"\xed\xa0\x80', 1)))
    out.append(("bom", b"\xef\xbb\xbf" + raw))
    # Broken JSON text.
    rng = random.Random(1234)
    alphabet = list('{}[],:"\\ \n0123456789-+.eEtfnNIaul\x01\u00e9\ud83d\ude00') + ["\\u12", "\\ud800"]
    for k in range(80):
        pos = rng.randrange(len(text) + 1)
        kind = k % 4
        if kind == 0:
            broken = text[:pos]
        elif kind == 1:
            broken = text[:pos] + text[pos + 1:]
        else:
            broken = text[:pos] + rng.choice(alphabet) + text[pos:]
        out.append((f"text{k}", broken))
    return out


def cmd_mutate(args):
    os.makedirs(args.out_dir, exist_ok=True)
    count = 0
    for model in args.models:
        stem = os.path.splitext(os.path.basename(model))[0]
        with open(model, encoding="utf-8") as f:
            text = f.read()
        for k, (kind, mutated) in enumerate(mutations(text)):
            name = os.path.join(args.out_dir, f"{stem}.{k:04d}.{kind}.json")
            if isinstance(mutated, str):
                mutated = mutated.encode("utf-8", errors="surrogatepass")
            with open(name, "wb") as f:
                f.write(mutated)
            count += 1
    print(f"wrote {count} mutated models")


# ----------------------------------------------------------------------------
# reference


def cmd_reference(args):
    sys.path.insert(0, REFERENCE_DIR)
    from moma_reference.cli import main  # noqa: E402 (needs torch)

    def run(argv):
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(argv)
        except BaseException as e:  # the reference crashed (not an input error)
            return {"rc": None, "stdout": "", "stderr": f"{type(e).__name__}: {e}"}
        return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}

    result = {}
    for path in model_files(args.paths):
        result[path] = {"validate": run(["validate", path])}
        if result[path]["validate"]["rc"] == 0:
            result[path]["expand"] = run(["validate", path, "--expand"])
            result[path]["weights"] = run(["validate", path, "--list-weights"])
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f)
    print(f"reference: {len(result)} files")


# ----------------------------------------------------------------------------
# compare


def same_value(a, b):
    """JSON values equal: same types (bools are not numbers), numbers equal
    as values (an int and a float may compare equal: the C++ JSON printer
    writes 1.0 as 1), floats compared exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return float(a) == float(b)
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return False


def compare_one(path, ref, cpp):
    """Returns (status, message): status is ok, limit, crash or FAIL."""
    v = ref["validate"]
    if v["rc"] is None:
        return "crash", v["stderr"]
    if v["rc"] != 0:
        prefix = "moma-reference: error: "
        expected = v["stderr"]
        if not expected.startswith(prefix) or expected.count("\n") != 1:
            return "FAIL", f"unexpected reference stderr {expected!r}"
        expected = expected[len(prefix):-1]
        if cpp["error"] != expected:
            if cpp["error"] and any(limit in cpp["error"] for limit in KNOWN_LIMITS):
                return "limit", cpp["error"]
            return "FAIL", f"error differs:\n  reference: {expected}\n  C++:       {cpp['error']}"
        return "ok", ""
    if cpp["error"] is not None:
        if any(limit in cpp["error"] for limit in KNOWN_LIMITS):
            return "limit", cpp["error"]
        return "FAIL", f"reference accepts, C++ says: {cpp['error']}"
    if cpp["summary"] + "\n" != v["stdout"]:
        return "FAIL", f"validate differs:\n  reference: {v['stdout']!r}\n  C++:       {cpp['summary']!r}"
    expand = json.loads(ref["expand"]["stdout"])
    if not same_value(expand, cpp["expand"]):
        return "FAIL", ("--expand differs:\n  reference: " + json.dumps(expand, sort_keys=True) +
                        "\n  C++:       " + json.dumps(cpp["expand"], sort_keys=True))
    if cpp["weights"] != ref["weights"]["stdout"]:
        return "FAIL", "--list-weights differs:\n" + cpp["weights"] + "---\n" + ref["weights"]["stdout"]
    return "ok", ""


def cmd_compare(args):
    with open(args.reference, encoding="utf-8") as f:
        reference = json.load(f)
    files = model_files(args.paths)
    if not files:
        sys.exit("compare: no model files")
    missing = [p for p in files if p not in reference]
    if missing:
        sys.exit(f"compare: no reference result for {missing[0]}")
    with tempfile.NamedTemporaryFile("w", suffix=".rsp", delete=False) as rsp:
        rsp.write("\n".join(files) + "\n")
    try:
        proc = subprocess.run([args.tool, "--batch-json", "@" + rsp.name], stdout=subprocess.PIPE,
                              check=True)
    finally:
        os.unlink(rsp.name)
    lines = proc.stdout.decode("utf-8").split("\n")[:-1]  # Not splitlines: U+2028 is no line end here.
    if len(lines) != len(files):
        sys.exit(f"compare: {len(lines)} results for {len(files)} files")
    counts = {"ok": 0, "limit": 0, "crash": 0, "FAIL": 0}
    for path, line in zip(files, lines):
        cpp = json.loads(line.replace(": inf", ": Infinity").replace(": -inf", ": -Infinity"))
        status, message = compare_one(path, reference[path], cpp)
        counts[status] += 1
        if status == "FAIL" or (args.verbose and message):
            print(f"{status} {path}: {message}")
    print("compared {} files: {ok} same, {limit} beyond the C++ reader's limits, "
          "{crash} crash the reference, {FAIL} differ".format(len(files), **counts))
    if counts["FAIL"]:
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mutate")
    m.add_argument("out_dir")
    m.add_argument("models", nargs="+")
    m.set_defaults(func=cmd_mutate)
    r = sub.add_parser("reference")
    r.add_argument("output")
    r.add_argument("paths", nargs="+")
    r.set_defaults(func=cmd_reference)
    c = sub.add_parser("compare")
    c.add_argument("--tool", required=True)
    c.add_argument("--reference", required=True)
    c.add_argument("--verbose", action="store_true")
    c.add_argument("paths", nargs="+")
    c.set_defaults(func=cmd_compare)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
