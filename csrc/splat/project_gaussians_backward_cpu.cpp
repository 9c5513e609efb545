// prismkit::project_gaussians_backward on the CPU: threads split the Gaussians; each Gaussian
// recomputes its projection into every camera and sums the cameras' gradients in camera order
// (projection.h's camera_backward), then goes from the world covariance to the quaternion and
// scales once (covariance_backward): bit-deterministic, no atomics.
#include "common/float32_compute.h"
#include "splat/projection.h"
#include "splat/splat_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_gaussians_backward_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
    const at::Tensor& Ks, int64_t width, int64_t height, double eps2d, const at::Tensor& radii,
    const at::Tensor& grad_means2d, const at::Tensor& grad_conics, const at::Tensor& grad_depths) {
  const ProjectArgs a = check_project_gaussians_backward_args(means, quats, scales, viewmats, Ks, width, height, eps2d,
                                                              radii, grad_means2d, grad_conics, grad_depths);
  if (is_reduced_float(means))
    return in_float32(&project_gaussians_backward_cpu, means, quats, scales, viewmats, Ks, width, height, eps2d, radii,
                      grad_means2d, grad_conics, grad_depths);
  at::Tensor grad_means = at::empty({a.N, 3}, means.options());
  at::Tensor grad_quats = at::empty({a.N, 4}, means.options());
  at::Tensor grad_scales = at::empty({a.N, 3}, means.options());
  const at::Tensor m = means.contiguous(), q = quats.contiguous(), s = scales.contiguous();
  const at::Tensor V = viewmats.contiguous(), K = Ks.contiguous(), r = radii.contiguous();
  const at::Tensor gm = grad_means2d.contiguous(), gc = grad_conics.contiguous(), gd = grad_depths.contiguous();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_gaussians_backward_cpu", [&] {
    using T = scalar_t;
    const T *mp = m.const_data_ptr<T>(), *qp = q.const_data_ptr<T>(), *sp = s.const_data_ptr<T>();
    const T *gmp = gm.const_data_ptr<T>(), *gcp = gc.const_data_ptr<T>(), *gdp = gd.const_data_ptr<T>();
    const int32_t* rp = r.const_data_ptr<int32_t>();
    std::vector<Camera<T>> cams;
    for (int64_t c = 0; c < a.C; ++c)
      cams.push_back(read_camera<T>(V.const_data_ptr<T>() + c * 16, K.const_data_ptr<T>() + c * 9, width, height));
    T *dmp = grad_means.data_ptr<T>(), *dqp = grad_quats.data_ptr<T>(), *dsp = grad_scales.data_ptr<T>();
    at::parallel_for(0, a.N, 256, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        T dmean[3] = {0, 0, 0}, dSigma[3][3] = {};
        bool any = false;
        Projected<T> g{};
        for (int64_t c = 0; c < a.C; ++c) {
          const int64_t i = c * a.N + n;
          if (rp[i] <= 0) continue;
          // radius_clip and the frustum only decide culling, already recorded in radii.
          g = project_one(mp + n * 3, qp + n * 4, sp + n * 3, cams[c], width, height, T(0), T(INFINITY), T(eps2d),
                          T(-1));
          if (!(g.det > 0)) continue;  // radii from another call; nothing to differentiate
          camera_backward(g, cams[c], gmp + i * 2, gcp + i * 3, gdp[i], dmean, dSigma);
          any = true;
        }
        T dquat[4] = {0, 0, 0, 0}, dscale[3] = {0, 0, 0};
        if (any) covariance_backward(g, sp + n * 3, dSigma, dquat, dscale);
        for (int k = 0; k < 3; ++k) {
          dmp[n * 3 + k] = dmean[k];
          dsp[n * 3 + k] = dscale[k];
        }
        for (int k = 0; k < 4; ++k) dqp[n * 4 + k] = dquat[k];
      }
    });
  });
  return {grad_means, grad_quats, grad_scales};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("project_gaussians_backward", &project_gaussians_backward_cpu); }

}  // namespace prismkit::splat
