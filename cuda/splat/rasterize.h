// Launch of prismkit::rasterize's CUDA kernel (torch-free; glue in csrc/splat/rasterize_cuda.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// Limits of the compositing kernels (forward and backward), checked by the glue: one thread per
// pixel of a tile (at most 16 x 16 = 256 threads, the kernels' launch bound), and the channel
// chunks on the grid's y axis (at most 65535 chunks of 16 channels or more).
constexpr int64_t kRasterMaxTileSize = 16;
constexpr int64_t kRasterMaxChannels = 65535 * 16;

// Front-to-back compositing, one block per (camera, tile) and channel chunk, one thread per
// pixel (the rules are the op's docstring, python/prismkit/ops/splat/__init__.py). means2d
// [C, N, 2], conics [C, N, 3], features [C, N, D] (camera_features) or [N, D], opacities [C, N]
// (camera_opacities) or [N], backgrounds [C, D] or nullptr, all of dtype; tile_offsets
// [C, tiles_y, tiles_x] and flatten_ids [M] from tile_bin, already validated. Writes render
// [C, H, W, D], alpha [C, H, W, 1] (dtype) and last_ids [C, H, W]. D is any value up to
// kRasterMaxChannels; accumulates in fp32 (fp64 for double); bit-deterministic.
cudaError_t launch_rasterize(DType dtype, const void* means2d, const void* conics, const void* features,
                             bool camera_features, const void* opacities, bool camera_opacities,
                             const void* backgrounds, const int32_t* tile_offsets, const int32_t* flatten_ids,
                             int64_t C, int64_t N, int64_t D, int64_t M, int64_t width, int64_t height,
                             int64_t tile_size, void* render, void* alpha, int32_t* last_ids, cudaStream_t stream);

}  // namespace prismkit::cuda
