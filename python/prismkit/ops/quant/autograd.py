"""Autograd of the quant ops. kmeans1d is a discrete choice (the cluster boundaries), not a
function to train through: its outputs never require grad."""

from __future__ import annotations

import torch


def _statistics_setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(*output)


def _no_backward(ctx, *grads):
    return None, None


torch.library.register_autograd("prismkit::kmeans1d", _no_backward, setup_context=_statistics_setup_context)
