"""The committed benchmark results follow the project's result format and hold the rows the SAE
foundation promises (bench/check_results.py has the format rules)."""

import glob
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import check_results  # noqa: E402

RESULTS = sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*.json")))


def test_there_is_a_cpu_result_file():
    assert any(os.path.basename(p).startswith("cpu-") for p in RESULTS)


@pytest.mark.parametrize("path", RESULTS, ids=os.path.basename)
def test_result_file_format(path):
    with open(path) as f:
        assert check_results.problems(json.load(f)) == []


def test_checker_catches_bad_rows():
    row = {"core": "sae", "op": "x", "mode": "forward", "case": "c", "impl": "cpu", "baseline": "b",
           "median_ms": 2.0, "baseline_median_ms": 4.0, "speedup": 2.0, "peak_mem_mb": 1, "baseline_peak_mem_mb": 1}  # fmt: skip
    good = {"device": "d", "torch": "t", "date": "x", "rows": [row]}
    assert check_results.problems(good) == []
    for key, value in [("speedup", 3.0), ("core", "nope"), ("median_ms", 0), ("peak_mem_mb", -1), ("impl", "gpu")]:
        assert check_results.problems({**good, "rows": [{**row, key: value}]}), key
    assert check_results.problems({"rows": []})


SAE_CPU_ROWS = (
    [  # (op, mode, case fragment, baseline)
        (op, "forward", case, "dense-pytorch")
        for op in ("topk_encode", "batch_topk_encode", "feature_choice_encode")
        for case in ("d768 F24576 k32 B4096", "d2304 F65536 k64 B1024")
    ]
    + [
        ("sparse_decode", "forward", case, base)
        for case in ("d768 F24576 k32 B4096", "d2304 F65536 k64 B1024")
        for base in ("dense-pytorch", "embedding_bag")
    ]
    + [
        ("sparse_decode", "forward+backward", case, "embedding_bag")
        for case in ("d768 F24576 k32 B4096", "d2304 F65536 k64 B1024")
    ]
    + [("train_step", "step", case, "dense-pytorch") for case in ("d768 F24576 k32 B4096", "d2304 F65536 k64 B1024")]
)


def test_cpu_file_has_every_sae_row():
    (path,) = [p for p in RESULTS if os.path.basename(p).startswith("cpu-")]
    with open(path) as f:
        rows = json.load(f)["rows"]
    for op, mode, case, baseline in SAE_CPU_ROWS:
        assert any(r["core"] == "sae" and r["op"] == op and r["mode"] == mode and case in r["case"]
                   and r["baseline"] == baseline for r in rows), (op, mode, case, baseline)  # fmt: skip
