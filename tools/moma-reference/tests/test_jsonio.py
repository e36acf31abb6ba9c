"""JSON text of model files (examples/README.md, "JSON text").

The same inputs and messages as the C++ reader's test/Unit/JsonTextTest.cpp:
both readers read JSON with the grammar of llvm::json::parse.
"""

import unittest

from moma_reference.config import parse_model
from moma_reference.errors import ConfigError
from moma_reference.jsonio import parse_json_text, quote

DENSE_LAYER = '{"attention": {"heads": 4}, "ffn": {"kind": "dense", "hidden": 64}}'


def model(layer=DENSE_LAYER, extra=""):
    """The C++ tests' 4-layer model over text [0, 64) and image [64, 128)."""
    return ('{"vocab_size": 128, "modalities": [{"name": "text", "tokens": [0, 64]}, '
            '{"name": "image", "tokens": [64, 128]}], "d_model": 32, "num_layers": 4, "layer": '
            + layer + extra + "}")


def read(text):
    """Parses and validates a model text (str, or bytes for raw bytes)."""
    if isinstance(text, bytes):
        from moma_reference.jsonio import _parse
        value = _parse(text, "m.json")
    else:
        value = parse_json_text(text, "m.json")
    return parse_model(value, "m.json")


class JsonTextTest(unittest.TestCase):
    def assertErrors(self, cases):
        for text, message in cases:
            with self.subTest(text=text):
                with self.assertRaises(ConfigError) as ctx:
                    read(text)
                self.assertEqual(str(ctx.exception), message)

    def test_syntax(self):
        self.assertErrors([
            ('{"vocab_size": 128,}', "m.json: invalid JSON at line 1 column 21: Expected object key"),
            ('{\n  "a": tru\n}', "m.json: invalid JSON at line 3 column 1: Invalid JSON value (true?)"),
            ('{"a": [1 2]}', "m.json: invalid JSON at line 1 column 11: Expected , or ] after array element"),
            ('{"a" 1}', "m.json: invalid JSON at line 1 column 7: Expected : after object key"),
            ('{"a": "b', "m.json: invalid JSON at line 1 column 9: Unterminated string"),
            (r'{"a": "\x"}', "m.json: invalid JSON at line 1 column 10: Invalid escape sequence"),
            (r'{"a": "\u12"}', "m.json: invalid JSON at line 1 column 14: Invalid \\u escape sequence"),
            ('{"a": "\x01"}', "m.json: invalid JSON at line 1 column 9: Control character in string"),
            ("{} x", "m.json: invalid JSON at line 1 column 4: Text after end of document"),
            ("", "m.json: invalid JSON at line 1 column 1: Unexpected EOF"),
            ('{"init_std": NaN}', "m.json: invalid JSON at line 1 column 15: Invalid JSON value"),
            ('{"init_std": Infinity}', "m.json: invalid JSON at line 1 column 15: Invalid JSON value"),
            ('{"init_std": -Infinity}', "m.json: invalid JSON at line 1 column 15: Invalid JSON value (number?)"),
            (b"\xef\xbb\xbf{}", "m.json: invalid JSON at line 1 column 2: Invalid JSON value"),
            (b'{"name": "\xff"}', "m.json: not UTF-8 text (byte 10)"),
            (b'{"name": "\xe2\x82"}', "m.json: not UTF-8 text (byte 10)"),
            (b'{"name": "\xed\xa0\x80"}', "m.json: not UTF-8 text (byte 10)"),
        ])

    def test_duplicate_keys(self):
        self.assertErrors([
            ('{"vocab_size": 1, "vocab_size": 2}',
             'm.json: invalid JSON at line 1 column 19: duplicate key "vocab_size" in an object'),
            ('{"norm": {"eps": 1, "eps": 2}, "x": 1, "x": 2}',
             'm.json: invalid JSON at line 1 column 21: duplicate key "eps" in an object'),
            (r'{"a": {"k": 1}, "b": {"k": 1}, "\u0061": 2}',
             'm.json: invalid JSON at line 1 column 32: duplicate key "a" in an object'),
            ('{"norm": {"eps": 1, "eps": 2}, "x": }', "m.json: invalid JSON at line 1 column 38: Invalid JSON value"),
        ])

    def test_numbers(self):
        self.assertErrors([
            ('{"vocab_size": 2.0}', "m.json: vocab_size: must be an integer, not a number"),
            ('{"vocab_size": 1e2}', "m.json: vocab_size: must be an integer, not a number"),
            ('{"vocab_size": -2.0}', "m.json: vocab_size: must be >= 1"),
            ('{"vocab_size": -0.0}', "m.json: vocab_size: must be an integer, not a number"),
            ('{"vocab_size": -2.5}', "m.json: vocab_size: must be an integer, not a number"),
            ('{"vocab_size": 9223372036854775808}',
             "m.json: vocab_size: must be <= 9223372036854775807 (the largest integer supported)"),
            ('{"vocab_size": 18446744073709551616}', "m.json: vocab_size: must be an integer, not a number"),
            ('{"vocab_size": 1.5.2}', "m.json: invalid JSON at line 1 column 21: Invalid JSON value (number?)"),
            ('{"vocab_size": 01, "d_model": 1.}', "m.json: modalities: required"),
            ('{"vocab_size": +1, "init_std": .5}', "m.json: modalities: required"),
            ('{"name": -1.0}', "m.json: name: must be a string, not an integer"),
            ('{"name": 1.0}', "m.json: name: must be a string, not a number"),
            ('{"vocab_size": ' + "1" * 4301 + "}", "m.json: vocab_size: must be an integer, not a number"),
            ('{"vocab_size": 1000000000000000000000000000000}', "m.json: vocab_size: must be an integer, not a number"),
            ('{"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, 10000000000000000000]}]}',
             "m.json: modalities[0].tokens: range [0, 10000000000000000000) must be non-empty and inside "
             "the vocabulary [0, 8)"),
            ('{"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, 100000000000000000000]}]}',
             "m.json: modalities[0].tokens: must be [begin, end]: two integers, the half-open range of token ids"),
        ])

    def test_strings(self):
        self.assertErrors([
            (r'{"\ud800": 1}',
             'm.json: ["\ufffd"]: unknown key (expected one of: format, name, source, description, vocab_size, '
             "modalities, d_model, num_layers, norm, untie, mod, aux_routers, loss, dtype, tie_embeddings, "
             "init_std, layer, layer_overrides)"),
            (model(DENSE_LAYER, r', "dtype": "f\t\"\u00e9"'),
             'm.json: dtype: must be one of f32 | bf16 | f16 | f64, not "f\\t\\"\u00e9"'),
            (r'{"vocab_size": 8, "modalities": [{"name": "t\n", "tokens": [0, 8]}]}',
             "m.json: modalities[0].name: \"t\\n\" is not a valid name (letters, digits, '_'; not starting "
             "with a digit)"),
        ])
        cfg = read(model(DENSE_LAYER, r', "name": "a\ud83d\ude00\udc00"'))
        self.assertEqual(cfg.name, "a\U0001f600\ufffd")
        self.assertEqual(quote('a"\\\b\x7f\u00e9'), '"a\\"\\\\\\u0008\x7f\u00e9"')

    def test_unknown_keys_sorted(self):
        self.assertErrors([
            (model(DENSE_LAYER, ', "untie": {"zz": true, "attn": true}'),
             "m.json: untie.attn: unknown key (expected one of: attention, ffn, norms)"),
            (model(DENSE_LAYER, ', "layer_overrides": [{"layers": [0], "zz": 1, "norm": {}}]'),
             "m.json: layer_overrides[0].norm: unknown key (expected one of: layers, attention, ffn)"),
        ])

    def test_deep_nesting(self):
        self.assertErrors([
            ("[" * 1000000, "m.json: invalid JSON at line 1 column 65: nested deeper than 64 levels"),
            ('{"a":' * 100000, "m.json: invalid JSON at line 1 column 321: nested deeper than 64 levels"),
            ('{"a" 1, "b": ' + "{" * 100, "m.json: invalid JSON at line 1 column 77: nested deeper than 64 levels"),
            ('{"layer": ' + "[" * 63 + "]" * 63 + "}", "m.json: vocab_size: required"),
        ])


if __name__ == "__main__":
    unittest.main()
