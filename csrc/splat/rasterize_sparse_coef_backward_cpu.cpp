// prismkit::rasterize_sparse_coef_backward on the CPU: rasterize_backward_cpu.cpp's walk (tiles
// from a shared counter, Gaussians back to front, one composite-kernel call per Gaussian over its
// box) with sparse coefficients: dL/dW is fixed per pixel, so the walk keeps one number per pixel,
// (weights of the Gaussians behind) . dL/dW, and each Gaussian-pixel pair costs P gathers of dL/dW,
// never num_coefs. The weight gradient of pair (i, k) is sum over pixels of T_i alpha_i
// dL/dW(p)[index[i, k]]; a Gaussian's P of them and its 6 geometric ones are summed over the tile
// and added once, under a lock striped by Gaussian. No [N, num_coefs] intermediate.
#include "common/float32_compute.h"
#include "splat/composite_kernels.h"
#include "splat/raster_tile.h"
#include "splat/sparse_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_sparse_coef_backward_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities, const at::Tensor& coef_indices,
    const at::Tensor& coef_weights, int64_t num_coefs, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
    int64_t width, int64_t height, int64_t tile_size, const at::Tensor& alpha, const at::Tensor& last_ids,
    const at::Tensor& grad_weight_map, const at::Tensor& grad_alpha) {
  const char* op = "rasterize_sparse_coef_backward";
  const SparseArgs a = check_sparse_coef_backward_args(means2d, conics, opacities, coef_indices, coef_weights,
                                                       num_coefs, tile_offsets, flatten_ids, width, height, tile_size,
                                                       alpha, last_ids, grad_weight_map, grad_alpha);
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_sparse_coef_backward_cpu, means2d, conics, opacities, coef_indices, coef_weights,
                      num_coefs, tile_offsets, flatten_ids, width, height, tile_size, alpha, last_ids, grad_weight_map,
                      grad_alpha);
  const at::Tensor idx = check_sparse_values_cpu(op, a, coef_indices, tile_offsets, flatten_ids, last_ids);
  const int64_t H = height, W = width, nc = num_coefs, N = a.raster.N, P = a.P;
  at::Tensor grad_means2d = at::zeros_like(means2d, at::MemoryFormat::Contiguous);
  at::Tensor grad_conics = at::zeros_like(conics, at::MemoryFormat::Contiguous);
  at::Tensor grad_opacities = at::zeros_like(opacities, at::MemoryFormat::Contiguous);
  at::Tensor grad_weights = at::zeros_like(coef_weights, at::MemoryFormat::Contiguous);
  const at::Tensor m = means2d.contiguous(), co = conics.contiguous(), op_ = opacities.contiguous();
  const at::Tensor wt = coef_weights.contiguous(), off = tile_offsets.contiguous(), ids = flatten_ids.contiguous();
  const at::Tensor al = alpha.contiguous(), li = last_ids.contiguous();
  const at::Tensor gw = grad_weight_map.contiguous(), ga = grad_alpha.contiguous();
  StripedLocks gaussian_locks(4096);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_sparse_coef_backward_cpu", [&] {
    using T = scalar_t;
    const T *mp = m.const_data_ptr<T>(), *cp = co.const_data_ptr<T>(), *opp = op_.const_data_ptr<T>();
    const T *wtp = wt.const_data_ptr<T>(), *alp = al.const_data_ptr<T>();
    const T *gwp = gw.const_data_ptr<T>(), *gap = ga.const_data_ptr<T>();
    const int32_t *idxp = idx.const_data_ptr<int32_t>(), *offp = off.const_data_ptr<int32_t>();
    const int32_t *idp = ids.const_data_ptr<int32_t>(), *lip = li.const_data_ptr<int32_t>();
    T *gmp = grad_means2d.data_ptr<T>(), *gcp = grad_conics.data_ptr<T>(), *gop = grad_opacities.data_ptr<T>();
    T* gwtp = grad_weights.data_ptr<T>();
    const int64_t tiles = a.raster.tiles_x * a.raster.tiles_y, C = a.raster.C;
    const int64_t tile_w = std::min(tile_size, W), pixels = tile_w * std::min(tile_size, H);
    struct Workspace {
      std::vector<T> trans, final_trans, extra, acc, grad_w, scratch;
      std::vector<int32_t> last;
    };
    auto make_workspace = [&] {
      return Workspace{std::vector<T>(pixels),      std::vector<T>(pixels), std::vector<T>(pixels),
                       std::vector<T>(pixels),      std::vector<T>(P),      std::vector<T>(scratch_elements(tile_w)),
                       std::vector<int32_t>(pixels)};
    };
    for_each_tile(C * tiles, make_workspace, [&](Workspace& w, int64_t k) {
      const Tile tile = tile_at(k, a.raster.tiles_x, a.raster.tiles_y, tile_size, W, H);
      auto pix = [&](int64_t x, int64_t y) { return (tile.camera * H + tile.y0 + y) * W + tile.x0 + x; };
      // d alpha_i of T_final: T_final grad_alpha / (1 - alpha_i)
      const int32_t latest = load_tile_state(tile, W, H, alp, lip, w.trans.data(), w.final_trans.data(), w.last.data(),
                                             w.extra.data(), [&](int64_t q) { return gap[q]; });
      std::fill(w.acc.begin(), w.acc.end(), T(0));
      BackwardTile<T> state{w.trans.data(),
                            w.final_trans.data(),
                            w.extra.data(),
                            w.last.data(),
                            w.acc.data(),
                            gwp + pix(0, 0) * nc,
                            W * nc,
                            P,
                            nullptr,
                            w.grad_w.data(),
                            {},
                            false,
                            w.scratch.data(),
                            nullptr,
                            nc};
      const int64_t end = k + 1 < C * tiles ? offp[k + 1] : a.raster.M;  // this tile's last_ids lie before it
      auto prepare = [&](int64_t, int64_t g) {
        state.feature = wtp + g * P;
        state.channel = idxp + g * P;
      };
      auto add = [&](int64_t fid, int64_t g) {
        gaussian_locks.lock(g);
        for (int64_t j = 0; j < P; ++j) gwtp[g * P + j] += w.grad_w[j];
        add_geometry_grads(state.grad, fid, g, a.raster.camera_opacities, gmp, gcp, gop);
        gaussian_locks.unlock(g);
      };
      walk_tile_back(tile, offp[k], end, latest, idp, N, mp, cp, opp, a.raster.camera_opacities, state, w.grad_w.data(),
                     P, prepare, add);
    });
  });
  return {grad_means2d, grad_conics, grad_opacities, grad_weights};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("rasterize_sparse_coef_backward", &rasterize_sparse_coef_backward_cpu); }

}  // namespace prismkit::splat
