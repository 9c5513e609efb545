// Device-side helpers shared by the .cu files: accumulation types, conversions, dtype
// dispatch and 16-byte vector loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// Accumulation type: fp32 for every type but double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_acc(typename Acc<T>::type v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) {
  return __float2half(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

// Calls f(T{}) with T the C++ type of dtype.
template <typename F>
auto dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float64: return f(double{});
    case DType::Float16: return f(__half{});
    case DType::BFloat16: return f(__nv_bfloat16{});
    default: return f(float{});
  }
}

// Loads and stores of VEC consecutive elements as one 16-byte (or smaller) access.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

// Elements per 16-byte access when every row start is aligned to it, else 1.
template <typename T>
inline int vector_width(long long d, const void* a, const void* b) {
  constexpr int w = 16 / sizeof(T);
  const bool ok = d % w == 0 && reinterpret_cast<unsigned long long>(a) % 16 == 0 &&
                  (b == nullptr || reinterpret_cast<unsigned long long>(b) % 16 == 0);
  return ok ? w : 1;
}

}  // namespace prismkit::cuda
