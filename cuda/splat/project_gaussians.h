// Launch of prismkit::project_gaussians' CUDA kernels, forward and backward (torch-free; glue in
// csrc/splat/project_gaussians_cuda.cpp and csrc/splat/project_gaussians_backward_cuda.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// EWA projection of N Gaussians into C cameras, one thread per (camera, Gaussian); the math and
// the culling rules are the op's docstring (python/prismkit/ops/splat/__init__.py). means [N, 3],
// quats [N, 4] (w, x, y, z), scales [N, 3], viewmats [C, 4, 4], Ks [C, 3, 3], all of dtype.
// Writes means2d [C, N, 2], conics [C, N, 3], depths [C, N] (dtype) and radii [C, N]; culled
// pairs get radius 0 and zeros. Computes in fp32 (fp64 for double).
cudaError_t launch_project_gaussians(DType dtype, const void* means, const void* quats, const void* scales,
                                     const void* viewmats, const void* Ks, int64_t C, int64_t N, int64_t width,
                                     int64_t height, double near_plane, double far_plane, double eps2d,
                                     double radius_clip, void* means2d, void* conics, void* depths, int32_t* radii,
                                     cudaStream_t stream);

// The backward, one thread per Gaussian summing its cameras in order (no atomics, deterministic);
// pairs with radii == 0 contribute nothing. grad_means2d [C, N, 2], grad_conics [C, N, 3],
// grad_depths [C, N] in; grad_means [N, 3], grad_quats [N, 4], grad_scales [N, 3] out (dtype).
cudaError_t launch_project_gaussians_backward(DType dtype, const void* means, const void* quats, const void* scales,
                                              const void* viewmats, const void* Ks, int64_t C, int64_t N, int64_t width,
                                              int64_t height, double eps2d, const int32_t* radii,
                                              const void* grad_means2d, const void* grad_conics,
                                              const void* grad_depths, void* grad_means, void* grad_quats,
                                              void* grad_scales, cudaStream_t stream);

}  // namespace prismkit::cuda
