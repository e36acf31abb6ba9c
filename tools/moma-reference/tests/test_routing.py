"""Routing semantics: token choice, expert choice, plans, ties, MoD routing."""

import math
import unittest

import torch

from .helpers import config, ec_group, moe_ffn, random_weights, tc_group
from moma_reference import ops
from moma_reference.model import LossParts, Model


def moe_config(*groups, **kw):
    return config(ffn=moe_ffn(*groups, **kw))


def dense_mixture(x, modality, cfg, w, layer_index, gate_fn):
    """``sum_j gate_j(x) * expert_j(x)`` over the group of each token,
    computed without any routing plan."""
    f = cfg.layers[layer_index].ffn
    p = f"layers.{layer_index}.moe"
    out = torch.zeros_like(x)
    for g in f.groups:
        member = ops.group_members_mask(modality, g).unsqueeze(-1).to(x.dtype)
        logits = x @ w[f"{p}.router.{g.name}"]
        gates = gate_fn(logits)
        for j in range(g.experts):
            e = g.first_expert + j
            y = ops.ffn(x, w[f"{p}.w_in"][e], w[f"{p}.w_out"][e], f.activation)
            out = out + member * gates[:, j:j + 1] * y
    return out


class TokenChoiceTest(unittest.TestCase):
    def run_moe(self, cfg, w, x, modality):
        model = Model(cfg, w)
        layer = cfg.layers[0]
        return model._moe(layer, x.unsqueeze(0), modality.unsqueeze(0), LossParts())[0]

    def test_top_k_all_experts_renormalized_is_dense_mixture(self):
        for score in ("softmax", "sigmoid"):
            with self.subTest(score=score):
                cfg = moe_config(tc_group("text", 3, 3, score=score, renormalize=True),
                                 tc_group("image", 2, 2, score=score, renormalize=True))
                w = random_weights(cfg, seed=1)
                x = torch.randn(10, 8, dtype=torch.float64)
                modality = torch.tensor([0, 1, 1, 0, 0, 1, 0, 1, 0, 0])
                got = self.run_moe(cfg, w, x, modality)

                def gate_fn(logits):
                    s = torch.softmax(logits, -1) if score == "softmax" else torch.sigmoid(logits)
                    return s / s.sum(-1, keepdim=True)
                want = dense_mixture(x, modality, cfg, w, 0, gate_fn)
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

    def test_top_k_picks_largest_scores(self):
        logits = torch.tensor([[0.1, 0.9, 0.5, -1.0], [2.0, -2.0, 1.0, 3.0]], dtype=torch.float64)
        cfg = moe_config(tc_group("text", 4, 2))
        plan = ops.route(logits, torch.tensor([0, 0]), cfg.layers[0].ffn.groups)
        self.assertEqual(plan.expert_offsets.tolist(), [0, 1, 2, 3, 4])
        self.assertEqual(plan.slot_token.tolist(), [1, 0, 0, 1])  # e0: t1, e1: t0, e2: t0, e3: t1
        s = torch.softmax(logits, -1)
        torch.testing.assert_close(plan.slot_gate, torch.stack([s[1, 0], s[0, 1], s[0, 2], s[1, 3]]))


class ExpertChoiceTest(unittest.TestCase):
    def test_capacity_factor_one_gives_equal_load(self):
        cfg = moe_config(ec_group("text", 4, 1.0), ec_group("image", 3, 1.0))
        groups = cfg.layers[0].ffn.groups
        torch.manual_seed(0)
        for n_text, n_image in ((13, 9), (8, 3), (4, 2)):
            modality = torch.tensor([0] * n_text + [1] * n_image)[torch.randperm(n_text + n_image)]
            logits = torch.randn(n_text + n_image, 4, dtype=torch.float64)
            plan = ops.route(logits, modality, groups)
            loads = [plan.count(e) for e in range(7)]
            self.assertEqual(loads, [n_text // 4] * 4 + [n_image // 3] * 3)

    def test_capacity_factor_and_gates(self):
        cfg = moe_config(ec_group("text", 2, 1.5))
        logits = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 0.5], [-1.0, 3.0], [0.5, 0.4]], dtype=torch.float64)
        plan = ops.route(logits, torch.zeros(5, dtype=torch.int64), cfg.layers[0].ffn.groups)
        # k = floor(5 * 1.5 / 2) = 3 tokens per expert; a token can be picked twice.
        self.assertEqual(plan.expert_offsets.tolist(), [0, 3, 6])
        self.assertEqual(plan.slot_token.tolist(), [1, 2, 4, 0, 2, 3])  # ascending inside each expert
        torch.testing.assert_close(plan.slot_gate, torch.sigmoid(logits[[1, 2, 4, 0, 2, 3], [0, 0, 0, 1, 1, 1]]))

    def test_aux_selection(self):
        cfg = moe_config(ec_group("text", 2, 1.0), tc_group("image", 2, 1))
        groups = cfg.layers[0].ffn.groups
        logits = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
        modality = torch.tensor([0, 1, 0, 0])
        # Auxiliary-router logits: a token is taken where its logit is > 0
        # (0 itself, a probability of exactly 1/2, is not).
        aux = torch.tensor([[2.0, -1.5], [3.0, 3.0], [1e-9, 0.0], [-0.1, 0.7]], dtype=torch.float64)
        plan = ops.route(logits, modality, groups, aux)
        # Expert 0 takes tokens 0 and 2 (aux > 0), expert 1 takes token 3;
        # the token-choice image group ignores aux (token 1 takes expert 3).
        self.assertEqual(plan.expert_offsets.tolist(), [0, 2, 3, 3, 4])
        self.assertEqual(plan.slot_token.tolist(), [0, 2, 3, 1])


class TieBreakingTest(unittest.TestCase):
    def test_token_choice_ties_prefer_lower_expert(self):
        cfg = moe_config(tc_group("text", 4, 2, score="sigmoid"))
        logits = torch.tensor([[0.3, 0.7, 0.7, 0.7], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
        plan = ops.route(logits, torch.tensor([0, 0]), cfg.layers[0].ffn.groups)
        # token 0: experts 1 and 2 (tie among 1, 2, 3); token 1: experts 0 and 1.
        self.assertEqual(plan.expert_offsets.tolist(), [0, 1, 3, 4, 4])
        self.assertEqual(plan.slot_token.tolist(), [1, 0, 1, 0])

    def test_expert_choice_ties_prefer_lower_token(self):
        cfg = moe_config(ec_group("text", 2, 1.0), ec_group("image", 1, 0.5))
        modality = torch.tensor([1, 0, 0, 1, 0, 1, 0, 1])
        logits = torch.zeros(8, 2, dtype=torch.float64)
        logits[6, 1] = 1.0  # expert 1 prefers token 6, then ties
        plan = ops.route(logits, modality, cfg.layers[0].ffn.groups)
        # text tokens 1, 2, 4, 6: k = 2 each; image tokens 0, 3, 5, 7: k = floor(4 * 0.5) = 2.
        self.assertEqual(plan.expert_offsets.tolist(), [0, 2, 4, 6])
        self.assertEqual(plan.slot_token.tolist(), [1, 2, 1, 6, 0, 3])

    def test_depth_route_ties_prefer_lower_position(self):
        x = torch.zeros(2, 6, 4, dtype=torch.float64)
        x[1, 4] = 1.0
        w = torch.ones(4, 1, dtype=torch.float64)
        idx, gate = ops.depth_route(x, w, 0.5)
        self.assertEqual(idx.tolist(), [[0, 1, 2], [0, 1, 4]])
        torch.testing.assert_close(gate[1], torch.sigmoid(torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64)))

    def test_depth_route_by_aux_keeps_positive_logits(self):
        x = torch.randn(2, 5, 4, dtype=torch.float64)
        w = torch.randn(4, 1, dtype=torch.float64)
        aux = torch.tensor([[2.0, 0.0, -3.0, 1e-9, -1e-9], [-1.0] * 5], dtype=torch.float64).unsqueeze(-1)
        idx, gate = ops.depth_route(x, w, 0.5, aux)
        # K = L; positions with a positive logit, then -1 and gate 0.
        self.assertEqual(idx.tolist(), [[0, 3, -1, -1, -1], [-1] * 5])
        r = torch.sigmoid(x[0] @ w).squeeze(-1)
        torch.testing.assert_close(gate[0], torch.stack([r[0], r[3], *[r.new_zeros(())] * 3]))
        self.assertTrue(torch.equal(gate[1], torch.zeros(5, dtype=torch.float64)))


class AbsentModalityTest(unittest.TestCase):
    def test_group_without_tokens(self):
        cfg = moe_config(ec_group("text", 2), tc_group("image", 2, 1))
        plan = ops.route(torch.randn(5, 2, dtype=torch.float64), torch.zeros(5, dtype=torch.int64),
                         cfg.layers[0].ffn.groups)
        self.assertEqual(plan.expert_offsets.tolist(), [0, 2, 4, 4, 4])
        lb = ops.load_balancing_loss(torch.randn(5, 2), torch.zeros(5, dtype=torch.int64), plan,
                                     cfg.layers[0].ffn.groups)
        self.assertEqual(lb.item(), 0.0)

    def test_no_routed_tokens_at_all(self):
        cfg = moe_config(ec_group("image", 2))
        x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
        modality = torch.zeros(3, dtype=torch.int64)
        plan = ops.route(torch.zeros(3, 2, dtype=torch.float64), modality, cfg.layers[0].ffn.groups)
        self.assertEqual(plan.slot_token.numel(), 0)
        w = random_weights(cfg)
        ys = ops.experts(ops.dispatch(x, plan), plan, w["layers.0.moe.w_in"], w["layers.0.moe.w_out"], "swiglu")
        out = ops.combine(ys, plan, 3, residual=x)
        out.sum().backward()
        torch.testing.assert_close(x.grad, torch.ones_like(x))
        self.assertEqual(ops.router_z_loss(torch.zeros(3, 2), modality, cfg.layers[0].ffn.groups).item(), 0.0)

    def test_lone_modality_is_not_routed(self):
        # Tokens of a modality without a group get no FFN output (residual only).
        cfg = moe_config(ec_group("text", 2))
        w = random_weights(cfg)
        model = Model(cfg, w)
        x = torch.randn(1, 6, 8, dtype=torch.float64)
        modality = torch.tensor([[0, 1, 0, 1, 0, 0]])
        out = model._moe(cfg.layers[0], x, modality, LossParts())
        self.assertTrue(torch.equal(out[0, 1], torch.zeros(8, dtype=torch.float64)))
        self.assertTrue(torch.equal(out[0, 3], torch.zeros(8, dtype=torch.float64)))


class MasksAndLossesTest(unittest.TestCase):
    def test_route_mask(self):
        cfg = moe_config(ec_group("text", 2, 1.0), tc_group("image", 1, 1))
        modality = torch.tensor([0, 0, 1, 0])
        logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
        plan = ops.route(logits, modality, cfg.layers[0].ffn.groups)
        mask = ops.route_mask(plan, modality, cfg.layers[0].ffn.groups, 2)
        self.assertEqual(mask.tolist(), [[1, 0], [0, 1], [1, -1], [0, 0]])

    def test_load_balancing_uniform_is_one(self):
        cfg = moe_config(tc_group("text", 4, 1))
        logits = torch.zeros(8, 4, dtype=torch.float64)
        logits[torch.arange(8), torch.arange(8) % 4] = 1e-9  # token t prefers expert t % 4: balanced
        plan = ops.route(logits, torch.zeros(8, dtype=torch.int64), cfg.layers[0].ffn.groups)
        self.assertEqual([plan.count(e) for e in range(4)], [2, 2, 2, 2])
        lb = ops.load_balancing_loss(logits, torch.zeros(8, dtype=torch.int64), plan, cfg.layers[0].ffn.groups)
        self.assertAlmostEqual(lb.item(), 1.0, places=6)

    def test_aux_router_loss_and_cross_entropy(self):
        # The loss reads logits: z = logit(p) for p = 0.9, 0.2, (ignored), 0.5.
        p = torch.tensor([[0.9, 0.2], [0.3, 0.5]], dtype=torch.float64)
        z = torch.log(p / (1 - p))
        t = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
        want = -(math.log(0.9) + math.log(0.8) + math.log(0.5)) / 3
        self.assertAlmostEqual(ops.aux_router_loss(z, t).item(), want, places=12)
        self.assertEqual(ops.aux_router_loss(z, -torch.ones(2, 2)).item(), 0.0)
        logits = torch.randn(1, 3, 5, dtype=torch.float64)
        per, total, counts = ops.cross_entropy(logits, torch.tensor([[2, 4, -1]]), torch.tensor([[1, 1, -1]]), 3)
        self.assertEqual(counts, [0, 2, 0])
        self.assertEqual(per[0].item(), 0.0)
        ls = torch.log_softmax(logits[0], -1)
        self.assertAlmostEqual(per[1].item(), -(ls[0, 2] + ls[1, 4]).item() / 2)
        self.assertAlmostEqual(total.item(), per[1].item())

    def test_aux_router_loss_is_stable_for_saturated_logits(self):
        # Saturated routers in f32 against float64 max(z, 0) - t z +
        # log1p(exp(-|z|)). Confidently wrong entries cost |z|: the clamped
        # probability of the old form gave -log(1.2e-7) = 15.9 for z = 100.
        # Confidently right entries cost ~exp(-|z|): the old form gave
        # -log(1 - 6e-8) = 6e-8 (torch 1.13 rounds log(1 + exp(-|z|)) to 0).
        z = torch.tensor([30.0, -30.0, 100.0, -100.0, 30.0, -100.0, 0.5], dtype=torch.float64)
        t = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, -1.0], dtype=torch.float64)
        terms = z.clamp(min=0) - t * z + torch.log1p(torch.exp(-z.abs()))
        wrong = torch.tensor([0, 1, 4, 5, 6])
        want = terms[wrong][:4].mean().item()  # 65
        got = ops.aux_router_loss(z[wrong].float(), t[wrong].float()).item()
        self.assertAlmostEqual(got / want, 1.0, delta=1e-6, msg=(got, want))
        right = torch.tensor([0, 1, 2, 3, 6])
        got = ops.aux_router_loss(z[right].float(), t[right].float()).item()
        self.assertAlmostEqual(got, terms[right][:4].mean().item(), delta=1e-12)

if __name__ == "__main__":
    unittest.main()
