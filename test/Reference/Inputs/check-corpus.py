"""Checks the documented structure of a tools/moma-corpus.py corpus for a
two-modality model (text [0, 64), image [64, 128)), 4 x 8 grids (Training.md,
"A synthetic corpus"), and prints what it found."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools", "moma-reference"))
from moma_reference.data import read_corpus  # noqa: E402

tokens, eod = read_corpus(sys.argv[1])
ROWS, COLS, BEGIN, N = 4, 8, 64, 64
MARKER = 1
print(f"tokens {len(tokens)} eod {eod}")
successors, grids, patterns, documents, bad = {}, 0, set(), 0, []
i = 0
previous = None
while i < len(tokens):
    t = tokens[i]
    if t == MARKER:
        grid = tokens[i + 1:i + 1 + ROWS * COLS]
        if len(grid) < ROWS * COLS:
            break  # the stream was cut inside this grid
        b = grid[0] - BEGIN
        dc = (grid[1] - grid[0]) % N
        dr = (grid[COLS] - grid[0]) % N
        expect = [BEGIN + (b + r * dr + c * dc) % N for r in range(ROWS) for c in range(COLS)]
        if grid != expect or (dr, dc) not in ((1, 0), (0, 1), (1, 1)):
            bad.append(f"grid at {i + 1}")
        patterns.add((dr, dc))
        grids += 1
        i += 1 + ROWS * COLS
        previous = None
        continue
    if t == eod:
        documents += 1
        if previous is None:
            bad.append(f"EOD at {i} not after text")
        previous = None
    elif t >= BEGIN:
        bad.append(f"image token {t} outside a grid at {i}")
    else:
        if previous is not None:
            successors.setdefault(previous, set()).add(t)
        previous = t
    i += 1
print(f"documents {documents} grids {grids} patterns {sorted(patterns)}")
print(f"text states {len(successors)} max successors {max(len(s) for s in successors.values())}")
print("structure ok" if not bad else "structure BAD: " + ", ".join(bad[:5]))
