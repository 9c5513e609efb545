// prismkit::quant_pack on the CPU: b-bit values (b = 2, 4, 8) packed along each row, 8 / b per
// byte, the first value in the lowest bits; a row's last byte is padded with zeros. Rows in
// parallel. The inverse is quant_unpack_cpu.cpp.
#include "quant/quant_checks.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>

namespace prismkit::quant {

at::Tensor quant_pack_cpu(const at::Tensor& values, int64_t bits) {
  check_quant_pack_args(values, bits);
  const int64_t N = values.size(0), n = values.size(1), row_bytes = packed_row_bytes(n, bits);
  const at::Tensor v = values.contiguous();
  at::Tensor packed = at::empty({N, row_bytes}, values.options());
  const uint8_t* src = v.const_data_ptr<uint8_t>();
  uint8_t* dst = packed.data_ptr<uint8_t>();
  const int64_t per_byte = 8 / bits;
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* in = src + r * n;
      uint8_t* out = dst + r * row_bytes;
      for (int64_t byte = 0; byte < row_bytes; ++byte) {
        uint32_t b = 0;
        for (int64_t j = 0; j < per_byte; ++j) {
          const int64_t k = byte * per_byte + j;
          if (k < n) b |= static_cast<uint32_t>(in[k]) << (j * bits);
        }
        out[byte] = static_cast<uint8_t>(b);
      }
    }
  });
  return packed;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("quant_pack", &quant_pack_cpu); }

}  // namespace prismkit::quant
