"""CSWin backbones: official parameter names and logits (against the official model re-created op
for op in prismkit.reference.cswin, loaded with the same random state dict), any resolution,
features_only, gradient checkpointing, checkpoint loading."""

import pytest
import torch

from prismkit import cswin
from prismkit.reference import cswin as ref


def official(name, img_size, **kwargs):
    embed_dim, depth, split_size, num_heads = cswin.CONFIGS[name]
    return ref.OfficialCSWinTransformer(img_size, embed_dim=embed_dim, depth=depth, split_size=split_size,
                                        num_heads=num_heads, **kwargs)  # fmt: skip


@pytest.mark.parametrize("name", list(cswin.CONFIGS))
def test_parameter_names_and_shapes_match_the_official_model(name):
    img_size = 384 if name.endswith("384") else 224
    with torch.device("meta"):
        want = {k: v.shape for k, v in official(name, img_size).state_dict().items()}
        got = {k: v.shape for k, v in getattr(cswin, name)().state_dict().items()}
    assert got == want


@pytest.mark.parametrize("name, img_size, batch", [("cswin_tiny_224", 224, 2), ("cswin_base_384", 384, 1),
                                                   ("cswin_large_224", 224, 1)])  # fmt: skip
def test_logits_match_the_official_model(name, img_size, batch):
    torch.manual_seed(0)
    reference = official(name, img_size).eval()
    model = getattr(cswin, name)().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    images = torch.randn(batch, 3, img_size, img_size)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images), atol=1e-4, rtol=1e-4)


def test_gradients_match_the_official_model():
    torch.manual_seed(0)
    config = dict(embed_dim=32, depth=(1, 1, 2, 1), split_size=(1, 2, 7, 7), num_heads=(2, 2, 4, 8), num_classes=10)
    reference = ref.OfficialCSWinTransformer(224, **config)
    model = cswin.CSWinTransformer(**config)
    model.load_state_dict(reference.state_dict(), strict=True)
    images = torch.randn(1, 3, 224, 224)
    reference(images).pow(2).sum().backward()
    model(images).pow(2).sum().backward()
    grads = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("padding", ["zeros", "mask"])
def test_any_resolution_matches_the_reference_attention(padding, monkeypatch):
    """At 232 x 168 stages 2 and 3 need padding; the model with the fused op equals the same model
    with the plain-PyTorch reference attention (the segmentation backbone's computation)."""
    torch.manual_seed(0)
    model = cswin.CSWinTransformer(embed_dim=32, depth=(1, 1, 2, 1), num_heads=(2, 2, 4, 8), num_classes=5,
                                   attn_padding=padding).eval()  # fmt: skip
    images = torch.randn(1, 3, 232, 168)
    with torch.no_grad():
        fused = model(images)
        monkeypatch.setattr(cswin.CSWinAttention, "attention_fn", staticmethod(ref.cswin_attention))
        torch.testing.assert_close(fused, model(images), atol=1e-5, rtol=1e-4)


def test_features_only_and_checkpointing():
    torch.manual_seed(0)
    config = dict(embed_dim=32, depth=(1, 1, 2, 1), num_heads=(2, 2, 4, 8))
    model = cswin.CSWinTransformer(features_only=True, **config)
    feats = model(torch.randn(2, 3, 96, 128))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 24, 32), (2, 64, 12, 16), (2, 128, 6, 8), (2, 256, 3, 4)]
    assert model.channels == [32, 64, 128, 256]
    checkpointed = cswin.CSWinTransformer(use_checkpoint=True, **config)
    plain = cswin.CSWinTransformer(**config)
    plain.load_state_dict(checkpointed.state_dict())
    images = torch.randn(2, 3, 64, 64)
    for m in (checkpointed, plain):
        m(images).sum().backward()
    for (name, a), b in zip(checkpointed.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_load_official_checkpoint(tmp_path):
    reference = official("cswin_tiny_224", 224)
    path = tmp_path / "cswin_tiny_224.pth"
    torch.save({"state_dict_ema": reference.state_dict(), "epoch": 300}, path)
    model = cswin.load_official_checkpoint(cswin.cswin_tiny_224(), str(path))
    for name, p in model.state_dict().items():
        assert torch.equal(p, reference.state_dict()[name])


def test_bad_configurations():
    with pytest.raises(ValueError, match="must split evenly into two branches"):
        cswin.CSWinAttention(dim=64, num_heads=3, split_size=2)
    with pytest.raises(ValueError, match="attn_padding must be 'zeros' or 'mask'"):
        cswin.CSWinAttention(dim=64, num_heads=2, split_size=2, attn_padding="reflect")
