// prismkit::rasterize on the CPU: threads take (camera, tile) pairs from a shared counter. Within
// a tile the loop runs Gaussian by Gaussian (front to back), one composite-kernel call per
// Gaussian over the pixels of its box (composite_kernels.h), with each pixel's transmittance in a
// small tile array: the per-pixel order of the reference is kept while each Gaussian's parameters
// and feature row are loaded once per tile. The tile stops when all its pixels are done.
#include "common/cpu_alloc.h"
#include "common/float32_compute.h"
#include "splat/composite_kernels.h"
#include "splat/raster_tile.h"
#include "splat/splat_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor> rasterize_cpu(const at::Tensor& means2d, const at::Tensor& conics,
                                                             const at::Tensor& features, const at::Tensor& opacities,
                                                             const at::Tensor& tile_offsets,
                                                             const at::Tensor& flatten_ids, int64_t width,
                                                             int64_t height, int64_t tile_size,
                                                             const std::optional<at::Tensor>& backgrounds) {
  const RasterArgs a = check_rasterize_args("rasterize", means2d, conics, features, opacities, tile_offsets,
                                            flatten_ids, width, height, tile_size, backgrounds);
  check_tile_lists_cpu("rasterize", tile_offsets, flatten_ids, a);
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_cpu, means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height,
                      tile_size, backgrounds);
  const int64_t H = height, W = width, D = a.D, N = a.N;
  at::Tensor render = empty_for_large_output({a.C, H, W, D}, means2d.options());
  at::Tensor alpha = at::empty({a.C, H, W, 1}, means2d.options());
  at::Tensor last_ids = at::empty({a.C, H, W}, tile_offsets.options());
  const at::Tensor m = means2d.contiguous(), co = conics.contiguous(), f = features.contiguous();
  const at::Tensor op = opacities.contiguous(), off = tile_offsets.contiguous(), ids = flatten_ids.contiguous();
  const at::Tensor bg = backgrounds.has_value() ? backgrounds->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_cpu", [&] {
    using T = scalar_t;
    const T *mp = m.const_data_ptr<T>(), *cp = co.const_data_ptr<T>(), *fp = f.const_data_ptr<T>();
    const T* opp = op.const_data_ptr<T>();
    const T* bgp = bg.defined() ? bg.const_data_ptr<T>() : nullptr;
    const int32_t *offp = off.const_data_ptr<int32_t>(), *idp = ids.const_data_ptr<int32_t>();
    T *rp = render.data_ptr<T>(), *ap = alpha.data_ptr<T>();
    int32_t* lp = last_ids.data_ptr<int32_t>();
    const int64_t tiles = a.tiles_x * a.tiles_y;
    // Each tile accumulates in a workspace that stays in cache and is copied to the output once: up
    // to kPlanarChannels channel-major ([D][pixels], a vector multiply-add per channel and box row),
    // wider pixel-major ([pixels][D], a vector multiply-add per pixel across its channels).
    const bool planar = D <= kPlanarChannels;
    // a tile is at most min(tile_size, width) x min(tile_size, height) pixels
    const int64_t tile_w = std::min(tile_size, W), P = tile_w * std::min(tile_size, H);
    struct Workspace {
      std::vector<T> trans, done, acc, scratch;
      std::vector<int32_t> last;
    };
    auto make_workspace = [&] {
      return Workspace{std::vector<T>(P), std::vector<T>(P), std::vector<T>(D * P),
                       std::vector<T>(scratch_elements(tile_w)), std::vector<int32_t>(P)};
    };
    for_each_tile(a.C * tiles, make_workspace, [&](Workspace& w, int64_t k) {
      const Tile tile = tile_at(k, a.tiles_x, a.tiles_y, tile_size, W, H);
      const int64_t tw = tile.w, th = tile.h;
      auto row = [&](int64_t x, int64_t y) { return rp + ((tile.camera * H + tile.y0 + y) * W + tile.x0 + x) * D; };
      std::fill(w.acc.begin(), w.acc.end(), T(0));
      std::fill(w.trans.begin(), w.trans.end(), T(1));
      std::fill(w.done.begin(), w.done.end(), T(0));
      std::fill(w.last.begin(), w.last.end(), -1);
      ForwardTile<T> state{w.trans.data(), w.done.data(), w.last.data(), w.acc.data(),    P, D,
                           nullptr,        w.acc.data(),  tw * D,        w.scratch.data()};
      int64_t remaining = tw * th;
      const int64_t begin = offp[k], end = k + 1 < a.C * tiles ? offp[k + 1] : a.M;
      for (int64_t i = begin; i < end && remaining > 0; ++i) {
        const int64_t fid = idp[i], g = fid % N;
        const Splat2D<T> s(mp[fid * 2], mp[fid * 2 + 1], cp[fid * 3], cp[fid * 3 + 1], cp[fid * 3 + 2],
                           opp[a.camera_opacities ? fid : g]);
        PixelBox box;
        if (!pixel_box(s, tile, &box)) continue;
        const BoxSplat<T> bs = box_splat(s, tile, box);
        state.feature = fp + (a.camera_features ? fid : g) * D;
        remaining -= forward_box(bs, static_cast<int32_t>(i), state);
      }
      for (int64_t y = 0; y < th; ++y)
        for (int64_t x = 0; x < tw; ++x) {
          const int64_t p = y * tw + x, pix = (tile.camera * H + tile.y0 + y) * W + tile.x0 + x;
          T* out = row(x, y);
          if (planar)
            for (int64_t c = 0; c < D; ++c) out[c] = w.acc[c * P + p];
          else
            std::copy(w.acc.begin() + p * D, w.acc.begin() + (p + 1) * D, out);
          if (bgp) axpy(w.trans[p], bgp + tile.camera * D, out, D);
          ap[pix] = T(1) - w.trans[p];
          lp[pix] = w.last[p];
        }
    });
  });
  return {render, alpha, last_ids};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("rasterize", &rasterize_cpu); }

}  // namespace prismkit::splat
