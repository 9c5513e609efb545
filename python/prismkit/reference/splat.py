"""Plain-PyTorch 3D Gaussian splatting, written from the documented math of the splat ops
(``prismkit.ops.splat``: gsplat's conventions, alpha clamped at 0.99): the test oracle of
``project_gaussians``, ``tile_bin`` and ``rasterize`` and, as a whole pipeline, the
``torch-reference`` benchmark baseline (the CPU path a user can write today).

* ``project_gaussians`` follows gsplat's ``_fully_fused_projection`` (``gsplat/cuda/_torch_impl.py``)
  op for op, with the radius rule of the ops (3 sigma of the largest eigenvalue, not gsplat 1.5's
  per-axis 3.33 sigma) and culled Gaussians written as zeros.
* ``tile_bin`` is gsplat's ``_isect_tiles`` + ``_isect_offset_encode`` computed with tensor ops: the
  tiles of each Gaussian by ``repeat_interleave``, then stable sorts by depth and by (camera, tile).
* ``rasterize`` composites every pixel over its tile's list, all of a tile's pixels and Gaussians at
  once (alpha as a [pixels, Gaussians] matrix, transmittance by ``cumprod``), tiles in chunks to
  bound memory. It is differentiable by autograd, which gives the gradients the kernels are tested
  against.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_ALPHA = 0.99
MIN_ALPHA = 1.0 / 255.0
MIN_TRANSMITTANCE = 1e-4


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """[..., 4] (w, x, y, z), any non-zero norm -> [..., 3, 3]."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    R = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)  # fmt: skip
    return R.reshape(quats.shape[:-1] + (3, 3))


def covariance(quats: Tensor, scales: Tensor) -> Tensor:
    """Sigma = R S S^T R^T, [N, 3, 3]."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project_gaussians(means, quats, scales, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10, eps2d=0.3,
                      radius_clip=0.0):  # fmt: skip
    """-> means2d [C, N, 2], conics [C, N, 3], depths [C, N], radii [C, N] int32 (0: culled)."""
    R, t = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]  # [C, 1, 3, 3], [C, 1, 3]
    p = (R @ means[None, :, :, None]).squeeze(-1) + t  # [C, N, 3]
    Sigma_c = R @ covariance(quats, scales)[None] @ R.transpose(-1, -2)
    x, y, z = p.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    ux = torch.clamp(x / z, min=-(cx / fx + 0.3 * tan_fovx), max=(width - cx) / fx + 0.3 * tan_fovx)
    uy = torch.clamp(y / z, min=-(cy / fy + 0.3 * tan_fovy), max=(height - cy) / fy + 0.3 * tan_fovy)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * ux / z, zero, fy / z, -fy * uy / z], -1).reshape(z.shape + (2, 3))
    cov2d = J @ Sigma_c @ J.transpose(-1, -2)
    a, b, c = cov2d[..., 0, 0] + eps2d, cov2d[..., 0, 1], cov2d[..., 1, 1] + eps2d
    det = a * c - b * b
    conics = torch.stack([c, -b, a], -1) / det.clamp(min=1e-10)[..., None]
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    mid = 0.5 * (a + c)
    radius = torch.ceil(3 * torch.sqrt(mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.01))))
    mx, my = means2d.unbind(-1)
    finite = torch.isfinite(torch.cat([means2d, conics, p], -1)).all(-1) & torch.isfinite(radius)
    finite &= torch.isfinite(torch.cat([means, quats, scales], -1)).all(-1)[None] & (quats.norm(dim=-1) > 0)[None]
    valid = (z > near_plane) & (z < far_plane) & (det > 0) & finite & (radius > radius_clip) & (radius < 1e9)
    valid &= (mx + radius > 0) & (mx - radius < width) & (my + radius > 0) & (my - radius < height)
    keep = valid[..., None]
    radii = torch.where(valid, radius, torch.zeros_like(radius)).detach().to(torch.int32)
    return (torch.where(keep, means2d, 0.0), torch.where(keep, conics, 0.0), torch.where(valid, z, 0.0), radii)


@torch.no_grad()
def tile_ranges(means2d, radii, tile_size, tiles_x, tiles_y):
    """Each (camera, Gaussian)'s tile box [x0, x1) x [y0, y1), gsplat's rule: [floor(m/t - r/t),
    ceil(m/t + r/t)) clamped to the grid; empty for radius 0 or a non-finite mean. [C, N, 4] int64."""
    m = means2d / tile_size
    r = (radii.to(means2d.dtype) / tile_size)[..., None]
    lo, hi = torch.floor(m - r), torch.ceil(m + r)
    limit = torch.tensor([tiles_x, tiles_y], dtype=m.dtype, device=m.device)
    lo = torch.minimum(torch.clamp(lo, min=0), limit).to(torch.int64)
    hi = torch.minimum(torch.clamp(hi, min=0), limit).to(torch.int64)
    live = ((radii > 0) & torch.isfinite(means2d).all(-1))[..., None]
    lo, hi = torch.where(live, lo, 0), torch.where(live, hi, 0)
    return torch.stack([lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1]], -1)


@torch.no_grad()
def tile_bin(means2d, radii, depths, tile_size, tiles_x, tiles_y):
    """-> tile_offsets [C, tiles_y, tiles_x] int32, flatten_ids [M] int32 (camera * N + Gaussian),
    sorted by (camera, tile, depth), depth ties by Gaussian index."""
    C, N = radii.shape
    box = tile_ranges(means2d, radii, tile_size, tiles_x, tiles_y).reshape(C * N, 4)
    w, h = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
    count = w * h
    dev = means2d.device
    pair = torch.repeat_interleave(torch.arange(C * N, device=dev), count)
    k = torch.arange(pair.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    tx = box[pair, 0] + k % w[pair]
    ty = box[pair, 2] + k // w[pair]
    key = (pair // N) * (tiles_x * tiles_y) + ty * tiles_x + tx
    # float32 bits as unsigned: the order of CUDA's radix sort on the depth bits
    bits = depths.reshape(-1).to(torch.float32).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    order = torch.sort(bits[pair], stable=True).indices
    order = order[torch.sort(key[order], stable=True).indices]
    flatten_ids = pair[order].to(torch.int32)
    counts = torch.bincount(key, minlength=C * tiles_x * tiles_y)
    tile_offsets = (torch.cumsum(counts, 0) - counts).to(torch.int32).reshape(C, tiles_y, tiles_x)
    return tile_offsets, flatten_ids


def rasterize(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height, tile_size=16,
              backgrounds: Optional[Tensor] = None, chunk_elements: int = 1 << 22):  # fmt: skip
    """-> render [C, H, W, D], alpha [C, H, W, 1], last_ids [C, H, W] int32 (-1: none).

    Per tile, alpha is a [pixels, list] matrix; the transmittance before each Gaussian is the
    exclusive cumprod of (1 - alpha) over the list; a Gaussian counts while the inclusive product
    stays above 1e-4 (the first to reach it and every later one are excluded). Tiles are taken in
    order of list length, in chunks of about ``chunk_elements`` matrix entries, so little is padded."""
    C, N = means2d.shape[:2]
    D = features.shape[-1]
    M = flatten_ids.numel()
    dtype = means2d.dtype
    feats = features.reshape(-1, D) if features.dim() == 3 else features
    opac = opacities.reshape(-1)
    tiles_y, tiles_x = tile_offsets.shape[1:]
    ts = tile_size
    starts = tile_offsets.reshape(-1).to(torch.int64)
    dev = means2d.device
    ends = torch.cat([starts[1:], torch.tensor([M], device=dev)])
    lengths = ends - starts
    tiles = starts.numel()
    py, px = torch.meshgrid(torch.arange(ts, dtype=dtype, device=dev), torch.arange(ts, dtype=dtype, device=dev),
                            indexing="ij")  # fmt: skip
    px, py = px.reshape(-1) + 0.5, py.reshape(-1) + 0.5  # pixel centres relative to the tile origin
    ids_all = flatten_ids.to(torch.int64)
    order = torch.argsort(lengths, stable=True)
    if M == 0:  # nothing to composite: the background (or zeros) everywhere
        T_final = torch.ones(C, height, width, dtype=dtype, device=dev)
        render = torch.zeros(C, height, width, D, dtype=dtype, device=dev)
        if backgrounds is not None:
            render = render + backgrounds[:, None, None, :]
        last = torch.full((C, height, width), -1, dtype=torch.int32, device=dev)
        return render, (1 - T_final)[..., None], last
    renders, transmittances, lasts, done = [], [], [], []
    sorted_lengths = lengths[order].tolist()  # one transfer from a GPU
    t0 = 0
    while t0 < tiles:
        t1 = t0 + 1
        while t1 < tiles and (t1 - t0 + 1) * ts * ts * max(sorted_lengths[t1], 1) <= chunk_elements:
            t1 += 1
        L = max(sorted_lengths[t1 - 1], 1)
        tile = order[t0:t1]
        pos = starts[tile, None] + torch.arange(L, device=dev)[None]  # [t, L] positions in flatten_ids
        live = pos < ends[tile, None]
        ids = torch.where(live, ids_all[pos.clamp(max=max(M - 1, 0))] if M else pos * 0, 0)
        g = ids % max(N, 1)
        in_image = tile % (tiles_x * tiles_y)
        ox = ((in_image % tiles_x) * ts).to(dtype)[:, None, None]
        oy = ((in_image // tiles_x) * ts).to(dtype)[:, None, None]
        mean, conic = means2d.reshape(-1, 2)[ids], conics.reshape(-1, 3)[ids]  # [t, L, 2], [t, L, 3]
        o = opac[ids if opacities.dim() == 2 else g]
        f = feats[ids if features.dim() == 3 else g]  # [t, L, D]
        finite = torch.isfinite(torch.cat([mean, conic, o[..., None]], -1)).all(-1) & live
        dx = mean[:, None, :, 0] - (ox + px[None, :, None])  # [t, P, L]
        dy = mean[:, None, :, 1] - (oy + py[None, :, None])
        a, b, c = conic[:, None, :, 0], conic[:, None, :, 1], conic[:, None, :, 2]
        power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
        alpha = torch.clamp(o[:, None] * torch.exp(power), max=MAX_ALPHA)
        used = (power <= 0) & (alpha >= MIN_ALPHA) & finite[:, None]
        alpha = torch.where(used, alpha, torch.zeros_like(alpha))
        T_incl = torch.cumprod(1 - alpha, -1)
        counts = (T_incl > MIN_TRANSMITTANCE) & used  # monotone: once at or below 1e-4 it stays
        T_excl = torch.cat([torch.ones_like(T_incl[..., :1]), T_incl[..., :-1]], -1)
        weight = torch.where(counts, alpha * T_excl, torch.zeros_like(alpha))
        renders.append(weight @ f)  # [t, P, D]
        transmittances.append(torch.prod(1 - torch.where(counts, alpha, torch.zeros_like(alpha)), -1))
        lasts.append(torch.where(counts, pos[:, None].expand_as(counts), -1).amax(-1))
        done.append(tile)
        t0 = t1
    inverse = torch.argsort(torch.cat(done)) if done else torch.zeros(0, dtype=torch.int64, device=dev)
    out = torch.cat(renders)[inverse] if renders else torch.zeros(0, ts * ts, D, dtype=dtype, device=dev)
    out_T = torch.cat(transmittances)[inverse] if renders else torch.zeros(0, ts * ts, dtype=dtype, device=dev)
    out_last = torch.cat(lasts)[inverse] if renders else torch.zeros(0, ts * ts, dtype=torch.int64, device=dev)

    def image(v):  # tiles [C * tiles_y * tiles_x, ts * ts, ...] -> images cut to height x width
        v = v.reshape(C, tiles_y, tiles_x, ts, ts, *v.shape[2:]).transpose(2, 3)
        return v.reshape(C, tiles_y * ts, tiles_x * ts, *v.shape[5:])[:, :height, :width]

    T_final = image(out_T)
    render = image(out)
    if backgrounds is not None:
        render = render + T_final[..., None] * backgrounds[:, None, None, :]
    return render, (1 - T_final)[..., None], image(out_last).to(torch.int32)


def scatter_coefficients(coef_indices: Tensor, coef_weights: Tensor, num_coefs: int) -> Tensor:
    """The dense [N, num_coefs] coefficients of N Gaussians' P (index, weight) pairs (duplicate
    indices add up): what LangSplatV2's training path renders."""
    dense = coef_weights.new_zeros(coef_weights.shape[0], num_coefs)
    return dense.scatter_add_(1, coef_indices.to(torch.int64), coef_weights)


def rasterize_sparse_coef(means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets,
                          flatten_ids, width, height, tile_size=16):  # fmt: skip
    """-> weight_map [C, H, W, num_coefs], alpha [C, H, W, 1], last_ids [C, H, W]: the dense
    splat of the scattered coefficients (no background)."""
    dense = scatter_coefficients(coef_indices, coef_weights, num_coefs)
    return rasterize(means2d, conics, dense, opacities, tile_offsets, flatten_ids, width, height, tile_size)


def rasterize_sparse_features(means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets,
                              flatten_ids, width, height, tile_size=16, normalize=False):  # fmt: skip
    """-> features [C, H, W, levels, D]: the weight map's level l times codebook[l] [L, D],
    L2-normalized per pixel and level when asked (torch's F.normalize)."""
    levels, L, _ = codebook.shape
    weight_map, _, _ = rasterize_sparse_coef(means2d, conics, opacities, coef_indices, coef_weights, levels * L,
                                             tile_offsets, flatten_ids, width, height, tile_size)  # fmt: skip
    features = torch.einsum("chwlk,lkd->chwld", weight_map.unflatten(-1, (levels, L)), codebook)
    return torch.nn.functional.normalize(features, dim=-1) if normalize else features


def language_relevancy(means2d, conics, opacities, coef_indices, coef_weights, codebook, queries, negatives,
                       tile_offsets, flatten_ids, width, height, tile_size=16):  # fmt: skip
    """-> relevancy [C, H, W, levels, Q], as LangSplat's evaluation computes it: for each query and
    each negative phrase the softmax of 10 x (f . q, f . c_j) over the pair, the query's share, and
    the minimum over the negatives (f the normalized rendered feature)."""
    f = rasterize_sparse_features(means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets,
                                  flatten_ids, width, height, tile_size, normalize=True)  # fmt: skip
    positive = f @ queries.T  # [C, H, W, levels, Q]
    negative = f @ negatives.T  # [C, H, W, levels, M]
    pairs = torch.stack(torch.broadcast_tensors(positive[..., :, None], negative[..., None, :]), -1)
    return torch.softmax(10 * pairs, -1)[..., 0].amin(-1)


def rasterization(means, quats, scales, opacities, features, viewmats, Ks, width, height, tile_size=16,
                  backgrounds=None, **projection):  # fmt: skip
    """The whole pipeline (project, bin, composite) with the functions above: the benchmark's
    ``torch-reference``. -> render [C, H, W, D], alpha [C, H, W, 1]."""
    means2d, conics, depths, radii = project_gaussians(means, quats, scales, viewmats, Ks, width, height, **projection)
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    offsets, ids = tile_bin(means2d, radii, depths, tile_size, tiles_x, tiles_y)
    render, alpha, _ = rasterize(means2d, conics, features, opacities, offsets, ids, width, height, tile_size,
                                 backgrounds)  # fmt: skip
    return render, alpha
