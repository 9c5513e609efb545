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


CPU_FILES = {path: [p for p in RESULTS if os.path.basename(p).startswith("cpu-") and p.endswith(f"-{path}.json")]
             for path in ("avx512", "avx2")}  # fmt: skip


def test_there_is_a_cpu_result_file_per_x86_path():
    """One file per instruction-set path (AVX-512 and AVX2), each naming the processor and the path."""
    for path, files in CPU_FILES.items():
        assert files, f"no bench/results/cpu-<N>core-{path}.json"
        for f in files:
            with open(f) as fh:
                device = json.load(fh)["device"]
            assert f"prismkit CPU path {path}" in device, device


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
    + [
        ("trainer", "end-to-end", "minilm d384 F12288 k32", "saelens"),
        ("trainer", "end-to-end", "batchtopk minilm d384 F12288 k32", "saelens"),
        ("trainer", "end-to-end", "jumprelu minilm d384 F12288 theta0.3", "saelens"),
    ]  # fmt: skip
)


CSWIN_CPU_ROWS = [
    ("cswin_attention", mode, f"cswin-t stage{s}", "official-pytorch") for mode in ("forward", "forward+backward")
    for s in (1, 2, 3, 4)
] + [
    ("cswin_tiny_224", "end-to-end", "cswin-t 224x224", "official-pytorch"),
    ("cswin_tiny_224", "forward+backward", "cswin-t 224x224 B8", "official-pytorch"),
    ("cswin_tiny_224", "forward", "cswin-t features_only 512x512 B2", "official-pytorch"),
    ("cswin_tiny_224", "end-to-end", "cswin-t 224x224 B8 torch.compile", "prismkit-eager"),
]  # fmt: skip


SPLAT_CPU_ROWS = [
    ("rasterization", mode, f"synthetic N100k 512x512 D{D}", "torch-reference")
    for mode in ("forward", "forward+backward") for D in (3, 64, 512)
] + [("rasterization", mode, "synthetic N100k 512x512 D512", "chunked-32") for mode in ("forward", "forward+backward")] + [
    ("rasterize_sparse_coef", "forward", "synthetic N100k 512x512 K4 L64 levels3", "dense-coef"),
    ("rasterize_sparse_coef", "forward", "synthetic N100k 512x512 K4 L64 levels3", "dense-features"),
    ("rasterize_sparse_coef", "forward+backward", "synthetic N100k 512x512 K4 L64 levels3", "dense-coef"),
    ("language_relevancy", "end-to-end", "synthetic N100k 512x512 K4 L64 levels3 D512 Q1", "official-style"),
    ("language_field", "step", "synthetic N100k 512x512 K4 L64 levels3 D512", "official-style"),
]  # fmt: skip


QUANT_CPU_ROWS = [
    ("quant_linear", "forward", f"{fmt} g128 {case}", base)
    for fmt in ("sq-int2", "sq-int4", "mm-int4")
    for case in ("4096x4096 B1", "4096x11008 B1", "4096x4096 B8", "4096x4096 B64")
    for base in ("fp32-linear", "quanto") + (("naive-splitquant",) if fmt.startswith("sq") else ())
] + [("quantize", "end-to-end", "minilm-l6 sq-int2 g128", "official-splitquant")]  # fmt: skip


MERGE_CPU_ROWS = [
    (op, "forward", case, base)
    for op, base in (("pitome_merge", "official-pytorch"), ("tome_merge", "official-tome"))
    for case in ("vit-b T197 C768 d64 B64 keep0.9", "vit-l384 T577 C1024 d64 B64 keep0.9")
] + [
    ("divprune_select", "forward", "llava N576 d4096 k56 B8", "official-pytorch"),
    ("vit_b16", "end-to-end", "timm vit-b/16 224 B16 pitome keep0.9", "no-merge"),
    ("vit_b16", "end-to-end", "timm vit-b/16 224 B16 pitome keep0.9", "official-pytorch"),
]  # fmt: skip


@pytest.mark.parametrize("path", sorted(CPU_FILES))
def test_cpu_files_have_every_row(path):
    for f in CPU_FILES[path]:
        with open(f) as fh:
            rows = json.load(fh)["rows"]
        for core, wanted in (("sae", SAE_CPU_ROWS), ("cswin", CSWIN_CPU_ROWS), ("splat", SPLAT_CPU_ROWS),
                             ("quant", QUANT_CPU_ROWS), ("merge", MERGE_CPU_ROWS)):  # fmt: skip
            for op, mode, case, baseline in wanted:
                assert any(r["core"] == core and r["op"] == op and r["mode"] == mode and case in r["case"]
                           and r["baseline"] == baseline for r in rows), (f, op, mode, case, baseline)  # fmt: skip
