"""The package itself: build facts, the torch version guard, `python -m prismkit info` and the demo."""

import os
import subprocess
import sys

import pytest
import torch

import prismkit
from prismkit import _build_info
from prismkit.ops import registry


def test_build_info_matches_the_running_torch():
    info = prismkit._C.build_info()
    assert info["version"] == prismkit.__version__ == _build_info.VERSION
    assert info["torch_version"] == torch.__version__ == _build_info.TORCH_VERSION
    assert info["with_cuda"] == _build_info.WITH_CUDA == bool(torch.version.cuda)
    if info["with_cuda"]:
        # TORCH_CUDA_ARCH_LIST as the build saw it ("8.0;9.0+PTX" -> 80, 90), else sm_90
        wanted = os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0").replace("+PTX", "").replace(" ", ";").split(";")
        assert {a.replace(".", "") for a in wanted if a} <= set(info["cuda_archs"].split(";"))
    assert info["openmp"], "at::parallel_for would run serially without OpenMP"


def test_torch_version_guard():
    prismkit._check_torch_version("2.14.1+cu130", "2.14.1+cu130")
    with pytest.raises(
        ImportError,
        match=r"built against torch 2\.14\.1\+cu130, but torch 2\.13\.0\+cpu is installed.*install torch==2\.14\.1",
    ):
        prismkit._check_torch_version("2.14.1+cu130", "2.13.0+cpu")


def test_registry_matches_the_dispatcher():
    """Every schema (csrc/<core>/<core>_schemas.cpp) has a registry entry (prismkit/ops/<core>/__init__.py)
    and the other way round; every op has a CPU kernel and, where torch has CUDA, a CUDA kernel (the
    CUDA C++ one, a Triton launcher, or the error that says the build lacks CUDA kernels)."""
    schemas = {n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("prismkit::")}
    assert set(registry.all_ops()) == schemas
    assert [core.name for core in registry.cores()] == [
        "cswin",
        "merge",
        "quant",
        "sae",
        "splat",
    ]  # discovered, in package order
    for name in schemas:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"prismkit::{name}", "CPU"), name
        if torch.version.cuda:
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"prismkit::{name}", "CUDA"), name


def test_cuda_fallback_when_built_without_cuda_kernels():
    assert registry.needs_cuda_fallback(with_cuda=False, torch_cuda="13.0")
    assert not registry.needs_cuda_fallback(with_cuda=True, torch_cuda="13.0")
    assert not registry.needs_cuda_fallback(with_cuda=False, torch_cuda=None)
    with pytest.raises(NotImplementedError, match=r"prismkit::sparse_decode: this prismkit was built without its CUDA "
                       r"kernels .* rebuild with `pip install --no-build-isolation \.`"):  # fmt: skip
        registry.missing_cuda_kernel("sparse_decode")(torch.empty(0))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_core("sae", {})
    with pytest.raises(ValueError, match="must be one of"):
        registry.register_core("new_core", {"an_op": "opencl"})


def test_info_command():
    out = subprocess.run([sys.executable, "-m", "prismkit", "info"], capture_output=True, text=True, check=True).stdout
    assert f"prismkit {prismkit.__version__}" in out and f"torch {torch.__version__}" in out
    assert "Triton:" in out and "CUDA kernels:" in out
    rows = {
        line.split()[1]: line.split()
        for line in out.splitlines()
        if line.split()[:1] in [[core.name] for core in registry.cores()]
    }
    assert set(rows) == set(registry.all_ops())
    from sae_cases import HAS_TRITON

    for name, op in registry.all_ops().items():
        core, _, cpu, *cuda = rows[name]
        assert (core, cpu) == (op.core, "C++")
        if op.cuda == "triton":
            assert cuda == (["Triton"] if HAS_TRITON else ["Triton", "(missing)"])
        elif _build_info.WITH_CUDA:
            assert cuda == ["CUDA", "C++"]
        else:
            assert cuda[0] == "-"


def test_demo_small():
    result = subprocess.run(
        [sys.executable, "-m", "prismkit", "demo", "--small", "--repeat", "1"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "results match the plain-PyTorch way" in result.stdout
    for variant in ("TopK", "BatchTopK / Mutual Choice", "Feature Choice", "CSWin-T forward"):
        assert variant in result.stdout
    assert "logits match the official computation" in result.stdout
    assert "merging ran" in result.stdout and "tokens per layer: 65 in, then 59, 54, 49, 45" in result.stdout
