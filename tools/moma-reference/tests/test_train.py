"""Training (examples/Training.md): config, schedule, batch order, data, and
the update of the ``train`` command against a hand-written AdamW."""

import math
import os
import struct
import tempfile
import unittest

import torch

from .helpers import config, random_tokens, random_weights, tiny_dict
from moma_reference import cli
from moma_reference.data import RowStream, SplitMix64, load_rows, permutation, read_corpus, write_corpus
from moma_reference.errors import ConfigError, MomaError
from moma_reference.model import run
from moma_reference.train import Trainer, param_groups
from moma_reference.train_config import TrainConfig, parse_train_config


def train_config(**sections):
    value = {"format": "moma-train-config/1", "optimizer": {"lr": 1e-3},
             "schedule": {"total_steps": 100}}
    for key, v in sections.items():
        if isinstance(v, dict) and key in value:
            value[key] = dict(value[key], **v)
        else:
            value[key] = v
    return value


class TrainConfigTest(unittest.TestCase):
    def error(self, value):
        with self.assertRaises(ConfigError) as e:
            parse_train_config(value, "c.json")
        return str(e.exception)

    def test_defaults(self):
        c = parse_train_config(train_config())
        self.assertEqual(c, TrainConfig(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                        decay_norms_and_biases=False, warmup_steps=0, total_steps=100,
                                        decay="linear", final_lr_ratio=0.0, clip_grad_norm=None,
                                        accumulation_steps=1))

    def test_full_example_of_training_md(self):
        c = parse_train_config({
            "format": "moma-train-config/1",
            "optimizer": {"lr": 3e-4, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
                          "decay_norms_and_biases": False},
            "schedule": {"warmup_steps": 4000, "total_steps": 100000, "decay": "linear",
                         "final_lr_ratio": 0.01},
            "clip_grad_norm": 1.0, "accumulation_steps": 1})
        self.assertEqual((c.beta2, c.weight_decay, c.warmup_steps, c.clip_grad_norm), (0.95, 0.1, 4000, 1.0))

    def test_errors_name_the_json_path(self):
        cases = [
            (train_config(optimizer={"beta2": 1.0}), "c.json: optimizer.beta2: must be in [0, 1)"),
            (train_config(optimizer={"beta1": -0.1}), "c.json: optimizer.beta1: must be in [0, 1)"),
            (train_config(optimizer={"lr": 0}), "c.json: optimizer.lr: must be > 0"),
            (train_config(optimizer={"lr": "1e-3"}), "c.json: optimizer.lr: must be a number, not a string"),
            (train_config(optimizer={"lr": 1e999}), "c.json: optimizer.lr: must be finite"),
            (train_config(optimizer={"eps": 0.0}), "c.json: optimizer.eps: must be > 0"),
            (train_config(optimizer={"weight_decay": -1}), "c.json: optimizer.weight_decay: must be >= 0"),
            (train_config(optimizer={"decay_norms_and_biases": 1}),
             "c.json: optimizer.decay_norms_and_biases: must be true or false, not an integer"),
            (train_config(optimizer={"momentum": 0.9}), "c.json: optimizer.momentum: unknown key (expected one of: "
                                                        "beta1, beta2, decay_norms_and_biases, eps, lr, weight_decay)"),
            (train_config(schedule={"warmup_steps": 1.5}),
             "c.json: schedule.warmup_steps: must be an integer, not a number"),
            (train_config(schedule={"warmup_steps": -1}), "c.json: schedule.warmup_steps: must be >= 0"),
            (train_config(schedule={"total_steps": 0}), "c.json: schedule.total_steps: must be >= 1"),
            (train_config(schedule={"decay": "step"}),
             "c.json: schedule.decay: must be one of linear | cosine | constant, not \"step\""),
            (train_config(schedule={"final_lr_ratio": 1.5}), "c.json: schedule.final_lr_ratio: must be in [0, 1]"),
            (train_config(clip_grad_norm=0), "c.json: clip_grad_norm: must be > 0"),
            (train_config(clip_grad_norm=True), "c.json: clip_grad_norm: must be a number, not a boolean"),
            (train_config(accumulation_steps=0), "c.json: accumulation_steps: must be >= 1"),
            (train_config(epochs=3), "c.json: epochs: unknown key (expected one of: accumulation_steps, "
                                     "clip_grad_norm, format, optimizer, schedule)"),
            (train_config(format="moma-train-config/2"),
             "c.json: format: unsupported format 'moma-train-config/2' (this reader knows 'moma-train-config/1')"),
            ({"format": "moma-train-config/1", "schedule": {"total_steps": 1}}, "c.json: optimizer: required"),
            ({"format": "moma-train-config/1", "optimizer": {"lr": 1}, "schedule": {}},
             "c.json: schedule.total_steps: required"),
            ({"optimizer": {"lr": 1}, "schedule": {"total_steps": 1}}, "c.json: format: required"),
            ([], "c.json: must be an object, not a list"),
        ]
        for value, message in cases:
            with self.subTest(message=message):
                self.assertEqual(self.error(value), message)

    def test_clip_null_is_no_clipping(self):
        self.assertIsNone(parse_train_config(train_config(clip_grad_norm=None)).clip_grad_norm)

    def test_bad_json_text(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"format": "moma-train-config/1", "format": 1}')
        self.addCleanup(os.unlink, f.name)
        from moma_reference.train_config import load_train_config
        with self.assertRaises(ConfigError) as e:
            load_train_config(f.name)
        self.assertIn('invalid JSON at line 1 column 35: duplicate key "format" in an object', str(e.exception))


class ScheduleTest(unittest.TestCase):
    def test_warmup_then_linear_to_floor(self):
        c = TrainConfig(lr=1.0, warmup_steps=4, total_steps=14, decay="linear", final_lr_ratio=0.1)
        self.assertEqual([c.lr_at(s) for s in (1, 2, 4)], [0.25, 0.5, 1.0])
        # p = (s - 4) / 10 after warm-up.
        self.assertAlmostEqual(c.lr_at(5), 0.1 + 0.9 * 0.9, places=15)
        self.assertAlmostEqual(c.lr_at(9), 0.1 + 0.9 * 0.5, places=15)
        self.assertAlmostEqual(c.lr_at(14), 0.1, places=15)
        self.assertAlmostEqual(c.lr_at(1000), 0.1, places=15)  # the floor after total_steps

    def test_cosine(self):
        c = TrainConfig(lr=2.0, warmup_steps=10, total_steps=110, decay="cosine", final_lr_ratio=0.0)
        self.assertEqual(c.lr_at(10), 2.0)
        self.assertAlmostEqual(c.lr_at(35), 2.0 * (1 + math.cos(math.pi / 4)) / 2, places=14)
        self.assertAlmostEqual(c.lr_at(60), 1.0, places=14)
        self.assertAlmostEqual(c.lr_at(110), 0.0, places=14)
        c = TrainConfig(lr=1.0, total_steps=100, decay="cosine", final_lr_ratio=0.2)
        self.assertAlmostEqual(c.lr_at(50), 0.2 + 0.8 * 0.5, places=14)
        self.assertAlmostEqual(c.lr_at(200), 0.2, places=14)

    def test_no_warmup_starts_below_peak(self):
        # W = 0: p = s / T from step 1.
        c = TrainConfig(lr=1.0, total_steps=4, decay="linear")
        self.assertEqual([c.lr_at(s) for s in (1, 2, 3, 4, 5)], [0.75, 0.5, 0.25, 0.0, 0.0])

    def test_constant_and_warmup_longer_than_total(self):
        c = TrainConfig(lr=3e-4, warmup_steps=2, total_steps=5, decay="constant")
        self.assertEqual([c.lr_at(s) for s in (1, 2, 3, 100)], [1.5e-4, 3e-4, 3e-4, 3e-4])
        # T <= W: max(1, T - W) keeps p finite; right after warm-up, the floor.
        c = TrainConfig(lr=1.0, warmup_steps=10, total_steps=5, final_lr_ratio=0.5)
        self.assertEqual((c.lr_at(10), c.lr_at(11)), (1.0, 0.5))

    def test_steps_start_at_one(self):
        with self.assertRaises(ValueError):
            TrainConfig(lr=1.0).lr_at(0)


class BatchOrderTest(unittest.TestCase):
    """The numbers of Training.md ("Batch order"), which moma-train checks too."""

    def test_splitmix64_vectors(self):
        r = SplitMix64(0)
        self.assertEqual([r.next() for _ in range(3)],
                         [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F])
        # The published test vector of SplitMix64 (seed 1234567).
        r = SplitMix64(1234567)
        self.assertEqual([r.next() for _ in range(5)],
                         [6457827717110365317, 3203168211198807973, 9817491932198370423,
                          4593380528125082431, 16408922859458223821])

    def test_permutation_seed_zero(self):
        self.assertEqual(permutation(10, SplitMix64(0)), [6, 3, 2, 9, 8, 1, 4, 7, 0, 5])
        self.assertEqual(permutation(10, None), list(range(10)))
        self.assertEqual(permutation(1, SplitMix64(0)), [0])

    def test_stream_across_epochs_and_steps(self):
        s = RowStream(10, seed=0)
        # Steps of 4 rows: the third takes the end of epoch 0 and the start of epoch 1.
        self.assertEqual(s.take(4), [6, 3, 2, 9])
        self.assertEqual(s.take(4), [8, 1, 4, 7])
        self.assertEqual(s.take(4), [0, 5, 7, 4])
        self.assertEqual(s.position, 12)
        self.assertEqual(RowStream(10, seed=0).take(20)[10:], [7, 4, 9, 5, 2, 3, 8, 6, 1, 0])
        self.assertEqual(RowStream(3, shuffle=False).take(7), [0, 1, 2, 0, 1, 2, 0])


class DataTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.cfg = config()  # text [0, 16), image [16, 32)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_corpus_round_trip_and_rows(self):
        tokens = [1, 2, 17, 18, 3, 0, 4, 20, 21, 0, 5]
        write_corpus(self.path("c"), tokens, 0)
        self.assertEqual(read_corpus(self.path("c")), (tokens, 0))
        with open(self.path("c"), "rb") as f:
            raw = f.read()
        self.assertEqual(raw[:8], b"MOMACORP")
        self.assertEqual(struct.unpack_from("<IIQ", raw, 8), (1, 0, len(tokens)))
        self.assertEqual(len(raw), 24 + 4 * len(tokens) + 4)
        rows = load_rows(self.path("c"), self.cfg, 4)  # 11 tokens: 2 rows, 3 left over
        self.assertEqual(rows.ids.tolist(), [[1, 2, 17, 18], [3, 0, 4, 20]])
        self.assertEqual(rows.modality.tolist(), [[0, 0, 1, 1], [0, 0, 0, 1]])
        ids, _ = rows.select([1, 0, 1])
        self.assertEqual(ids[:, 0].tolist(), [3, 1, 3])

    def rejects(self, raw, message, length=2):
        with open(self.path("bad"), "wb") as f:
            f.write(raw)
        with self.assertRaises(MomaError) as e:
            load_rows(self.path("bad"), self.cfg, length)
        self.assertEqual(str(e.exception), f"{self.path('bad')}: {message}")

    def test_damaged_corpora(self):
        write_corpus(self.path("c"), [1, 2, 3, 4], 0)
        with open(self.path("c"), "rb") as f:
            good = f.read()
        flipped = bytearray(good)
        flipped[30] ^= 1
        stored = struct.unpack_from("<I", good, len(good) - 4)[0]
        import zlib
        self.rejects(bytes(flipped), f"checksum mismatch (stored 0x{stored:08x}, computed "
                                     f"0x{zlib.crc32(bytes(flipped[:-4])):08x}): the file is damaged")
        self.rejects(good[:-1], f"size {len(good) - 1} bytes, but a corpus of 4 tokens has {len(good)}")
        self.rejects(b"MOMACORP" + good[8:12].replace(b"\x01", b"\x02") + good[12:],
                     "unsupported corpus version 2 (this reader knows 1)")
        self.rejects(b"MOMACORP", "too short for a moma-corpus/1 file (8 bytes)")
        write_corpus(self.path("c"), [1, 2, 40, 4], 0)
        with open(self.path("c"), "rb") as f:
            self.rejects(f.read(), "token 2 (id 40) is in no modality's id range of model 't'")
        write_corpus(self.path("c"), [1, 2, 3, 4], 99)
        with open(self.path("c"), "rb") as f:
            self.rejects(f.read(), "end-of-document id 99 is in no modality's id range of model 't'")
        write_corpus(self.path("c"), [1, 2, 3], 0)
        with open(self.path("c"), "rb") as f:
            self.rejects(f.read(), "3 tokens make no row of 4 tokens", length=4)

    def test_token_file_rows_must_have_seq_len(self):
        import json
        value = {"format": "moma-tokens/1", "sequences": [[{"modality": "text", "tokens": [1, 2, 3]}]]}
        with open(self.path("t.json"), "w") as f:
            json.dump(value, f)
        self.assertEqual(load_rows(self.path("t.json"), self.cfg, 3).ids.tolist(), [[1, 2, 3]])
        with self.assertRaises(MomaError) as e:
            load_rows(self.path("t.json"), self.cfg, 4)
        self.assertIn("sequences have 3 tokens, but --seq-len is 4", str(e.exception))


def adamw_by_hand(w, g, m, v, step, lr, beta1, beta2, eps, decay):
    """Training.md's update of one tensor, written out."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    w = w * (1 - lr * decay)
    w = w - lr * (m / (1 - beta1 ** step)) / (torch.sqrt(v / (1 - beta2 ** step)) + eps)
    return w, m, v


class UpdateTest(unittest.TestCase):
    def test_tiny_tensors_one_step(self):
        cfg = TrainConfig(lr=0.1, beta1=0.8, beta2=0.9, eps=1e-3, weight_decay=0.5, total_steps=1)
        params = {"w": torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)),
                  "l.bias": torch.nn.Parameter(torch.tensor([0.25, -1.0], dtype=torch.float64))}
        grads = {"w": torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64),
                 "l.bias": torch.tensor([1.0, -3.0], dtype=torch.float64)}
        expect = {n: adamw_by_hand(p.detach().clone(), grads[n], 0.0, 0.0, 1, 0.1, 0.8, 0.9, 1e-3,
                                   0.5 if n == "w" else 0.0)[0] for n, p in params.items()}
        opt = torch.optim.AdamW(param_groups(params, cfg), lr=0.1, betas=(0.8, 0.9), eps=1e-3)
        for n, p in params.items():
            p.grad = grads[n]
        opt.step()
        for n, p in params.items():
            torch.testing.assert_close(p.detach(), expect[n], rtol=1e-15, atol=1e-15)
        # By hand, element [0][0] of w: m = 0.1, v = 0.025, m^ = 0.5, v^ = 0.25.
        self.assertAlmostEqual(float(params["w"][0, 0]), 1.0 * 0.95 - 0.1 * 0.5 / (0.5 + 1e-3), places=14)

    def test_norm_weights_decay_only_when_asked(self):
        # By name, not rank: an untied [M, D] norm scale is not decayed, a
        # rank-1 weight that is neither a norm's nor a bias is.
        params = {"layers.0.attn.wq": torch.nn.Parameter(torch.zeros(2, 2)),
                  "layers.0.attn_norm.weight": torch.nn.Parameter(torch.zeros(3, 2)),
                  "final_norm.bias": torch.nn.Parameter(torch.zeros(2)),
                  "layers.0.ffn.bias": torch.nn.Parameter(torch.zeros(2)),
                  "layers.0.scale": torch.nn.Parameter(torch.zeros(2))}
        groups = param_groups(params, TrainConfig(lr=1.0, weight_decay=0.1))
        self.assertEqual([(len(g["params"]), g["weight_decay"]) for g in groups], [(2, 0.1), (3, 0.0)])
        self.assertIs(groups[1]["params"][0], params["layers.0.attn_norm.weight"])
        groups = param_groups(params, TrainConfig(lr=1.0, weight_decay=0.1, decay_norms_and_biases=True))
        self.assertEqual([(len(g["params"]), g["weight_decay"]) for g in groups], [(5, 0.1)])

    def test_two_steps_of_the_trainer_by_hand(self):
        # Accumulation (A = 2), clipping, rank-based decay, the schedule and
        # bias correction over two steps of a real model, against the update
        # written out on autograd gradients.
        model = config(norm={"kind": "layer", "bias": True})
        weights = random_weights(model, seed=4, std=0.3)
        tc = TrainConfig(lr=0.05, beta1=0.8, beta2=0.9, eps=1e-6, weight_decay=0.2, warmup_steps=1,
                         total_steps=3, decay="linear", final_lr_ratio=0.2, clip_grad_norm=0.5,
                         accumulation_steps=2)
        trainer = Trainer(model, weights, tc)
        w = {n: t.clone() for n, t in weights.items()}
        m = {n: torch.zeros_like(t) for n, t in w.items()}
        v = {n: torch.zeros_like(t) for n, t in w.items()}
        for step in (1, 2):
            ids, mod = random_tokens(model, 4, 6, seed=10 + step)
            record = trainer.step(ids, mod)
            g = {n: torch.zeros_like(t) for n, t in w.items()}
            totals = []
            for a in range(2):
                out, ga = run(model, w, ids[2 * a:2 * a + 2], mod[2 * a:2 * a + 2], grads=True)
                totals.append(float(out.total))
                for n in g:
                    g[n] += ga[n] / 2
            norm = math.sqrt(sum(float((t * t).sum()) for t in g.values()))
            self.assertAlmostEqual(record.grad_norm, norm, places=10)
            self.assertGreater(norm, 0.5)  # so that clipping acts
            self.assertAlmostEqual(record.total, sum(totals) / 2, places=12)
            lr = tc.lr_at(step)
            self.assertEqual(record.lr, lr)
            scale = min(1.0, 0.5 / (norm + 1e-6))
            for n in w:
                undecayed = n.endswith(("norm.weight", "norm.bias", ".bias"))
                decay = 0.0 if undecayed else 0.2
                w[n], m[n], v[n] = adamw_by_hand(w[n], g[n] * scale, m[n], v[n], step, lr, 0.8, 0.9, 1e-6, decay)
        for n, t in trainer.weights().items():
            torch.testing.assert_close(t, w[n], rtol=1e-12, atol=1e-12, msg=n)
        self.assertIn("layers.0.attn_norm.bias", w)  # norm weights were covered


class TrainCliTest(unittest.TestCase):
    def test_token_file_rows_train_and_write_weights(self):
        import contextlib
        import io
        import json
        from moma_reference import safetensors
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        model = os.path.join(d.name, "m.json")
        with open(model, "w") as f:
            json.dump(dict(tiny_dict(), format="moma-model/1"), f)
        cfg = config()
        weights = os.path.join(d.name, "w.st")
        safetensors.save(weights, random_weights(cfg, std=0.1, dtype=torch.float32))
        ids, mod = random_tokens(cfg, 6, 5, seed=3)
        seqs = [[{"modality": cfg.modalities[int(mm)].name, "tokens": [int(t)]} for t, mm in zip(r, rm)]
                for r, rm in zip(ids, mod)]
        data = os.path.join(d.name, "d.json")
        with open(data, "w") as f:
            json.dump({"format": "moma-tokens/1", "sequences": seqs}, f)
        tc = os.path.join(d.name, "c.json")
        with open(tc, "w") as f:
            json.dump(train_config(optimizer={"lr": 0.01}), f)
        out, err = io.StringIO(), io.StringIO()
        argv = ["train", model, "--weights", weights, "--train-config", tc, "--data", data, "--batch", "2",
                "--seq-len", "5", "--steps", "4", "--json", "--out-weights", os.path.join(d.name, "w2.st")]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            self.assertEqual(cli.main(argv), 0)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual([x["step"] for x in lines], [1, 2, 3, 4])
        self.assertEqual(sorted(lines[0]["loss"]), ["ce", "image", "text", "total"])
        trained = safetensors.load(os.path.join(d.name, "w2.st"))
        self.assertEqual(trained.metadata["format"], "moma-weights")
        self.assertFalse(torch.equal(trained.tensors["embed.weight"],
                                     safetensors.load(weights).tensors["embed.weight"]))
        # --seq-len must match the rows of a token file; nothing is written.
        err = io.StringIO()
        argv[argv.index("--seq-len") + 1] = "4"
        argv[-1] = os.path.join(d.name, "w3.st")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            self.assertEqual(cli.main(argv), 1)
        self.assertIn("but --seq-len is 4", err.getvalue())
        self.assertFalse(os.path.exists(argv[-1]))


if __name__ == "__main__":
    unittest.main()
