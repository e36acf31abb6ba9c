#!/usr/bin/env bash
#===- tools/train-evidence.sh - does moma training learn? ----------------===//
#
# Usage: bash tools/train-evidence.sh [OUT] [STEPS] [BATCH] [SEQ_LEN]
#   (defaults: build/evidence, 300, 4, 64)
#
# Trains tiny-moma-t4i4 (MoMa 4t4i) and tiny-moma-t4i4-dense (its dense
# baseline at equal FLOPs per token) with moma-train for STEPS steps on the
# same synthetic corpus (tools/moma-corpus.py, seed 1) in the same batch
# order, from seeded weights, with examples/train-tiny.json; plots both
# runs' per-modality losses together (OUT/loss.png, and OUT/loss-experts.png
# for MoMa's per-expert loads) and prints, for each model and modality, the
# first step's loss and the mean of the last 20 steps. Exits non-zero unless
# MoMa's last-20 mean of every modality is at most half of its first value.
# Needs a build (bash tools/bootstrap.sh build; ninja -C build moma-train).
#===----------------------------------------------------------------------===//
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MOMA_BUILD_DIR:-$root/build}/bin"
out="${1:-$root/build/evidence}"
steps="${2:-300}"
batch="${3:-4}"
seq="${4:-64}"
python=/usr/bin/python3
mkdir -p "$out"

"$python" "$root/tools/moma-corpus.py" "$root/examples/tiny-moma-t4i4.json" \
  --out "$out/corpus.momacorpus" --tokens 80000 --seed 1
runs=()
for model in tiny-moma-t4i4 tiny-moma-t4i4-dense; do
  "$bin/momac" "$root/examples/$model.json" \
    --init-weights="$out/$model-init.safetensors" --seed=1
  "$bin/momac" "$root/examples/$model.json" --program=train \
    --train-config="$root/examples/train-tiny.json" --target=cpu \
    --batch="$batch" --seq-len="$seq" -o "$out/$model.momaprog"
  rm -rf "$out/$model"
  "$bin/moma-train" "$out/$model.momaprog" \
    --weights "$out/$model-init.safetensors" --data "$out/corpus.momacorpus" \
    --steps "$steps" --out "$out/$model" --seed 1 --quiet
  runs+=("$out/$model")
done
"$python" "$root/tools/moma-plot.py" "${runs[@]}" --out "$out/loss.png" \
  --labels "MoMa 4t4i,dense (equal FLOPs)" --smooth 10
"$python" - "${runs[@]}" <<'PY'
import json, sys
ok = True
for run in sys.argv[1:]:
    rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    first = rows[0]["loss"]["ce_per_modality"]
    for name in first:
        tail = [r["loss"]["ce_per_modality"][name] for r in rows[-20:]
                if r["loss"]["ce_per_modality"].get(name) is not None
                and r["targets"][name] > 0]
        last = sum(tail) / len(tail)
        print(f"{run.rsplit('/', 1)[-1]:>22} {name:>6}: step 1 {first[name]:.3f}, "
              f"last 20 steps {last:.3f} ({last / first[name]:.0%})")
        if "dense" not in run and last > first[name] / 2:
            ok = False
print("learning: MoMa halved every modality's loss" if ok else
      "learning: FAILED: MoMa did not halve every modality's loss")
sys.exit(0 if ok else 1)
PY
echo "plots: $out/loss.png, $out/loss-experts.png"
