// CUDA glue of prismkit::project_gaussians_backward: checks, allocation, device guard and stream;
// the kernel is in cuda/splat/project_gaussians.cu.
#include "common/cuda_glue.h"
#include "splat/splat_checks.h"
#include "cuda/splat/project_gaussians.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_gaussians_backward_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
    const at::Tensor& Ks, int64_t width, int64_t height, double eps2d, const at::Tensor& radii,
    const at::Tensor& grad_means2d, const at::Tensor& grad_conics, const at::Tensor& grad_depths) {
  const ProjectArgs a = check_project_gaussians_backward_args(means, quats, scales, viewmats, Ks, width, height, eps2d,
                                                              radii, grad_means2d, grad_conics, grad_depths);
  const c10::cuda::CUDAGuard guard(means.device());
  at::Tensor grad_means = at::empty({a.N, 3}, means.options());
  at::Tensor grad_quats = at::empty({a.N, 4}, means.options());
  at::Tensor grad_scales = at::empty({a.N, 3}, means.options());
  const at::Tensor m = means.contiguous(), q = quats.contiguous(), s = scales.contiguous();
  const at::Tensor V = viewmats.contiguous(), K = Ks.contiguous(), r = radii.contiguous();
  const at::Tensor gm = grad_means2d.contiguous(), gc = grad_conics.contiguous(), gd = grad_depths.contiguous();
  C10_CUDA_CHECK(cuda::launch_project_gaussians_backward(
      cuda_dtype(means.scalar_type()), m.const_data_ptr(), q.const_data_ptr(), s.const_data_ptr(), V.const_data_ptr(),
      K.const_data_ptr(), a.C, a.N, width, height, eps2d, r.const_data_ptr<int32_t>(), gm.const_data_ptr(),
      gc.const_data_ptr(), gd.const_data_ptr(), grad_means.data_ptr(), grad_quats.data_ptr(), grad_scales.data_ptr(),
      c10::cuda::getCurrentCUDAStream()));
  return {grad_means, grad_quats, grad_scales};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("project_gaussians_backward", &project_gaussians_backward_cuda); }

}  // namespace prismkit::splat
