"""Writes the stand-in train program's inputs for test/Runtime/moma-train*.test.

Usage: make_train_files.py DIR

DIR/w.safetensors (weight w: 5 f32, and w-nan.safetensors with a NaN),
DIR/corpus.bin (a moma-corpus/1 file of 26 tokens: 6 rows of 4, ids 0-7 text
and 8-15 image, end-of-document id 0) and DIR/tokens.json (2 rows of 4).
"""
import json
import os
import struct
import sys
import zlib


def safetensors(path, values):
    header = json.dumps({"w": {"dtype": "F32", "shape": [len(values)],
                               "data_offsets": [0, 4 * len(values)]}})
    header = header.encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header +
                struct.pack("<%df" % len(values), *values))


def corpus(path, tokens, eod=0):
    body = b"MOMACORP" + struct.pack("<IIQ", 1, eod, len(tokens))
    body += struct.pack("<%dI" % len(tokens), *tokens)
    with open(path, "wb") as f:
        f.write(body + struct.pack("<I", zlib.crc32(body)))


out = sys.argv[1]
safetensors(os.path.join(out, "w.safetensors"), [0.0, 0.5, -1.0, 2.0, 3.0])
safetensors(os.path.join(out, "w-nan.safetensors"),
            [0.0, float("nan"), -1.0, 2.0, 3.0])
corpus(os.path.join(out, "corpus.bin"),
       [1, 2, 3, 0, 9, 10, 11, 12, 4, 5, 0, 13, 14, 15, 8, 6, 7, 0, 1, 9,
        3, 11, 2, 12, 5, 14])
json.dump({"format": "moma-tokens/1", "sequences": [
    [{"modality": "text", "tokens": [1, 2]},
     {"modality": "image", "tokens": [9, 10]}],
    [{"modality": "image", "tokens": [8, 11, 12, 13]}]]},
    open(os.path.join(out, "tokens.json"), "w"))
