// CUDA glue of prismkit::kmeans1d: checks, the rows sorted, centered and summed into float64 prefix
// sums with ATen, then the dynamic program's kernels (cuda/quant/kmeans1d.cu), device guard and
// stream. Reads the data once for the finiteness check (one device-to-host transfer).
#include "common/cuda_glue.h"
#include "quant/quant_checks.h"
#include "cuda/quant/kmeans1d.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

namespace prismkit::quant {

std::tuple<at::Tensor, at::Tensor> kmeans1d_cuda(const at::Tensor& values, int64_t k) {
  const RowsShape shape = check_kmeans1d_args(values, k);
  check_kmeans1d_values(values);
  const c10::cuda::CUDAGuard guard(values.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t R = shape.R, n = shape.n;
  const at::TensorOptions f64 = values.options().dtype(at::kDouble);
  at::Tensor centers = at::empty({R, k}, f64), boundaries = at::empty({R, k - 1}, f64);
  if (R > 0) {
    const at::Tensor sorted = std::get<0>(at::sort(values.to(at::kDouble), 1));
    const at::Tensor mean = sorted.mean(1).contiguous();
    const at::Tensor x = sorted.sub(mean.unsqueeze(1));
    const at::Tensor zero = at::zeros({R, 1}, f64);
    const at::Tensor P1 = at::cat({zero, at::cumsum(x, 1)}, 1).contiguous();
    const at::Tensor P2 = at::cat({zero, at::cumsum(x.mul(x), 1)}, 1).contiguous();
    std::vector<at::Tensor> layers(k);  // layers[m] = D_m, m in [2, k-1]
    std::vector<int64_t> layer_ptrs(k, 0);
    at::Tensor split_at = at::empty({R, n + 1}, values.options().dtype(at::kLong));
    for (int64_t m = 2; m < k; ++m) {
      layers[m] = at::empty({R, n + 1}, f64);
      const double* prev = m - 1 >= 2 ? layers[m - 1].const_data_ptr<double>() : nullptr;
      C10_CUDA_CHECK(cuda::launch_kmeans1d_layer(P1.const_data_ptr<double>(), P2.const_data_ptr<double>(), prev, R, n,
                                                 m, layers[m].data_ptr<double>(), split_at.data_ptr<int64_t>(),
                                                 stream));
      layer_ptrs[m] = reinterpret_cast<int64_t>(layers[m].const_data_ptr<double>());
    }
    // the layers' device pointers, as a device array for the finishing kernel
    const at::Tensor pointers = at::tensor(layer_ptrs, at::kLong).to(values.device(), /*non_blocking=*/false);
    at::Tensor splits = at::empty({R, k + 1}, values.options().dtype(at::kLong));
    C10_CUDA_CHECK(cuda::launch_kmeans1d_finish(
        P1.const_data_ptr<double>(), P2.const_data_ptr<double>(),
        reinterpret_cast<const double* const*>(pointers.const_data_ptr<int64_t>()), mean.const_data_ptr<double>(), R, n,
        k, splits.data_ptr<int64_t>(), centers.data_ptr<double>(), boundaries.data_ptr<double>(), stream));
  }
  return {centers.to(values.scalar_type()), boundaries.to(values.scalar_type())};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("kmeans1d", &kmeans1d_cuda); }

}  // namespace prismkit::quant
