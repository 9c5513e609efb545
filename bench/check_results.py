"""Validate benchmark result files against the project's result format (CONTRIBUTING.md,
"Benchmarks"). The valid cores are the registry's (prismkit.ops.registry).

usage: python bench/check_results.py bench/results/*.json
"""

from __future__ import annotations

import json
import math
import sys

from prismkit.ops import registry

CORES = {core.name for core in registry.cores()}
MODES = {"forward", "backward", "forward+backward", "step", "end-to-end"}
IMPLS = {"cpu", "cuda", "triton"}
POSITIVE = ("median_ms", "baseline_median_ms", "speedup")
MEMORY = ("peak_mem_mb", "baseline_peak_mem_mb")


def problems(data) -> list[str]:
    if not isinstance(data, dict):
        return ["top level must be an object with device, torch, date, rows"]
    found = [f"missing top-level '{key}'" for key in ("device", "torch", "date", "rows") if key not in data]
    for n, row in enumerate(data.get("rows", [])):
        where = f"row {n}"
        for key, allowed in (("core", CORES), ("mode", MODES), ("impl", IMPLS)):
            if row.get(key) not in allowed:
                found.append(f"{where}: {key} must be one of {sorted(allowed)}")
        for key in ("op", "case", "baseline"):
            if not isinstance(row.get(key), str) or not row[key]:
                found.append(f"{where}: '{key}' must be a non-empty string")
        for key in MEMORY:
            v = row.get(key)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                found.append(f"{where}: '{key}' must be a number >= 0")
        for key in POSITIVE:
            v = row.get(key)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                found.append(f"{where}: '{key}' must be a positive number")
        if "roofline_fraction" in row and not isinstance(row["roofline_fraction"], (int, float)):
            found.append(f"{where}: 'roofline_fraction' must be a number")
        if all(isinstance(row.get(k), (int, float)) and row.get(k) for k in POSITIVE):
            expect = row["baseline_median_ms"] / row["median_ms"]
            if abs(expect - row["speedup"]) > 0.02 * expect:
                found.append(f"{where}: speedup {row['speedup']} != baseline_median_ms / median_ms ({expect:.3f})")
    return found


def main(paths) -> int:
    bad = 0
    for path in paths:
        with open(path) as f:
            for p in problems(json.load(f)):
                print(f"{path}: {p}")
                bad += 1
    print(f"{len(paths)} file(s) checked, {bad} problem(s)")
    return 1 if bad or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
