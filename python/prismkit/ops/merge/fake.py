"""Fake (meta) implementations of the merge ops: shapes and dtypes for torch.compile and opcheck,
after the same argument checks as the kernels (checks.py)."""

from __future__ import annotations

import torch

from . import checks


@torch.library.register_fake("prismkit::token_merge")
def _token_merge_fake(x, size, dest, num_out, reduce="wavg"):
    B, _, C = checks.check_token_merge_args(x, size, dest, num_out, reduce)
    return x.new_empty(B, num_out, C), x.new_empty(B, num_out, 1)
