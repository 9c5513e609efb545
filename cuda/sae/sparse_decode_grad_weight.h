// Launch of prismkit::sparse_decode_grad_weight's CUDA kernels (glue in csrc/sae/sparse_decode_grad_weight_cuda.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// Bytes of scratch memory launch_sparse_decode_grad_weight needs (host-side query, no launch).
size_t sparse_decode_grad_weight_workspace_bytes(int64_t nnz, int64_t F, bool has_offsets);

// grad_weight[f] = sum over entries p with indices[p] == f of values[p] * grad_out[row(p)],
// value_sum[f] = sum of those values[p]; every latent f < F is written (zeros if unused).
// Entries are radix-sorted by latent (stable), so each latent's sum runs in entry order in
// one block: no atomics, bit-deterministic. Requires nnz < 2^31 and F < 2^31.
cudaError_t launch_sparse_decode_grad_weight(DType dtype, const void* grad_out, const void* values,
                                             const int64_t* indices, const int64_t* offsets, int64_t k, int64_t B,
                                             int64_t nnz, int64_t F, int64_t d, void* grad_weight, void* value_sum,
                                             void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace prismkit::cuda
