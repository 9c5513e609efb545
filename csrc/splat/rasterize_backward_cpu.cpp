// prismkit::rasterize_backward on the CPU: threads split the (camera, tile) pairs, as in the
// forward. Within a tile the Gaussians are walked back to front, each over the pixels of its box
// (only pixels whose last contributor is at or after it), recovering each pixel's transmittance
// from the saved 1 - alpha. A Gaussian's gradients (D feature channels, 2 + 3 + 1 scalars) are
// summed over the tile's pixels in a small buffer and added to the outputs once per tile, under a
// lock striped by Gaussian: one add of D values per (tile, Gaussian) instead of one per pixel.
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
  check_tile_lists_cpu("rasterize_backward", tile_offsets, flatten_ids, a);
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
    const int64_t tiles = a.tiles_x * a.tiles_y, all_tiles = a.C * tiles;
    at::parallel_for(0, all_tiles, 1, [&](int64_t k0, int64_t k1) {
      const int64_t P = tile_size * tile_size;
      std::vector<T> trans(P), final_trans(P), extra(P), acc(P * D), grad_f(D), grad_bg(bgp ? D : 0);
      std::vector<int32_t> last(P);
      for (int64_t k = k0; k < k1; ++k) {
        const Tile tile = tile_at(k, a.tiles_x, a.tiles_y, tile_size, W, H);
        const int64_t tw = tile.w, th = tile.h;
        auto pix = [&](int64_t x, int64_t y) { return (tile.camera * H + tile.y0 + y) * W + tile.x0 + x; };
        int32_t latest = -1;
        for (int64_t y = 0; y < th; ++y)
          for (int64_t x = 0; x < tw; ++x) {
            const int64_t p = y * tw + x, q = pix(x, y);
            final_trans[p] = trans[p] = T(1) - alp[q];
            last[p] = lip[q];
            latest = std::max(latest, last[p]);
            // d alpha_i of T_final's terms: T_final (grad_alpha - background . dL/dC) / (1 - alpha_i)
            extra[p] = gap[q] - (bgp ? dot(bgp + tile.camera * D, grp + q * D, D) : T(0));
          }
        std::fill(acc.begin(), acc.begin() + tw * th * D, T(0));
        const int64_t begin = offp[k];
        for (int64_t i = latest; i >= begin; --i) {
          const int64_t fid = idp[i], g = fid % N;
          const Splat2D<T> s{mp[fid * 2], mp[fid * 2 + 1], cp[fid * 3], cp[fid * 3 + 1], cp[fid * 3 + 2],
                             opp[a.camera_opacities ? fid : g]};
          PixelBox box;
          if (!pixel_box(s, tile, &box)) continue;
          const int64_t frow = a.camera_features ? fid : g;
          const T* feature = fp + frow * D;
          std::fill(grad_f.begin(), grad_f.end(), T(0));
          T dmx = 0, dmy = 0, da = 0, db = 0, dc = 0, dop = 0;
          bool touched = false;
          for (int64_t y = box.y0; y < box.y1; ++y) {
            const T dy = s.my - (static_cast<T>(tile.y0 + y) + T(0.5));
            for (int64_t x = box.x0; x < box.x1; ++x) {
              const int64_t p = y * tw + x;
              if (i > last[p]) continue;
              const T dx = s.mx - (static_cast<T>(tile.x0 + x) + T(0.5));
              T vis;
              const T alpha_i = splat_alpha(s, dx, dy, &vis);
              if (alpha_i < 0) continue;
              const T ra = T(1) / (T(1) - alpha_i);
              const T t_i = trans[p] * ra;
              trans[p] = t_i;
              const T sdot = backward_step(feature, grp + pix(x, y) * D, acc.data() + p * D, grad_f.data(),
                                           alpha_i * t_i, alpha_i, D);
              const T d_alpha = t_i * sdot + final_trans[p] * ra * extra[p];
              touched = true;
              if (s.opacity * vis > T(0.99)) continue;  // clamped: no gradient to opacity or power
              dop += vis * d_alpha;
              const T d_power = alpha_i * d_alpha;
              dmx -= d_power * (s.a * dx + s.b * dy);
              dmy -= d_power * (s.b * dx + s.c * dy);
              da -= T(0.5) * d_power * dx * dx;
              db -= d_power * dx * dy;
              dc -= T(0.5) * d_power * dy * dy;
            }
          }
          if (!touched) continue;
          gaussian_locks.lock(g);
          axpy(T(1), grad_f.data(), gfp + frow * D, D);
          gmp[fid * 2] += dmx;
          gmp[fid * 2 + 1] += dmy;
          gcp[fid * 3] += da;
          gcp[fid * 3 + 1] += db;
          gcp[fid * 3 + 2] += dc;
          gop[a.camera_opacities ? fid : g] += dop;
          gaussian_locks.unlock(g);
        }
        if (bgp) {  // d background = sum over pixels of T_final dL/dC
          std::fill(grad_bg.begin(), grad_bg.end(), T(0));
          for (int64_t y = 0; y < th; ++y)
            for (int64_t x = 0; x < tw; ++x) axpy(final_trans[y * tw + x], grp + pix(x, y) * D, grad_bg.data(), D);
          camera_locks.lock(tile.camera);
          axpy(T(1), grad_bg.data(), gbp + tile.camera * D, D);
          camera_locks.unlock(tile.camera);
        }
      }
    });
  });
  return {grad_means2d, grad_conics, grad_features, grad_opacities, grad_backgrounds};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("rasterize_backward", &rasterize_backward_cpu); }

}  // namespace prismkit::splat
