#!/usr/bin/env bash
#===- bench/run.sh - the CPU benchmark: moma against PyTorch eager --------===//
#
# Usage: bash bench/run.sh [--no-install] [bench.py options]
#        bash bench/run.sh --kernels [--no-install] [kernels.py options]
#
# Installs Debian's libopenblas0-pthread when it is missing (with sudo when
# not root), so that PyTorch multiplies with OpenBLAS rather than Debian's
# reference BLAS (~30x slower, not a fair peer); builds momac and moma-run
# unless --momac/--moma-run name them; then runs bench/bench.py with
# Debian's python3 (the one with torch). --no-install and --quick install
# nothing (they only update an existing build). See bench/README.md.
#
# Environment: MOMA_BUILD_DIR (default: build).
#===----------------------------------------------------------------------===//
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOMA_BUILD_DIR:-$root/build}"

install=1 tools_given=0 script=bench.py
args=()
for arg in "$@"; do
  case "$arg" in
    --kernels) script=kernels.py; continue ;;
    --no-install | --quick) install=0 ;;
    --momac | --momac=* | --moma-run | --moma-run=* | --moma-opt | --moma-opt=*)
      tools_given=1 ;;
  esac
  args+=("$arg")
done
# bench.py reports --no-install; kernels.py has no use for it.
if [ "$script" = kernels.py ]; then
  kept=()
  for arg in "${args[@]}"; do
    [ "$arg" = --no-install ] || kept+=("$arg")
  done
  args=("${kept[@]}")
fi

openblas=libopenblas0-pthread
if [ "$install" -eq 1 ] &&
   ! dpkg-query -W -f='${Status}' "$openblas" 2>/dev/null | grep -q 'ok installed'; then
  echo "bench: installing $openblas (PyTorch's BLAS)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "$openblas" >/dev/null
fi

# The tools: bootstrap.sh configures the build (installing its packages when
# missing) unless installing is off, where an existing build only updates.
if [ "$tools_given" -eq 0 ]; then
  if [ "$install" -eq 1 ]; then
    MOMA_BUILD_DIR="$build" bash "$root/tools/bootstrap.sh" build >/dev/null
  elif [ ! -f "$build/build.ninja" ]; then
    echo "bench: error: no build in $build (run bash tools/bootstrap.sh build," \
         "or pass --momac and --moma-run)" >&2
    exit 1
  fi
  ninja -C "$build" momac moma-run moma-opt >/dev/null
fi

MOMA_BUILD_DIR="$build" exec /usr/bin/python3 "$root/bench/$script" "${args[@]}"
