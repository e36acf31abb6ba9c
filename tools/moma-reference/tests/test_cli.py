"""The command line: report format, exit codes, no partial outputs."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

from .helpers import EXAMPLES, SCRIPT
from moma_reference import cli, safetensors
from moma_reference.config import load_model
from moma_reference.weights import weight_specs


def call(*argv):
    """Runs the CLI in-process; returns (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as e:  # argparse usage errors
            status = e.code
    return status, out.getvalue(), err.getvalue()


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_init_run_report(self):
        model = os.path.join(EXAMPLES, "tiny-moma-mod.json")
        tokens = os.path.join(EXAMPLES, "sample-tokens.json")
        self.assertEqual(call("init", model, "--seed", "3", "-o", self.path("w.st"))[0], 0)
        status, out, err = call("run", model, "--weights", self.path("w.st"), "--tokens", tokens,
                                "--grads", self.path("g.st"), "--logits", self.path("l.st"))
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        number = r"-?\d+\.\d+(e-?\d+)?"
        patterns = [r"model tiny-moma-mod", r"dtype f64", r"batch 2", r"length 16",
                    rf"ce\.text {number} targets 13", rf"ce\.image {number} targets 17",
                    rf"ce {number} targets 30", rf"load_balancing {number}", rf"router_z {number}",
                    rf"aux_router {number}", rf"total {number}"]
        self.assertEqual(len(lines), len(patterns), out)
        for line, pattern in zip(lines, patterns):
            self.assertRegex(line, "^" + pattern + "$")
        values = {line.split()[0]: float(line.split()[1]) for line in lines[4:]}
        self.assertAlmostEqual(values["ce"], 4.852, delta=0.05)  # ~ln(128) at init
        self.assertAlmostEqual(values["ce"], (13 * values["ce.text"] + 17 * values["ce.image"]) / 30, places=12)
        self.assertAlmostEqual(values["total"], values["ce"] + values["aux_router"], places=12)
        cfg = load_model(model)
        grads = safetensors.load(self.path("g.st"))
        self.assertEqual(list(grads.tensors), [s.name for s in weight_specs(cfg)])
        self.assertEqual(set(grads.dtypes.values()), {"F64"})
        self.assertEqual(safetensors.load(self.path("l.st")).tensors["logits"].shape, (2, 16, 128))
        status, out_json, _ = call("run", model, "--weights", self.path("w.st"), "--tokens", tokens, "--json")
        report = json.loads(out_json)
        self.assertEqual(report["ce"]["text"]["targets"], 13)
        self.assertEqual(report["total"], values["total"])
        status, out32, _ = call("run", model, "--weights", self.path("w.st"), "--tokens", tokens, "--dtype", "f32")
        self.assertIn("dtype f32", out32)

    def test_validate_outputs(self):
        model = os.path.join(EXAMPLES, "tiny-uni-moe-top2.json")
        status, out, _ = call("validate", model)
        self.assertEqual(status, 0)
        self.assertRegex(out, r"^ok tiny-uni-moe-top2: 2 layers \(2 moe, 0 mod\), 29 tensors, \d+ parameters\n$")
        status, out, _ = call("validate", model, "--list-weights")
        self.assertIn("layers.0.moe.w_in_lora_b [4, 4, 96] zeros\n", out)
        status, out, _ = call("validate", model, "--expand")
        self.assertEqual(json.loads(out)["layers"][1]["ffn"]["groups"][0]["top_k"], 2)

    def test_errors_leave_no_output(self):
        bad = self.path("bad.json")
        with open(bad, "w") as f:
            json.dump({"vocab_size": 8, "modalities": [{"name": "text", "tokens": [0, 8]}], "d_model": 4,
                       "num_layers": 1, "layer": {"attention": {"heads": 1}, "ffn": {
                           "kind": "moe", "hidden": 4, "groups": [{"modality": "text", "experts": 0,
                                                                    "routing": "token_choice"}]}}}, f)
        status, out, err = call("init", bad, "--seed", "1", "-o", self.path("w.st"))
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, f"moma-reference: error: {bad}: layers[0].ffn.groups[0].experts: must be >= 1 "
                              f"(value from layer.ffn.groups[0].experts)\n")
        self.assertFalse(os.path.exists(self.path("w.st")))

        model = os.path.join(EXAMPLES, "tiny-dense.json")
        call("init", model, "--seed", "1", "-o", self.path("w.st"))
        status, out, err = call("run", model, "--weights", self.path("w.st"), "--tokens",
                                os.path.join(EXAMPLES, "sample-tokens-speech.json"), "--grads", self.path("g.st"))
        self.assertEqual((status, out), (1, ""))
        self.assertIn("sequences[0][2].modality: unknown modality 'speech'", err)
        self.assertFalse(os.path.exists(self.path("g.st")))

        with open(self.path("w.st"), "r+b") as f:
            f.truncate(os.path.getsize(self.path("w.st")) - 4)
        status, _, err = call("run", model, "--weights", self.path("w.st"), "--tokens",
                              os.path.join(EXAMPLES, "sample-tokens.json"))
        self.assertEqual(status, 1)
        self.assertIn("out of range", err)

        status, _, err = call("run", os.path.join(EXAMPLES, "tiny-dense.json"), "--weights", self.path("w.st"),
                              "--tokens", "x.json", "--routing", "aux")
        self.assertEqual(status, 1)
        self.assertIn("tiny-dense.json: --routing aux needs aux_routers.enabled in the model", err)

        status, _, err = call("validate", self.path("missing.json"))
        self.assertEqual(status, 1)
        self.assertIn("missing.json: cannot read file: No such file or directory", err)
        self.assertEqual(sorted(os.listdir(self.dir.name)), ["bad.json", "w.st"])

    def test_script_exit_status_without_traceback(self):
        bad = self.path("bad.json")
        with open(bad, "w") as f:
            f.write('{"vocab_size": 8, "modalities": [{"name": "text", "tokens": [0, 9]}]}')
        proc = subprocess.run([sys.executable, SCRIPT, "validate", bad], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stdout, "")
        self.assertNotIn("Traceback", proc.stderr)
        self.assertEqual(proc.stderr.strip(), f"moma-reference: error: {bad}: modalities[0].tokens: range [0, 9) "
                                              f"must be non-empty and inside the vocabulary [0, 8)")
        proc = subprocess.run([sys.executable, SCRIPT, "run"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertTrue(re.search(r"usage: moma-reference run", proc.stderr))


if __name__ == "__main__":
    unittest.main()
