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

}  // namespace prismkit::quant
