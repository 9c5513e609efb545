// Launch of prismkit::sparse_decode's CUDA kernel (torch-free; glue in csrc/sae/sparse_decode_cuda.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// out[r] = bias + sum over row r's entries p of values[p] * W[indices[p]], for r < B.
// Row r's entries are [offsets[r], offsets[r+1]) or, with offsets == nullptr, [r*k, (r+1)*k).
// W is [F, d] row-major; bias [d] or nullptr; out [B, d]. Accumulates in fp32 (fp64 for double).
cudaError_t launch_sparse_decode(DType dtype, const void* values, const int64_t* indices, const int64_t* offsets,
                                 int64_t k, const void* W, const void* bias, void* out, int64_t B, int64_t d,
                                 cudaStream_t stream);

}  // namespace prismkit::cuda
