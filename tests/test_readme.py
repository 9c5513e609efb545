"""The README's usage example runs (at small sizes) and its commands exist in the Makefile."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def python_blocks():
    return re.findall(r"```python\n(.*?)```", readme(), re.S)


def test_sae_usage_example_runs():
    (code,) = [b for b in python_blocks() if "from prismkit.ops import sae" in b]
    sizes = "B, d, F, k = 4096, 768, 24576, 32"
    assert sizes in code
    exec(code.replace(sizes, "B, d, F, k = 64, 16, 300, 4"), {})


def test_cswin_usage_examples_run():
    op_example, model_example = [b for b in python_blocks() if "cswin" in b]
    exec(op_example.replace("B, H, W, C, heads = 8, 56, 56, 64, 2", "B, H, W, C, heads = 1, 8, 8, 16, 2"), {})
    exec(model_example.replace("cswin_base_384(features_only=True)(torch.randn(1, 3, 512, 640))",
                               "cswin_tiny_224(features_only=True)(torch.randn(1, 3, 96, 128))"), {})  # fmt: skip


def test_quick_start_commands_are_make_targets():
    with open(os.path.join(ROOT, "Makefile")) as f:
        targets = set(re.findall(r"^([a-z-]+):", f.read(), re.M))
    for command in ("demo", "sae-example", "test", "bench", "wheel", "gpu-check"):
        assert f"make {command}" in readme() and command in targets


def test_sae_methods_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    pytest.importorskip("tqdm")
    (code,) = [b for b in python_blocks() if "from prismkit.sae import" in b]
    monkeypatch.chdir(tmp_path)
    small = (code.replace("torch.randn(100_000, 384)", "torch.randn(3000, 384)")
             .replace("expansion=32, k=32, batch_size=4096, total_tokens=400_000", "expansion=2, k=8, batch_size=500, total_tokens=1500")
             .replace("evaluate(sae, TensorSource(acts), 8192)", "evaluate(sae, TensorSource(acts), 1000)"))  # fmt: skip
    namespace = {}
    exec(small, namespace)
    assert namespace["out"].shape == (8, 384)
    assert (tmp_path / "runs" / "topk" / "metrics.jsonl").exists()


def test_splat_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    (code,) = [b for b in python_blocks() if "from prismkit import splat" in b]
    monkeypatch.chdir(tmp_path)
    small = (code.replace("synthetic_scene(100_000)", "synthetic_scene(2000)")
             .replace("width=512, height=512", "width=32, height=24").replace("512, 512", "32, 24"))  # fmt: skip
    assert small.count("32, 24") == 5  # the stacked cameras, two renders and the commented ply render
    namespace = {}
    exec(small, namespace)
    assert namespace["rgb"].shape == (4, 24, 32, 3) and namespace["feat"].shape == (1, 24, 32, 512)
    assert (tmp_path / "frame.png").exists() and namespace["features"].grad is not None


def test_language_field_example_runs():
    (code,) = [b for b in python_blocks() if "train_language_field(field" in b]
    small = (code.replace("synthetic_language_scene(20_000, D=512)", "synthetic_language_scene(2000, D=16)")
             .replace("D=512)", "D=16)").replace("views(8, 128, 128)", "views(2, 32, 32)").replace("steps=300", "steps=3")
             .replace("256", "48"))  # fmt: skip
    namespace = {}
    exec(small, namespace)
    assert namespace["mask"].shape == (48, 48) and namespace["features"].shape == (1, 48, 48, 3, 16)


def test_quant_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    (code,) = [b for b in python_blocks() if "from prismkit import quant" in b]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(code.replace("torch.randn(512, 512)", "torch.randn(64, 64)").replace(".view(512, 512)", ".view(64, 64)"),
         namespace)  # fmt: skip
    assert namespace["clusters"].unique().tolist() == [0, 1, 2]
    assert 4 < namespace["quant"].bits_per_weight(namespace["quantized"]) < 6
    assert (tmp_path / "model-int2.safetensors").exists()


def test_merge_example_runs():
    (code,) = [b for b in python_blocks() if "from prismkit.ops.merge import" in b]
    namespace = {}
    exec(code, namespace)
    assert namespace["x_merged"].shape == (2, 178, 768)
    assert namespace["size"].sum().item() == 2 * 197


def test_merge_patch_example_runs(capsys):
    pytest.importorskip("timm")
    (code,) = [b for b in python_blocks() if "prismkit.merge.patch(" in b]
    namespace = {}
    exec(code, namespace)
    assert capsys.readouterr().out.strip() == "65 [59, 54, 49, 45]"  # the comment in the example
    assert namespace["picture"].size == (64, 64)
    assert not hasattr(namespace["vit"], "_prismkit_merge")  # unpatched
