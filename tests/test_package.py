"""The package itself: build facts, the torch version guard, `python -m prismkit info` and the demo."""

import subprocess
import sys

import pytest
import torch

import prismkit
from prismkit import _build_info


def test_build_info_matches_the_running_torch():
    info = prismkit._C.build_info()
    assert info["version"] == prismkit.__version__ == _build_info.VERSION
    assert info["torch_version"] == torch.__version__ == _build_info.TORCH_VERSION
    assert info["with_cuda"] == _build_info.WITH_CUDA == bool(torch.version.cuda)
    if info["with_cuda"]:
        assert "90" in info["cuda_archs"].split(";")
    assert info["openmp"], "at::parallel_for would run serially without OpenMP"


def test_torch_version_guard():
    prismkit._check_torch_version("2.14.1+cu130", "2.14.1+cu130")
    with pytest.raises(ImportError, match=r"built against torch 2\.14\.1\+cu130, but torch 2\.13\.0\+cpu is installed.*install torch==2\.14\.1"):
        prismkit._check_torch_version("2.14.1+cu130", "2.13.0+cpu")


def test_every_op_is_registered_with_a_cpu_kernel():
    names = {n for n in torch._C._dispatch_get_all_op_names() if n.startswith("prismkit::")}
    assert names == {f"prismkit::{n}" for n in (
        "topk_encode", "batch_topk_encode", "feature_choice_encode", "threshold_encode", "latent_stats",
        "sparse_decode", "sparse_decode_grad_values", "sparse_decode_grad_weight", "sparse_decode_backward",
        "cswin_attention", "cswin_attention_backward")}  # fmt: skip
    for name in names:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(name, "CPU"), name
        if _build_info.WITH_CUDA:
            assert torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA"), name


def test_info_command():
    out = subprocess.run([sys.executable, "-m", "prismkit", "info"], capture_output=True, text=True, check=True).stdout
    assert f"prismkit {prismkit.__version__}" in out and f"torch {torch.__version__}" in out
    assert "Triton:" in out and "CUDA kernels:" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("topk_", "sparse_", "batch_", "feature_", "threshold_", "latent_", "cswin_"))}
    from sae_cases import HAS_TRITON

    for op in ("topk_encode", "threshold_encode", "latent_stats", "cswin_attention", "cswin_attention_backward"):
        assert lines[op] == (["C++", "Triton"] if HAS_TRITON else ["C++", "Triton", "(missing)"])
    assert lines["sparse_decode"] == (["C++", "CUDA", "C++"] if _build_info.WITH_CUDA else ["C++", "-"])


def test_demo_small():
    result = subprocess.run(
        [sys.executable, "-m", "prismkit", "demo", "--small", "--repeat", "1"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "results match the plain-PyTorch way" in result.stdout
    for variant in ("TopK", "BatchTopK / Mutual Choice", "Feature Choice", "CSWin-T forward"):
        assert variant in result.stdout
    assert "logits match the official computation" in result.stdout
