"""pytest-benchmark setup for the prismkit benchmarks (run them with bench/run.py or `make bench`).

Every benchmark test compares one prismkit call with its baselines (the `compare` fixture) and
tags the result with the fields of a result row (bench/check_results.py) (core, op, mode, case, impl), the
baselines' medians and every side's peak memory; bench/run.py turns each into rows.
"""

from __future__ import annotations

import math
import statistics
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
def compare(benchmark, bench_device):
    """compare(fn, baselines, core=, op=, mode=, case=, impl=, setup=None, extra=None).

    Times the prismkit callable ``fn`` with pytest-benchmark and every baseline callable of the
    ``baselines`` dict ({name: fn}) in the same rounds, interleaved: before each timed prismkit
    call, each baseline is called and timed once (so slow drifts of a shared machine hit both
    sides alike). ``setup`` (untimed) runs before every call, e.g. to clear gradients. GPU work is
    synchronized inside each timing. Each side's peak memory is measured in one extra call.
    """

    def run(fn, baselines, *, core, op, mode, case, impl, setup=None, extra=None):
        setup = setup or (lambda: None)

        def timed(f):
            setup()
            _sync(bench_device)
            start = time.perf_counter()
            f()
            _sync(bench_device)
            return time.perf_counter() - start

        first = timed(fn) + sum(timed(b) for b in baselines.values())  # warm-up, sizes the rounds
        rounds = min(50, max(3, math.ceil(6.0 / max(first, 1e-6))))
        baseline_times = {name: [] for name in baselines}

        def before_round():
            for name, b in baselines.items():
                baseline_times[name].append(timed(b))
            setup()
            _sync(bench_device)

        def target():
            fn()
            _sync(bench_device)

        benchmark.pedantic(target, setup=before_round, rounds=rounds, iterations=1, warmup_rounds=0)

        def peak(f):
            setup()
            return _measure.peak_memory_mb(f, bench_device)

        benchmark.extra_info.update(
            core=core, op=op, mode=mode, case=case, impl=impl, peak_mem_mb=peak(fn),
            baselines={name: {"median_ms": statistics.median(t) * 1e3, "peak_mem_mb": peak(baselines[name])}
                       for name, t in baseline_times.items()},
            **(extra or {}),
        )  # fmt: skip

    return run
