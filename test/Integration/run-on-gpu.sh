#!/usr/bin/env bash
#===- test/Integration/run-on-gpu.sh - the GPU tests in one call ---------===//
#
# Usage: bash test/Integration/run-on-gpu.sh [BUILD_DIR]     (default: build)
#        bash test/Integration/run-on-gpu.sh --prepare [BUILD_DIR]
#
# --prepare runs on the build machine (no GPU needed): momac compiles every
# tiny example model for the CPU, sm_80 and sm_90 (forward programs, and
# train programs for the training-step check), with seeded weights and
# token inputs, into BUILD_DIR/gpu-models (models_gpu.py prepare), for step
# 7 below on a GPU machine where momac cannot run (it needs LLVM, MLIR and
# CUDA's libdevice). Carry BUILD_DIR/bin and BUILD_DIR/gpu-models.
#
# For a session that has a GPU machine. In one call it
#   1. reports the GPU and the driver;
#   2. checks (or builds) BUILD_DIR/bin/moma-run and moma-pack;
#   3. runs every test/Integration/*.test by executing its RUN lines (no lit
#      or FileCheck needed: the GPU image has neither; on a machine with lit,
#      `ninja check-moma` runs the same tests through the lit feature `cuda`);
#   4. runs compute-sanitizer (memcheck) on one moma-run of the vadd program,
#      when it is installed;
#   5. assembles vadd.ptx into a cubin with ptxas, packs a program carrying
#      both, and checks that moma-run loads the cubin by default and either
#      image on request (--kernel-image), when ptxas is installed and the
#      GPU is sm_90;
#   6. times the vadd program kernel by kernel and as a CUDA graph;
#   7. runs every tiny example model compiled for this GPU (sm_90 on
#      compute capability 9.0, from its cubin and again from its PTX; and
#      sm_80, PTX only, everywhere) and for the CPU on the same weights and
#      inputs, and compares all outputs (1e-4, relative to
#      each output's largest magnitude; models_gpu.py check), from
#      BUILD_DIR/gpu-models (or $MOMA_GPU_MODELS) when prepared, else
#      compiling them here if momac runs; models-gpu.test, the lit form of
#      this step, is skipped in step 3; and, for the cases on example token
#      files, compares the per-modality losses that moma-run --tokens prints
#      (models_gpu.py losses); then one training step of the routed tiny
#      examples (momac --program=train, examples/train-tiny.json, step 25) on both:
#      its outputs, every gradient included, and its AdamW moments against
#      the CPU's, and its updated weights against AdamW's update with its
#      own moments (models_gpu.py check, the `.train` cases; --prepare
#      compiles their CPU and GPU train programs too);
#   8. runs compute-sanitizer (memcheck) on one compiled model, when
#      installed;
# and prints a summary. The exit status is non-zero if anything failed.
#
# moma-run and moma-pack link no LLVM, MLIR or absl shared library (absl,
# libstdc++ and libgcc are static), so binaries built on the CPU machine can
# be carried to the GPU machine with the tree (`build/bin`).
#
# Environment: MOMA_LIBCUDA overrides the driver library (default
# libcuda.so.1); MOMA_GPU_TESTS_FORCE=1 runs even when no driver initialises
# (to try this script with a stand-in driver).
#===----------------------------------------------------------------------===//
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prepare=0
if [ "${1:-}" = --prepare ]; then
  prepare=1
  shift
fi
build="${1:-$root/build}"
bin="$build/bin"
python="$(command -v python3 || command -v python || true)"

if [ "$prepare" = 1 ]; then
  echo "== preparing the GPU model checks in $build/gpu-models"
  rm -rf "$build/gpu-models"
  exec "$python" "$here/models_gpu.py" prepare --dir "$build/gpu-models" \
    --arch sm_80 --arch sm_90 --ptx-only sm_80 --momac "$bin/momac"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/moma-gpu-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT

results=()
failures=0
record() { # STATUS NAME [DETAIL]
  results+=("$(printf '%-5s %s%s' "$1" "$2" "${3:+  ($3)}")")
  if [ "$1" = FAIL ]; then failures=$((failures + 1)); fi
}

echo "== moma GPU tests: tree $root, build $build"

# 1. The GPU.
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total \
    --format=csv,noheader 2>/dev/null | sed 's/^/   GPU: /'
fi
cc=""
if command -v nvidia-smi >/dev/null 2>&1; then
  cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
        head -n1 | tr -d ' .')"
fi
driver_ok=0
if [ -n "$python" ] && "$python" -c "
import ctypes, os, sys
lib = ctypes.CDLL(os.environ.get('MOMA_LIBCUDA') or 'libcuda.so.1')
sys.exit(lib.cuInit(0))" >/dev/null 2>&1; then
  driver_ok=1
fi
if [ "$driver_ok" = 0 ] && [ "${MOMA_GPU_TESTS_FORCE:-0}" != 1 ]; then
  echo "error: no CUDA driver initialises here (libcuda.so.1 and cuInit(0))" >&2
  exit 1
fi

# 2. The tools.
tools_ok() {
  "$bin/moma-run" --help >/dev/null 2>&1 && "$bin/moma-pack" --help >/dev/null 2>&1
}
if ! tools_ok; then
  if [ -f "$build/build.ninja" ] && command -v ninja >/dev/null 2>&1; then
    echo "== building moma-run and moma-pack in $build"
    ninja -C "$build" moma-run moma-pack || true
  fi
fi
if ! tools_ok; then
  echo "error: $bin/moma-run or moma-pack is missing or does not start." >&2
  echo "Build them on the CPU machine (ninja -C build moma-run moma-pack) and" >&2
  echo "carry build/bin with the tree; they need only libc." >&2
  [ -x "$bin/moma-run" ] && ldd "$bin/moma-run" >&2
  exit 1
fi
record PASS "tools" "$(ldd "$bin/moma-run" 2>/dev/null | grep -c '=>') shared libraries"

# 3. The .test files, RUN line by RUN line.
run_test() { # FILE
  local file="$1" name tmp line status=0 log
  name="$(basename "$file")"
  tmp="$work/$name.tmp"
  log="$work/$name.log"
  local requires
  requires="$(sed -n 's/^[#/ ]*REQUIRES:[[:space:]]*//p' "$file" | tr ',' ' ')"
  for feature in $requires; do
    if [ "$feature" != cuda ]; then
      record SKIP "$name" "requires $feature"
      return
    fi
  done
  # Joined RUN lines (a trailing backslash continues a line).
  local -a lines=()
  local pending=""
  while IFS= read -r line; do
    line="${line#*RUN:}"
    line="${line#"${line%%[![:space:]]*}"}"
    if [ "${line%\\}" != "$line" ]; then
      pending+="${line%\\} "
      continue
    fi
    lines+=("$pending$line")
    pending=""
  done < <(grep -E '^[#/ ]*RUN:' "$file")
  for line in "${lines[@]}"; do
    line="${line//%python/$python}"
    line="${line//%s/$file}"
    line="${line//%S/$(dirname "$file")}"
    line="${line//%t/$tmp}"
    echo "   \$ $line" >>"$log"
    if ! PATH="$bin:$PATH" bash -o pipefail -c \
        'not() { if "$@"; then return 1; else return 0; fi; }; '"$line" \
        >>"$log" 2>&1; then
      status=1
      echo "   ^ FAILED" >>"$log"
      break
    fi
  done
  if [ "$status" = 0 ]; then
    record PASS "$name" "${#lines[@]} RUN lines"
  else
    record FAIL "$name" "log below"
    echo "== $name failed:"
    cat "$log"
  fi
}
shopt -s nullglob
for test in "$here"/*.test; do
  echo "== $(basename "$test")"
  if [ "$(basename "$test")" = models-gpu.test ]; then
    record SKIP "models-gpu.test" "run as step 7, from prepared programs"
    continue
  fi
  run_test "$test"
done

# The vadd program, for the checks below.
data="$work/vadd"
mkdir -p "$data"
"$python" "$here/Inputs/make-vadd-data.py" "$data" &&
  "$bin/moma-pack" "$here/Inputs/vadd.json" -o "$data/vadd.momaprog" >/dev/null
run_args=(--device cuda --weights "$data/w.safetensors" --input "a=$data/a.bin"
          --expect "c=$data/c.ref" --expect "y=$data/y.ref"
          --expect "z=$data/z.ref")

# 4. compute-sanitizer on one run (graph replay included).
sanitizer="$(command -v compute-sanitizer || true)"
[ -z "$sanitizer" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] &&
  sanitizer=/usr/local/cuda/bin/compute-sanitizer
if [ -n "$sanitizer" ]; then
  echo "== compute-sanitizer --tool memcheck moma-run vadd.momaprog --graph"
  if "$sanitizer" --tool memcheck --error-exitcode 3 "$bin/moma-run" \
      "$data/vadd.momaprog" "${run_args[@]}" --graph --repeat 2 \
      >"$work/sanitizer.log" 2>&1; then
    record PASS "compute-sanitizer" "$(grep -o 'ERROR SUMMARY: [0-9]* errors' "$work/sanitizer.log" | head -n1)"
  else
    record FAIL "compute-sanitizer" "log below"
    cat "$work/sanitizer.log"
  fi
else
  record SKIP "compute-sanitizer" "not installed"
fi

# 5. Kernel images: vadd as PTX plus a cubin assembled here by ptxas for
#    this GPU; moma-run loads the cubin unless told to load the PTX.
ptxas="$(command -v ptxas || true)"
[ -z "$ptxas" ] && [ -x /usr/local/cuda/bin/ptxas ] && ptxas=/usr/local/cuda/bin/ptxas
if [ -n "$ptxas" ] && [ "$cc" = 90 ]; then
  echo "== cubin: ptxas -arch=sm_90 vadd.ptx, a program with PTX and cubin"
  cp "$here/Inputs/vadd.ptx" "$data/vadd.ptx"
  images_ok=0
  if "$ptxas" -arch=sm_90 "$data/vadd.ptx" -o "$data/vadd.cubin" &&
     sed -e 's/"sm_80"/"sm_90"/' \
         -e 's/"path": "vadd.ptx"/"path": "vadd.ptx", "alternatives": [{"format": "cubin", "path": "vadd.cubin"}]/' \
       "$here/Inputs/vadd.json" >"$data/vadd-cubin.json" &&
     "$bin/moma-pack" "$data/vadd-cubin.json" -o "$data/cubin.momaprog" >/dev/null; then
    images_ok=1
    for image in auto cubin ptx; do
      want=$image
      [ "$image" = auto ] && want=cubin
      if "$bin/moma-run" "$data/cubin.momaprog" "${run_args[@]}" \
          --kernel-image "$image" >"$work/cubin.log" 2>&1 &&
         grep -q "^moma-run: device .*; $want)\$" "$work/cubin.log"; then
        echo "   --kernel-image $image: $(grep '^moma-run: device' "$work/cubin.log")"
      else
        images_ok=0
        echo "   --kernel-image $image: expected the $want image to load and run:"
        cat "$work/cubin.log"
      fi
    done
  fi
  if [ "$images_ok" = 1 ]; then
    record PASS "kernel images" "sm_90 cubin by default, PTX on request"
  else
    record FAIL "kernel images" "log above"
  fi
else
  record SKIP "kernel images" "needs ptxas and an sm_90 GPU (cc '${cc:-?}')"
fi

# 6. Timings (informational): launch by launch against graph replay.
echo "== timings of vadd.momaprog (3 tiny launches)"
for mode in "" --graph; do
  "$bin/moma-run" "$data/vadd.momaprog" "${run_args[@]}" $mode \
    --warmup 20 --repeat 200 2>&1 | grep -E "ran |error:" | sed 's/^/   /'
done

# 7. Every tiny example model on this GPU against the CPU.
models="${MOMA_GPU_MODELS:-$build/gpu-models}"
if [ ! -f "$models/cases.json" ] && "$bin/momac" --help >/dev/null 2>&1; then
  echo "== compiling the tiny example models here (no $models/cases.json)"
  models="$work/models"
  if ! "$python" "$here/models_gpu.py" prepare --dir "$models" \
      --arch sm_80 --arch sm_90 --ptx-only sm_80 --momac "$bin/momac" \
      >"$work/prepare.log" 2>&1; then
    cat "$work/prepare.log"
    record FAIL "models: prepare" "momac failed, log above"
  fi
fi
# ARCH:KERNEL_IMAGE runs: on Hopper the sm_90 programs with their cubins
# (the default) and with their PTX JIT-compiled, and the sm_80 programs
# (PTX only: an sm_80 cubin does not run on 9.0).
model_runs=(sm_80:auto)
[ "$cc" = 90 ] && model_runs=(sm_90:auto sm_90:ptx sm_80:auto)
models_step() { # STEP (check or losses) ARCH IMAGE: one models_gpu.py step
  local step="$1" arch="$2" image="$3" log status summary
  log="$work/$step-$arch-$image.log"
  "$python" "$here/models_gpu.py" "$step" --dir "$models" --arch "$arch" \
    --kernel-image "$image" \
    --moma-run "$bin/moma-run" --moma-pack "$bin/moma-pack" --verbose \
    >"$log" 2>&1
  status=$?
  sed 's/^/   /' "$log" | head -n 200
  summary="$(grep '^summary:' "$log" | tail -n1)"
  if [ "$status" = 0 ]; then
    record PASS "models $step $arch/$image" "${summary#summary: }"
  else
    record FAIL "models $step $arch/$image" "${summary:-see log above}"
  fi
}
if [ -f "$models/cases.json" ]; then
  for run in "${model_runs[@]}"; do
    arch="${run%%:*}" image="${run#*:}"
    echo "== models on the GPU ($arch, --kernel-image $image) against the CPU"
    models_step check "$arch" "$image"
    # moma-run --tokens: the per-modality losses it prints, GPU against CPU.
    models_step losses "$arch" "$image"
  done
  # 8. compute-sanitizer on one compiled model.
  if [ -n "$sanitizer" ]; then
    echo "== compute-sanitizer --tool memcheck on one compiled model"
    if "$python" "$here/models_gpu.py" sanitize --dir "$models" \
        --arch "${model_runs[0]%%:*}" --moma-run "$bin/moma-run" \
        --sanitizer "$sanitizer" >"$work/models-sanitizer.log" 2>&1; then
      record PASS "compute-sanitizer model" "$(head -n1 "$work/models-sanitizer.log")"
    else
      record FAIL "compute-sanitizer model" "log below"
      cat "$work/models-sanitizer.log"
    fi
  else
    record SKIP "compute-sanitizer model" "not installed"
  fi
else
  record FAIL "models vs cpu" "no prepared programs in $models and momac does not run here: run 'bash test/Integration/run-on-gpu.sh --prepare' on the build machine and carry build/gpu-models"
fi

echo
echo "== summary"
printf '   %s\n' "${results[@]}"
if [ "$failures" -gt 0 ]; then
  echo "   $failures check(s) FAILED"
  exit 1
fi
echo "   all checks passed"
