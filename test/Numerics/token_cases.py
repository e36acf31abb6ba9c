"""Generated moma-tokens/1 files for the model checks: model_vs_reference.py
(compiled CPU programs against the PyTorch reference) and
test/Integration/models_gpu.py (GPU programs against CPU programs) run the
same edge cases. Standard library only: the GPU machine has no torch."""

import json
import os
import random


def write_tokens(path, sequences):
    """Writes a moma-tokens/1 file: sequences of (modality, ids) segments."""
    with open(path, "w") as f:
        json.dump({"format": "moma-tokens/1", "sequences": [
            [{"modality": m, "tokens": ids} for m, ids in seq]
            for seq in sequences]}, f)


def edge_token_files(directory, seed):
    """Edge cases for two-modality tiny models (text [0, 64), image
    [64, 96)): one modality absent, and maximally uneven expert loads (every
    token the same, so every token picks the same experts). Returns the
    paths of text-only.json, image-only.json and one-token-repeated.json in
    `directory`."""
    rng = random.Random(seed)
    text = lambda n: [rng.randrange(0, 64) for _ in range(n)]  # noqa: E731
    image = lambda n: [rng.randrange(64, 96) for _ in range(n)]  # noqa: E731
    cases = {
        "text-only": [[("text", text(16))], [("text", text(16))]],
        "image-only": [[("image", image(16))], [("image", image(16))]],
        "one-token-repeated": [[("text", [5] * 16)],
                               [("text", [5] * 8), ("image", [70] * 8)]],
    }
    files = []
    for name, sequences in cases.items():
        path = os.path.join(directory, name + ".json")
        write_tokens(path, sequences)
        files.append(path)
    return files
