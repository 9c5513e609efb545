// prismkit::quant_dequantize on the CPU: the packed weight back to float32, W_hat[n, k] =
// q * s + z with (s, z) of the weight's group and cluster, the product rounded to float32 and then
// the sum (the product is formed in float64, where it is exact, so no fused multiply-add can change
// the rounding): bit-identical to ``codes.float() * s + z`` in PyTorch. Rows in parallel.
#include "quant/quant_checks.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>

namespace prismkit::quant {

at::Tensor quant_dequantize_cpu(const at::Tensor& codes, const at::Tensor& cluster_ids, const at::Tensor& scales,
                                const at::Tensor& zeros, int64_t bits, int64_t group_size, int64_t out_features,
                                int64_t in_features) {
  const QuantWeightShape s = check_quant_weight_args("quant_dequantize", codes, cluster_ids, scales, zeros, bits,
                                                     group_size, out_features, in_features);
  const at::Tensor q = codes.contiguous(), ids = cluster_ids.contiguous();
  const at::Tensor S = scales.to(at::kFloat).contiguous(), Z = zeros.to(at::kFloat).contiguous();
  at::Tensor w = at::empty({s.N, s.K}, scales.options().dtype(at::kFloat));
  const int64_t code_bytes = q.size(1), per = 8 / bits, id_bytes = ids.numel() > 0 ? ids.size(1) : 0;
  const uint32_t mask = (1u << bits) - 1;
  const uint8_t* qp = q.const_data_ptr<uint8_t>();
  const uint8_t* ip = id_bytes ? ids.const_data_ptr<uint8_t>() : nullptr;
  const float* sp = S.const_data_ptr<float>();
  const float* zp = Z.const_data_ptr<float>();
  float* wp = w.data_ptr<float>();
  at::parallel_for(0, s.N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t k = 0; k < s.K; ++k) {
        const uint32_t code = (qp[n * code_bytes + k / per] >> ((k % per) * bits)) & mask;
        int64_t c = ip ? (ip[n * id_bytes + (k >> 2)] >> ((k & 3) * 2)) & 3 : 0;
        c = c < s.C ? c : s.C - 1;  // ids at or above the cluster count read as the last cluster
        const int64_t at = (n * s.G + k / group_size) * s.C + c;
        const float product = static_cast<float>(static_cast<double>(code) * static_cast<double>(sp[at]));
        wp[n * s.K + k] = product + zp[at];
      }
    }
  });
  return w;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("quant_dequantize", &quant_dequantize_cpu); }

}  // namespace prismkit::quant
