// Launch of prismkit::sparse_decode_grad_values's CUDA kernel (glue in csrc/sae/sparse_decode_grad_values_cuda.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// grad_values[p] = dot(grad_out[row(p)], W[indices[p]]) for every entry p of the B rows
// (row layout as in launch_sparse_decode). grad_out [B, d], W [F, d], grad_values [nnz].
cudaError_t launch_sparse_decode_grad_values(DType dtype, const void* grad_out, const int64_t* indices,
                                             const int64_t* offsets, int64_t k, const void* W, void* grad_values,
                                             int64_t B, int64_t d, cudaStream_t stream);

}  // namespace prismkit::cuda
