// Argument checks shared by every op. Each failure message names the op, the argument,
// what was expected and what came, e.g.
//   prismkit::topk_encode: 'x' must be a 2-D tensor [B, d], got a 3-D float32 tensor of shape [2, 3, 4] on cpu
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <string>

namespace prismkit {

// "a 3-D float32 tensor of shape [2, 3, 4] on cpu"
std::string describe(const at::Tensor& t);

// 'name' must be a defined tensor of the given rank; layout is the shape in words ("[B, d]").
void check_rank(const char* op, const char* name, const at::Tensor& t, int64_t rank, const char* layout);

// 'name' must have one of the listed dtypes.
void check_dtype(const char* op, const char* name, const at::Tensor& t,
                 std::initializer_list<c10::ScalarType> allowed);

// Floating dtypes a kernel supports on t's device: float32 and float64 on CPU; on CUDA
// also float16 and bfloat16.
void check_float_dtype(const char* op, const char* name, const at::Tensor& t);

// 'name' must have the same dtype and device as 'ref_name'.
void check_same_dtype(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                      const at::Tensor& ref);
void check_same_device(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                       const at::Tensor& ref);

// t.size(dim) must equal expected; what says where the expected size comes from ("d of x").
void check_size(const char* op, const char* name, const at::Tensor& t, int64_t dim, int64_t expected,
                const char* what);

}  // namespace prismkit
