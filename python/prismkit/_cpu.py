"""The CPU side of the build: which instruction-set path the CPU kernels run (csrc/common/cpu_dispatch.h)
and on which processor, for ``python -m prismkit info``, the benchmarks and the tests."""

from __future__ import annotations

import platform

from . import _C

PATHS = ("baseline", "avx2", "avx512")  # x86-64, in order; aarch64 has one path, "neon"


def processor() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), e.g. "AMD EPYC 9R14"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def capability() -> dict:
    """{"path": the path in use, "best": the best this CPU supports, "requested": the value of
    PRISMKIT_CPU_CAPABILITY ("" when unset)}."""
    return dict(_C.cpu_capability())


def supported_paths() -> list[str]:
    """Every path this CPU can run, lowest first."""
    best = capability()["best"]
    return PATHS[: PATHS.index(best) + 1] if best in PATHS else [best]


def set_path(name: str) -> None:
    """Switch the path in use for this process (the tests run every supported path this way)."""
    _C._set_cpu_capability(name)


def describe() -> str:
    """ "avx2 (best on this CPU: avx512; forced by PRISMKIT_CPU_CAPABILITY=avx2)" and the like."""
    cap = capability()
    notes = []
    if cap["best"] != cap["path"]:
        notes.append(f"best on this CPU: {cap['best']}")
    if cap["requested"]:
        ignored = " is not one of baseline, avx2, avx512: ignored" if _request_ignored(cap["requested"]) else ""
        notes.append(f"PRISMKIT_CPU_CAPABILITY={cap['requested']}{ignored}")
    return cap["path"] + (f" ({'; '.join(notes)})" if notes else "")


def _request_ignored(requested: str) -> bool:
    """A value that names no path (the names csrc/common/cpu_dispatch.cpp accepts)."""
    return bool(requested) and requested not in (*PATHS, "default", "neon")


def warn_if_request_ignored() -> None:
    """At import: a PRISMKIT_CPU_CAPABILITY value that names no path is ignored, and says so."""
    cap = capability()
    if _request_ignored(cap["requested"]):
        import warnings

        warnings.warn(
            f"PRISMKIT_CPU_CAPABILITY={cap['requested']!r} is not one of baseline, avx2, avx512: ignored "
            f"(the CPU kernels run the {cap['path']} path)",
            stacklevel=3,
        )
