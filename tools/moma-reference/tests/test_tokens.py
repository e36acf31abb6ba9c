"""Token-file format."""

import os
import unittest

from .helpers import EXAMPLES, config
from moma_reference.config import load_model
from moma_reference.errors import ConfigError
from moma_reference.tokens import load_tokens, parse_tokens


def seq(*segments):
    return [{"modality": m, "tokens": t} for m, t in segments]


class TokensTest(unittest.TestCase):
    def setUp(self):
        self.cfg = config()  # text [0, 16), image [16, 32)

    def assertTokenError(self, value, message):
        with self.assertRaises(ConfigError) as ctx:
            parse_tokens(value, self.cfg, "t.json")
        self.assertEqual(str(ctx.exception), "t.json: " + message)

    def test_segments_and_targets(self):
        batch = parse_tokens({"sequences": [seq(("text", [1, 2]), ("image", [20, 21]), ("text", [3])),
                                            seq(("image", [16, 17, 18]), ("text", [0, 15]))]}, self.cfg)
        self.assertEqual(batch.shape, (2, 5))
        ids, modality = batch.tensors()
        self.assertEqual(ids.tolist(), [[1, 2, 20, 21, 3], [16, 17, 18, 0, 15]])
        self.assertEqual(modality.tolist(), [[0, 0, 1, 1, 0], [1, 1, 1, 0, 0]])
        targets, target_modality = batch.targets()
        self.assertEqual(targets.tolist(), [[2, 20, 21, 3, -1], [17, 18, 0, 15, -1]])
        self.assertEqual(target_modality.tolist(), [[0, 1, 1, 0, -1], [1, 1, 0, 0, -1]])

    def test_errors(self):
        self.assertTokenError({"sequences": [seq(("text", [1, 20]))]},
                              "sequences[0][0].tokens[1]: token 20 is not in the range of modality 'text' [0, 16)")
        self.assertTokenError({"sequences": [seq(("speech", [1]))]},
                              "sequences[0][0].modality: unknown modality 'speech' (model 't' has: text, image)")
        self.assertTokenError({"sequences": [seq(("text", [1, 2])), seq(("text", [1]))]},
                              "sequences[1]: has 1 tokens but sequences[0] has 2 (all sequences must have the same length)")
        self.assertTokenError({"sequences": []}, "sequences: must have at least 1 entry")
        self.assertTokenError({"sequences": [[]]}, "sequences[0]: must be a non-empty list of segments")
        self.assertTokenError({"sequences": [seq(("text", [1.5]))]}, "sequences[0][0].tokens[0]: must be an integer token id")
        self.assertTokenError({"sequences": [[{"modality": "text", "ids": [1]}]]},
                              "sequences[0][0].ids: unknown key (expected one of: modality, tokens)")
        self.assertTokenError({"format": "x", "sequences": []},
                              "format: unsupported format 'x' (this reader knows 'moma-tokens/1')")

    def test_bundled_samples_fit_every_tiny_model(self):
        for name in ("tiny-dense", "tiny-moma-t4i4", "tiny-moma-mod", "tiny-hybrid", "tiny-mot", "tiny-uni-moe-top2"):
            cfg = load_model(os.path.join(EXAMPLES, name + ".json"))
            batch = load_tokens(os.path.join(EXAMPLES, "sample-tokens.json"), cfg)
            self.assertEqual(batch.shape, (2, 16))
        for name in ("tiny-mot", "tiny-uni-moe-top2"):
            cfg = load_model(os.path.join(EXAMPLES, name + ".json"))
            batch = load_tokens(os.path.join(EXAMPLES, "sample-tokens-speech.json"), cfg)
            self.assertEqual(batch.shape, (2, 16))
            self.assertIn(2, batch.tensors()[1].flatten().tolist())


if __name__ == "__main__":
    unittest.main()
