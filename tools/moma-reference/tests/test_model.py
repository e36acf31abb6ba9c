"""Whole-model semantics: mixture-of-depths, untying, attention, gradients."""

import dataclasses
import math
import os
import unittest

import torch
from torch.autograd import gradcheck

from .helpers import EXAMPLES, config, ec_group, moe_ffn, random_tokens, random_weights, tc_group
from moma_reference import ops
from moma_reference.config import load_model
from moma_reference.model import NARROW_DTYPES, LossParts, MixedPrecisionOps, Model, run
from moma_reference.tokens import load_tokens
from moma_reference.weights import weight_specs

def without_aux_loss(cfg):
    """``cfg`` with the aux-router loss weight set to 0."""
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, aux_router=0.0))


TINY = ["tiny-dense", "tiny-moma-t4i4", "tiny-moma-mod", "tiny-mot", "tiny-uni-moe-top2", "tiny-hybrid"]
SPEECH = {"tiny-mot", "tiny-uni-moe-top2"}


def example(name):
    cfg = load_model(os.path.join(EXAMPLES, name + ".json"))
    tokens = "sample-tokens-speech.json" if name in SPEECH else "sample-tokens.json"
    ids, modality = load_tokens(os.path.join(EXAMPLES, tokens), cfg).tensors()
    return cfg, ids, modality


def naive_attention(x, positions, wq, wk, wv, wo, H, G, d, theta, causal):
    """Attention written with explicit loops, straight from Semantics.md."""
    B, L, _ = x.shape
    q = (x @ wq).reshape(B, L, H, d)
    k = (x @ wk).reshape(B, L, G, d)
    v = (x @ wv).reshape(B, L, G, d)

    def rot(vec, p):
        out = vec.clone()
        for i in range(d // 2):
            a = p * theta ** (-2.0 * i / d)
            c, s = math.cos(a), math.sin(a)
            out[i] = vec[i] * c - vec[i + d // 2] * s
            out[i + d // 2] = vec[i + d // 2] * c + vec[i] * s
        return out

    o = torch.zeros(B, L, H, d, dtype=x.dtype)
    for b in range(B):
        for i in range(L):
            for h in range(H):
                g = h // (H // G)
                qi = rot(q[b, i, h], int(positions[b, i])) if theta > 0 else q[b, i, h]
                scores, values = [], []
                for j in range(L):
                    pj, pi = int(positions[b, j]), int(positions[b, i])
                    if pj < 0 or (causal and pj > pi):
                        continue
                    kj = rot(k[b, j, g], pj) if theta > 0 else k[b, j, g]
                    scores.append(torch.dot(qi, kj) / math.sqrt(d))
                    values.append(v[b, j, g])
                p = torch.softmax(torch.stack(scores), 0)
                o[b, i, h] = sum(pk * vk for pk, vk in zip(p, values))
    return o.reshape(B, L, H * d) @ wo


class AttentionTest(unittest.TestCase):
    def test_matches_naive_loops(self):
        torch.manual_seed(0)
        B, L, D, H, G, d = 2, 5, 6, 4, 2, 4
        x = torch.randn(B, L, D, dtype=torch.float64)
        wq, wk, wv = (torch.randn(D, H * d, dtype=torch.float64), torch.randn(D, G * d, dtype=torch.float64),
                      torch.randn(D, G * d, dtype=torch.float64))
        wo = torch.randn(H * d, D, dtype=torch.float64)
        positions = torch.tensor([[0, 1, 2, 3, 4], [3, 5, 6, 9, 12]])
        for theta, causal in ((10000.0, True), (0.0, False), (500.0, False)):
            got = ops.attention(x, positions, wq, wk, wv, wo, H, G, d, theta, causal)
            want = naive_attention(x, positions, wq, wk, wv, wo, H, G, d, theta, causal)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)

    def test_padding_keys_invisible(self):
        torch.manual_seed(1)
        x = torch.randn(1, 4, 4, dtype=torch.float64)
        w = [torch.randn(4, 4, dtype=torch.float64) for _ in range(4)]
        pos = torch.tensor([[0, 2, -1, -1]])
        out = ops.attention(x, pos, *w, 2, 2, 2, 10000.0, True)
        x2 = x.clone()
        x2[0, 2:] = 1e3  # padding rows must not influence real rows
        out2 = ops.attention(x2, pos, *w, 2, 2, 2, 10000.0, True)
        torch.testing.assert_close(out[0, :2], out2[0, :2])
        self.assertTrue(torch.isfinite(out).all())

    def test_dense_model_is_causal(self):
        cfg, ids, modality = example("tiny-dense")
        w = random_weights(cfg)
        a = run(cfg, w, ids, modality)[0].logits
        ids2 = ids.clone()
        ids2[:, 10] = (ids2[:, 10] + 1) % 64
        b = run(cfg, w, ids2, modality)[0].logits
        torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=0)
        self.assertFalse(torch.allclose(a[:, 10:], b[:, 10:]))


class MixtureOfDepthsTest(unittest.TestCase):
    def pair(self, gated, capacity=1.0):
        ffn = moe_ffn(ec_group("text", 2), tc_group("image", 2, 1))
        plain = config(ffn=ffn)
        mod = config(ffn=ffn, mod={"layers": [1], "capacity": capacity, "gated": gated})
        w = random_weights(mod, seed=3)
        w_plain = {k: v for k, v in w.items() if ".mod." not in k}
        ids, modality = random_tokens(plain, 2, 7, seed=4)
        return plain, mod, w, w_plain, ids, modality

    def test_capacity_one_without_gate_equals_plain_block(self):
        plain, mod, w, w_plain, ids, modality = self.pair(gated=False)
        a = run(plain, w_plain, ids, modality)[0]
        b = run(mod, w, ids, modality)[0]
        torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=1e-13)
        torch.testing.assert_close(a.total, b.total, rtol=0, atol=1e-13)

    def test_capacity_one_with_gate_scales_residual_branch(self):
        plain, mod, w, w_plain, ids, modality = self.pair(gated=True)
        model = Model(mod, w)
        x = torch.randn(2, 7, 8, dtype=torch.float64)
        y = model.layer(mod.layers[1], x, modality, None, LossParts())
        positions = torch.arange(7).unsqueeze(0).expand(2, 7)
        block = model.block(mod.layers[1], x, modality, positions, LossParts())
        r = torch.sigmoid(x @ w["layers.1.mod.router"])
        torch.testing.assert_close(y, x + r * (block - x))

    def test_only_selected_positions_change(self):
        _, mod, w, _, _, modality = self.pair(gated=True, capacity=0.5)
        model = Model(mod, w)
        x = torch.randn(2, 7, 8, dtype=torch.float64)
        y = model.layer(mod.layers[1], x, modality, None, LossParts())
        idx, _ = ops.depth_route(x, w["layers.1.mod.router"], 0.5)
        self.assertEqual(idx.shape, (2, 3))  # floor(7 * 0.5)
        for b in range(2):
            for l in range(7):
                same = torch.equal(y[b, l], x[b, l])
                self.assertEqual(same, l not in idx[b].tolist())

    def test_aux_routing_runs_block_on_kept_positions(self):
        cfg = config(ffn=moe_ffn(ec_group("text", 2), ec_group("image", 2)),
                     mod={"layers": [0], "capacity": 0.5, "gated": True}, aux_routers={"enabled": True})
        w = random_weights(cfg, seed=5)
        x = torch.randn(1, 6, 8, dtype=torch.float64)
        modality = torch.tensor([[0, 1, 0, 0, 1, 1]])
        p = w["layers.0.mod.aux.w1"], w["layers.0.mod.aux.w2"]
        kept = (ops.aux_router(x, *p)[0, :, 0] > 0).nonzero().flatten()  # logits
        self.assertTrue(0 < kept.numel() < 6, "seed should keep some, not all, positions")
        model = Model(cfg, w, routing="aux")
        y = model.layer(cfg.layers[0], x, modality, None, LossParts())
        # Same as running the block on the kept positions alone (padding rows
        # of the region must not influence them).
        sub = model.block(cfg.layers[0], x[:, kept], modality[:, kept], kept.unsqueeze(0), LossParts())
        r = torch.sigmoid(x[:, kept] @ w["layers.0.mod.router"])
        torch.testing.assert_close(y[:, kept], x[:, kept] + r * (sub - x[:, kept]))
        rest = [l for l in range(6) if l not in kept.tolist()]
        self.assertTrue(torch.equal(y[:, rest], x[:, rest]))


class UntiedTest(unittest.TestCase):
    def test_identical_slices_equal_tied(self):
        for placement, kind in (("pre", "layer"), ("post", "rms")):
            with self.subTest(placement=placement):
                norm = {"kind": kind, "placement": placement}
                tied = config(norm=norm)
                untied = config(norm=norm, untie={"attention": True, "ffn": True, "norms": True})
                w = random_weights(tied, seed=6)
                M = 2
                wu = {}
                for spec in weight_specs(untied):
                    t = w[spec.name]
                    wu[spec.name] = t.unsqueeze(0).expand((M,) + t.shape).clone() if spec.shape != t.shape else t
                ids, modality = random_tokens(tied, 2, 6, seed=7)
                a, ga = run(tied, w, ids, modality, grads=True)
                b, gb = run(untied, wu, ids, modality, grads=True)
                torch.testing.assert_close(a.logits, b.logits, rtol=1e-12, atol=1e-12)
                for name, g in ga.items():
                    got = gb[name].sum(0) if gb[name].shape != g.shape else gb[name]
                    torch.testing.assert_close(got, g, rtol=1e-10, atol=1e-12, msg=name)

    def test_untied_slices_are_used_per_modality(self):
        cfg = config(untie={"attention": True, "ffn": True, "norms": True})
        w = random_weights(cfg, seed=8)
        ids, modality = random_tokens(cfg, 1, 6, seed=9)
        _, g = run(cfg, w, ids, modality, grads=True)
        only_text = modality.clone().fill_(0)
        ids_text = ids % 16
        _, g_text = run(cfg, w, ids_text, only_text, grads=True)
        self.assertTrue(torch.equal(g_text["layers.0.ffn.w_in"][1], torch.zeros_like(g_text["layers.0.ffn.w_in"][1])))
        self.assertGreater(g["layers.0.ffn.w_in"][1].abs().sum().item(), 0)


class UngroupedModalityTest(unittest.TestCase):
    """A modality without a group in an MoE layer gets no FFN output
    (examples/README.md, "Expert groups"): pre-norm, only the residual
    (y = a); post-norm, the FFN norm of a zero FFN output, which is its bias
    for layer norm with a bias (y = a + ffn_norm.bias)."""

    def check(self, placement, kind, bias):
        cfg = config(norm={"kind": kind, "placement": placement, "bias": bias},
                     ffn=moe_ffn(ec_group("text", 2)))
        w = random_weights(cfg, seed=5)
        model = Model(cfg, w)
        layer = cfg.layers[0]
        ids, modality = random_tokens(cfg, 2, 7, seed=6)
        self.assertTrue(bool((modality == 1).any()) and bool((modality == 0).any()))
        x = torch.randn(2, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
        positions = torch.arange(7).unsqueeze(0).expand(2, 7)
        y = model.block(layer, x, modality, positions, LossParts())
        attention = model._attention(layer, x if placement == "post" else
                                     model._norm("layers.0.attn_norm", x, modality), modality, positions)
        a = x + (model._norm("layers.0.attn_norm", attention, modality) if placement == "post" else attention)
        image = modality == 1
        expected = a[image]
        if placement == "post" and bias:
            expected = expected + w["layers.0.ffn_norm.bias"]
        torch.testing.assert_close(y[image], expected, rtol=0, atol=1e-12)
        self.assertFalse(torch.allclose(y[~image], a[~image]))  # text tokens do get an FFN output
        return w

    def test_pre_norm_only_residual(self):
        self.check("pre", "layer", True)
        self.check("pre", "rms", False)

    def test_post_norm_adds_ffn_norm_bias(self):
        w = self.check("post", "layer", True)
        self.assertGreater(float(w["layers.0.ffn_norm.bias"].abs().min()), 0)

    def test_post_norm_without_bias_only_residual(self):
        self.check("post", "layer", False)
        self.check("post", "rms", False)


class AbsentModalityModelTest(unittest.TestCase):
    def test_batch_without_image_tokens(self):
        cfg, _, _ = example("tiny-moma-t4i4")
        w = random_weights(cfg, seed=2, std=0.2)
        ids = torch.tensor([[1, 5, 9, 3, 7, 2, 8, 4]])
        modality = torch.zeros_like(ids)
        out, grads = run(cfg, w, ids, modality, grads=True)
        self.assertEqual(out.ce_counts, [7, 0])
        self.assertEqual(out.ce[1].item(), 0.0)
        self.assertTrue(all(torch.isfinite(g).all() for g in grads.values()))
        image_experts = grads["layers.0.moe.w_in"][4:]
        self.assertEqual(image_experts.abs().sum().item(), 0.0)
        self.assertEqual(grads["layers.0.moe.router.image"].abs().sum().item(), 0.0)


class GradientTest(unittest.TestCase):
    """torch.autograd.gradcheck (float64) on the ops and on a tiny model."""

    def test_gradcheck_pieces(self):
        torch.manual_seed(0)
        d = torch.float64

        def r(*shape):
            return torch.randn(*shape, dtype=d, requires_grad=True)

        pos = torch.tensor([[0, 1, 2, 3], [0, 2, 4, -1]])
        self.assertTrue(gradcheck(lambda x, q, k, v, o: ops.attention(x, pos, q, k, v, o, 2, 1, 2, 100.0, True),
                                  (r(2, 4, 4), r(4, 4), r(4, 2), r(4, 2), r(4, 4))))
        modality = torch.tensor([[0, 1, 1, -1]])
        self.assertTrue(gradcheck(lambda x, q, k, v, o: ops.attention(x, pos[:1], q, k, v, o, 2, 2, 2, 0.0, False,
                                                                      modality),
                                  (r(1, 4, 4), r(2, 4, 4), r(2, 4, 4), r(2, 4, 4), r(2, 4, 4))))
        for kind in ("rms", "layer"):
            self.assertTrue(gradcheck(lambda x, w, b: ops.norm(x, w, b, kind, 1e-5, modality),
                                      (r(1, 4, 5), r(2, 5), r(2, 5))))
        self.assertTrue(gradcheck(lambda x, wi, wo, a, b, a2, b2: ops.ffn(x, wi, wo, "swiglu", (a, b, 0.5),
                                                                          (a2, b2, 0.5)),
                                  (r(3, 4), r(4, 6), r(3, 4), r(4, 2), r(2, 6), r(3, 2), r(2, 4))))
        self.assertTrue(gradcheck(lambda x, wi, wo: ops.ffn(x, wi, wo, "gelu"), (r(3, 4), r(4, 3), r(3, 4))))
        self.assertTrue(gradcheck(lambda x, w1, w2: ops.aux_router(x, w1, w2), (r(3, 4), r(4, 2), r(2, 3))))
        self.assertTrue(gradcheck(lambda lg: ops.cross_entropy(lg, torch.tensor([[1, 2, -1]]),
                                                               torch.tensor([[0, 1, -1]]), 2)[1], (r(1, 3, 4),)))

    def test_gradcheck_routing_and_depth(self):
        torch.manual_seed(1)
        cfg = config(ffn=moe_ffn(tc_group("text", 3, 2, renormalize=True), ec_group("image", 2, 1.5)))
        groups = cfg.layers[0].ffn.groups
        modality = torch.tensor([0, 1, 0, 1, 1, 0])
        ys = torch.randn(1, 4, dtype=torch.float64)

        def moe_out(logits, x):
            plan = ops.route(logits, modality, groups)
            y = ops.combine(ops.dispatch(x, plan) * 2.0 + ys, plan, 6, residual=x)
            lb = ops.load_balancing_loss(logits, modality, plan, groups)
            z = ops.router_z_loss(logits, modality, groups)
            return y, lb, z

        logits = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
        x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
        self.assertTrue(gradcheck(moe_out, (logits, x)))

        m2 = torch.tensor([[0, 1, 0, 1, 1]])

        def region(x, w):
            idx, gate = ops.depth_route(x, w, 0.6)
            return ops.depth_region(x, m2, idx, gate, lambda xs, ms, ps: torch.tanh(xs) * 3.0)

        self.assertTrue(gradcheck(region, (torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True),
                                           torch.randn(3, 1, dtype=torch.float64, requires_grad=True))))

    def test_gradcheck_tiny_model(self):
        cfg = config(ffn=moe_ffn(tc_group("text", 2, 1, score="sigmoid"), ec_group("image", 2, 1.0)),
                     mod={"layers": [1], "capacity": 0.75}, norm={"placement": "post"},
                     aux_routers={"enabled": True}, loss={"load_balancing": 0.1, "router_z": 0.01})
        w = random_weights(cfg, seed=11)
        ids, modality = random_tokens(cfg, 2, 5, seed=12)
        # The auxiliary routers read their input through a stop-gradient, so
        # the main weights are checked against the objective without the aux
        # term, and the aux weights against the aux term alone.
        main_cfg = without_aux_loss(cfg)
        main = ["layers.0.moe.router.text", "layers.1.moe.router.image", "layers.1.mod.router",
                "layers.1.attn.wk", "layers.0.ffn_norm.weight", "lm_head.weight"]
        aux = ["layers.1.moe.aux.image.w2", "layers.1.mod.aux.w1"]

        def objective(model_cfg, names, pick):
            def f(*tensors):
                return pick(Model(model_cfg, dict(w, **dict(zip(names, tensors)))).forward(ids, modality))
            return f

        for model_cfg, names, pick in ((main_cfg, main, lambda o: o.total), (cfg, aux, lambda o: o.aux_router)):
            inputs = tuple(w[n].clone().requires_grad_(True) for n in names)
            self.assertTrue(gradcheck(objective(model_cfg, names, pick), inputs, eps=1e-6, atol=1e-6, rtol=1e-5))

    def test_directional_derivative_every_example(self):
        # <grad, v> equals the central difference of the objective along a
        # random direction v, for every tiny example: over all weights with
        # the aux-router term left out, and over the aux-router weights alone
        # with it (the aux routers' input is a stop-gradient).
        for name in TINY:
            for aux_only in (False, True):
                cfg, ids, modality = example(name)
                if not aux_only:
                    cfg = without_aux_loss(cfg)
                elif not cfg.aux_routers.enabled:
                    continue
                with self.subTest(model=name, aux_only=aux_only):
                    w = random_weights(cfg, seed=13, std=0.3)
                    out, grads = run(cfg, w, ids, modality, grads=True)
                    g = torch.Generator().manual_seed(14)
                    v = {n: torch.randn(t.shape, generator=g, dtype=torch.float64) * ((".aux." in n) or not aux_only)
                         for n, t in w.items()}
                    h = 1e-6
                    plus = run(cfg, {n: t + h * v[n] for n, t in w.items()}, ids, modality)[0].total
                    minus = run(cfg, {n: t - h * v[n] for n, t in w.items()}, ids, modality)[0].total
                    numeric = ((plus - minus) / (2 * h)).item()
                    analytic = sum((grads[n] * v[n]).sum() for n in w).item()
                    self.assertNotEqual(analytic, 0.0)
                    self.assertAlmostEqual(analytic, numeric, delta=1e-6 * max(1.0, abs(numeric)))


class PrecisionTest(unittest.TestCase):
    def test_f32_close_to_f64(self):
        for name in TINY:
            with self.subTest(model=name):
                cfg, ids, modality = example(name)
                w64 = random_weights(cfg, seed=15, std=0.2)
                w32 = {n: t.float() for n, t in w64.items()}
                a, ga = run(cfg, w64, ids, modality, grads=True)
                b, gb = run(cfg, w32, ids, modality, grads=True)
                self.assertEqual(b.total.dtype, torch.float32)
                self.assertAlmostEqual(a.total.item(), b.total.item(), delta=1e-4)
                torch.testing.assert_close(gb["embed.weight"].double(), ga["embed.weight"], rtol=1e-3, atol=1e-5)

    def test_narrow_ops_compute_in_f32_and_round_once(self):
        """bf16/f16 (Semantics.md "Precision"): an op reads its stored
        operands as f32, computes in f32 and rounds each float result once;
        value-moving ops keep the stored type."""
        g = torch.Generator().manual_seed(4)
        x = torch.randn(3, 5, 16, generator=g)
        w = torch.randn(16, 24, generator=g)
        for dtype in NARROW_DTYPES:
            with self.subTest(dtype=dtype):
                mixed = MixedPrecisionOps(dtype)
                xs, ws = x.to(dtype), w.to(dtype)
                y = mixed.linear(xs, ws)
                self.assertEqual(y.dtype, dtype)
                self.assertTrue(torch.equal(y, (xs.float() @ ws.float()).to(dtype)))
                n = mixed.norm(xs, ws[:, 0], None, "rms", 1e-5)
                ref = ops.norm(xs.float(), ws[:, 0].float(), None, "rms", 1e-5).to(dtype)
                self.assertTrue(torch.equal(n, ref))
                self.assertIs(mixed.embed, ops.embed)

    def test_narrow_model_stores_narrow_results(self):
        for dtype in NARROW_DTYPES:
            with self.subTest(dtype=dtype):
                cfg, ids, modality = example("tiny-moma-mod")
                w = {n: t.to(dtype) for n, t in random_weights(cfg, seed=15, std=0.2).items()}
                wide = {n: t.float() for n, t in w.items()}
                a, _ = run(cfg, w, ids, modality)
                b, _ = run(cfg, wide, ids, modality)
                self.assertEqual(a.logits.dtype, dtype)
                self.assertEqual(a.total.dtype, dtype)
                # Close to the f32 model on the same weights, but rounded.
                self.assertAlmostEqual(a.total.item(), b.total.item(), delta=0.1)
                self.assertFalse(torch.equal(a.logits.float(), b.logits))


if __name__ == "__main__":
    unittest.main()
