// prismkit::pitome_energy on the CPU: per image, the metric rows normalized into float32 buffers,
// then the cosine similarities 64 rows at a time (similarity_kernels' dots) reduced to each row's
// energy (energy_sum): never a T x T matrix. Images in parallel. Computed in float32 for every
// input dtype; the energy comes back in the metric's dtype.
#include "merge/merge_checks.h"
#include "merge/plan_buffers.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

namespace prismkit::merge {
namespace {

at::Tensor pitome_energy_cpu(const at::Tensor& metric, double margin, double alpha, const std::string& kernel) {
  check_pitome_energy_args(metric, margin, alpha, kernel);
  const auto code = static_cast<EnergyKernel>(check_energy_kernel("pitome_energy", kernel, margin));
  const at::Tensor m = metric.to(at::kFloat).contiguous();
  const int64_t B = m.size(0), T = m.size(1), d = m.size(2), ldb = padded_columns(T);
  at::Tensor energy = at::empty({B, T}, m.options());
  const float* src = m.const_data_ptr<float>();
  float* out = energy.mutable_data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> rows(T * d), rowsT(d * ldb), block(kEnergyRowBlock * ldb);
    for (int64_t b = b0; b < b1; ++b) {
      normalize_rows(src + b * T * d, T, d, rows.data());
      transpose_rows(rows.data(), nullptr, T, d, rowsT.data(), ldb);
      image_energy(rows.data(), rowsT.data(), T, d, code, static_cast<float>(margin), static_cast<float>(alpha),
                   out + b * T, block.data());
    }
  });
  return energy.to(metric.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("pitome_energy", &pitome_energy_cpu); }

}  // namespace prismkit::merge
