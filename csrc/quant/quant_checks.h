// The quant ops' argument contract on the C++ side, shared by their CPU kernels and CUDA glue.
// The Python side (fake implementations) is python/prismkit/ops/quant/checks.py: same checks, same
// order, same messages.
#pragma once

#include <ATen/core/Tensor.h>

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

}  // namespace prismkit::quant
