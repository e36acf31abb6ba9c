"""The token-file format (``moma-tokens/1``) for mixed-modal sequences.

A token file is a JSON object::

    {
      "format": "moma-tokens/1",
      "source": "free text (optional)",
      "sequences": [
        [ {"modality": "text",  "tokens": [1, 17, 5]},
          {"modality": "image", "tokens": [70, 71, 90, 64]},
          {"modality": "text",  "tokens": [2]} ],
        ...
      ]
    }

A sequence is a list of *segments*; a segment is a run of consecutive
positions of one modality.  The modality of every position is therefore
explicit.  All sequences must have the same total length ``L`` (the batch is
a ``B x L`` tensor).  Every token id must lie in the token range that the
model declares for the segment's modality.

Targets for the next-token loss are the ids shifted by one position:
``target[b, l] = ids[b, l + 1]`` with ``target_modality[b, l] =
modality[b, l + 1]``; the last position of each sequence has no target.
"""

from dataclasses import dataclass
from typing import List

import torch

from .errors import ConfigError
from .jsonio import Context, Obj, format_path, load_json_file

FORMAT = "moma-tokens/1"


@dataclass
class TokenBatch:
    """A batch of equal-length sequences.

    ``ids[b][l]`` is a token id and ``modality[b][l]`` the index of its
    modality in the model's ``modalities`` list.
    """
    ids: List[List[int]]
    modality: List[List[int]]

    @property
    def shape(self):
        return (len(self.ids), len(self.ids[0]))

    def tensors(self):
        """``(ids, modality)`` as ``[B, L]`` int64 tensors."""
        return (torch.tensor(self.ids, dtype=torch.int64),
                torch.tensor(self.modality, dtype=torch.int64))

    def targets(self):
        """``(targets, target_modality)``: next-token ids and their
        modalities, ``-1`` at the last position."""
        ids, modality = self.tensors()
        pad = torch.full((ids.shape[0], 1), -1, dtype=torch.int64)
        return (torch.cat([ids[:, 1:], pad], dim=1), torch.cat([modality[:, 1:], pad], dim=1))


def load_tokens(filename, cfg):
    """Reads a token file and checks it against the model ``cfg``."""
    return parse_tokens(load_json_file(filename), cfg, filename)


def parse_tokens(value, cfg, filename=""):
    """Validates a parsed token file (see the module docstring)."""
    ctx = Context(filename)
    top = Obj(value, (), ctx, ("format", "source", "sequences"))
    fmt = top.string("format", FORMAT)
    if fmt != FORMAT:
        raise top.error("format", f"unsupported format {fmt!r} (this reader knows {FORMAT!r})")
    top.string("source", "")
    sequences = top.array("sequences", min_length=1)
    all_ids, all_modality = [], []
    for b, seq in enumerate(sequences):
        path = ("sequences", b)
        if not isinstance(seq, list) or not seq:
            raise ctx.error(path, "must be a non-empty list of segments")
        ids, modality = [], []
        for s, segment in enumerate(seq):
            seg = Obj(segment, path + (s,), ctx, ("modality", "tokens"))
            name = seg.string("modality")
            try:
                m = cfg.modality(name)
            except KeyError:
                known = ", ".join(x.name for x in cfg.modalities)
                raise seg.error("modality", f"unknown modality {name!r} (model {cfg.name!r} has: {known})") from None
            tokens = seg.array("tokens", min_length=1)
            for i, t in enumerate(tokens):
                where = seg.at("tokens") + (i,)
                if isinstance(t, bool) or not isinstance(t, int):
                    raise ctx.error(where, "must be an integer token id")
                if not m.contains(t):
                    raise ctx.error(where, f"token {t} is not in the range of modality {name!r} "
                                           f"[{m.begin}, {m.end})")
                ids.append(t)
                modality.append(m.index)
        if all_ids and len(ids) != len(all_ids[0]):
            raise ctx.error(path, f"has {len(ids)} tokens but sequences[0] has {len(all_ids[0])} "
                                  f"(all sequences must have the same length)")
        all_ids.append(ids)
        all_modality.append(modality)
    return TokenBatch(all_ids, all_modality)


__all__ = ["FORMAT", "TokenBatch", "load_tokens", "parse_tokens", "format_path", "ConfigError"]
