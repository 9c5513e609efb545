// prismkit::quant_unpack on the CPU: the inverse of quant_pack (quant_pack_cpu.cpp gives the
// layout): value k of a row is bits [(k % (8 / b)) * b, ...) of its byte k / (8 / b).
#include "quant/quant_checks.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>

namespace prismkit::quant {

at::Tensor quant_unpack_cpu(const at::Tensor& packed, int64_t bits, int64_t n) {
  check_quant_unpack_args(packed, bits, n);
  const int64_t N = packed.size(0), row_bytes = packed.size(1);
  const at::Tensor p = packed.contiguous();
  at::Tensor values = at::empty({N, n}, packed.options());
  const uint8_t* src = p.const_data_ptr<uint8_t>();
  uint8_t* dst = values.data_ptr<uint8_t>();
  const int64_t per_byte = 8 / bits;
  const uint32_t mask = (1u << bits) - 1;
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t k = 0; k < n; ++k)
        dst[r * n + k] = static_cast<uint8_t>((src[r * row_bytes + k / per_byte] >> ((k % per_byte) * bits)) & mask);
  });
  return values;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("quant_unpack", &quant_unpack_cpu); }

}  // namespace prismkit::quant
