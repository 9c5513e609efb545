"""prismkit.merge.patch on tiny random-weight models: the same output as the official patch
re-created op for op (reference/merge_patch.py), the token schedule, exact unpatch, source maps,
padding in BERT, CLIP vision, torch.compile, gradients, bad inputs and the visualization."""

import pytest
import torch

pytest.importorskip("timm")
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

import prismkit.merge as pm  # noqa: E402
from prismkit.reference import merge_patch  # noqa: E402
from prismkit.reference.merge import keep_ratio_to_r  # noqa: E402


def tiny_vit(class_token=True, seed=0):
    torch.manual_seed(seed)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=10,
                             class_token=class_token, global_pool="token" if class_token else "avg").eval()  # fmt: skip


def images(B=2, seed=1):
    return torch.randn(B, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("class_token", [True, False])
@pytest.mark.parametrize("method", ["pitome", "tome"])
@pytest.mark.parametrize("prop_attn", [False, True])
def test_patch_matches_the_official_patch(method, class_token, prop_attn):
    vit, x = tiny_vit(class_token), images()
    with torch.no_grad():
        pm.patch(vit, method, 0.7, prop_attn=prop_attn)
        got = vit.forward_features(x)
        pm.unpatch(vit)
        merge_patch.official_patch(vit, method, 0.7, prop_attn=prop_attn)
        want = vit.forward_features(x)
        merge_patch.official_unpatch(vit)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ratio", [0.6, 0.9, 1.0])
def test_tokens_per_layer_follow_the_keep_ratio(ratio):
    vit = pm.patch(tiny_vit(), "pitome", ratio)
    with torch.no_grad():
        vit(images())
    st = pm.state(vit)
    want, T = [], 16
    for _ in range(4):
        T -= min(keep_ratio_to_r(T, ratio), T // 2)
        want.append(T + 1)
    assert st.n_input == 17 and st.tokens == want
    assert st.size.shape == (2, want[-1], 1) if want[-1] < 17 else st.size is None
    if st.size is not None:
        assert torch.equal(st.size.sum(1), torch.full((2, 1), 17.0))


def test_unpatch_restores_the_exact_output():
    vit, x = tiny_vit(), images()
    with torch.no_grad():
        before = vit(x)
        pm.patch(vit, "pitome", 0.7)
        merged = vit(x)
        pm.unpatch(vit)
        after = vit(x)
    assert torch.equal(before, after) and not torch.equal(before, merged)
    assert all("forward" not in b.__dict__ for b in vit.blocks)
    with pytest.raises(ValueError, match="not patched"):
        pm.unpatch(vit)


def test_source_map_and_unmerge():
    vit, x = tiny_vit(), images()
    pm.patch(vit, "pitome", 0.7, trace_source=True)
    with torch.no_grad():
        out = vit.forward_features(x)
    st = pm.state(vit)
    assert st.source.shape == (2, 17)
    assert bool(((st.source >= 0) & (st.source < out.shape[1])).all())  # merging drops nothing
    assert torch.equal(st.source[:, 0], torch.zeros(2, dtype=torch.int64))  # the class token stays first
    counts = torch.zeros(2, out.shape[1]).scatter_add_(1, st.source, torch.ones(2, 17))
    assert torch.equal(counts[..., None], st.size)  # each slot holds as many input tokens as its size
    full, restored = pm.unmerge(out, st)
    assert full.shape == (2, 17, 64) and bool(restored.all())
    torch.testing.assert_close(full[:, 0], out[:, 0])
    members = pm.source_matrix(st)  # ToMe's layout: which inputs each output token holds
    assert members.shape == (2, out.shape[1], 17) and torch.equal(members.sum(-1)[..., None].float(), st.size)
    assert bool((members.sum(1) == 1).all())  # every input token in exactly one output token


def test_divprune_drops_the_expected_count():
    vit, x = tiny_vit(), images()
    pm.patch(vit, "divprune", 0.5, trace_source=True)
    with torch.no_grad():
        out = vit.forward_features(x)
    st = pm.state(vit)
    assert st.tokens == [9, 9, 9, 9] and out.shape[1] == 9
    assert bool(((st.source < 0).sum(1) == 8).all()) and bool((st.source[:, 0] == 0).all())
    kept = st.source[st.source >= 0].view(2, 9)
    assert torch.equal(kept, torch.arange(9).expand(2, 9))  # kept tokens keep their order
    full, restored = pm.unmerge(out, st)
    assert int(restored.sum()) == 18 and bool((full[~restored] == 0).all())


def test_bert_padding_merges_first_and_never_into_words():
    """A short sentence padded in a batch (12 padding tokens, r = 2 in each of 3 merging layers): the
    padding absorbs every merge, so its words come out exactly as the unmerged model's on the
    sentence alone; and no output slot mixes padding with real tokens."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=32)  # fmt: skip
    bert = transformers.BertModel(cfg).eval()
    short, long = torch.randint(1, 100, (1, 6)), torch.randint(1, 100, (1, 18))
    with torch.no_grad():
        alone = bert(input_ids=short).last_hidden_state
        pm.patch(bert, "pitome", r=2, trace_source=True)
        ids = torch.cat([torch.cat([short, torch.zeros(1, 12, dtype=torch.long)], 1), long])
        mask = torch.cat([torch.cat([torch.ones(1, 6), torch.zeros(1, 12)], 1), torch.ones(1, 18)]).long()
        batch = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    st = pm.state(bert)
    assert st.tokens == [18, 16, 14, 12]
    real_in, real_out = mask.bool(), st.attention_mask
    assert int(real_out[0].sum()) == 6 and bool(real_out[1].all())
    words = batch[0][real_out[0]]
    order = st.source[0, :6]  # where each word of the short sentence went
    torch.testing.assert_close(batch[0, order], alone[0], rtol=1e-4, atol=1e-4)
    assert words.shape == (6, 32) and len(set(order.tolist())) == 6
    slot_is_real = real_out.gather(1, st.source.clamp_min(0))
    kept = st.source >= 0
    assert bool((slot_is_real[kept] == real_in[kept]).all())  # no slot holds padding and words together
    assert bool(kept[real_in].all())  # no word is dropped


def test_clip_vision_merges():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    vcfg = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=32,
                patch_size=8)  # fmt: skip
    model = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**vcfg)).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        base = model(pixel_values=pixels)
        pm.patch(model, "pitome", 0.75)
        out = model(pixel_values=pixels)
    st = pm.state(model)
    assert st.reduce == "mean" and st.tokens == [13, 10, 8] and out.last_hidden_state.shape == (2, 8, 32)
    assert out.pooler_output.shape == base.pooler_output.shape
    clip = transformers.CLIPModel(transformers.CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                         vocab_size=50, max_position_embeddings=16, bos_token_id=1, eos_token_id=2, pad_token_id=1), vision_config=vcfg, projection_dim=16))  # fmt: skip
    pm.patch(clip, "tome", 0.75)
    assert pm.state(clip.vision_model) is pm.state(clip)
    with torch.no_grad():
        assert clip.vision_model(pixel_values=pixels).pooler_output.shape == (2, 32)
    assert pm.state(clip).tokens == [13, 10, 8]


def test_compiled_patched_vit_matches_eager():
    """One graph (fullgraph: no break), traced through the ops' fake implementations (aot_eager)."""
    vit, x = pm.patch(tiny_vit(), "pitome", 0.7), images()
    with torch.no_grad():
        eager = vit(x)
        compiled = torch.compile(vit, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


def test_bert_with_fewer_layers_than_the_merging_ones():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    bert = pm.patch(transformers.BertModel(cfg).eval(), "pitome", 0.8)
    with torch.no_grad():
        bert(input_ids=torch.randint(1, 50, (2, 20)))
    assert pm.state(bert).tokens == [17, 14]  # both layers merge: r = floor(19 - 19 * 0.8) = 3, then 3


def test_finetuning_gradients_are_finite():
    vit = pm.patch(tiny_vit(), "pitome", 0.7, prop_attn=True).train()
    loss = torch.nn.functional.cross_entropy(vit(images()), torch.tensor([1, 2]))
    loss.backward()
    for block in vit.blocks:
        for w in (block.attn.qkv.weight, block.mlp.fc1.weight):
            assert w.grad is not None and bool(torch.isfinite(w.grad).all()) and w.grad.abs().sum() > 0


def test_bad_inputs_name_the_options():
    with pytest.raises(TypeError, match="timm VisionTransformer.*CLIP.*BertModel"):
        pm.patch(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="pitome.*tome.*divprune"):
        pm.patch(tiny_vit(), "fastmerge")
    for ratio in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            pm.patch(tiny_vit(), "pitome", ratio)
    vit = pm.patch(tiny_vit(), "tome")
    with pytest.raises(ValueError, match="already patched"):
        pm.patch(vit)
    with pytest.raises(ValueError, match="trace_source=True"):
        _ = pm.state(vit).source


def test_visualize_returns_an_image():
    pytest.importorskip("PIL")
    vit, x = pm.patch(tiny_vit(), "pitome", 0.6, trace_source=True), images().clamp(0, 1)
    with torch.no_grad():
        vit(x)
    picture = pm.visualize(x[0], pm.state(vit).source[0, 1:], patch_size=8)
    assert picture.size == (32, 32) and picture.mode == "RGB"
    colours = torch.from_numpy(__import__("numpy").asarray(picture).copy()).reshape(-1, 3)
    assert colours.unique(dim=0).shape[0] > 2
