#!/usr/bin/python3
"""Entry script of the moma PyTorch reference.

Usage (Debian's /usr/bin/python3, which has torch):
    moma_reference.py validate MODEL.json [--expand] [--list-weights]
    moma_reference.py init MODEL.json --seed N -o W.safetensors
    moma_reference.py run MODEL.json --weights W.safetensors --tokens T.json [--dtype f64|f32]
                      [--grads G.safetensors] [--logits X.safetensors] [--routing batch|aux] [--json]
    moma_reference.py train MODEL.json --weights W.safetensors --train-config C.json --data D
                      --batch B --seq-len L --steps N [--seed S] [--shuffle seeded|none]
                      [--dtype f32|f64] [--routing batch|aux] [--json] [--out-weights W2.safetensors]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moma_reference.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
