"""Training data: packed corpora (``moma-corpus/1``), rows, and batch order.

``examples/Training.md`` ("Data") specifies both: the data of a run is a
list of R rows of L tokens, read from a ``moma-tokens/1`` file whose
sequences all have L tokens or from a packed corpus (consecutive windows of
L tokens), and step ``s`` takes the rows at positions ``[(s-1)AB, sAB)`` of a
stream of seeded per-epoch permutations (SplitMix64 + Fisher-Yates).
"""

import os
import struct
import tempfile
import zlib

import torch

from .errors import MomaError
from .tokens import load_tokens

MAGIC = b"MOMACORP"
VERSION = 1
_HEADER = struct.Struct("<8sIIQ")  # magic, version, end-of-document id, token count

_MASK = (1 << 64) - 1


class SplitMix64:
    """The seeded stream of 64-bit numbers of Training.md ("Batch order")."""

    def __init__(self, seed):
        self.state = seed & _MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)


def permutation(rows, rng):
    """One epoch's order of ``rows`` rows: Fisher-Yates from the identity,
    ``i = R-1 .. 1``, ``j = next() mod (i + 1)``; ``rng`` None: identity."""
    p = list(range(rows))
    if rng is not None:
        for i in range(rows - 1, 0, -1):
            j = rng.next() % (i + 1)
            p[i], p[j] = p[j], p[i]
    return p


class RowStream:
    """Row indices in batch order: epoch 0's permutation, then epoch 1's..."""

    def __init__(self, rows, seed=0, shuffle=True):
        if rows < 1:
            raise ValueError("no rows")
        self.rows = rows
        self.rng = SplitMix64(seed) if shuffle else None
        self.epoch = []
        self.position = 0  # rows consumed

    def take(self, count):
        """The next ``count`` row indices of the stream."""
        out = []
        while len(out) < count:
            offset = self.position % self.rows
            if offset == 0:
                self.epoch = permutation(self.rows, self.rng)
            n = min(count - len(out), self.rows - offset)
            out.extend(self.epoch[offset:offset + n])
            self.position += n
        return out


# -- packed corpora -----------------------------------------------------------

def write_corpus(filename, tokens, eod):
    """Writes a ``moma-corpus/1`` file atomically (temporary file, rename)."""
    ids = list(tokens)
    body = _HEADER.pack(MAGIC, VERSION, eod, len(ids)) + struct.pack(f"<{len(ids)}I", *ids)
    body += struct.pack("<I", zlib.crc32(body))
    directory = os.path.dirname(os.path.abspath(filename))
    fd, temp = tempfile.mkstemp(prefix=".moma-corpus-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(temp, filename)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def read_corpus(filename):
    """``(tokens, eod)`` of a ``moma-corpus/1`` file; damaged files raise
    MomaError naming the file and the problem."""
    with open(filename, "rb") as f:
        raw = f.read()

    def fail(what):
        raise MomaError(f"{filename}: {what}")

    if len(raw) < _HEADER.size + 4:
        fail(f"too short for a moma-corpus/1 file ({len(raw)} bytes)")
    magic, version, eod, count = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        fail("not a moma-corpus/1 file (bad magic)")
    if version != VERSION:
        fail(f"unsupported corpus version {version} (this reader knows {VERSION})")
    expected = _HEADER.size + 4 * count + 4
    if len(raw) != expected:
        fail(f"size {len(raw)} bytes, but a corpus of {count} tokens has {expected}")
    stored = struct.unpack_from("<I", raw, expected - 4)[0]
    computed = zlib.crc32(raw[:expected - 4])
    if stored != computed:
        fail(f"checksum mismatch (stored 0x{stored:08x}, computed 0x{computed:08x}): the file is damaged")
    return list(struct.unpack_from(f"<{count}I", raw, _HEADER.size)), eod


def is_corpus(filename):
    """Whether the file starts with the corpus magic."""
    with open(filename, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def modality_of(cfg, token):
    """The index of the modality whose id range holds ``token``, or None."""
    for m in cfg.modalities:
        if m.contains(token):
            return m.index
    return None


# -- rows ---------------------------------------------------------------------

class Rows:
    """The R rows of a run: ``ids`` and ``modality``, ``[R, L]`` int64."""

    def __init__(self, ids, modality):
        self.ids = ids
        self.modality = modality

    def __len__(self):
        return self.ids.shape[0]

    def select(self, indices):
        """``(ids, modality)`` of the given rows, in that order."""
        index = torch.tensor(indices, dtype=torch.int64)
        return self.ids[index], self.modality[index]


def load_rows(filename, cfg, length):
    """The rows of a token file (every sequence exactly ``length`` tokens)
    or of a packed corpus (consecutive windows of ``length`` tokens)."""
    if is_corpus(filename):
        tokens, eod = read_corpus(filename)
        if modality_of(cfg, eod) is None:
            raise MomaError(f"{filename}: end-of-document id {eod} is in no modality's id range "
                            f"of model {cfg.name!r}")
        modality = []
        for i, t in enumerate(tokens):
            m = modality_of(cfg, t)
            if m is None:
                raise MomaError(f"{filename}: token {i} (id {t}) is in no modality's id range "
                                f"of model {cfg.name!r}")
            modality.append(m)
        rows = len(tokens) // length
        if rows == 0:
            raise MomaError(f"{filename}: {len(tokens)} tokens make no row of {length} tokens")
        n = rows * length
        return Rows(torch.tensor(tokens[:n], dtype=torch.int64).reshape(rows, length),
                    torch.tensor(modality[:n], dtype=torch.int64).reshape(rows, length))
    batch = load_tokens(filename, cfg)
    if batch.shape[1] != length:
        raise MomaError(f"{filename}: sequences have {batch.shape[1]} tokens, but --seq-len is {length} "
                        f"(a token file for training has rows of exactly --seq-len tokens)")
    ids, modality = batch.tensors()
    return Rows(ids, modality)
