"""Shared test setup.

Without a GPU, Triton kernels run under Triton's CPU interpreter: TRITON_INTERPRET must be set
before any @triton.jit function is defined, so it is set here, before prismkit is imported.
"""

import atexit
import os
import shutil
import tempfile

# torch.compile's on-disk cache is shared by every torch on the machine; an entry another torch
# version or CPU-capability setting left behind has crashed a compiled test (heap corruption, inf
# results). Each test run (its xdist workers share it) compiles into a fresh folder unless the
# caller chose one.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="prismkit-inductor-")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)

import torch  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import prismkit  # noqa: E402,F401  (registers the ops)

# Property-based sweeps (test_properties.py): a fixed seed, bounded examples. "ci" keeps `make test`
# fast; `make test-nightly` selects "nightly" through HYPOTHESIS_PROFILE.
_HYPOTHESIS = dict(derandomize=True, database=None, deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
settings.register_profile("ci", max_examples=20, **_HYPOTHESIS)
settings.register_profile("nightly", max_examples=500, **_HYPOTHESIS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Absolute/relative tolerances per dtype for comparisons against the references (computed in
# float64). Low-precision GPU results use the "twice the eager error" rule instead (test_sae_cuda.py).
TOLERANCES = {
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float16: dict(atol=1e-2, rtol=1e-2),
    torch.bfloat16: dict(atol=5e-2, rtol=5e-2),
}


# The files that take a minute or more on 2 cores go first: `pytest -n 2 --dist loadfile` hands
# files to the workers in collection order, and one of them collected last keeps a worker busy
# alone while the other has finished.
HEAVY_FIRST = ("test_sae_example.py", "test_wheel.py", "test_splat_language.py", "test_sae_trainer.py",
               "test_cswin_attention.py")  # fmt: skip


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def impl_op(impl, core, name):
    """Op ``name`` of core ``core`` as one implementation runs it, returning CPU tensors: "cpu", the
    C++ kernel; "triton", on a GPU the op on CUDA copies of the tensor arguments (the compiled
    kernel), else the Triton launcher of triton_kernels/<core>.py under the interpreter."""
    op = getattr(torch.ops.prismkit, name)
    if impl == "cpu":
        return op
    if HAS_CUDA:

        def on_gpu(*args):
            out = op(*[a.cuda() if isinstance(a, torch.Tensor) else a for a in args])
            return tuple(t.cpu() for t in out) if isinstance(out, tuple | list) else out.cpu()

        return on_gpu
    import importlib

    return getattr(importlib.import_module(f"prismkit.triton_kernels.{core}"), name)
