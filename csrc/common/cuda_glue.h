// What every CUDA glue file needs: the device guard and current stream, error checks, and
// the mapping from torch dtypes to the torch-free kernels' DType.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/common/dtype.h"

namespace prismkit {

inline cuda::DType cuda_dtype(c10::ScalarType t) {
  switch (t) {
    case at::kDouble: return cuda::DType::Float64;
    case at::kHalf: return cuda::DType::Float16;
    case at::kBFloat16: return cuda::DType::BFloat16;
    default: return cuda::DType::Float32;
  }
}

// The decode kernels put column chunks of 128 threads on the grid's y axis (at most 65535).
inline void check_cuda_feature_size(const char* op, int64_t d) {
  constexpr int64_t kMax = 65535 * 128;
  TORCH_CHECK_VALUE(d <= kMax, "prismkit::", op, ": the CUDA kernel takes a feature size d of at most ", kMax, ", got ",
                    d);
}

inline const int64_t* optional_long_ptr(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<int64_t>() : nullptr;
}

}  // namespace prismkit
