"""Inputs and the argument-contract rows of the sparse coefficient ops (rasterize_sparse_coef and
its backward, rasterize_sparse_features, language_relevancy), imported by tests/op_contracts.py;
only torch and prismkit are imported here, as in splat_cases.py."""

from __future__ import annotations

import torch
from splat_cases import raster_inputs


def sparse_inputs(N=24, C=2, width=16, height=16, P=4, num_coefs=12, tile_size=8, dtype=torch.float64,
                  generator=None, index_dtype=torch.int64, **raster_kw):  # fmt: skip
    """(means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets,
    flatten_ids, width, height, tile_size): rasterize's inputs with P random (index, weight)
    pairs per Gaussian, convex weights as LangSplatV2's top-K softmax gives."""
    g = generator if generator is not None else torch.Generator().manual_seed(2)
    means2d, conics, _, opacities, offsets, ids, _, _, _, _ = raster_inputs(
        N, C, width, height, 1, tile_size, dtype, g, **raster_kw
    )
    indices = torch.randint(0, num_coefs, (N, P), generator=g).to(index_dtype)
    weights = torch.rand(N, P, generator=g, dtype=torch.float64)
    weights = (weights / weights.sum(1, keepdim=True).clamp_min(1e-12)).to(dtype)
    return means2d, conics, opacities, indices, weights, num_coefs, offsets, ids, width, height, tile_size


_NAMES = ("means2d", "conics", "opacities", "coef_indices", "coef_weights", "num_coefs", "tile_offsets",
          "flatten_ids", "width", "height", "tile_size")  # fmt: skip


def _coef(**change):
    args = dict(zip(_NAMES, sparse_inputs(N=5, P=3, num_coefs=8, dtype=torch.float32), strict=True))
    args.update(change)
    return tuple(args.values())


def _coef_backward(**change):
    args = _coef()
    weight_map, alpha, last_ids = torch.ops.prismkit.rasterize_sparse_coef(*args)
    names = (*_NAMES, "alpha", "last_ids", "grad_weight_map", "grad_alpha")
    full = dict(zip(names, (*args, alpha, last_ids, torch.ones_like(weight_map), torch.ones_like(alpha)), strict=True))
    full.update(change)
    return tuple(full.values())


def _codebook_args(codebook, **change):
    """_coef's arguments with num_coefs replaced by a codebook [2, 4, 6] (levels * L = 8)."""
    args = dict(zip(_NAMES, _coef(), strict=True))
    del args["num_coefs"]
    names = list(args)
    values = list(args.values())
    values.insert(names.index("coef_weights") + 1, codebook)
    names.insert(names.index("coef_weights") + 1, "codebook")
    full = dict(zip(names, values, strict=True))
    full.update(change)
    return full


def _features(**change):
    g = torch.Generator().manual_seed(3)
    full = _codebook_args(torch.randn(2, 4, 6, generator=g), normalize=True)
    full.update(change)
    return tuple(full.values())


def _relevancy(**change):
    g = torch.Generator().manual_seed(3)
    full = _codebook_args(torch.randn(2, 4, 6, generator=g))
    names, values = list(full), list(full.values())
    at = names.index("codebook") + 1
    names[at:at] = ["queries", "negatives"]
    values[at:at] = [torch.randn(2, 6, generator=g), torch.randn(4, 6, generator=g)]
    full = dict(zip(names, values, strict=True))
    full.update(change)
    return tuple(full.values())


VALID = {
    "rasterize_sparse_coef": _coef,
    "rasterize_sparse_coef_backward": _coef_backward,
    "rasterize_sparse_features": _features,
    "language_relevancy": _relevancy,
}


def contract_rows(Bad) -> list:
    """The bad calls of every sparse op, as op_contracts.Bad rows."""
    f64 = dict(dtype=torch.float64)
    rows = []
    for op, build in VALID.items():
        rows += [
            Bad(op, "indices dtype", lambda b=build: b(coef_indices=torch.zeros(5, 3)), TypeError, "'coef_indices' must have dtype int32 or int64 on cpu, got a 2-D float32"),
            Bad(op, "indices rank", lambda b=build: b(coef_indices=torch.zeros(5, dtype=torch.int64)), ValueError, "'coef_indices' must be a 2-D tensor [N, P], got a 1-D int64"),
            Bad(op, "indices N", lambda b=build: b(coef_indices=torch.zeros(4, 3, dtype=torch.int64)), ValueError, "'coef_indices' must have shape [N, P] = [5, 3], got a 2-D int64 tensor of shape [4, 3]"),
            Bad(op, "indices device", lambda b=build: b(coef_indices=torch.zeros(5, 3, dtype=torch.int64, device="meta")), ValueError, "'coef_indices' must be on the device of 'means2d' (cpu)"),
            Bad(op, "weights P", lambda b=build: b(coef_weights=torch.ones(5, 2)), ValueError, "'coef_weights' must have shape [N, P] (as coef_indices) = [5, 3], got a 2-D float32 tensor of shape [5, 2]"),
            Bad(op, "weights dtype", lambda b=build: b(coef_weights=torch.ones(5, 3, **f64)), TypeError, "'coef_weights' must have the dtype of 'means2d' (float32)"),
            Bad(op, "opacities shape", lambda b=build: b(opacities=torch.ones(4)), ValueError, "'opacities' must have shape [N] = [5]"),
            Bad(op, "tile grid", lambda b=build: b(tile_size=4), ValueError, "'tile_offsets' must have shape [C, tiles_y, tiles_x] (tile_bin's, for this image and tile_size) = [2, 4, 4]"),
            Bad(op, "index negative", lambda b=build: b(coef_indices=torch.full((5, 3), -1, dtype=torch.int64)), IndexError, "'coef_indices' must lie in [0, ", reads_data=True),
            Bad(op, "ids out of range", lambda b=build: b(flatten_ids=torch.full((_coef()[7].numel(),), 10, dtype=torch.int32)), IndexError, "'flatten_ids' must lie in [0, C * N = 10), got values in [10, 10]", reads_data=True),
        ]  # fmt: skip
    for op in ("rasterize_sparse_coef", "rasterize_sparse_coef_backward"):
        build = VALID[op]
        rows += [
            Bad(op, "num_coefs 0", lambda b=build: b(num_coefs=0), ValueError, "'num_coefs' must lie in [1, 2^31 - 1], got 0"),
            Bad(op, "index >= num_coefs", lambda b=build: b(coef_indices=torch.full((5, 3), 8, dtype=torch.int64)), IndexError, "'coef_indices' must lie in [0, num_coefs = 8), got values in [8, 8]", reads_data=True),
        ]  # fmt: skip
    op = "rasterize_sparse_coef_backward"
    rows += [
        Bad(op, "grad_weight_map shape", lambda: _coef_backward(grad_weight_map=torch.ones(2, 16, 16, 7)), ValueError, "'grad_weight_map' must have shape [C, H, W, num_coefs] = [2, 16, 16, 8]"),
        Bad(op, "last_ids dtype", lambda: _coef_backward(last_ids=torch.zeros(2, 16, 16, dtype=torch.int64)), TypeError, "'last_ids' must have dtype int32 on cpu"),
        Bad(op, "alpha dtype", lambda: _coef_backward(alpha=torch.ones(2, 16, 16, 1, **f64)), TypeError, "'alpha' must have the dtype of 'means2d' (float32)"),
        Bad(op, "last_ids out of range", lambda: _coef_backward(last_ids=torch.full((2, 16, 16), 10_000, dtype=torch.int32)), IndexError, "'last_ids' must lie in [-1, M = ", reads_data=True),
    ]  # fmt: skip
    for op in ("rasterize_sparse_features", "language_relevancy"):
        build = VALID[op]
        rows += [
            Bad(op, "codebook rank", lambda b=build: b(codebook=torch.ones(8, 6)), ValueError, "'codebook' must be a 3-D tensor [levels, L, D], got a 2-D"),
            Bad(op, "codebook empty", lambda b=build: b(codebook=torch.ones(2, 0, 6)), ValueError, "'codebook' [levels, L, D] must have levels, L, D >= 1, got a 3-D float32 tensor of shape [2, 0, 6]"),
            Bad(op, "codebook dtype", lambda b=build: b(codebook=torch.ones(2, 4, 6, **f64)), TypeError, "'codebook' must have the dtype of 'means2d' (float32)"),
            Bad(op, "index >= levels * L", lambda b=build: b(codebook=torch.ones(1, 4, 6)), IndexError, "'coef_indices' must lie in [0, levels * L = 4), got values in [", reads_data=True),
        ]  # fmt: skip
    op = "language_relevancy"
    rows += [
        Bad(op, "queries width", lambda: _relevancy(queries=torch.ones(2, 5)), ValueError, "'queries' must have shape [Q, D] (D of the codebook) = [2, 6], got a 2-D float32 tensor of shape [2, 5]"),
        Bad(op, "queries rank", lambda: _relevancy(queries=torch.ones(6)), ValueError, "'queries' must be a 2-D tensor [Q, D], got a 1-D"),
        Bad(op, "negatives width", lambda: _relevancy(negatives=torch.ones(4, 7)), ValueError, "'negatives' must have shape [M, D] (D of the codebook) = [4, 6]"),
        Bad(op, "no negatives", lambda: _relevancy(negatives=torch.ones(0, 6)), ValueError, "'negatives' must hold at least one phrase (M >= 1), got a 2-D float32 tensor of shape [0, 6]"),
        Bad(op, "queries dtype", lambda: _relevancy(queries=torch.ones(2, 6, **f64)), TypeError, "'queries' must have the dtype of 'means2d' (float32)"),
    ]  # fmt: skip
    return rows
