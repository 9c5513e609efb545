// prismkit::language_relevancy on the CPU: rasterize_sparse_coef's tile compositing
// (sparse_tile.h), then per tile row and level the relevancy from the pixel's weights w alone.
// With S the level's codebook [L, D], F = S^T w, so |F|^2 = w^T (S S^T) w and F . q = w^T (S q):
// one product of w with B = [S S^T | S queries^T | S negatives^T] ([L, L + Q + M], computed once
// per call) gives both (composite_kernels.h's decode), O(L (L + Q + M)) per pixel instead of the
// O(L D) of forming F. relevancy = sigmoid(10 (f . q - max_j f . c_j)) with f = F / |F|; a pixel
// with |F| = 0 has f = 0 (torch's F.normalize), so 0.5.
#include "common/float32_compute.h"
#include "splat/composite_kernels.h"
#include "splat/raster_tile.h"
#include "splat/sparse_checks.h"
#include "splat/sparse_tile.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace prismkit::splat {

at::Tensor language_relevancy_cpu(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                                  const at::Tensor& coef_indices, const at::Tensor& coef_weights,
                                  const at::Tensor& codebook, const at::Tensor& queries, const at::Tensor& negatives,
                                  const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                  int64_t height, int64_t tile_size) {
  const char* op = "language_relevancy";
  const SparseArgs a =
      check_language_relevancy_args(means2d, conics, opacities, coef_indices, coef_weights, codebook, queries,
                                    negatives, tile_offsets, flatten_ids, width, height, tile_size);
  if (is_reduced_float(means2d))
    return in_float32(&language_relevancy_cpu, means2d, conics, opacities, coef_indices, coef_weights, codebook,
                      queries, negatives, tile_offsets, flatten_ids, width, height, tile_size);
  const SparseTensors t =
      sparse_tensors(op, a, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids);
  const int64_t H = height, W = width, C = a.raster.C, levels = a.levels, L = a.L, Q = a.Q;
  const int64_t K = L + Q + a.negatives;  // B's columns
  at::Tensor relevancy = at::empty({C, H, W, levels, Q}, means2d.options());
  if (Q == 0) return relevancy;
  const at::Tensor book = codebook.contiguous();
  const at::Tensor B =
      at::cat({at::matmul(book, book.transpose(1, 2)), at::matmul(book, queries.t()), at::matmul(book, negatives.t())},
              2)
          .contiguous();  // [levels, L, K]
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "language_relevancy_cpu", [&] {
    using T = scalar_t;
    const SparseInputs<T> in = t.view<T>();
    const T* Bp = B.const_data_ptr<T>();
    T* rp = relevancy.data_ptr<T>();
    const int64_t tile_w = std::min(tile_size, W), tile_h = std::min(tile_size, H);
    struct Workspace {
      SparseWorkspace<T> tile;
      std::vector<T> products;  // [tile_w][K]
    };
    const int64_t nc = a.num_coefs;
    auto make_workspace = [&] {
      return Workspace{SparseWorkspace<T>(nc, tile_w, tile_h, true), std::vector<T>(tile_w * K)};
    };
    for_each_tile(in.tiles, make_workspace, [&](Workspace& ws, int64_t k) {
      SparseWorkspace<T>& w = ws.tile;
      const Tile tile = tile_at(k, a.raster.tiles_x, a.raster.tiles_y, tile_size, W, H);
      composite_sparse_tile(in, tile, k, w, w.weights.data(), tile.w * nc, nc);
      for (int64_t y = 0; y < tile.h; ++y)
        for (int64_t l = 0; l < levels; ++l) {
          const T* wl = w.weights.data() + y * tile.w * nc + l * L;  // pixel x's level-l weights at wl[x * nc]
          T* prod = ws.products.data();
          decode(wl, 1, nc, tile.w, Bp + l * L * K, L, K, prod, K);
          for (int64_t x = 0; x < tile.w; ++x, prod += K) {
            T norm2 = 0;
            for (int64_t j = 0; j < L; ++j) norm2 += wl[x * nc + j] * prod[j];
            const T scale = norm2 > T(0) ? T(1) / std::max(std::sqrt(norm2), T(1e-12)) : T(0);
            T negative = prod[L + Q];
            for (int64_t j = 1; j < a.negatives; ++j) negative = std::max(negative, prod[L + Q + j]);
            T* out = rp + (((tile.camera * H + tile.y0 + y) * W + tile.x0 + x) * levels + l) * Q;
            for (int64_t q = 0; q < Q; ++q)
              out[q] = T(1) / (T(1) + std::exp(T(-10) * scale * (prod[L + q] - negative)));
          }
        }
    });
  });
  return relevancy;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("language_relevancy", &language_relevancy_cpu); }

}  // namespace prismkit::splat
