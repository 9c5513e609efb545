// The EWA projection of one Gaussian into one camera, shared by the CPU forward and backward
// (project_gaussians_cpu.cpp, project_gaussians_backward_cpu.cpp). Plain scalar code: the work per
// Gaussian is a few hundred flops of 3x3 algebra, and threads split the Gaussians.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace prismkit::splat {

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

template <typename T>
Camera<T> read_camera(const T* viewmat, const T* K, int64_t width, int64_t height) {
  Camera<T> cam;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) cam.R[i][j] = viewmat[i * 4 + j];
    cam.t[i] = viewmat[i * 4 + 3];
  }
  cam.fx = K[0];
  cam.fy = K[4];
  cam.cx = K[2];
  cam.cy = K[5];
  const T w = static_cast<T>(width), h = static_cast<T>(height);
  const T tan_fovx = T(0.5) * w / cam.fx, tan_fovy = T(0.5) * h / cam.fy;
  cam.lim_x_pos = (w - cam.cx) / cam.fx + T(0.3) * tan_fovx;
  cam.lim_x_neg = cam.cx / cam.fx + T(0.3) * tan_fovx;
  cam.lim_y_pos = (h - cam.cy) / cam.fy + T(0.3) * tan_fovy;
  cam.lim_y_neg = cam.cy / cam.fy + T(0.3) * tan_fovy;
  return cam;
}

// R from a quaternion (w, x, y, z) already normalized.
template <typename T>
Mat3<T> quat_to_rotmat(const T q[4]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  return {{{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
           {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
           {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}}};
}

// Everything the forward computes for one (camera, Gaussian) pair, kept for the backward.
template <typename T>
struct Projected {
  T q[4], qnorm;         // normalized quaternion and the input's norm
  Mat3<T> Rq, M, Sigma;  // rotation, M = Rq diag(s), Sigma = M M^T (world)
  T p[3];                // camera-space mean
  Mat3<T> Sigma_c;       // camera-space covariance
  T ux, uy;              // x/z and y/z after the field-of-view clamp
  bool clamped_x, clamped_y;
  T J[2][3];   // the Jacobian
  T cov2d[3];  // a, b, c of the blurred 2-D covariance
  T det;
  T conic[3], mean2d[2];
  int32_t radius;  // 0: culled
};

template <typename T>
Mat3<T> mul(const Mat3<T>& A, const Mat3<T>& B) {
  Mat3<T> C;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) C.m[i][j] = A.m[i][0] * B.m[0][j] + A.m[i][1] * B.m[1][j] + A.m[i][2] * B.m[2][j];
  return C;
}

template <typename T>
Mat3<T> transpose(const Mat3<T>& A) {
  Mat3<T> C;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) C.m[i][j] = A.m[j][i];
  return C;
}

template <typename T>
bool all_finite(const T* v, int n) {
  for (int i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

// The projection of Gaussian (mean, quat, scale) into cam; radius 0 when culled (see the op's
// docstring for the rules). Every comparison is written so that a NaN culls.
template <typename T>
Projected<T> project_one(const T* mean, const T* quat, const T* scale, const Camera<T>& cam, int64_t width,
                         int64_t height, T near_plane, T far_plane, T eps2d, T radius_clip) {
  Projected<T> g{};
  g.radius = 0;
  g.qnorm = std::sqrt(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] + quat[3] * quat[3]);
  if (!(g.qnorm > 0) || !all_finite(mean, 3) || !all_finite(quat, 4) || !all_finite(scale, 3)) return g;
  for (int i = 0; i < 4; ++i) g.q[i] = quat[i] / g.qnorm;
  g.Rq = quat_to_rotmat(g.q);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) g.M.m[i][j] = g.Rq.m[i][j] * scale[j];
  g.Sigma = mul(g.M, transpose(g.M));
  for (int i = 0; i < 3; ++i) g.p[i] = cam.R[i][0] * mean[0] + cam.R[i][1] * mean[1] + cam.R[i][2] * mean[2] + cam.t[i];
  const T z = g.p[2];
  if (!(z > near_plane && z < far_plane)) return g;
  Mat3<T> Rv;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) Rv.m[i][j] = cam.R[i][j];
  g.Sigma_c = mul(mul(Rv, g.Sigma), transpose(Rv));
  const T rx = g.p[0] / z, ry = g.p[1] / z;
  g.ux = std::min(std::max(rx, -cam.lim_x_neg), cam.lim_x_pos);
  g.uy = std::min(std::max(ry, -cam.lim_y_neg), cam.lim_y_pos);
  g.clamped_x = g.ux != rx;
  g.clamped_y = g.uy != ry;
  g.J[0][0] = cam.fx / z;
  g.J[0][1] = 0;
  g.J[0][2] = -cam.fx * g.ux / z;
  g.J[1][0] = 0;
  g.J[1][1] = cam.fy / z;
  g.J[1][2] = -cam.fy * g.uy / z;
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
  g.mean2d[0] = cam.fx * g.p[0] / z + cam.cx;
  g.mean2d[1] = cam.fy * g.p[1] / z + cam.cy;
  const T mid = T(0.5) * (a + c);
  const T v1 = mid + std::sqrt(std::max(T(0.01), mid * mid - g.det));
  const T r = std::ceil(3 * std::sqrt(v1));
  if (!(r > radius_clip) || !all_finite(g.conic, 3) || !all_finite(g.mean2d, 2) || !(r < T(1e9))) return g;
  const T w = static_cast<T>(width), h = static_cast<T>(height);
  if (!(g.mean2d[0] + r > 0 && g.mean2d[0] - r < w && g.mean2d[1] + r > 0 && g.mean2d[1] - r < h)) return g;
  g.radius = static_cast<int32_t>(r);
  return g;
}

}  // namespace prismkit::splat
