"""Timing and peak-memory helpers shared by ``python -m prismkit demo`` and bench/.

Peak memory is what one call allocates beyond what was live when it started:
* CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus the memory allocated before;
* CPU: the process's peak resident set size (Linux ``VmHWM``, reset through
  ``/proc/self/clear_refs``) minus the resident size at the start, after ``malloc_trim`` has
  handed freed heap memory back to the OS. This counts every allocation the call touches, torch's
  and the BLAS library's alike, from every thread.
"""

from __future__ import annotations

import ctypes
import statistics
import time

import torch


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn, device="cpu", repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds (GPU work synchronized inside the timing)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory_mb(fn, device="cpu") -> float:
    """Peak memory in MiB that one ``fn()`` call allocates beyond what is live when it starts."""
    if torch.device(device).type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return max(0.0, (torch.cuda.max_memory_allocated(device) - base) / 2**20)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set size (VmHWM)
    except OSError as e:
        raise RuntimeError(f"CPU peak memory needs Linux's /proc/self/clear_refs ({e})") from e
    base = _status_mb("VmRSS")
    fn()
    return max(0.0, _status_mb("VmHWM") - base)
