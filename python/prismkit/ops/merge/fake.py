"""Fake (meta) implementations of the merge ops: shapes and dtypes for torch.compile and opcheck,
after the same argument checks as the kernels (checks.py)."""

from __future__ import annotations

import torch

from . import checks


@torch.library.register_fake("prismkit::token_merge")
def _token_merge_fake(x, size, dest, num_out, reduce="wavg"):
    B, _, C = checks.check_token_merge_args(x, size, dest, num_out, reduce)
    return x.new_empty(B, num_out, C), x.new_empty(B, num_out, 1)


@torch.library.register_fake("prismkit::pitome_energy")
def _pitome_energy_fake(metric, margin, alpha=1.0, kernel="elu"):
    B, T = checks.check_pitome_energy_args(metric, margin, alpha, kernel)
    return metric.new_empty(B, T)


@torch.library.register_fake("prismkit::merge_plan")
def _merge_plan_fake(metric, r, method, margin=0.9, alpha=1.0, class_token=True, prune=False):
    B, N, T = checks.check_merge_plan_args(metric, r, method, margin, alpha, class_token, prune)
    energy = metric.new_empty(0) if method == "tome" else metric.new_empty(B, T)
    return metric.new_empty(B, N, dtype=torch.int64), energy


@torch.library.register_fake("prismkit::divprune_select")
def _divprune_select_fake(metric, k):
    B, _ = checks.check_divprune_select_args(metric, k)
    return metric.new_empty(B, k, dtype=torch.int64)
