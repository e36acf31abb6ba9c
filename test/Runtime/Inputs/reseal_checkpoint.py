"""Records the current size and hash of a checkpoint's two safetensors files
in its state.json, as moma-train would have: lets a test damage a tensor file
in ways that only the safetensors reader, not the hash, can tell.

Usage: reseal_checkpoint.py CHECKPOINT_DIR
"""
import json
import os
import sys


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) % 2**64
    return "%016x" % h


d = sys.argv[1]
path = os.path.join(d, "state.json")
state = json.load(open(path))
for name in state["files"]:
    data = open(os.path.join(d, name), "rb").read()
    state["files"][name] = {"size": len(data), "fnv1a64": fnv1a64(data)}
json.dump(state, open(path, "w"))
