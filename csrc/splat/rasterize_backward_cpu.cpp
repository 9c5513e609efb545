// prismkit::rasterize_backward on the CPU: threads take (camera, tile) pairs from a shared counter,
// as in the forward. Within a tile the Gaussians are walked back to front, one composite-kernel
// call each over the pixels of its box (only pixels whose last contributor is at or after it),
// recovering each pixel's transmittance from the saved 1 - alpha. A Gaussian's gradients (D feature channels, 2 + 3 + 1
// scalars) are summed over the tile's pixels in a small buffer and added to the outputs once per tile, under a lock
// striped by Gaussian: one add of D values per (tile, Gaussian) instead of one per pixel.
#include "common/float32_compute.h"
#include "common/vector_math.h"
#include "splat/composite_kernels.h"
#include "splat/raster_tile.h"
#include "splat/splat_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& features, const at::Tensor& opacities,
    const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size,
    const std::optional<at::Tensor>& backgrounds, const at::Tensor& alpha, const at::Tensor& last_ids,
    const at::Tensor& grad_render, const at::Tensor& grad_alpha) {
  const RasterArgs a =
      check_rasterize_backward_args(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height,
                                    tile_size, backgrounds, alpha, last_ids, grad_render, grad_alpha);
  check_tile_lists_cpu("rasterize_backward", tile_offsets, flatten_ids, a, last_ids);
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_backward_cpu, means2d, conics, features, opacities, tile_offsets, flatten_ids, width,
                      height, tile_size, backgrounds, alpha, last_ids, grad_render, grad_alpha);
  const int64_t H = height, W = width, D = a.D, N = a.N;
  at::Tensor grad_means2d = at::zeros_like(means2d, at::MemoryFormat::Contiguous);
  at::Tensor grad_conics = at::zeros_like(conics, at::MemoryFormat::Contiguous);
  at::Tensor grad_features = at::zeros_like(features, at::MemoryFormat::Contiguous);
  at::Tensor grad_opacities = at::zeros_like(opacities, at::MemoryFormat::Contiguous);
  at::Tensor grad_backgrounds = at::zeros({a.C, D}, means2d.options());
  const at::Tensor m = means2d.contiguous(), co = conics.contiguous(), f = features.contiguous();
  const at::Tensor op = opacities.contiguous(), off = tile_offsets.contiguous(), ids = flatten_ids.contiguous();
  const at::Tensor bg = backgrounds.has_value() ? backgrounds->contiguous() : at::Tensor();
  const at::Tensor al = alpha.contiguous(), li = last_ids.contiguous();
  const at::Tensor gr = grad_render.contiguous(), ga = grad_alpha.contiguous();
  StripedLocks gaussian_locks(4096), camera_locks(64);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_backward_cpu", [&] {
    using T = scalar_t;
    const T *mp = m.const_data_ptr<T>(), *cp = co.const_data_ptr<T>(), *fp = f.const_data_ptr<T>();
    const T* opp = op.const_data_ptr<T>();
    const T* bgp = bg.defined() ? bg.const_data_ptr<T>() : nullptr;
    const T *alp = al.const_data_ptr<T>(), *grp = gr.const_data_ptr<T>(), *gap = ga.const_data_ptr<T>();
    const int32_t *offp = off.const_data_ptr<int32_t>(), *idp = ids.const_data_ptr<int32_t>();
    const int32_t* lip = li.const_data_ptr<int32_t>();
    T *gmp = grad_means2d.data_ptr<T>(), *gcp = grad_conics.data_ptr<T>(), *gfp = grad_features.data_ptr<T>();
    T *gop = grad_opacities.data_ptr<T>(), *gbp = grad_backgrounds.data_ptr<T>();
    // a tile is at most min(tile_size, width) x min(tile_size, height) pixels
    const int64_t tiles = a.tiles_x * a.tiles_y, tile_w = std::min(tile_size, W), P = tile_w * std::min(tile_size, H);
    struct Workspace {
      std::vector<T> trans, final_trans, extra, acc, grad_f, grad_bg, scratch;
      std::vector<int32_t> last;
    };
    auto make_workspace = [&] {
      return Workspace{std::vector<T>(P),
                       std::vector<T>(P),
                       std::vector<T>(P),
                       std::vector<T>(P * D),
                       std::vector<T>(D),
                       std::vector<T>(bgp ? D : 0),
                       std::vector<T>(scratch_elements(tile_w)),
                       std::vector<int32_t>(P)};
    };
    for_each_tile(a.C * tiles, make_workspace, [&](Workspace& w, int64_t k) {
      const Tile tile = tile_at(k, a.tiles_x, a.tiles_y, tile_size, W, H);
      const int64_t tw = tile.w, th = tile.h;
      auto pix = [&](int64_t x, int64_t y) { return (tile.camera * H + tile.y0 + y) * W + tile.x0 + x; };
      // d alpha_i of T_final's terms: T_final (grad_alpha - background . dL/dC) / (1 - alpha_i)
      const int32_t latest = load_tile_state(
          tile, W, H, alp, lip, w.trans.data(), w.final_trans.data(), w.last.data(), w.extra.data(),
          [&](int64_t q) { return gap[q] - (bgp ? dot(bgp + tile.camera * D, grp + q * D, D) : T(0)); });
      std::fill(w.acc.begin(), w.acc.begin() + tw * th * D, T(0));
      BackwardTile<T> state{w.trans.data(),
                            w.final_trans.data(),
                            w.extra.data(),
                            w.last.data(),
                            w.acc.data(),
                            grp + pix(0, 0) * D,
                            W * D,
                            D,
                            nullptr,
                            w.grad_f.data(),
                            {},
                            false,
                            w.scratch.data()};
      const int64_t end = k + 1 < a.C * tiles ? offp[k + 1] : a.M;  // this tile's last_ids lie before it
      auto prepare = [&](int64_t fid, int64_t g) { state.feature = fp + (a.camera_features ? fid : g) * D; };
      auto add = [&](int64_t fid, int64_t g) {
        gaussian_locks.lock(g);
        axpy(T(1), w.grad_f.data(), gfp + (a.camera_features ? fid : g) * D, D);
        add_geometry_grads(state.grad, fid, g, a.camera_opacities, gmp, gcp, gop);
        gaussian_locks.unlock(g);
      };
      walk_tile_back(tile, offp[k], end, latest, idp, N, mp, cp, opp, a.camera_opacities, state, w.grad_f.data(), D,
                     prepare, add);
      if (bgp) {  // d background = sum over pixels of T_final dL/dC
        std::fill(w.grad_bg.begin(), w.grad_bg.end(), T(0));
        for (int64_t y = 0; y < th; ++y)
          for (int64_t x = 0; x < tw; ++x) axpy(w.final_trans[y * tw + x], grp + pix(x, y) * D, w.grad_bg.data(), D);
        camera_locks.lock(tile.camera);
        axpy(T(1), w.grad_bg.data(), gbp + tile.camera * D, D);
        camera_locks.unlock(tile.camera);
      }
    });
  });
  return {grad_means2d, grad_conics, grad_features, grad_opacities, grad_backgrounds};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("rasterize_backward", &rasterize_backward_cpu); }

}  // namespace prismkit::splat
