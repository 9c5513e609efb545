// Element types the CUDA kernels take, without torch headers: the glue maps at::ScalarType
// to DType (this header is safe for the host compiler); device helpers are in device_math.cuh.
#pragma once

namespace prismkit::cuda {

enum class DType { Float32, Float64, Float16, BFloat16 };

}  // namespace prismkit::cuda
