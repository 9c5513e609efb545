// The quant ops' argument contract on the C++ side, shared by their CPU kernels and CUDA glue.
// The Python side (fake implementations) is python/prismkit/ops/quant/checks.py: same checks, same
// order, same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace prismkit::quant {

struct RowsShape {
  int64_t R, n;
};

// values [R, n] floating (float64 on CUDA too: the kernel is CUDA C++), 1 <= k <= n.
RowsShape check_kmeans1d_args(const at::Tensor& values, int64_t k);

// Every value finite (reads the data: one device-to-host transfer on CUDA).
void check_kmeans1d_values(const at::Tensor& values);

// bits is 2, 4 or 8 (the codes of the packed format; the cluster ids are packed as 2-bit values).
void check_bits(const char* op, int64_t bits);

// Bytes of one packed row of n b-bit values.
inline int64_t packed_row_bytes(int64_t n, int64_t bits) { return (n * bits + 7) / 8; }

// values [N, n] uint8, bits in {2, 4, 8}; every value < 2^bits (reads the data).
void check_quant_pack_args(const at::Tensor& values, int64_t bits);

// packed [N, ceil(n * bits / 8)] uint8, bits in {2, 4, 8}, n >= 0.
void check_quant_unpack_args(const at::Tensor& packed, int64_t bits, int64_t n);

struct QuantWeightShape {
  int64_t N, K, G, C;  // out_features, in_features, groups per row, clusters (1 without ids)
};

// The packed weight: codes [N, ceil(K bits / 8)] uint8; cluster_ids empty (one cluster) or
// [N, ceil(K / 4)] uint8; scales and zeros [N, K / group_size, C] float16, bfloat16 or float32
// (one dtype), C = 1 without ids, 1 to 4 with; group_size divides K; all on one device.
QuantWeightShape check_quant_weight_args(const char* op, const at::Tensor& codes, const at::Tensor& cluster_ids,
                                         const at::Tensor& scales, const at::Tensor& zeros, int64_t bits,
                                         int64_t group_size, int64_t out_features, int64_t in_features);

// The weight's checks, then x [..., K] floating on the weight's device, bias [N] of x's dtype.
// Returns the weight's shape.
QuantWeightShape check_quant_linear_args(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& cluster_ids,
                                         const at::Tensor& scales, const at::Tensor& zeros,
                                         const std::optional<at::Tensor>& bias, int64_t bits, int64_t group_size,
                                         int64_t out_features, int64_t in_features);

}  // namespace prismkit::quant
