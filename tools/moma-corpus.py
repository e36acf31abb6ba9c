#!/usr/bin/python3
"""Synthetic mixed-modal training corpus with learnable structure in every
modality (examples/Training.md, "A synthetic corpus").

Usage (Debian's /usr/bin/python3; the model file is read by the reference):
    moma-corpus.py MODEL.json --out C.momacorpus --tokens N --seed S
                   [--format corpus|tokens --seq-len L] [--image-rows R --image-cols C]

The text modality (the one named ``text``, else the first) carries the
control ids and a Markov chain:

* its first id is the end-of-document id (EOD), ending every document;
* its next ids, one per other modality, are the markers that open a segment
  of that modality;
* every remaining id is a state of a seeded first-order Markov chain: each
  state has two successors, taken with probability 3/4 and 1/4.

Every other modality ("images") comes as grids of R x C tokens of its id
range of n ids: grid ``(r, c)`` holds ``begin + (b + r*dr + c*dc) mod n``
with a random base ``b`` and a pattern ``(dr, dc)`` in {(1, 0): stripes,
(0, 1): ramps, (1, 1): diagonals}; within a row the next token is the
previous one plus ``dc``, and a row starts ``dr`` after the row above.

A document is 1 to 3 pairs (text segment of 8 to 24 chain tokens, marker +
grid), then a last text segment and EOD. All choices come from the
SplitMix64 stream of Training.md seeded with ``--seed``: same seed, same
bytes. The output is the first N tokens of the document stream.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "moma-reference"))

from moma_reference.config import load_model  # noqa: E402
from moma_reference.data import SplitMix64, write_corpus  # noqa: E402
from moma_reference.errors import MomaError  # noqa: E402

PATTERNS = ((1, 0), (0, 1), (1, 1))
SUCCESSOR_WEIGHTS = (3, 1)  # out of 4
TEXT_LENGTH = (8, 24)
PAIRS = (1, 3)


class Generator:
    """The document stream of one seed for one model's modalities."""

    def __init__(self, cfg, seed, rows, cols):
        self.rng = SplitMix64(seed)
        names = [m.name for m in cfg.modalities]
        self.text = cfg.modalities[names.index("text") if "text" in names else 0]
        self.others = [m for m in cfg.modalities if m.index != self.text.index]
        self.eod = self.text.begin
        self.markers = {m.index: self.text.begin + 1 + k for k, m in enumerate(self.others)}
        self.states = list(range(self.text.begin + 1 + len(self.others), self.text.end))
        if len(self.states) < 2:
            raise MomaError(f"modality {self.text.name!r} has {self.text.end - self.text.begin} ids: "
                            f"too few for EOD, {len(self.others)} markers and a chain of 2 states")
        if not self.others:
            raise MomaError(f"model {cfg.name!r} has one modality; the corpus needs at least two")
        self.rows, self.cols = rows, cols
        self.successors = {s: (self.pick(self.states), self.pick(self.states)) for s in self.states}

    def below(self, n):
        return self.rng.next() % n

    def pick(self, values):
        return values[self.below(len(values))]

    def text_segment(self):
        lo, hi = TEXT_LENGTH
        state = self.pick(self.states)
        out = [state]
        for _ in range(lo + self.below(hi - lo + 1) - 1):
            first, second = self.successors[state]
            state = first if self.below(sum(SUCCESSOR_WEIGHTS)) < SUCCESSOR_WEIGHTS[0] else second
            out.append(state)
        return out

    def grid(self, m):
        n = m.end - m.begin
        base = self.below(n)
        dr, dc = self.pick(PATTERNS)
        return [m.begin + (base + r * dr + c * dc) % n for r in range(self.rows) for c in range(self.cols)]

    def document(self):
        out = []
        for _ in range(PAIRS[0] + self.below(PAIRS[1] - PAIRS[0] + 1)):
            out += self.text_segment()
            m = self.pick(self.others)
            out.append(self.markers[m.index])
            out += self.grid(m)
        out += self.text_segment()
        out.append(self.eod)
        return out

    def tokens(self, count):
        out = []
        while len(out) < count:
            out += self.document()
        return out[:count]


def token_file(cfg, tokens, length, source):
    """A moma-tokens/1 document of the rows ``[rL, (r+1)L)``."""
    def modality_name(t):
        return next(m.name for m in cfg.modalities if m.contains(t))

    sequences = []
    for r in range(len(tokens) // length):
        segments = []
        for t in tokens[r * length:(r + 1) * length]:
            name = modality_name(t)
            if segments and segments[-1]["modality"] == name:
                segments[-1]["tokens"].append(t)
            else:
                segments.append({"modality": name, "tokens": [t]})
        sequences.append(segments)
    return {"format": "moma-tokens/1", "source": source, "sequences": sequences}


def main(argv=None):
    p = argparse.ArgumentParser(prog="moma-corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL.json")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--tokens", required=True, type=int, metavar="N", help="tokens to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("corpus", "tokens"), default="corpus",
                   help="corpus: moma-corpus/1 (default); tokens: moma-tokens/1 rows of --seq-len")
    p.add_argument("--seq-len", type=int, metavar="L", help="row length of --format tokens")
    p.add_argument("--image-rows", type=int, default=4)
    p.add_argument("--image-cols", type=int, default=8)
    args = p.parse_args(argv)
    if args.tokens < 1:
        p.error("--tokens must be >= 1")
    if args.format == "tokens" and (args.seq_len is None or args.seq_len < 1 or args.seq_len > args.tokens):
        p.error("--format tokens needs --seq-len L with 1 <= L <= --tokens")
    if args.image_rows < 1 or args.image_cols < 1:
        p.error("--image-rows and --image-cols must be >= 1")
    if not 0 <= args.seed < 2 ** 64:
        p.error("--seed must be in [0, 2^64)")
    try:
        cfg = load_model(args.model)
        gen = Generator(cfg, args.seed, args.image_rows, args.image_cols)
        tokens = gen.tokens(args.tokens)
        if args.format == "corpus":
            write_corpus(args.out, tokens, gen.eod)
        else:
            source = (f"moma-corpus.py {os.path.basename(args.model)} --tokens {args.tokens} "
                      f"--seed {args.seed} --seq-len {args.seq_len}")
            text = json.dumps(token_file(cfg, tokens, args.seq_len, source))
            temp = args.out + ".tmp"
            with open(temp, "w") as f:
                f.write(text + "\n")
            os.replace(temp, args.out)
    except MomaError as e:
        print(f"moma-corpus: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"moma-corpus: error: {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
