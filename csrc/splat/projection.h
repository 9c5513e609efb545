// The EWA projection of one Gaussian into one camera, and its backward, shared by the CPU kernels
// (project_gaussians_cpu.cpp, project_gaussians_backward_cpu.cpp) and the CUDA kernels
// (cuda/splat/project_gaussians.cu): one source, so both devices compute alike (nvcc fuses
// multiply-adds where the host compiler may not, so results agree to rounding). Plain
// scalar code, torch-free, host and device (PRISMKIT_HD); every comparison is written so that a
// NaN culls. The work per Gaussian is a few hundred flops of 3x3 algebra; the callers parallelize
// over Gaussians.
#pragma once

#include <cmath>
#include <cstdint>

#include "csrc/common/host_device.h"

namespace prismkit::splat {

// The math both compilers resolve on both sides (CUDA declares these host and device).
PRISMKIT_HD float sqrt_of(float v) { return sqrtf(v); }
PRISMKIT_HD double sqrt_of(double v) { return sqrt(v); }
PRISMKIT_HD float ceil_of(float v) { return ceilf(v); }
PRISMKIT_HD double ceil_of(double v) { return ceil(v); }
template <typename T>
PRISMKIT_HD bool finite(T v) {  // false for NaN and +-inf (v - v is NaN for both)
  return v - v == T(0);
}
template <typename T>
PRISMKIT_HD T min_of(T a, T b) {  // std::min's rule: a NaN in a is kept
  return b < a ? b : a;
}
template <typename T>
PRISMKIT_HD T max_of(T a, T b) {
  return a < b ? b : a;
}

template <typename T>
struct Mat3 {
  T m[3][3];
};

template <typename T>
struct Camera {
  T R[3][3], t[3];  // world to camera
  T fx, fy, cx, cy;
  T lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;  // x/z and y/z clamps: the field of view widened by 30%
};

// A camera from its viewmat [4, 4] and K [3, 3] (row-major, any element type convertible to T).
template <typename T, typename In>
PRISMKIT_HD Camera<T> read_camera(const In* viewmat, const In* K, int64_t width, int64_t height) {
  Camera<T> cam;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) cam.R[i][j] = static_cast<T>(viewmat[i * 4 + j]);
    cam.t[i] = static_cast<T>(viewmat[i * 4 + 3]);
  }
  cam.fx = static_cast<T>(K[0]);
  cam.fy = static_cast<T>(K[4]);
  cam.cx = static_cast<T>(K[2]);
  cam.cy = static_cast<T>(K[5]);
  const T w = static_cast<T>(width), h = static_cast<T>(height);
  const T tan_fovx = T(0.5) * w / cam.fx, tan_fovy = T(0.5) * h / cam.fy;
  cam.lim_x_pos = (w - cam.cx) / cam.fx + T(0.3) * tan_fovx;
  cam.lim_x_neg = cam.cx / cam.fx + T(0.3) * tan_fovx;
  cam.lim_y_pos = (h - cam.cy) / cam.fy + T(0.3) * tan_fovy;
  cam.lim_y_neg = cam.cy / cam.fy + T(0.3) * tan_fovy;
  return cam;
}

template <typename T>
PRISMKIT_HD Mat3<T> mul(const Mat3<T>& A, const Mat3<T>& B) {
  Mat3<T> C;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) C.m[i][j] = A.m[i][0] * B.m[0][j] + A.m[i][1] * B.m[1][j] + A.m[i][2] * B.m[2][j];
  return C;
}

template <typename T>
PRISMKIT_HD Mat3<T> transpose(const Mat3<T>& A) {
  Mat3<T> C;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) C.m[i][j] = A.m[j][i];
  return C;
}

template <typename T>
PRISMKIT_HD bool all_finite(const T* v, int n) {
  bool ok = true;
  for (int i = 0; i < n; ++i) ok = ok && finite(v[i]);
  return ok;
}

// Everything the forward computes for one (camera, Gaussian) pair, kept for the backward.
template <typename T>
struct Projected {
  T q[4], qnorm;    // normalized quaternion and the input's norm
  Mat3<T> Rq, M;    // rotation, M = Rq diag(s); the world covariance is M M^T
  T p[3];           // camera-space mean
  Mat3<T> Sigma_c;  // camera-space covariance
  T ux, uy;         // x/z and y/z after the field-of-view clamp
  bool clamped_x, clamped_y;
  T J[2][3];   // the Jacobian
  T cov2d[3];  // a, b, c of the blurred 2-D covariance
  T det;
  T conic[3], mean2d[2];
  int32_t radius;  // 0: culled
};

// The projection of Gaussian (mean, quat, scale) into cam; radius 0 when culled (the rules: the
// op's docstring, python/prismkit/ops/splat/__init__.py).
template <typename T>
PRISMKIT_HD Projected<T> project_one(const T* mean, const T* quat, const T* scale, const Camera<T>& cam, int64_t width,
                                     int64_t height, T near_plane, T far_plane, T eps2d, T radius_clip) {
  Projected<T> g{};
  g.radius = 0;
  g.qnorm = sqrt_of(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] + quat[3] * quat[3]);
  if (!(g.qnorm > 0) || !all_finite(mean, 3) || !all_finite(quat, 4) || !all_finite(scale, 3)) return g;
  for (int i = 0; i < 4; ++i) g.q[i] = quat[i] / g.qnorm;
  const T w = g.q[0], x = g.q[1], y = g.q[2], z = g.q[3];
  g.Rq = Mat3<T>{{{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
                  {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
                  {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) g.M.m[i][j] = g.Rq.m[i][j] * scale[j];
  const Mat3<T> Sigma = mul(g.M, transpose(g.M));
  for (int i = 0; i < 3; ++i) g.p[i] = cam.R[i][0] * mean[0] + cam.R[i][1] * mean[1] + cam.R[i][2] * mean[2] + cam.t[i];
  const T pz = g.p[2];
  if (!(pz > near_plane && pz < far_plane)) return g;
  Mat3<T> Rv;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) Rv.m[i][j] = cam.R[i][j];
  g.Sigma_c = mul(mul(Rv, Sigma), transpose(Rv));
  const T rx = g.p[0] / pz, ry = g.p[1] / pz;
  g.ux = min_of(max_of(rx, -cam.lim_x_neg), cam.lim_x_pos);
  g.uy = min_of(max_of(ry, -cam.lim_y_neg), cam.lim_y_pos);
  g.clamped_x = g.ux != rx;
  g.clamped_y = g.uy != ry;
  g.J[0][0] = cam.fx / pz;
  g.J[0][1] = 0;
  g.J[0][2] = -cam.fx * g.ux / pz;
  g.J[1][0] = 0;
  g.J[1][1] = cam.fy / pz;
  g.J[1][2] = -cam.fy * g.uy / pz;
  T JS[2][3];  // J Sigma_c
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      JS[i][j] = g.J[i][0] * g.Sigma_c.m[0][j] + g.J[i][1] * g.Sigma_c.m[1][j] + g.J[i][2] * g.Sigma_c.m[2][j];
  const T a = JS[0][0] * g.J[0][0] + JS[0][1] * g.J[0][1] + JS[0][2] * g.J[0][2] + eps2d;
  const T b = JS[0][0] * g.J[1][0] + JS[0][1] * g.J[1][1] + JS[0][2] * g.J[1][2];
  const T c = JS[1][0] * g.J[1][0] + JS[1][1] * g.J[1][1] + JS[1][2] * g.J[1][2] + eps2d;
  g.cov2d[0] = a;
  g.cov2d[1] = b;
  g.cov2d[2] = c;
  g.det = a * c - b * b;
  if (!(g.det > 0)) return g;
  g.conic[0] = c / g.det;
  g.conic[1] = -b / g.det;
  g.conic[2] = a / g.det;
  g.mean2d[0] = cam.fx * g.p[0] / pz + cam.cx;
  g.mean2d[1] = cam.fy * g.p[1] / pz + cam.cy;
  const T mid = T(0.5) * (a + c);
  const T v1 = mid + sqrt_of(max_of(T(0.01), mid * mid - g.det));
  const T r = ceil_of(3 * sqrt_of(v1));
  // r < 1e9 keeps the int32 radius (and the tile arithmetic on it) exact
  if (!(r > radius_clip) || !all_finite(g.conic, 3) || !all_finite(g.mean2d, 2) || !(r < T(1e9))) return g;
  const T wf = static_cast<T>(width), hf = static_cast<T>(height);
  if (!(g.mean2d[0] + r > 0 && g.mean2d[0] - r < wf && g.mean2d[1] + r > 0 && g.mean2d[1] - r < hf)) return g;
  g.radius = static_cast<int32_t>(r);
  return g;
}

// The gradient of one camera's outputs (means2d, conic, depth) with respect to the Gaussian's
// world mean (added to dmean) and world covariance (added to dSigma, a full symmetric matrix). The
// chain: conic -> 2-D covariance -> (Jacobian, camera covariance) -> camera-space mean.
template <typename T>
PRISMKIT_HD void camera_backward(const Projected<T>& g, const Camera<T>& cam, const T* gm2, const T* gco, T gdepth,
                                 T dmean[3], T dSigma[3][3]) {
  const T z = g.p[2], det = g.det;
  const T a = g.cov2d[0], b = g.cov2d[1], c = g.cov2d[2];
  // conic = (c, -b, a) / det, det = a c - b^2
  const T s = (gco[0] * c - gco[1] * b + gco[2] * a) / (det * det);
  const T ga = gco[2] / det - s * c, gb = -gco[1] / det + 2 * s * b, gc = gco[0] / det - s * a;
  const T G2[2][2] = {{ga, gb / 2}, {gb / 2, gc}};  // the symmetric gradient of J Sigma_c J^T
  T G2J[2][3];                                      // G2 J
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) G2J[i][j] = G2[i][0] * g.J[0][j] + G2[i][1] * g.J[1][j];
  T dSc[3][3];  // J^T G2 J
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) dSc[i][j] = g.J[0][i] * G2J[0][j] + g.J[1][i] * G2J[1][j];
  T dJ[2][3];  // 2 G2 J Sigma_c
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
  if (!g.clamped_x) {  // ux = x / z; a clamped ux passes nothing to x
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
PRISMKIT_HD void covariance_backward(const Projected<T>& g, const T* scale, const T dSigma[3][3], T dquat[4],
                                     T dscale[3]) {
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

}  // namespace prismkit::splat
