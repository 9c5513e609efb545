"""Wheel installs: build a wheel, install it into a clean virtual environment that has only torch
(no source tree on the path), import prismkit and run every op once; and check that a wheel used
with another torch refuses to load with a message that says so. Minutes: marked slow."""

import os
import subprocess
import sys
import venv
import zipfile
from importlib.metadata import version

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs every registered op once with its valid call from the contract table (tests/op_contracts.py,
# put on the path by the test; it imports only torch and prismkit), plus the wrappers and a method.
SMOKE = r"""
import sys, torch, prismkit
assert "site-packages" in prismkit.__file__, prismkit.__file__
from op_contracts import VALID
registered = sorted(prismkit.ops.registry.all_ops())
assert sorted(VALID) == registered, (sorted(VALID), registered)
for name in registered:
    getattr(torch.ops.prismkit, name)(*VALID[name]())
ops = sorted(n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("prismkit::"))
assert ops == registered, ops
from prismkit.ops import cswin, sae
x, W, b = torch.randn(8, 5), torch.randn(12, 5), torch.randn(12)
sae.topk_encode(x, W, b, 3).decode(W, None)
import prismkit.sae  # the methods' imports (safetensors, tqdm) come with the wheel's dependencies
prismkit.sae.TopKSAE(5, 12, k=3)(x)
qkv = torch.randn(2, 12, 24, requires_grad=True)
cswin.cswin_attention(qkv, 3, 4, 2, 2, torch.randn(8, 1, 3, 3), torch.randn(8)).sum().backward()
print("ran", len(ops), "ops:", ops)
"""


def run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def make_venv(path, torch_spec):
    venv.create(path, with_pip=True)
    python = os.path.join(path, "bin", "python")
    run([python, "-m", "pip", "install", "--quiet", torch_spec])
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--wheel-dir", str(out), ROOT])
    (path,) = out.glob("prismkit-*.whl")
    return path


def test_wheel_metadata_pins_torch(wheel):
    with zipfile.ZipFile(wheel) as z:
        metadata = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        names = z.namelist()
    assert f"Requires-Dist: torch=={version('torch')}" in metadata
    assert any(n.startswith("prismkit/_C") and n.endswith(".so") for n in names)
    assert "prismkit/triton_kernels/sae.py" in names and "prismkit/_build_info.py" in names


def test_wheel_runs_every_op_in_a_clean_venv(wheel, tmp_path):
    python = make_venv(tmp_path / "env", f"torch=={version('torch')}")
    run([python, "-m", "pip", "install", "--quiet", str(wheel)])
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "tests")}
    result = run([python, "-c", SMOKE], cwd=tmp_path, env=env)
    from prismkit.ops import registry

    assert f"ran {len(registry.all_ops())} ops" in result.stdout
    info = run([python, "-m", "prismkit", "info"], cwd=tmp_path).stdout
    assert "topk_encode" in info and torch.__version__ in info


def test_wheel_refuses_another_torch(wheel, tmp_path):
    other = "torch==2.13.0" if not version("torch").startswith("2.13.") else "torch==2.14.1"
    python = make_venv(tmp_path / "env", other)
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)])
    result = subprocess.run([python, "-c", "import prismkit"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert f"prismkit was built against torch {torch.__version__}, but torch 2.1" in result.stderr
    assert "install torch==" in result.stderr
