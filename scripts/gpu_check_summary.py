"""One-file summary of a `make gpu-check` run, written to <out>/summary.json and printed.

    python3 scripts/gpu_check_summary.py OUT_DIR

Reads what the steps left in OUT_DIR (junit.xml from pytest, sanitizer.log from compute-sanitizer,
the benchmark result file <gpu>.json, info.txt) and reports tests passed / failed / skipped per core
(from the test file's name: tests/test_<core>_*.py), the sanitizer's error count, and the benchmark
rows. A step that did not finish shows up as missing data, not as a pass.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET


def registered_cores() -> set[str]:
    try:
        from prismkit.ops import registry

        return {core.name for core in registry.cores()}
    except Exception:  # noqa: BLE001 - the summary must be written even when the build failed
        return set()


CORES = registered_cores()


def core_of(classname: str) -> str:
    """tests.test_sae_decode -> "sae"; files of no core (test_package, ...) -> "other"."""
    parts = classname.split(".")[-1].split("_")
    return parts[1] if len(parts) > 1 and parts[1] in CORES else "other"


def tests(path: str) -> dict:
    if not os.path.exists(path):
        return {"error": "no junit.xml: the test step did not finish"}
    per_core: dict[str, dict[str, int]] = {}
    failed_names = []
    for case in ET.parse(path).getroot().iter("testcase"):
        counts = per_core.setdefault(core_of(case.get("classname", "")), {"passed": 0, "failed": 0, "skipped": 0})
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failed_names.append(f"{case.get('classname')}::{case.get('name')}")
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {"per_core": per_core, "failed": failed_names}


def sanitizer(path: str) -> dict:
    if not os.path.exists(path):
        return {"error": "no sanitizer.log: the step did not run"}
    text = open(path, errors="replace").read()
    summary = re.findall(r"ERROR SUMMARY: (\d+) error", text)
    exit_code = re.findall(r"compute-sanitizer exit code (\d+)", text)
    return {
        "errors": sum(int(n) for n in summary) if summary else None,
        "processes_checked": len(summary),
        "exit_code": int(exit_code[-1]) if exit_code else None,
    }


def bench(out_dir: str) -> dict:
    files = [p for p in glob.glob(os.path.join(out_dir, "*.json")) if os.path.basename(p) != "summary.json"]
    if not files:
        return {"error": "no result file: the benchmark step did not finish"}
    data = json.load(open(files[0]))
    rows = [{k: r[k] for k in ("core", "op", "mode", "case", "baseline", "median_ms", "speedup") if k in r}
            for r in data.get("rows", [])]  # fmt: skip
    return {"file": os.path.basename(files[0]), "device": data.get("device"), "rows": rows}


def main(out_dir: str) -> int:
    info = os.path.join(out_dir, "info.txt")
    summary = {
        "info": open(info).read().splitlines()[:8] if os.path.exists(info) else None,
        "tests": tests(os.path.join(out_dir, "junit.xml")),
        "sanitizer": sanitizer(os.path.join(out_dir, "sanitizer.log")),
        "bench": bench(out_dir),
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
