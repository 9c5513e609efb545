"""quant_pack / quant_unpack: the packed byte layout of codes and cluster ids, on the C++ CPU
kernels and the Triton kernels (compiled on a GPU, interpreted on the CPU otherwise)."""

import pytest
import torch
from conftest import impl_op
from sae_cases import HAS_TRITON

from prismkit.ops import quant as Q

IMPLS = ["cpu", "triton"] if HAS_TRITON else ["cpu"]


def impl_ops(impl):
    return impl_op(impl, "quant", "quant_pack"), impl_op(impl, "quant", "quant_unpack")


def reference_pack(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Plain PyTorch: pad each row to whole bytes, then sum the fields shifted into place."""
    per = 8 // bits
    N, n = values.shape
    padded = torch.zeros(N, -(-n // per) * per, dtype=torch.int32)
    padded[:, :n] = values.int()
    fields = padded.view(N, padded.shape[1] // per, per) << (torch.arange(per, dtype=torch.int32) * bits)
    return fields.sum(-1).to(torch.uint8)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pack_matches_the_reference_and_unpack_inverts_it(impl, bits):
    pack, unpack = impl_ops(impl)
    gen = torch.Generator().manual_seed(bits)
    for N, n in ((1, 1), (3, 5), (7, 128), (4, 333), (0, 9), (5, 0)):
        values = torch.randint(0, 2**bits, (N, n), generator=gen, dtype=torch.uint8)
        packed = pack(values, bits)
        assert packed.shape == (N, (n * bits + 7) // 8) and packed.dtype == torch.uint8
        assert torch.equal(packed, reference_pack(values, bits))
        assert torch.equal(unpack(packed, bits, n), values)


def test_layout_bytes():
    values = torch.tensor([[1, 2, 3, 0, 3]], dtype=torch.uint8)
    assert Q.quant_pack(values, 2).tolist() == [[1 | 2 << 2 | 3 << 4, 3]]  # first value in the lowest bits
    assert Q.quant_pack(torch.tensor([[9, 4, 15]], dtype=torch.uint8), 4).tolist() == [[9 | 4 << 4, 15]]
    torch.library.opcheck(torch.ops.prismkit.quant_pack, (values, 2))
    torch.library.opcheck(torch.ops.prismkit.quant_unpack, (Q.quant_pack(values, 2), 2, 5))
