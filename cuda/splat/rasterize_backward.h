// Launch of prismkit::rasterize_backward's CUDA kernel (torch-free; glue in
// csrc/splat/rasterize_backward_cuda.cpp). Limits: rasterize.h's kRasterMaxTileSize and
// kRasterMaxChannels.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// gsplat's backward of launch_rasterize (same inputs, same layouts): each pixel walks its list back
// to front from its saved alpha and last_ids, recovering the transmittance. alpha [C, H, W, 1],
// grad_render [C, H, W, D] and grad_alpha [C, H, W, 1] are of dtype. The gradients are added with
// atomics into caller-zeroed buffers of the accumulation type (fp32, fp64 for double), in the
// inputs' layouts: grad_means2d [C, N, 2], grad_conics [C, N, 3], grad_features (as features),
// grad_opacities (as opacities), and grad_backgrounds [C, D] (sum over pixels of T_final dL/dC;
// nullptr skips it). The order of the atomics varies from run to run, so the sums do too, by
// rounding.
cudaError_t launch_rasterize_backward(DType dtype, const void* means2d, const void* conics, const void* features,
                                      bool camera_features, const void* opacities, bool camera_opacities,
                                      const void* backgrounds, const int32_t* tile_offsets, const int32_t* flatten_ids,
                                      int64_t C, int64_t N, int64_t D, int64_t M, int64_t width, int64_t height,
                                      int64_t tile_size, const void* alpha, const int32_t* last_ids,
                                      const void* grad_render, const void* grad_alpha, void* grad_means2d,
                                      void* grad_conics, void* grad_features, void* grad_opacities,
                                      void* grad_backgrounds, cudaStream_t stream);

}  // namespace prismkit::cuda
