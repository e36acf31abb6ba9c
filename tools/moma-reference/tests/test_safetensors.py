"""safetensors reading/writing: round trips and rejection of damaged files."""

import json
import os
import struct
import tempfile
import unittest

import torch

from .helpers import EXAMPLES, config, random_weights
from moma_reference import safetensors
from moma_reference.config import load_model
from moma_reference.errors import SafetensorsError
from moma_reference.weights import check_weights, init_weights, load_weights, weight_specs, write_init


def raw_file(header, data=b"", pad=True):
    """Bytes of a safetensors file with the given header dict and data."""
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name="x.safetensors"):
        return os.path.join(self.dir.name, name)

    def write(self, blob, name="x.safetensors"):
        with open(self.path(name), "wb") as f:
            f.write(blob)
        return self.path(name)

    def assertRejected(self, blob, fragment):
        path = self.write(blob)
        with self.assertRaises(SafetensorsError) as ctx:
            safetensors.load(path)
        self.assertIn(fragment, str(ctx.exception))
        self.assertTrue(str(ctx.exception).startswith(path + ": "))

    def test_round_trip_all_dtypes(self):
        tensors = {
            "f64": torch.randn(3, 2, dtype=torch.float64),
            "f32": torch.randn(5, dtype=torch.float32),
            "f16": torch.randn(2, 2).half(),
            "bf16": torch.randn(4, 1).to(torch.bfloat16),
            "i64": torch.tensor([-1, 2 ** 40]),
            "i32": torch.tensor([[1, -2]], dtype=torch.int32),
            "u8": torch.tensor([0, 255], dtype=torch.uint8),
            "bool": torch.tensor([True, False]),
            "empty": torch.zeros(0, 3),
            "scalar": torch.tensor(1.5),
        }
        path = self.path()
        safetensors.save(path, tensors, {"k": "v"})
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        self.assertEqual((8 + n) % 8, 0)
        loaded = safetensors.load(path)
        self.assertEqual(loaded.metadata, {"k": "v"})
        self.assertEqual(list(loaded.tensors), list(tensors))
        for name, t in tensors.items():
            self.assertEqual(loaded.tensors[name].dtype, t.dtype, name)
            self.assertTrue(torch.equal(loaded.tensors[name], t), name)

    def test_bf16_rounds_to_nearest_even(self):
        path = self.path()
        # 1 + 2^-8 is halfway between two bf16 values: rounds to even (1.0);
        # 1 + 3 * 2^-8 rounds up to 1 + 2^-6.
        values = torch.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.0], dtype=torch.float32)
        safetensors.save(path, {"x": values}, dtype="BF16")
        loaded = safetensors.load(path).tensors["x"].float()
        self.assertEqual(loaded.tolist(), [1.0, 1 + 2 ** -6, -2.0])

    def test_matches_reference_layout(self):
        # A file written by hand following the public specification.
        data = struct.pack("<2f", 1.0, 2.0) + struct.pack("<h", 7)
        header = {"__metadata__": {"a": "b"},
                  "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                  "i": {"dtype": "I16", "shape": [1, 1], "data_offsets": [8, 10]}}
        loaded = safetensors.load(self.write(raw_file(header, data, pad=False)))
        self.assertEqual(loaded.tensors["w"].tolist(), [1.0, 2.0])
        self.assertEqual(loaded.tensors["i"].tolist(), [[7]])

    def test_rejects_damaged_files(self):
        good = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
        data = bytes(16)
        safetensors.load(self.write(raw_file(good, data)))
        blob = raw_file(good, data)
        self.assertRejected(blob[:5], "truncated: 5 bytes, shorter than the 8-byte header length")
        self.assertRejected(blob[:-4], "tensor 'w': data_offsets [0, 16] out of range (the data section has 12 bytes")
        self.assertRejected(blob[:20], "truncated: header length")
        self.assertRejected(struct.pack("<Q", 2 ** 40) + b"{}", "exceeds the")
        self.assertRejected(raw_file(good, data + b"xx"), "the data section has 18 bytes but the tensors cover 16")
        bad = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 32]}}
        self.assertRejected(raw_file(bad, bytes(32)), "data_offsets [0, 32] hold 32 bytes, but F32 [2, 2] needs 16")
        bad = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}}
        self.assertRejected(raw_file(bad, bytes(16)), "out of range")
        bad = {"w": {"dtype": "Q4", "shape": [2, 2], "data_offsets": [0, 16]}}
        self.assertRejected(raw_file(bad, data), "unsupported dtype 'Q4'")
        bad = {"w": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}}
        self.assertRejected(raw_file(bad, data), "shape must be a list of non-negative integers")
        bad = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}
        self.assertRejected(raw_file(bad, data), "data_offsets must be [begin, end] with 0 <= begin <= end")
        bad = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
               "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
        self.assertRejected(raw_file(bad, data), "overlaps the previous tensor")
        bad = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
        self.assertRejected(raw_file(bad, data), "leaves a hole before it")
        bad = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "extra": 1}}
        self.assertRejected(raw_file(bad, data), "entry must be an object with exactly dtype, shape, data_offsets")
        self.assertRejected(raw_file({"__metadata__": {"a": 1}}), "__metadata__ must map strings to strings")
        text = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {}}'
        self.assertRejected(struct.pack("<Q", len(text)) + text + bytes(4), "duplicate key")
        self.assertRejected(struct.pack("<Q", 4) + b"[1] ", "header must be a JSON object")
        self.assertRejected(struct.pack("<Q", 2) + b"\xff{", "not valid UTF-8 JSON")

    def test_failed_write_leaves_no_file(self):
        path = self.path()
        writer = safetensors.Writer(path, [("a", "F32", (2,)), ("b", "F32", (3,))])
        with self.assertRaises(SafetensorsError):
            with writer as w:
                w.write("a", torch.zeros(2))
                w.write("b", torch.zeros(4))  # wrong shape
        self.assertEqual(os.listdir(self.dir.name), [])
        with self.assertRaises(SafetensorsError):
            with safetensors.Writer(path, [("a", "F32", (2,)), ("b", "F32", (3,))]) as w:
                w.write("a", torch.zeros(2))  # b never written
        self.assertEqual(os.listdir(self.dir.name), [])


class ModelWeightsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.cfg = load_model(os.path.join(EXAMPLES, "tiny-moma-mod.json"))

    def test_init_rule_and_round_trip(self):
        path = os.path.join(self.dir.name, "w.safetensors")
        write_init(self.cfg, 7, path)
        loaded = load_weights(self.cfg, path, torch.float32)
        again = init_weights(self.cfg, 7)
        self.assertEqual(list(loaded), [s.name for s in weight_specs(self.cfg)])
        for name, t in loaded.items():
            self.assertTrue(torch.equal(t, again[name]), name)
        self.assertTrue(torch.equal(loaded["layers.0.attn_norm.weight"], torch.ones(32)))
        normal = torch.cat([loaded[s.name].flatten() for s in weight_specs(self.cfg) if s.init == "normal"])
        self.assertAlmostEqual(normal.mean().item(), 0.0, delta=0.001)
        self.assertAlmostEqual(normal.std().item(), 0.02, delta=0.001)
        other = init_weights(self.cfg, 8)
        self.assertFalse(torch.equal(other["embed.weight"], again["embed.weight"]))
        meta = safetensors.load(path).metadata
        self.assertEqual((meta["format"], meta["seed"]), ("moma-weights", "7"))

    def test_lora_b_zero_and_bf16_storage(self):
        cfg = load_model(os.path.join(EXAMPLES, "tiny-uni-moe-top2.json"))
        path = os.path.join(self.dir.name, "w.safetensors")
        write_init(cfg, 1, path, storage="BF16")
        f = safetensors.load(path)
        self.assertEqual(set(f.dtypes.values()), {"BF16"})
        self.assertTrue(torch.equal(f.tensors["layers.1.moe.w_out_lora_b"].float(), torch.zeros(4, 4, 32)))
        weights = load_weights(cfg, path, torch.float64)
        self.assertEqual(weights["embed.weight"].dtype, torch.float64)

    def test_rejects_mismatched_weights(self):
        w = random_weights(self.cfg, dtype=torch.float32)
        dtypes = {n: "F32" for n in w}
        check_weights(self.cfg, w, dtypes, "w.st", torch.float64)
        missing = dict(w)
        del missing["layers.0.mod.router"]
        with self.assertRaisesRegex(SafetensorsError, r"^w.st: missing tensor 'layers.0.mod.router' \[32, 1\]"):
            check_weights(self.cfg, missing, dtypes, "w.st", torch.float64)
        wrong = dict(w, **{"layers.1.moe.w_in": torch.zeros(8, 32, 32)})
        with self.assertRaisesRegex(SafetensorsError, r"tensor 'layers.1.moe.w_in' has shape \[8, 32, 32\], "
                                                      r"model 'tiny-moma-mod' needs \[8, 32, 64\]"):
            check_weights(self.cfg, wrong, dtypes, "w.st", torch.float64)
        extra = dict(w, bogus=torch.zeros(1))
        with self.assertRaisesRegex(SafetensorsError, r"unexpected tensor 'bogus'"):
            check_weights(self.cfg, extra, dict(dtypes, bogus="F32"), "w.st", torch.float64)
        with self.assertRaisesRegex(SafetensorsError, r"tensor 'embed.weight' has dtype I32"):
            check_weights(self.cfg, w, dict(dtypes, **{"embed.weight": "I32"}), "w.st", torch.float64)

    def test_other_model_rejected(self):
        cfg = config()
        path = os.path.join(self.dir.name, "w.safetensors")
        write_init(cfg, 1, path)
        with self.assertRaises(SafetensorsError):
            load_weights(self.cfg, path)


if __name__ == "__main__":
    unittest.main()
