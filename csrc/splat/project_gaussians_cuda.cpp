// CUDA glue of prismkit::project_gaussians: checks, allocation, device guard and stream; the
// kernel is cuda/splat/project_gaussians.cu.
#include "common/cuda_glue.h"
#include "splat/splat_checks.h"
#include "cuda/splat/project_gaussians.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_gaussians_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
    const at::Tensor& Ks, int64_t width, int64_t height, double near_plane, double far_plane, double eps2d,
    double radius_clip) {
  const ProjectArgs a = check_project_gaussians_args("project_gaussians", means, quats, scales, viewmats, Ks, width,
                                                     height, near_plane, far_plane, eps2d, radius_clip);
  const c10::cuda::CUDAGuard guard(means.device());
  at::Tensor means2d = at::empty({a.C, a.N, 2}, means.options());
  at::Tensor conics = at::empty({a.C, a.N, 3}, means.options());
  at::Tensor depths = at::empty({a.C, a.N}, means.options());
  at::Tensor radii = at::empty({a.C, a.N}, means.options().dtype(at::kInt));
  const at::Tensor m = means.contiguous(), q = quats.contiguous(), s = scales.contiguous();
  const at::Tensor V = viewmats.contiguous(), K = Ks.contiguous();
  C10_CUDA_CHECK(cuda::launch_project_gaussians(
      cuda_dtype(means.scalar_type()), m.const_data_ptr(), q.const_data_ptr(), s.const_data_ptr(), V.const_data_ptr(),
      K.const_data_ptr(), a.C, a.N, width, height, near_plane, far_plane, eps2d, radius_clip, means2d.data_ptr(),
      conics.data_ptr(), depths.data_ptr(), radii.data_ptr<int32_t>(), c10::cuda::getCurrentCUDAStream()));
  return {means2d, conics, depths, radii};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("project_gaussians", &project_gaussians_cuda); }

}  // namespace prismkit::splat
