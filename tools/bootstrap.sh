#!/usr/bin/env bash
#===- tools/bootstrap.sh - set up, build, test and run moma ---------------===//
#
# Usage: bash tools/bootstrap.sh [setup|build|test|run]
#   setup  install the Debian packages moma needs (idempotent; a no-op taking
#          well under a second when everything is present)
#   build  setup, then configure (once) and build into ./build
#   test   build, then run the whole suite (lit + gtest) with a summary line
#   run    build, then compile the bundled default model (or the model file
#          given after `run`): its moma IR, its FLOP table, seeded weights, a
#          program run on the sample tokens (per-modality loss; on the GPU
#          when one is present, otherwise on the CPU), and the
#          PyTorch reference's loss on the same weights and tokens, then a
#          short training run (moma-train, 150 steps on a synthetic corpus:
#          per-modality loss, and a plot of the curves)
#
# Environment: MOMA_BUILD_DIR (default: build), MOMA_JOBS (default: nproc).
#===----------------------------------------------------------------------===//
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOMA_BUILD_DIR:-$root/build}"
jobs="${MOMA_JOBS:-$(nproc)}"
llvm=/usr/lib/llvm-22

packages=(libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools clang-22
          lld-22 libabsl-dev ninja-build cmake libgtest-dev python3-torch
          python3-numpy python3-matplotlib nlohmann-json3-dev libomp-dev)

setup() {
  local missing=()
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "moma: installing ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

build() {
  setup
  if [ ! -f "$build/build.ninja" ]; then
    cmake -G Ninja -S "$root" -B "$build" \
      -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR="$llvm/lib/cmake/mlir" \
      -DLLVM_EXTERNAL_LIT="$llvm/bin/lit" \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DLLVM_USE_LINKER=lld
  fi
  ninja -C "$build" -j "$jobs" moma-opt momac
}

run_tests() {
  build
  ninja -C "$build" -j "$jobs" check-moma
}

run_default() {
  build
  ninja -C "$build" -j "$jobs" moma-run moma-train >/dev/null
  local model="${1:-$root/examples/tiny-moma-t4i4.json}"
  local tokens="$root/examples/sample-tokens.json"
  local out="$build/run"
  mkdir -p "$out"
  # The sample tokens are 2 sequences of 16: compile for that shape.
  local shape=(--batch=2 --seq-len=16)
  "$build/bin/momac" "$model" "${shape[@]}" -o "$out/model.mlir"
  "$build/bin/momac" "$model" "${shape[@]}" --emit=flops
  "$build/bin/momac" "$model" --init-weights="$out/weights.safetensors" --seed=1
  # On the GPU when one answers (its compute capability picks the target),
  # otherwise on the CPU.
  local target=cpu device=cpu cc=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
          head -n1 | tr -d ' .')"
  fi
  case "$cc" in
    8*) target=sm_80 device=cuda ;;
    9*) target=sm_90 device=cuda ;;
  esac
  "$build/bin/momac" "$model" "${shape[@]}" --target="$target" \
    -o "$out/model.momaprog"
  echo "== compiled program ($target) on the $device"
  "$build/bin/moma-run" "$out/model.momaprog" --device "$device" \
    --weights "$out/weights.safetensors" --tokens "$tokens"
  echo "== PyTorch reference (float32)"
  /usr/bin/python3 "$root/tools/moma-reference/moma_reference.py" run "$model" \
    --weights "$out/weights.safetensors" --tokens "$tokens" --dtype f32
  echo "moma IR: $out/model.mlir; program: $out/model.momaprog;" \
       "weights: $out/weights.safetensors"
  train_default "$model" "$out"
}

# A short training run of `model` on the CPU (examples/Training.md): a
# synthetic corpus, a train program, 150 steps of moma-train, a plot.
train_default() {
  local model="$1" out="$2"
  echo "== training: 150 steps of moma-train on a synthetic corpus (CPU)"
  /usr/bin/python3 "$root/tools/moma-corpus.py" "$model" \
    --out "$out/corpus.momacorpus" --tokens 40000 --seed 1
  if ! "$build/bin/momac" "$model" --program=train \
      --train-config="$root/examples/train-tiny.json" --target=cpu \
      --batch=4 --seq-len=32 -o "$out/train.momaprog"; then
    echo "(no training run: momac cannot compile a train program of $model)"
    return 0
  fi
  rm -rf "$out/train"
  "$build/bin/moma-train" "$out/train.momaprog" \
    --weights "$out/weights.safetensors" --data "$out/corpus.momacorpus" \
    --steps 150 --out "$out/train" --seed 1
  /usr/bin/python3 "$root/tools/moma-plot.py" "$out/train" \
    --out "$out/train/loss.png" --smooth 10
  echo "trained weights: $out/train/checkpoint/weights.safetensors;" \
       "metrics: $out/train/metrics.jsonl; plots: $out/train/loss*.png"
}

case "${1:-build}" in
  setup) setup ;;
  build) build ;;
  test) run_tests ;;
  run) run_default "${2:-}" ;;
  *) echo "usage: $0 [setup|build|test|run]" >&2; exit 2 ;;
esac
