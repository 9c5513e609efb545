"""torch.compile over a CSWin backbone with dynamic height and width: one graph serves every input
size (the op's H and W are SymInts), and the compiled model equals the eager one, forward and
backward."""

import pytest
import torch
from torch._dynamo.utils import counters

from prismkit import cswin

SIZES = [(224, 224), (256, 256), (300, 300)]  # 300: stage 3's 19x19 map is padded to the stripes


def two_block_backbone():
    """Blocks in stage 1 (stripes of 1) and stage 3 (stripes of 7, padded at most sizes)."""
    torch.manual_seed(0)
    return cswin.CSWinTransformer(embed_dim=32, depth=(1, 0, 1, 0), num_heads=(2, 2, 4, 8), features_only=True,
                                  out_indices=(0, 1, 2, 3))  # fmt: skip


@pytest.mark.parametrize("dynamic, max_graphs", [(True, 1), (None, 2)], ids=["dynamic=True", "dynamic=None"])
def test_compiles_once_for_every_input_size(dynamic, max_graphs):
    """dynamic=True: one graph for all three sizes. The default (dynamic=None): torch specializes
    on the first size and goes dynamic at the first new one, so at most one recompile."""
    torch._dynamo.reset()
    counters.clear()
    model = two_block_backbone().eval()
    compiled = torch.compile(model, backend="aot_eager", dynamic=dynamic, fullgraph=True)
    with torch.no_grad():
        for H, W in SIZES:
            images = torch.randn(1, 3, H, W)
            for got, want in zip(compiled(images), model(images), strict=True):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert counters["stats"]["unique_graphs"] <= max_graphs, dict(counters["stats"])


def test_compiled_backward_matches_eager_at_two_sizes():
    torch._dynamo.reset()
    counters.clear()
    model = two_block_backbone()
    compiled = torch.compile(model, backend="aot_eager", dynamic=True, fullgraph=True)
    for H, W in [(96, 128), (112, 72)]:
        images = torch.randn(2, 3, H, W)
        grads = []
        for m in (compiled, model):
            model.zero_grad()
            sum(t.pow(2).mean() for t in m(images)).backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys() and grads[0]
        for name in grads[0]:
            torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
