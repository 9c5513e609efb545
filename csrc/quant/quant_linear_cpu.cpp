// prismkit::quant_linear on the CPU: y = x W_hat^T + bias without a float weight matrix. Output rows
// are split among the threads. Batch 1: each row's dot product is formed as its packed bytes are
// decoded (quant_linear_isa.cpp, per instruction set). Batches below 16: a block's four weight rows
// are dequantized into a per-thread float32 buffer and multiplied with every input row while they
// are in cache. From 16 on: tiles of 64 dequantized rows go through ATen's GEMM. The packed weights
// are read once per call either way. float64 inputs
// run a plain double loop (for gradcheck); float16 / bfloat16 are computed in float32.
#include "common/float32_compute.h"
#include "quant/quant_checks.h"
#include "quant/quant_linear_kernels.h"

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace prismkit::quant {
namespace {

constexpr int64_t kRowBlock = 4;
constexpr int64_t kGemmBatch = 16;  // from this batch on, dequantized tiles go through ATen's GEMM
constexpr int64_t kGemmTile = 64;   // rows per tile: 64 x 4096 float32 = 1 MB

void linear_double(const double* x, int64_t B, const uint8_t* codes, int64_t code_bytes, const uint8_t* ids,
                   int64_t id_bytes, const double* S, const double* Z, const QuantWeightShape& s, int64_t bits,
                   int64_t group_size, double* y) {
  const int64_t per = 8 / bits;
  const uint32_t mask = (1u << bits) - 1;
  at::parallel_for(0, s.N, 4, [&](int64_t begin, int64_t end) {
    std::vector<double> w(s.K);
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t k = 0; k < s.K; ++k) {
        const uint32_t q = (codes[n * code_bytes + k / per] >> ((k % per) * bits)) & mask;
        int64_t c = ids ? (ids[n * id_bytes + (k >> 2)] >> ((k & 3) * 2)) & 3 : 0;
        c = c < s.C ? c : s.C - 1;
        const int64_t at = (n * s.G + k / group_size) * s.C + c;
        w[k] = q * S[at] + Z[at];
      }
      for (int64_t b = 0; b < B; ++b) {
        double acc = 0;
        for (int64_t k = 0; k < s.K; ++k) acc += x[b * s.K + k] * w[k];
        y[b * s.N + n] = acc;
      }
    }
  });
}

}  // namespace

at::Tensor quant_linear_cpu(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& cluster_ids,
                            const at::Tensor& scales, const at::Tensor& zeros, const std::optional<at::Tensor>& bias,
                            int64_t bits, int64_t group_size, int64_t out_features, int64_t in_features) {
  const QuantWeightShape s =
      check_quant_linear_args(x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features, in_features);
  if (is_reduced_float(x))
    return in_float32(&quant_linear_cpu, x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features,
                      in_features);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = s.N;
  const int64_t B = x.numel() / s.K;
  const at::Tensor x2 = x.reshape({B, s.K}).contiguous();
  const at::Tensor q = codes.contiguous(), ids = cluster_ids.contiguous();
  const uint8_t* qp = q.const_data_ptr<uint8_t>();
  const uint8_t* ip = ids.numel() > 0 ? ids.const_data_ptr<uint8_t>() : nullptr;
  const int64_t code_bytes = q.size(1), id_bytes = ip ? ids.size(1) : 0;
  at::Tensor y = at::empty({B, s.N}, x.options());
  if (B > 0) {
    if (x.scalar_type() == at::kDouble) {
      const at::Tensor S = scales.to(at::kDouble).contiguous(), Z = zeros.to(at::kDouble).contiguous();
      linear_double(x2.const_data_ptr<double>(), B, qp, code_bytes, ip, id_bytes, S.const_data_ptr<double>(),
                    Z.const_data_ptr<double>(), s, bits, group_size, y.data_ptr<double>());
    } else {
      const at::Tensor S = scales.contiguous(), Z = zeros.contiguous();
      const QuantLinearKernels& kernels = quant_linear_kernels();
      const float* xp = x2.const_data_ptr<float>();
      float* yp = y.data_ptr<float>();
      const int64_t meta = s.G * s.C;  // scales per row
      const size_t meta_bytes = static_cast<size_t>(meta) * S.element_size();
      const auto* sp = static_cast<const uint8_t*>(S.const_data_ptr());
      const auto* zp = static_cast<const uint8_t*>(Z.const_data_ptr());
      // the kernels read float16 / bfloat16 scales as they go (no float32 copy of them per call)
      const MetaType mt = S.scalar_type() == at::kFloat  ? MetaType::Float32
                          : S.scalar_type() == at::kHalf ? MetaType::Float16
                                                         : MetaType::BFloat16;
      // rows n0 .. n0 + R - 1 dequantized into dst [R, K] (float32)
      const auto dequantize_rows = [&](int64_t n0, int64_t R, float* dst) {
        for (int64_t r = 0; r < R; ++r) {
          const int64_t n = n0 + r;
          kernels.dequantize_row(qp + n * code_bytes, ip ? ip + n * id_bytes : nullptr, sp + n * meta_bytes,
                                 zp + n * meta_bytes, mt, s.K, static_cast<int>(bits), group_size,
                                 static_cast<int>(s.C), dst + r * s.K);
        }
      };
      if (B == 1) {  // one pass over the packed bytes, each row's dot product formed as it is decoded
        at::parallel_for(0, s.N, 16, [&](int64_t begin, int64_t end) {
          for (int64_t n = begin; n < end; ++n)
            yp[n] = kernels.dot_row(qp + n * code_bytes, ip ? ip + n * id_bytes : nullptr, sp + n * meta_bytes,
                                    zp + n * meta_bytes, mt, s.K, static_cast<int>(bits), group_size,
                                    static_cast<int>(s.C), xp);
        });
      } else if (B >= kGemmBatch) {
        // Larger batches: dequantize a tile of rows into a per-thread float32 block that stays in
        // cache, and let ATen's GEMM multiply it with the batch (the product is then compute bound,
        // and the packed bytes are still read once per call).
        const int64_t tiles = (s.N + kGemmTile - 1) / kGemmTile;
        at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
          // Worker threads do not inherit the caller's dispatch state: keep autograd out of the
          // out= GEMM (x may require grad), and write y through its pointer (an in-place op on y
          // here would be refused for a tensor made under inference mode).
          at::AutoDispatchBelowADInplaceOrView below_autograd;
          const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat);
          at::Tensor w = at::empty({kGemmTile, s.K}, f32);
          at::Tensor out = at::empty({B, kGemmTile}, f32);
          for (int64_t t = begin; t < end; ++t) {
            const int64_t n0 = t * kGemmTile, R = std::min(kGemmTile, s.N - n0);
            dequantize_rows(n0, R, w.data_ptr<float>());
            at::Tensor o = out.narrow(1, 0, R);
            at::mm_out(o, x2.detach(), w.narrow(0, 0, R).t());
            const float* op = out.const_data_ptr<float>();
            for (int64_t b = 0; b < B; ++b)
              for (int64_t r = 0; r < R; ++r) yp[b * s.N + n0 + r] = op[b * kGemmTile + r];
          }
        });
      } else {
        const int64_t blocks = (s.N + kRowBlock - 1) / kRowBlock;
        at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
          std::vector<float> w(kRowBlock * s.K);
          for (int64_t blk = begin; blk < end; ++blk) {
            const int64_t n0 = blk * kRowBlock, R = std::min(kRowBlock, s.N - n0);
            dequantize_rows(n0, R, w.data());
            kernels.dot_rows(xp, s.K, B, w.data(), R, s.K, yp + n0, s.N);
          }
        });
      }
    }
    if (bias.has_value()) y.add_(*bias);
  }
  return y.view(out_shape);
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("quant_linear", &quant_linear_cpu); }

}  // namespace prismkit::quant
