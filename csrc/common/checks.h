// The check primitives every op's contract is written with (csrc/<core>/<core>_checks.cpp); the
// Python side (python/prismkit/ops/_checks.py) has the same primitives with the same wording, and
// tests/test_op_contracts.py holds the two to it. Each failure message names the op, the argument,
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
void check_dtype(const char* op, const char* name, const at::Tensor& t, std::initializer_list<c10::ScalarType> allowed);

// Floating dtypes an op takes on t's device: float32, float64, float16 and bfloat16 on the CPU
// (the last two computed in float32, common/float32_compute.h); float32, float16 and bfloat16 on
// CUDA, and float64 there too with cuda_float64 (ops whose CUDA kernel is CUDA C++ with a float64
// instantiation; the Triton kernels have none).
void check_float_dtype(const char* op, const char* name, const at::Tensor& t, bool cuda_float64);

// 'name' must have the same dtype and device as 'ref_name'.
void check_same_dtype(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                      const at::Tensor& ref);
void check_same_device(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                       const at::Tensor& ref);

// t.size(dim) must equal expected; what says where the expected size comes from ("d of x").
void check_size(const char* op, const char* name, const at::Tensor& t, int64_t dim, int64_t expected, const char* what);

}  // namespace prismkit
