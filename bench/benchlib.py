"""What the CPU benchmarks share: the CPU's facts and the thread and
OpenBLAS settings PyTorch must see before it loads (bench.py, kernels.py)."""

import ctypes
import os
import time


def cpuinfo(field):
    """The first ``field`` of /proc/cpuinfo (``model name``, ``flags``), or ""."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return ""


def openblas_coretype():
    """The OpenBLAS kernel family for this CPU's vector units. OpenBLAS
    picks one when it loads, but releases older than the CPU (Debian 12's
    0.3.21 on Sapphire/Emerald Rapids) fall back to the SSE3 "Prescott"
    kernels, several times slower; naming the family avoids that. None
    when the CPU has no AVX2 (OpenBLAS's own choice stands)."""
    flags = set(cpuinfo("flags").split())
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def best_cpu_level():
    """x86-64-v4 when /proc/cpuinfo lists its AVX-512 features, else
    x86-64-v3 (the moma-run refuses a level the CPU cannot run)."""
    flags = set(cpuinfo("flags").split())
    v4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    return "x86-64-v4" if v4 <= flags else "x86-64-v3"


def configure_threads(threads):
    """Sets the thread count of OpenMP and OpenBLAS, and OpenBLAS's kernel
    family, for a torch imported after this call."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "OPENBLAS_CORETYPE" not in os.environ and openblas_coretype():
        os.environ["OPENBLAS_CORETYPE"] = openblas_coretype()


# torch is imported by the functions below, after configure_threads.


def blas_library():
    """The BLAS shared objects torch has loaded (after one matmul), and
    OpenBLAS's kernel family and thread count when one of them is OpenBLAS."""
    import torch
    torch.ones(8, 8) @ torch.ones(8, 8)
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1]})
    details = None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            details = (lib.openblas_get_corename().decode(), lib.openblas_get_num_threads())
            break
        except (OSError, AttributeError):
            continue
    return ", ".join(paths) or "none found (torch's own kernels)", details


def sgemm_rate(m, k, n, min_flops=0.0, trials=5):
    """GFLOP/s of torch.mm [m, k] x [k, n] (torch calls the BLAS sgemm),
    each trial running at least ``min_flops``: the best trial."""
    import torch
    a, b = torch.randn(m, k), torch.randn(k, n)
    flops = 2.0 * m * k * n
    reps = max(1, int(-(-min_flops // flops)))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return flops * reps / best / 1e9
