// Launches of the sparse coefficient kernels (torch-free; glue in csrc/splat/*sparse*_cuda.cpp and
// language_relevancy_cuda.cpp). float32 or float64 (the glue computes float16 and bfloat16 in
// float32); inputs already validated (csrc/splat/sparse_checks.h), indices int32 in [0, num_coefs).
//
// One block per (camera, tile), one thread per pixel, as rasterize's kernels (tile_size <= 16).
// Each pixel's weight map of num_coefs entries is accumulated in shared memory, channel-major
// ([num_coefs][threads + 1]: the block's threads add to the same channel at once, so consecutive
// threads hit consecutive banks), when it fits the device's per-block limit (192 float32 channels
// at 16 x 16 pixels take 197 KB of Hopper's 227 KB); otherwise rasterize_sparse_coef accumulates in
// the output itself (each thread owns its pixel's row, no atomics) and the glue of the fused ops
// falls back to the weight map and ATen products.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

struct SparseRaster {
  const void *means2d, *conics, *opacities, *weights;  // [C, N, 2], [C, N, 3], [N] or [C, N], [N, P]
  bool camera_opacities;
  const int32_t *indices, *tile_offsets, *flatten_ids;  // [N, P], [C, tiles_y, tiles_x], [M]
  int64_t C, N, P, M, num_coefs, width, height, tile_size;
};

// The dynamic shared memory of a fused block (staging and the [num_coefs][threads + 1] weights),
// and whether the device takes it (sets the kernels' limit when it does).
size_t sparse_shared_bytes(DType dtype, int64_t num_coefs, int64_t tile_size);
bool sparse_fits_shared(DType dtype, int64_t num_coefs, int64_t tile_size);

// weight_map [C, H, W, num_coefs] (zeroed by the caller when !sparse_fits_shared: the kernel then
// adds into it), alpha [C, H, W, 1], last_ids [C, H, W]. Bit-deterministic.
cudaError_t launch_rasterize_sparse_coef(DType dtype, const SparseRaster& r, void* weight_map, void* alpha,
                                         int32_t* last_ids, cudaStream_t stream);

// Gradients, added into zeroed buffers: grad_means2d [C, N, 2], grad_conics [C, N, 3],
// grad_opacities (as opacities), grad_weights [N, P].
cudaError_t launch_rasterize_sparse_coef_backward(DType dtype, const SparseRaster& r, const void* alpha,
                                                  const int32_t* last_ids, const void* grad_weight_map,
                                                  const void* grad_alpha, void* grad_means2d, void* grad_conics,
                                                  void* grad_opacities, void* grad_weights, cudaStream_t stream);

// features [C, H, W, levels, D] from codebook [levels, L, D] (levels * L = num_coefs); with
// normalize, gram [levels, L, L] = codebook codebook^T gives each pixel's |F|^2 = w^T gram w.
// Needs sparse_fits_shared.
cudaError_t launch_rasterize_sparse_features(DType dtype, const SparseRaster& r, const void* codebook, const void* gram,
                                             int64_t levels, int64_t L, int64_t D, bool normalize, void* features,
                                             cudaStream_t stream);

// relevancy [C, H, W, levels, Q] from products [levels, L, L + Q + M] = codebook [S S^T | S q^T |
// S c^T]. Needs sparse_fits_shared.
cudaError_t launch_language_relevancy(DType dtype, const SparseRaster& r, const void* products, int64_t levels,
                                      int64_t L, int64_t Q, int64_t negatives, void* relevancy, cudaStream_t stream);

}  // namespace prismkit::cuda
