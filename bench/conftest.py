"""pytest-benchmark setup for the prismkit benchmarks (run them with bench/run.py or `make bench`).

Every benchmark test times one side of a comparison, prismkit or a named baseline, and tags the
result with the fields of a DESIGN.md result row (core, op, mode, case, impl) plus its peak
memory; bench/run.py pairs each prismkit result with the baselines of the same core/op/mode/case.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

import prismkit  # noqa: F401  (registers the ops)
from prismkit import _measure


def pytest_addoption(parser):
    parser.addoption("--bench-device", default="cpu", help="cpu or cuda")
    parser.addoption("--bench-cases", default="all", help="'small' (seconds) or 'all' (paper sizes)")


@pytest.fixture(scope="session")
def bench_device(request):
    device = request.config.getoption("--bench-device")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return device


@pytest.fixture(scope="session")
def bench_cases(request):
    return request.config.getoption("--bench-cases")


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


@pytest.fixture
def measure(benchmark, bench_device):
    """measure(fn, core=, op=, mode=, case=, impl=, baseline=None, extra=None): time fn with
    pytest-benchmark (GPU work synchronized inside the timed call; about 4 s of rounds, 3 to 20)
    and record its peak memory. baseline=None marks the prismkit side."""

    def run(fn, *, core, op, mode, case, impl, baseline=None, extra=None):
        def timed():
            fn()
            _sync(bench_device)

        start = time.perf_counter()
        timed()  # warm-up, also sizes the number of rounds
        first = time.perf_counter() - start
        rounds = min(20, max(3, math.ceil(4.0 / max(first, 1e-6))))
        benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1 if first < 0.5 else 0)
        benchmark.extra_info.update(
            core=core, op=op, mode=mode, case=case, impl=impl,
            side="prismkit" if baseline is None else "baseline", baseline=baseline,
            peak_mem_mb=_measure.peak_memory_mb(fn, bench_device), **(extra or {}),
        )  # fmt: skip

    return run
