// prismkit::project_gaussians on the CPU: threads split the (camera, Gaussian) pairs; each pair
// is the scalar EWA projection of projection.h.
#include "common/float32_compute.h"
#include "splat/projection.h"
#include "splat/splat_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_gaussians_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
    const at::Tensor& Ks, int64_t width, int64_t height, double near_plane, double far_plane, double eps2d,
    double radius_clip) {
  const ProjectArgs a = check_project_gaussians_args("project_gaussians", means, quats, scales, viewmats, Ks, width,
                                                     height, near_plane, far_plane, eps2d, radius_clip);
  if (is_reduced_float(means))
    return in_float32(&project_gaussians_cpu, means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane,
                      eps2d, radius_clip);
  at::Tensor means2d = at::empty({a.C, a.N, 2}, means.options());
  at::Tensor conics = at::empty({a.C, a.N, 3}, means.options());
  at::Tensor depths = at::empty({a.C, a.N}, means.options());
  at::Tensor radii = at::empty({a.C, a.N}, means.options().dtype(at::kInt));
  const at::Tensor m = means.contiguous(), q = quats.contiguous(), s = scales.contiguous();
  const at::Tensor V = viewmats.contiguous(), K = Ks.contiguous();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_gaussians_cpu", [&] {
    using T = scalar_t;
    const T *mp = m.const_data_ptr<T>(), *qp = q.const_data_ptr<T>(), *sp = s.const_data_ptr<T>();
    const T *Vp = V.const_data_ptr<T>(), *Kp = K.const_data_ptr<T>();
    T *m2 = means2d.data_ptr<T>(), *co = conics.data_ptr<T>(), *de = depths.data_ptr<T>();
    int32_t* ra = radii.data_ptr<int32_t>();
    for (int64_t c = 0; c < a.C; ++c) {
      const Camera<T> cam = read_camera<T>(Vp + c * 16, Kp + c * 9, width, height);
      at::parallel_for(0, a.N, 1024, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
          const Projected<T> g = project_one(mp + n * 3, qp + n * 4, sp + n * 3, cam, width, height, T(near_plane),
                                             T(far_plane), T(eps2d), T(radius_clip));
          const int64_t i = c * a.N + n;
          const bool kept = g.radius > 0;
          m2[i * 2] = kept ? g.mean2d[0] : T(0);
          m2[i * 2 + 1] = kept ? g.mean2d[1] : T(0);
          for (int k = 0; k < 3; ++k) co[i * 3 + k] = kept ? g.conic[k] : T(0);
          de[i] = kept ? g.p[2] : T(0);
          ra[i] = g.radius;
        }
      });
    }
  });
  return {means2d, conics, depths, radii};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("project_gaussians", &project_gaussians_cpu); }

}  // namespace prismkit::splat
