"""Model-definition format: defaults, layer expansion, validation errors."""

import glob
import json
import os
import unittest

from .helpers import EXAMPLES, ec_group, moe_ffn, tc_group, tiny_dict
from moma_reference.config import load_model, parse_model
from moma_reference.errors import ConfigError
from moma_reference.weights import parameter_count


#: assertConfigError's default: the source is not checked.
ANY_SOURCE = object()


class ErrorCase(unittest.TestCase):
    def assertConfigError(self, value, message, source=ANY_SOURCE):
        """``value`` must be rejected with exactly ``message`` (``path: rule``)
        and, unless ``source`` is ANY_SOURCE, that source (None: none)."""
        with self.assertRaises(ConfigError) as ctx:
            parse_model(value, "m.json")
        err = ctx.exception
        self.assertEqual(f"{err.path}: {err.rule}", message)
        self.assertTrue(str(err).startswith("m.json: " + message), str(err))
        if source is not ANY_SOURCE:
            self.assertEqual(err.source, source)
            if source is None:
                self.assertNotIn("(value from", str(err))
        return err


class DefaultsTest(unittest.TestCase):
    def test_defaults_filled_in(self):
        cfg = parse_model(tiny_dict())
        self.assertEqual(cfg.norm.kind, "rms")
        self.assertEqual(cfg.norm.placement, "pre")
        self.assertEqual(cfg.norm.eps, 1e-5)
        self.assertTrue(cfg.norm.final)
        self.assertFalse(cfg.norm.bias)
        self.assertEqual(cfg.dtype, "f32")
        self.assertFalse(cfg.tie_embeddings)
        self.assertEqual(cfg.init_std, 0.02)
        self.assertEqual(cfg.aux_routers.hidden, 4)  # d_model // 2
        self.assertEqual(cfg.mod.layers, ())
        a = cfg.layers[1].attention
        self.assertEqual((a.heads, a.kv_heads, a.head_dim, a.causal), (2, 1, 4, True))

    def test_group_defaults(self):
        cfg = parse_model(tiny_dict(ffn=moe_ffn({"modality": "text", "experts": 2, "routing": "expert_choice"},
                                                {"modality": "image", "experts": 3, "routing": "token_choice"})))
        text, image = cfg.layers[0].ffn.groups
        self.assertEqual((text.capacity_factor, text.score, text.renormalize, text.first_expert),
                         (1.0, "sigmoid", False, 0))
        self.assertEqual((image.top_k, image.score, image.first_expert), (1, "softmax", 2))
        self.assertEqual(cfg.layers[0].ffn.num_experts, 5)
        self.assertEqual(cfg.layers[0].ffn.lora.rank, 0)

    def test_layer_norm_bias_default(self):
        cfg = parse_model(tiny_dict(norm={"kind": "layer"}))
        self.assertTrue(cfg.norm.bias)


class ExpansionTest(ErrorCase):
    def test_overrides_merge_patch(self):
        value = tiny_dict(num_layers=6, ffn=moe_ffn(ec_group("text", 2), ec_group("image", 2)))
        value["layer_overrides"] = [
            {"layers": {"start": 0, "step": 3}, "ffn": {"kind": "dense", "groups": None, "hidden": 20}},
            {"layers": [4], "attention": {"heads": 4}},
            {"layers": [3], "ffn": {"hidden": 30}},
        ]
        cfg = parse_model(value)
        kinds = [layer.ffn.kind for layer in cfg.layers]
        self.assertEqual(kinds, ["dense", "moe", "moe", "dense", "moe", "moe"])
        self.assertEqual(cfg.layers[0].ffn.hidden, 20)
        self.assertEqual(cfg.layers[3].ffn.hidden, 30)   # later override wins
        self.assertEqual(cfg.layers[3].ffn.activation, "swiglu")  # inherited from `layer`
        self.assertEqual(cfg.layers[4].attention.heads, 4)
        self.assertEqual(cfg.layers[4].attention.kv_heads, 1)  # merged: kv_heads kept from `layer`
        self.assertEqual(cfg.layers[4].attention.head_dim, 2)  # d_model / heads
        self.assertEqual(cfg.layers[1].attention.heads, 2)

    def test_mod_layers(self):
        cfg = parse_model(tiny_dict(num_layers=5, mod={"layers": {"start": 0, "step": 2}}))
        self.assertEqual([layer.mod for layer in cfg.layers], [True, False, True, False, True])
        self.assertEqual(cfg.mod.capacity, 0.25)
        self.assertTrue(cfg.mod.gated)

    def test_error_path_names_effective_layer_and_origin(self):
        value = tiny_dict(num_layers=4, ffn=moe_ffn(ec_group("text", 2), ec_group("image", 2)))
        value["layer_overrides"] = [{"layers": [3], "ffn": {"groups": [ec_group("text", 2), ec_group("image", 0)]}}]
        err = self.assertConfigError(value, "layers[3].ffn.groups[1].experts: must be >= 1",
                                     source="layer_overrides[0].ffn.groups[1].experts")
        self.assertIn("(value from layer_overrides[0].ffn.groups[1].experts)", str(err))

    def test_error_in_default_layer_reported_at_layer_0(self):
        value = tiny_dict(ffn=moe_ffn(ec_group("text", 2), ec_group("image", 2, capacity=3.0)))
        self.assertConfigError(value, "layers[0].ffn.groups[1].capacity_factor: must be <= 2",
                               source="layer.ffn.groups[1].capacity_factor")

    def test_missing_key_source(self):
        # A value the file did not write has no source: a missing key, a
        # head_dim derived from d_model / heads, a missing group name.
        value = tiny_dict(ffn={"kind": "dense"})
        self.assertConfigError(value, "layers[0].ffn.hidden: required", source=None)
        value = tiny_dict(d_model=12, attention={"heads": 4})
        self.assertConfigError(value, "layers[0].attention.head_dim: must be even when rope_theta > 0 (is 3)",
                               source=None)
        value = tiny_dict(attention={"heads": 4, "head_dim": 3})
        self.assertConfigError(value, "layers[0].attention.head_dim: must be even when rope_theta > 0 (is 3)",
                               source="layer.attention.head_dim")
        group = {"modalities": ["text", "image"], "experts": 2, "routing": "token_choice"}
        self.assertConfigError(tiny_dict(ffn=moe_ffn(group)),
                               "layers[0].ffn.groups[0].name: required for a group of several modalities",
                               source=None)
        value = tiny_dict(layer_overrides=[{"layers": [1], "attention": {"heads": None}}])
        self.assertConfigError(value, "layers[1].attention.heads: required", source=None)

    def test_expand_round_trip_shape(self):
        cfg = load_model(os.path.join(EXAMPLES, "tiny-hybrid.json"))
        expanded = cfg.to_json()
        self.assertEqual(len(expanded["layers"]), 2)
        self.assertEqual(expanded["layers"][0]["ffn"]["kind"], "dense")
        self.assertEqual(expanded["layers"][1]["ffn"]["groups"][1]["capacity_factor"], 2.0)
        self.assertTrue(expanded["layers"][1]["mod"])
        json.dumps(expanded)  # serialisable


class ValidationErrorsTest(ErrorCase):
    def test_top_level(self):
        v = tiny_dict()
        del v["vocab_size"]
        self.assertConfigError(v, "vocab_size: required")
        self.assertConfigError(tiny_dict(d_model=0), "d_model: must be >= 1")
        self.assertConfigError(tiny_dict(d_model=8.0), "d_model: must be an integer, not a number")
        self.assertConfigError(tiny_dict(num_layers=True), "num_layers: must be an integer, not a boolean")
        self.assertConfigError(tiny_dict(dtype="f8"), 'dtype: must be one of f32 | bf16 | f16 | f64, not "f8"')
        self.assertConfigError(tiny_dict(vocab_sise=3), "vocab_sise: unknown key (expected one of: "
                               "format, name, source, description, vocab_size, modalities, d_model, num_layers, "
                               "norm, untie, mod, aux_routers, loss, dtype, tie_embeddings, init_std, layer, "
                               "layer_overrides)")
        self.assertConfigError(tiny_dict(format="moma-model/2"),
                               'format: unsupported format "moma-model/2" (this reader knows "moma-model/1")')
        with self.assertRaises(ConfigError) as ctx:
            parse_model([], "m.json")
        self.assertEqual(str(ctx.exception), "m.json: must be an object, not a list")

    def test_modalities(self):
        mods = [{"name": "text", "tokens": [0, 16]}, {"name": "image", "tokens": [8, 32]}]
        self.assertConfigError(tiny_dict(modalities=mods),
                               'modalities[1].tokens: range [8, 32) overlaps modalities[0] ("text": [0, 16))')
        mods = [{"name": "text", "tokens": [0, 40]}]
        self.assertConfigError(tiny_dict(modalities=mods),
                               "modalities[0].tokens: range [0, 40) must be non-empty and inside the vocabulary [0, 32)")
        mods = [{"name": "text", "tokens": [0, 16]}, {"name": "text", "tokens": [16, 32]}]
        self.assertConfigError(tiny_dict(modalities=mods),
                               'modalities[1].name: duplicate modality name "text" (also modalities[0])')
        self.assertConfigError(tiny_dict(modalities=[]), "modalities: must have at least 1 entry")
        mods = [{"name": "text", "tokens": [3]}]
        self.assertConfigError(tiny_dict(modalities=mods),
                               "modalities[0].tokens: must be [begin, end]: two integers, the half-open range of token ids")

    def test_attention(self):
        self.assertConfigError(tiny_dict(attention={"heads": 3}),
                               "layers[0].attention.head_dim: required because d_model (8) is not divisible by heads (3)")
        self.assertConfigError(tiny_dict(attention={"heads": 4, "kv_heads": 3}),
                               "layers[0].attention.kv_heads: must divide heads (4)")
        self.assertConfigError(tiny_dict(attention={"heads": 1, "head_dim": 3}),
                               "layers[0].attention.head_dim: must be even when rope_theta > 0 (is 3)")
        parse_model(tiny_dict(attention={"heads": 1, "head_dim": 3, "rope_theta": 0}))
        self.assertConfigError(tiny_dict(attention={"heads": 2, "rope_theta": -1}),
                               "layers[0].attention.rope_theta: must be >= 0")

    def test_norm_and_untie(self):
        self.assertConfigError(tiny_dict(norm={"kind": "rms", "bias": True}),
                               'norm.bias: only layer norm has a bias (kind is "rms")')
        self.assertConfigError(tiny_dict(norm={"placement": "middle"}),
                               'norm.placement: must be one of pre | post, not "middle"')
        self.assertConfigError(tiny_dict(norm={"eps": 0}), "norm.eps: must be > 0")
        value = tiny_dict(untie={"ffn": True}, ffn=moe_ffn(ec_group("text", 2)))
        self.assertConfigError(value, 'layers[0].ffn.kind: must be "dense" when untie.ffn is true '
                                      '(an MoE layer is modality-aware through its expert groups)')

    def test_groups(self):
        self.assertConfigError(tiny_dict(ffn=moe_ffn(ec_group("audio", 2))),
                               'layers[0].ffn.groups[0].modality: unknown modality "audio" (modalities: text, image)')
        self.assertConfigError(tiny_dict(ffn=moe_ffn(ec_group("text", 2), tc_group("text", 2, 1))),
                               'layers[0].ffn.groups[1].modality: modality "text" already has an expert group (groups[0])')
        self.assertConfigError(tiny_dict(ffn=moe_ffn(tc_group("text", 2, 3))),
                               "layers[0].ffn.groups[0].top_k: must be <= 2")
        self.assertConfigError(tiny_dict(ffn=moe_ffn(ec_group("text", 2, top_k=1))),
                               "layers[0].ffn.groups[0].top_k: only for token_choice groups "
                               "(expert_choice uses capacity_factor)")
        self.assertConfigError(tiny_dict(ffn=moe_ffn(tc_group("text", 2, 1, capacity_factor=1.0))),
                               "layers[0].ffn.groups[0].capacity_factor: only for expert_choice groups "
                               "(token_choice uses top_k)")
        self.assertConfigError(tiny_dict(ffn=moe_ffn(ec_group("text", 2, capacity=0))),
                               "layers[0].ffn.groups[0].capacity_factor: must be > 0")
        group = {"modalities": ["text", "image"], "experts": 2, "routing": "token_choice"}
        self.assertConfigError(tiny_dict(ffn=moe_ffn(group)),
                               "layers[0].ffn.groups[0].name: required for a group of several modalities")
        self.assertConfigError(tiny_dict(ffn=moe_ffn({"experts": 2, "routing": "token_choice"})),
                               'layers[0].ffn.groups[0]: needs exactly one of "modality" (a name) or '
                               '"modalities" (a list of names)')
        self.assertConfigError(tiny_dict(ffn=moe_ffn(ec_group("text", 2, expert=3))),
                               "layers[0].ffn.groups[0].expert: unknown key (expected one of: name, modality, "
                               "modalities, experts, routing, capacity_factor, top_k, score, renormalize)")
        self.assertConfigError(tiny_dict(ffn=moe_ffn()), "layers[0].ffn.groups: must have at least 1 entry")
        self.assertConfigError(tiny_dict(ffn={"kind": "dense", "hidden": 4, "groups": []}),
                               "layers[0].ffn.groups: unknown key (expected one of: kind, hidden, activation)")
        self.assertConfigError(tiny_dict(ffn=moe_ffn(ec_group("text", 2), lora={"rank": 2, "alpha": 0})),
                               "layers[0].ffn.lora.alpha: must be > 0")

    def test_selectors(self):
        self.assertConfigError(tiny_dict(mod={"layers": [0, 2]}), "mod.layers[1]: layer index 2 out of range [0, 2)")
        self.assertConfigError(tiny_dict(mod={"layers": [1, 1]}), "mod.layers[1]: layer 1 listed twice")
        self.assertConfigError(tiny_dict(mod={"layers": {"step": 0}}), "mod.layers.step: must be >= 1")
        self.assertConfigError(tiny_dict(mod={"layers": [0], "capacity": 1.5}), "mod.capacity: must be <= 1")
        self.assertConfigError(tiny_dict(mod={"layers": "even"}),
                               'mod.layers: must be a list of layer indices or an object {"start", "stop", "step"}')
        value = tiny_dict(layer_overrides=[{"ffn": {"hidden": 3}}])
        self.assertConfigError(value, "layer_overrides[0].layers: required (which layers this override applies to)")
        value = tiny_dict(layer_overrides=[{"layers": [], "ffn": {"hidden": 3}}])
        self.assertConfigError(value, "layer_overrides[0].layers: selects no layer")
        value = tiny_dict(layer_overrides=[{"layers": [0], "mod": True}])
        self.assertConfigError(value, "layer_overrides[0].mod: unknown key (expected one of: layers, attention, ffn)")

    def test_json_syntax_errors(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.json")
            with open(path, "w") as f:
                f.write('{"vocab_size": 3,\n "vocab_size": 4}')
            with self.assertRaises(ConfigError) as ctx:
                load_model(path)
            self.assertIn('duplicate key "vocab_size"', str(ctx.exception))
            with open(path, "w") as f:
                f.write('{"vocab_size": 3,\n "d_model": }')
            with self.assertRaises(ConfigError) as ctx:
                load_model(path)
            self.assertTrue(str(ctx.exception).startswith(path + ": invalid JSON at line 2 column"))
            with open(path, "w") as f:
                f.write('{"init_std": NaN}')
            with self.assertRaises(ConfigError):
                load_model(path)


class ExamplesTest(unittest.TestCase):
    def test_every_example_validates(self):
        # Token files and training configs (train-*.json) are not models.
        files = [f for f in glob.glob(os.path.join(EXAMPLES, "*.json"))
                 if "tokens" not in os.path.basename(f) and not os.path.basename(f).startswith("train-")]
        self.assertGreaterEqual(len(files), 15)
        for f in files:
            with self.subTest(file=os.path.basename(f)):
                cfg = load_model(f)
                self.assertEqual(cfg.name, os.path.basename(f)[:-5])
                self.assertTrue(cfg.source)

    def test_paper_numbers(self):
        dense = load_model(os.path.join(EXAMPLES, "dense-1.4b.json"))
        moma = load_model(os.path.join(EXAMPLES, "moma-1.4b-t4i4.json"))
        self.assertAlmostEqual(parameter_count(dense) / 1e9, 1.48, places=2)
        layer = moma.layers[23]
        self.assertEqual([(g.name, g.experts, g.routing, g.score, g.capacity_factor) for g in layer.ffn.groups],
                         [("text", 4, "expert_choice", "sigmoid", 1.0), ("image", 4, "expert_choice", "sigmoid", 1.0)])
        mod = load_model(os.path.join(EXAMPLES, "moma-1.4b-t4i4-mod.json"))
        self.assertEqual(mod.mod.layers, tuple(range(0, 32, 2)))
        self.assertEqual(mod.mod.capacity, 0.25)
        self.assertEqual((mod.d_model, mod.layers[0].attention.heads), (2304, 18))
        uni = load_model(os.path.join(EXAMPLES, "uni-moe-top2.json"))
        g = uni.layers[0].ffn.groups[0]
        self.assertEqual((g.top_k, g.score, g.renormalize, g.modality_ids), (2, "softmax", True, (0, 1, 2)))
        self.assertEqual(uni.layers[0].ffn.lora.rank, 8)
        mot = load_model(os.path.join(EXAMPLES, "mot-chameleon-7b-speech.json"))
        self.assertEqual(mot.num_modalities, 3)
        self.assertTrue(mot.untie.attention and mot.untie.ffn and mot.untie.norms)


if __name__ == "__main__":
    unittest.main()
