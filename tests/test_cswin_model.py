"""CSWin backbones: official parameter names and logits (against the official classifier and
segmentation backbone re-created op for op in prismkit.reference.cswin, loaded with the same random
state dict), any resolution, features_only, gradient checkpointing, checkpoint loading in both
layouts, the builders' official keywords, timm's conventions."""

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
    checkpointed = cswin.CSWinTransformer(use_chk=True, **config)
    plain = cswin.CSWinTransformer(**config)
    plain.load_state_dict(checkpointed.state_dict())
    images = torch.randn(2, 3, 64, 64)
    for m in (checkpointed, plain):
        m(images).sum().backward()
    for (name, a), b in zip(checkpointed.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def random_state(model, seed=0):
    """Every parameter and buffer random (not the init's ones and zeros), so a swapped or skipped
    weight shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in model.state_dict().items()}


SMALL = dict(embed_dim=32, depth=(1, 1, 2, 1), split_size=(1, 2, 7, 7), num_heads=(2, 4, 8, 16))


def test_features_only_matches_the_official_segmentation_backbone_at_any_size():
    """The segmentation layout (per-stage norms, no head) against the official segmentation
    backbone at sizes the stripes do not divide (stage maps 50x65, 25x33, 13x17, 7x9), forward and
    gradients."""
    torch.manual_seed(0)
    reference = ref.OfficialCSWinSegmentation(**SMALL)
    model = cswin.CSWinTransformer(features_only=True, **SMALL)
    state = random_state(reference)
    reference.load_state_dict(state, strict=True)
    model.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, 200, 260)
    want, got = reference(images), model(images)
    assert [tuple(t.shape) for t in got] == [(2, 32, 50, 65), (2, 64, 25, 33), (2, 128, 13, 17), (2, 256, 7, 9)]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    sum(t.pow(2).mean() for t in want).backward()
    sum(t.pow(2).mean() for t in got).backward()
    grads = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-3, msg=name)


@pytest.mark.parametrize("name", ["cswin_tiny_224", "cswin_base_224"])
def test_segmentation_layout_names_match_the_official_backbone(name):
    embed_dim, depth, split_size, num_heads = cswin.CONFIGS[name]
    with torch.device("meta"):
        want = ref.OfficialCSWinSegmentation(embed_dim=embed_dim, depth=depth, split_size=split_size,
                                             num_heads=num_heads).state_dict()  # fmt: skip
        got = getattr(cswin, name)(features_only=True).state_dict()
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in want.items()}


def test_load_official_checkpoint_classifier_file(tmp_path):
    reference = official("cswin_tiny_224", 224)
    path = tmp_path / "cswin_tiny_224.pth"
    torch.save({"state_dict_ema": reference.state_dict(), "epoch": 300}, path)
    model = cswin.load_official_checkpoint(cswin.cswin_tiny_224(), str(path))
    for name, p in model.state_dict().items():
        assert torch.equal(p, reference.state_dict()[name])


def test_load_official_checkpoint_segmentation_file(tmp_path):
    """An mmseg file (the whole segmentor under state_dict, the backbone under backbone.) into a
    features_only model, strictly; then the official outputs."""
    reference = ref.OfficialCSWinSegmentation(**SMALL)
    state = random_state(reference)
    reference.load_state_dict(state)
    segmentor = {f"backbone.{k}": v for k, v in state.items()}
    segmentor["decode_head.conv_seg.weight"] = torch.zeros(150, 512, 1, 1)
    path = tmp_path / "upernet_cswin_small.pth"
    torch.save({"meta": {"iter": 160000}, "state_dict": segmentor}, path)
    model = cswin.load_official_checkpoint(cswin.CSWinTransformer(features_only=True, **SMALL), str(path))
    images = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        for a, b in zip(model(images), reference(images), strict=True):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


class PickledConfig:
    """An arbitrary pickled object, as training frameworks store in checkpoint metadata."""


def test_official_state_dict_unwraps_the_official_containers(tmp_path):
    state = {"stage1.0.qkv.weight": torch.ones(2)}
    assert cswin.official_state_dict({"model": {f"module.{k}": v for k, v in state.items()}}) == state
    assert cswin.official_state_dict({"state_dict": {"backbone.stage1.0.qkv.weight": state["stage1.0.qkv.weight"],
                                                     "decode_head.conv_seg.bias": torch.zeros(3)}}) == state  # fmt: skip
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": state, "meta": {"config": PickledConfig()}}, path)
    with pytest.raises(ValueError, match="If you trust the file, pass torch.load"):
        cswin.official_state_dict(str(path))


def test_load_official_checkpoint_refuses_the_other_layout_unless_asked():
    classifier = official("cswin_tiny_224", 224).state_dict()
    backbone = cswin.cswin_tiny_224(features_only=True)
    with pytest.raises(ValueError, match=r"classifier layout\) do not match the model \(features_only backbone\)"
                       r".*missing \['norm1.bias'.*unexpected \['head.bias'.*pass strict=False"):  # fmt: skip
        cswin.load_official_checkpoint(backbone, classifier)
    with pytest.warns(UserWarning, match=r"left at initialization: \['norm1.bias'"):
        cswin.load_official_checkpoint(backbone, classifier, strict=False)
    assert torch.equal(backbone.stage3[20].qkv.weight, classifier["stage3.20.qkv.weight"])
    assert torch.equal(backbone.norm4.weight, torch.ones(512))
    broken = dict(classifier)
    del broken["stage1.0.qkv.weight"]
    with pytest.raises(ValueError, match=r"missing \[.*'stage1.0.qkv.weight'"):
        cswin.load_official_checkpoint(backbone, broken, strict=False)
    with pytest.raises(ValueError, match="segmentation backbone layout"):
        cswin.load_official_checkpoint(cswin.cswin_tiny_224(), backbone.state_dict())


def test_bad_configurations():
    with pytest.raises(ValueError, match="must split evenly into two branches"):
        cswin.CSWinAttention(dim=64, num_heads=3, split_size=2)
    with pytest.raises(ValueError, match="attn_padding must be 'zeros' or 'mask'"):
        cswin.CSWinAttention(dim=64, num_heads=2, split_size=2, attn_padding="reflect")


def test_builders_take_the_official_keywords():
    model = cswin.cswin_small_224(img_size=256, in_chans=1, num_classes=7, drop_rate=0.1, drop_path_rate=0.2)
    assert model.stage1_conv_embed[0].in_channels == 1 and model.head.out_features == 7
    assert model.stage2[0].mlp.drop.p == 0.1 and model.stage4[1].drop_path.p == pytest.approx(0.2)
    assert model.pretrained_cfg["input_size"] == (1, 256, 256)
    with pytest.raises(ValueError, match=r"does not download weights.*load_official_checkpoint"):
        cswin.cswin_tiny_224(pretrained=True)
    with pytest.raises(ValueError, match="attn_drop_rate=0.1 is not supported"):
        cswin.cswin_tiny_224(attn_drop_rate=0.1)
    with pytest.raises(TypeError):
        cswin.cswin_tiny_224(drop_rat=0.1)


def test_img_size_decides_the_stage_layout_as_the_official_code():
    """At img_size 112 stage 3's map (7) equals its stripe width: the official block turns into
    one full-attention branch, and so does prismkit's."""
    with torch.device("meta"):
        want = official("cswin_tiny_224", 112).state_dict()
        got = cswin.cswin_tiny_224(img_size=112).state_dict()
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in want.items()}
    assert "stage3.0.attns.1.get_v.weight" not in got


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    model = cswin.CSWinTransformer(drop_rate=0.5, num_classes=3, **SMALL)
    images = torch.randn(1, 3, 64, 64)
    assert not torch.equal(model(images), model(images))
    model.eval()
    torch.testing.assert_close(model(images), model(images), atol=0, rtol=0)


def test_timm_conventions():
    torch.manual_seed(0)
    model = cswin.CSWinTransformer(num_classes=5, **SMALL).eval()
    assert model.num_features == 256 and model.num_classes == 5
    assert model.feature_info.channels() == [32, 64, 128, 256] and model.feature_info.reduction() == [4, 8, 16, 32]
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        features = model.forward_features(images)
        assert features.shape == (2, 256, 2, 3)
        torch.testing.assert_close(model.forward_head(features), model(images))
        assert model.forward_head(features, pre_logits=True).shape == (2, 256)
        model.reset_classifier(0)
        assert model.get_classifier().__class__.__name__ == "Identity" and model(images).shape == (2, 256)
        model.reset_classifier(11)
        assert model(images).shape == (2, 11)
    model.set_grad_checkpointing()
    assert model.use_chk
    backbone = cswin.CSWinTransformer(features_only=True, out_indices=(1, 3), **SMALL)
    assert backbone.feature_info.channels() == [64, 256] and backbone.feature_info.module_name() == ["norm2", "norm4"]
    assert [tuple(t.shape) for t in backbone(images)] == [(2, 64, 8, 12), (2, 256, 2, 3)]
    with pytest.raises(RuntimeError, match="features_only backbone has no classifier head"):
        backbone.reset_classifier(3)


def test_timm_create_model():
    timm = pytest.importorskip("timm")
    backbone = timm.create_model("cswin_tiny_224", features_only=True, drop_path_rate=0.3)
    assert isinstance(backbone, cswin.CSWinTransformer) and backbone.features_only
    assert backbone.feature_info.channels() == [64, 128, 256, 512]
    classifier = timm.create_model("cswin_base_384", num_classes=10)
    assert classifier.head.out_features == 10 and classifier.stage3[0].split_size == 12
    assert timm.data.resolve_data_config({}, model=classifier)["input_size"] == (3, 384, 384)
    with pytest.raises(ValueError, match="does not download weights"):
        timm.create_model("cswin_tiny_224", pretrained=True)


def test_repr_shows_the_padding_default():
    model = cswin.CSWinTransformer(**SMALL)
    assert "classifier, attn_padding='zeros'" in repr(model)
    assert "dim=32, num_heads=2, cross, split_size=1, attn_padding='zeros'" in repr(model.stage1[0])
    assert "attn_padding='mask'" in repr(cswin.CSWinTransformer(attn_padding="mask", **SMALL))


def test_fine_tuning_starts_with_another_class_count_and_small_backbones_keep_the_official_layout():
    """strict=False into a classifier with other num_classes: everything but the head loads (before:
    a raw size-mismatch error). A features_only model at img_size 112 keeps the segmentation
    layout (stage 3 cross-shaped), whatever the classifier rule says."""
    classifier = official("cswin_tiny_224", 224).state_dict()
    model = cswin.cswin_tiny_224(num_classes=10)
    with pytest.warns(
        UserWarning, match=r"head has another shape; left at initialization: \['head.bias', 'head.weight'\]"
    ):
        cswin.load_official_checkpoint(model, classifier, strict=False)
    assert torch.equal(model.norm.weight, classifier["norm.weight"]) and model.head.out_features == 10
    with torch.device("meta"):
        small = cswin.cswin_tiny_224(img_size=112, features_only=True).state_dict()
        want = ref.OfficialCSWinSegmentation(embed_dim=64, depth=(1, 2, 21, 1), num_heads=(2, 4, 8, 16)).state_dict()
    assert {k: v.shape for k, v in small.items()} == {k: v.shape for k, v in want.items()}
