// prismkit::project_gaussians_backward on the CPU: threads split the Gaussians; each Gaussian
// recomputes its projection into every camera (projection.h) and sums the cameras' gradients in
// camera order, so the result is bit-deterministic and needs no atomics. The chain, per camera:
// conic -> 2-D covariance -> (Jacobian, camera covariance) -> camera-space mean and world
// covariance; then, once per Gaussian: covariance -> M = R diag(s) -> (quaternion, scales).
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

namespace {

// The gradient of one camera's outputs (means2d, conic, depth) with respect to the Gaussian's
// world mean (added to dmean) and world covariance (added to dSigma, a full symmetric matrix).
template <typename T>
void camera_backward(const Projected<T>& g, const Camera<T>& cam, const T* gm2, const T* gco, T gdepth, T dmean[3],
                     T dSigma[3][3]) {
  const T z = g.p[2], det = g.det;
  const T a = g.cov2d[0], b = g.cov2d[1], c = g.cov2d[2];
  // conic = (c, -b, a) / det, det = a c - b^2
  const T s = (gco[0] * c - gco[1] * b + gco[2] * a) / (det * det);
  const T ga = gco[2] / det - s * c, gb = -gco[1] / det + 2 * s * b, gc = gco[0] / det - s * a;
  const T G2[2][2] = {{ga, gb / 2}, {gb / 2, gc}};  // the symmetric gradient of J Sigma_c J^T
  // dSigma_c = J^T G2 J
  T G2J[2][3];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) G2J[i][j] = G2[i][0] * g.J[0][j] + G2[i][1] * g.J[1][j];
  T dSc[3][3];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) dSc[i][j] = g.J[0][i] * G2J[0][j] + g.J[1][i] * G2J[1][j];
  // dJ = 2 G2 J Sigma_c
  T dJ[2][3];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      dJ[i][j] = 2 * (G2J[i][0] * g.Sigma_c.m[0][j] + G2J[i][1] * g.Sigma_c.m[1][j] + G2J[i][2] * g.Sigma_c.m[2][j]);
  T dp[3] = {0, 0, 0};
  // means2d = (fx x / z + cx, fy y / z + cy)
  dp[0] += gm2[0] * cam.fx / z;
  dp[1] += gm2[1] * cam.fy / z;
  dp[2] -= (gm2[0] * cam.fx * g.p[0] + gm2[1] * cam.fy * g.p[1]) / (z * z);
  // J = [[fx/z, 0, -fx ux/z], [0, fy/z, -fy uy/z]]
  dp[2] += (-dJ[0][0] * cam.fx + dJ[0][2] * cam.fx * g.ux - dJ[1][1] * cam.fy + dJ[1][2] * cam.fy * g.uy) / (z * z);
  const T dux = -dJ[0][2] * cam.fx / z, duy = -dJ[1][2] * cam.fy / z;
  if (!g.clamped_x) {  // ux = x / z
    dp[0] += dux / z;
    dp[2] -= dux * g.p[0] / (z * z);
  }
  if (!g.clamped_y) {
    dp[1] += duy / z;
    dp[2] -= duy * g.p[1] / (z * z);
  }
  dp[2] += gdepth;
  // p = Rv mean + t; Sigma_c = Rv Sigma Rv^T
  for (int j = 0; j < 3; ++j) dmean[j] += cam.R[0][j] * dp[0] + cam.R[1][j] * dp[1] + cam.R[2][j] * dp[2];
  T tmp[3][3];  // dSc Rv
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) tmp[i][j] = dSc[i][0] * cam.R[0][j] + dSc[i][1] * cam.R[1][j] + dSc[i][2] * cam.R[2][j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      dSigma[i][j] += cam.R[0][i] * tmp[0][j] + cam.R[1][i] * tmp[1][j] + cam.R[2][i] * tmp[2][j];
}

// Sigma = M M^T, M = R(q / |q|) diag(s): the world covariance's gradient to quat and scale.
template <typename T>
void covariance_backward(const Projected<T>& g, const T* scale, const T dSigma[3][3], T dquat[4], T dscale[3]) {
  T dM[3][3];  // (dSigma + dSigma^T) M
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      dM[i][j] = (dSigma[i][0] + dSigma[0][i]) * g.M.m[0][j] + (dSigma[i][1] + dSigma[1][i]) * g.M.m[1][j] +
                 (dSigma[i][2] + dSigma[2][i]) * g.M.m[2][j];
  T v[3][3];  // dR
  for (int j = 0; j < 3; ++j) {
    dscale[j] = dM[0][j] * g.Rq.m[0][j] + dM[1][j] * g.Rq.m[1][j] + dM[2][j] * g.Rq.m[2][j];
    for (int i = 0; i < 3; ++i) v[i][j] = dM[i][j] * scale[j];
  }
  const T w = g.q[0], x = g.q[1], y = g.q[2], z = g.q[3];
  const T dq[4] = {
      2 * (x * (v[2][1] - v[1][2]) + y * (v[0][2] - v[2][0]) + z * (v[1][0] - v[0][1])),
      2 * (-2 * x * (v[1][1] + v[2][2]) + y * (v[1][0] + v[0][1]) + z * (v[2][0] + v[0][2]) + w * (v[2][1] - v[1][2])),
      2 * (x * (v[1][0] + v[0][1]) - 2 * y * (v[0][0] + v[2][2]) + z * (v[2][1] + v[1][2]) + w * (v[0][2] - v[2][0])),
      2 * (x * (v[2][0] + v[0][2]) + y * (v[2][1] + v[1][2]) - 2 * z * (v[0][0] + v[1][1]) + w * (v[1][0] - v[0][1]))};
  const T qdot = w * dq[0] + x * dq[1] + y * dq[2] + z * dq[3];
  for (int k = 0; k < 4; ++k) dquat[k] = (dq[k] - g.q[k] * qdot) / g.qnorm;
}

}  // namespace

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
      cams.push_back(read_camera(V.const_data_ptr<T>() + c * 16, K.const_data_ptr<T>() + c * 9, width, height));
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
