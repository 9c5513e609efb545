// prismkit::project_gaussians on CUDA. Forward: one thread per (camera, Gaussian), the scalar EWA
// projection below. Backward: one thread per Gaussian that recomputes its projection into each
// camera and sums the cameras' gradients in camera order, so it needs no atomics and is
// bit-deterministic. The code follows the CPU kernels (csrc/splat/projection.h and
// project_gaussians_backward_cpu.cpp) step by step so both devices round alike.
#include "cuda/common/device_math.cuh"
#include "cuda/splat/project_gaussians.h"
#include "cuda/splat/splat_math.cuh"

namespace prismkit::cuda {
namespace {

using namespace splat;

constexpr int kThreads = 256;

template <typename A>
struct Mat3 {
  A m[3][3];
};

template <typename A>
struct Camera {
  A R[3][3], t[3];  // world to camera
  A fx, fy, cx, cy;
  A lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;  // x/z and y/z clamps: the field of view widened by 30%
};

template <typename A, typename T>
__device__ Camera<A> read_camera(const T* viewmat, const T* K, int64_t width, int64_t height) {
  Camera<A> cam;
#pragma unroll
  for (int i = 0; i < 3; ++i) {
#pragma unroll
    for (int j = 0; j < 3; ++j) cam.R[i][j] = to_acc(viewmat[i * 4 + j]);
    cam.t[i] = to_acc(viewmat[i * 4 + 3]);
  }
  cam.fx = to_acc(K[0]);
  cam.fy = to_acc(K[4]);
  cam.cx = to_acc(K[2]);
  cam.cy = to_acc(K[5]);
  const A w = static_cast<A>(width), h = static_cast<A>(height);
  const A tan_fovx = A(0.5) * w / cam.fx, tan_fovy = A(0.5) * h / cam.fy;
  cam.lim_x_pos = (w - cam.cx) / cam.fx + A(0.3) * tan_fovx;
  cam.lim_x_neg = cam.cx / cam.fx + A(0.3) * tan_fovx;
  cam.lim_y_pos = (h - cam.cy) / cam.fy + A(0.3) * tan_fovy;
  cam.lim_y_neg = cam.cy / cam.fy + A(0.3) * tan_fovy;
  return cam;
}

template <typename A>
__device__ __forceinline__ Mat3<A> mul(const Mat3<A>& X, const Mat3<A>& Y) {
  Mat3<A> Z;
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) Z.m[i][j] = X.m[i][0] * Y.m[0][j] + X.m[i][1] * Y.m[1][j] + X.m[i][2] * Y.m[2][j];
  return Z;
}

template <typename A>
__device__ __forceinline__ Mat3<A> transpose(const Mat3<A>& X) {
  Mat3<A> Z;
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) Z.m[i][j] = X.m[j][i];
  return Z;
}

// std::min and std::max's NaN behaviour (the first argument wins), as the CPU kernels have.
template <typename A>
__device__ __forceinline__ A min_(A a, A b) {
  return b < a ? b : a;
}
template <typename A>
__device__ __forceinline__ A max_(A a, A b) {
  return a < b ? b : a;
}

template <typename A, int K>
__device__ __forceinline__ bool all_finite(const A (&v)[K]) {
  bool ok = true;
#pragma unroll
  for (int i = 0; i < K; ++i) ok = ok && finite_(v[i]);
  return ok;
}

// One Gaussian's inputs, in the accumulation type.
template <typename A>
struct GaussianIn {
  A mean[3], quat[4], scale[3];
};

template <typename A, typename T>
__device__ __forceinline__ GaussianIn<A> read_gaussian(const T* means, const T* quats, const T* scales, int64_t n) {
  GaussianIn<A> g;
#pragma unroll
  for (int i = 0; i < 3; ++i) g.mean[i] = to_acc(means[n * 3 + i]);
#pragma unroll
  for (int i = 0; i < 4; ++i) g.quat[i] = to_acc(quats[n * 4 + i]);
#pragma unroll
  for (int i = 0; i < 3; ++i) g.scale[i] = to_acc(scales[n * 3 + i]);
  return g;
}

// Everything the forward computes for one (camera, Gaussian) pair, kept for the backward.
template <typename A>
struct Projected {
  A q[4], qnorm;    // normalized quaternion and the input's norm
  Mat3<A> Rq, M;    // rotation, M = Rq diag(s)
  A p[3];           // camera-space mean
  Mat3<A> Sigma_c;  // camera-space covariance
  A ux, uy;         // x/z and y/z after the field-of-view clamp
  bool clamped_x, clamped_y;
  A J[2][3];   // the Jacobian
  A cov2d[3];  // a, b, c of the blurred 2-D covariance
  A det;
  A conic[3], mean2d[2];
  int32_t radius;  // 0: culled
};

// The projection of one Gaussian into cam; radius 0 when culled. Every comparison is written so
// that a NaN culls.
template <typename A>
__device__ Projected<A> project_one(const GaussianIn<A>& in, const Camera<A>& cam, int64_t width, int64_t height,
                                    A near_plane, A far_plane, A eps2d, A radius_clip) {
  Projected<A> g{};
  g.radius = 0;
  const A* quat = in.quat;
  g.qnorm = sqrt_(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] + quat[3] * quat[3]);
  if (!(g.qnorm > 0) || !all_finite(in.mean) || !all_finite(in.quat) || !all_finite(in.scale)) return g;
#pragma unroll
  for (int i = 0; i < 4; ++i) g.q[i] = quat[i] / g.qnorm;
  const A w = g.q[0], x = g.q[1], y = g.q[2], z = g.q[3];
  g.Rq = Mat3<A>{{{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
                  {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
                  {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}}};
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) g.M.m[i][j] = g.Rq.m[i][j] * in.scale[j];
  const Mat3<A> Sigma = mul(g.M, transpose(g.M));
#pragma unroll
  for (int i = 0; i < 3; ++i)
    g.p[i] = cam.R[i][0] * in.mean[0] + cam.R[i][1] * in.mean[1] + cam.R[i][2] * in.mean[2] + cam.t[i];
  const A pz = g.p[2];
  if (!(pz > near_plane && pz < far_plane)) return g;
  Mat3<A> Rv;
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) Rv.m[i][j] = cam.R[i][j];
  g.Sigma_c = mul(mul(Rv, Sigma), transpose(Rv));
  const A rx = g.p[0] / pz, ry = g.p[1] / pz;
  g.ux = min_(max_(rx, -cam.lim_x_neg), cam.lim_x_pos);
  g.uy = min_(max_(ry, -cam.lim_y_neg), cam.lim_y_pos);
  g.clamped_x = g.ux != rx;
  g.clamped_y = g.uy != ry;
  g.J[0][0] = cam.fx / pz;
  g.J[0][1] = 0;
  g.J[0][2] = -cam.fx * g.ux / pz;
  g.J[1][0] = 0;
  g.J[1][1] = cam.fy / pz;
  g.J[1][2] = -cam.fy * g.uy / pz;
  A JS[2][3];  // J Sigma_c
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j)
      JS[i][j] = g.J[i][0] * g.Sigma_c.m[0][j] + g.J[i][1] * g.Sigma_c.m[1][j] + g.J[i][2] * g.Sigma_c.m[2][j];
  const A a = JS[0][0] * g.J[0][0] + JS[0][1] * g.J[0][1] + JS[0][2] * g.J[0][2] + eps2d;
  const A b = JS[0][0] * g.J[1][0] + JS[0][1] * g.J[1][1] + JS[0][2] * g.J[1][2];
  const A c = JS[1][0] * g.J[1][0] + JS[1][1] * g.J[1][1] + JS[1][2] * g.J[1][2] + eps2d;
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
  const A mid = A(0.5) * (a + c);
  const A v1 = mid + sqrt_(max_(A(0.01), mid * mid - g.det));
  const A r = ceil_(3 * sqrt_(v1));
  // r < 1e9 keeps the int32 radius (and the tile arithmetic on it) exact
  if (!(r > radius_clip) || !all_finite(g.conic) || !all_finite(g.mean2d) || !(r < A(1e9))) return g;
  const A wf = static_cast<A>(width), hf = static_cast<A>(height);
  if (!(g.mean2d[0] + r > 0 && g.mean2d[0] - r < wf && g.mean2d[1] + r > 0 && g.mean2d[1] - r < hf)) return g;
  g.radius = static_cast<int32_t>(r);
  return g;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    project_kernel(const T* __restrict__ means, const T* __restrict__ quats, const T* __restrict__ scales,
                   const T* __restrict__ viewmats, const T* __restrict__ Ks, int64_t C, int64_t N, int64_t width,
                   int64_t height, double near_plane, double far_plane, double eps2d, double radius_clip,
                   T* __restrict__ means2d, T* __restrict__ conics, T* __restrict__ depths,
                   int32_t* __restrict__ radii) {
  using A = typename Acc<T>::type;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= C * N) return;
  const int64_t c = i / N, n = i % N;
  const Camera<A> cam = read_camera<A>(viewmats + c * 16, Ks + c * 9, width, height);
  const GaussianIn<A> in = read_gaussian<A>(means, quats, scales, n);
  const Projected<A> g = project_one(in, cam, width, height, A(near_plane), A(far_plane), A(eps2d), A(radius_clip));
  const bool kept = g.radius > 0;
  means2d[i * 2] = from_acc<T>(kept ? g.mean2d[0] : A(0));
  means2d[i * 2 + 1] = from_acc<T>(kept ? g.mean2d[1] : A(0));
#pragma unroll
  for (int k = 0; k < 3; ++k) conics[i * 3 + k] = from_acc<T>(kept ? g.conic[k] : A(0));
  depths[i] = from_acc<T>(kept ? g.p[2] : A(0));
  radii[i] = g.radius;
}

// The gradient of one camera's outputs (means2d, conic, depth) with respect to the Gaussian's
// world mean (added to dmean) and world covariance (added to dSigma, a full symmetric matrix).
template <typename A>
__device__ void camera_backward(const Projected<A>& g, const Camera<A>& cam, const A gm2[2], const A gco[3], A gdepth,
                                A dmean[3], A dSigma[3][3]) {
  const A z = g.p[2], det = g.det;
  const A a = g.cov2d[0], b = g.cov2d[1], c = g.cov2d[2];
  // conic = (c, -b, a) / det, det = a c - b^2
  const A s = (gco[0] * c - gco[1] * b + gco[2] * a) / (det * det);
  const A ga = gco[2] / det - s * c, gb = -gco[1] / det + 2 * s * b, gc = gco[0] / det - s * a;
  const A G2[2][2] = {{ga, gb / 2}, {gb / 2, gc}};  // the symmetric gradient of J Sigma_c J^T
  A G2J[2][3];                                      // G2 J
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) G2J[i][j] = G2[i][0] * g.J[0][j] + G2[i][1] * g.J[1][j];
  A dSc[3][3];  // J^T G2 J
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) dSc[i][j] = g.J[0][i] * G2J[0][j] + g.J[1][i] * G2J[1][j];
  A dJ[2][3];  // 2 G2 J Sigma_c
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j)
      dJ[i][j] = 2 * (G2J[i][0] * g.Sigma_c.m[0][j] + G2J[i][1] * g.Sigma_c.m[1][j] + G2J[i][2] * g.Sigma_c.m[2][j]);
  A dp[3] = {0, 0, 0};
  // means2d = (fx x / z + cx, fy y / z + cy)
  dp[0] += gm2[0] * cam.fx / z;
  dp[1] += gm2[1] * cam.fy / z;
  dp[2] -= (gm2[0] * cam.fx * g.p[0] + gm2[1] * cam.fy * g.p[1]) / (z * z);
  // J = [[fx/z, 0, -fx ux/z], [0, fy/z, -fy uy/z]]
  dp[2] += (-dJ[0][0] * cam.fx + dJ[0][2] * cam.fx * g.ux - dJ[1][1] * cam.fy + dJ[1][2] * cam.fy * g.uy) / (z * z);
  const A dux = -dJ[0][2] * cam.fx / z, duy = -dJ[1][2] * cam.fy / z;
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
#pragma unroll
  for (int j = 0; j < 3; ++j) dmean[j] += cam.R[0][j] * dp[0] + cam.R[1][j] * dp[1] + cam.R[2][j] * dp[2];
  A tmp[3][3];  // dSc Rv
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) tmp[i][j] = dSc[i][0] * cam.R[0][j] + dSc[i][1] * cam.R[1][j] + dSc[i][2] * cam.R[2][j];
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j)
      dSigma[i][j] += cam.R[0][i] * tmp[0][j] + cam.R[1][i] * tmp[1][j] + cam.R[2][i] * tmp[2][j];
}

// Sigma = M M^T, M = R(q / |q|) diag(s): the world covariance's gradient to quat and scale.
template <typename A>
__device__ void covariance_backward(const Projected<A>& g, const A scale[3], const A dSigma[3][3], A dquat[4],
                                    A dscale[3]) {
  A dM[3][3];  // (dSigma + dSigma^T) M
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j)
      dM[i][j] = (dSigma[i][0] + dSigma[0][i]) * g.M.m[0][j] + (dSigma[i][1] + dSigma[1][i]) * g.M.m[1][j] +
                 (dSigma[i][2] + dSigma[2][i]) * g.M.m[2][j];
  A v[3][3];  // dR
#pragma unroll
  for (int j = 0; j < 3; ++j) {
    dscale[j] = dM[0][j] * g.Rq.m[0][j] + dM[1][j] * g.Rq.m[1][j] + dM[2][j] * g.Rq.m[2][j];
#pragma unroll
    for (int i = 0; i < 3; ++i) v[i][j] = dM[i][j] * scale[j];
  }
  const A w = g.q[0], x = g.q[1], y = g.q[2], z = g.q[3];
  const A dq[4] = {
      2 * (x * (v[2][1] - v[1][2]) + y * (v[0][2] - v[2][0]) + z * (v[1][0] - v[0][1])),
      2 * (-2 * x * (v[1][1] + v[2][2]) + y * (v[1][0] + v[0][1]) + z * (v[2][0] + v[0][2]) + w * (v[2][1] - v[1][2])),
      2 * (x * (v[1][0] + v[0][1]) - 2 * y * (v[0][0] + v[2][2]) + z * (v[2][1] + v[1][2]) + w * (v[0][2] - v[2][0])),
      2 * (x * (v[2][0] + v[0][2]) + y * (v[2][1] + v[1][2]) - 2 * z * (v[0][0] + v[1][1]) + w * (v[1][0] - v[0][1]))};
  const A qdot = w * dq[0] + x * dq[1] + y * dq[2] + z * dq[3];
#pragma unroll
  for (int k = 0; k < 4; ++k) dquat[k] = (dq[k] - g.q[k] * qdot) / g.qnorm;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    project_backward_kernel(const T* __restrict__ means, const T* __restrict__ quats, const T* __restrict__ scales,
                            const T* __restrict__ viewmats, const T* __restrict__ Ks, int64_t C, int64_t N,
                            int64_t width, int64_t height, double eps2d, const int32_t* __restrict__ radii,
                            const T* __restrict__ grad_means2d, const T* __restrict__ grad_conics,
                            const T* __restrict__ grad_depths, T* __restrict__ grad_means, T* __restrict__ grad_quats,
                            T* __restrict__ grad_scales) {
  using A = typename Acc<T>::type;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (n >= N) return;
  const GaussianIn<A> in = read_gaussian<A>(means, quats, scales, n);
  A dmean[3] = {0, 0, 0}, dSigma[3][3] = {};
  bool any = false;
  Projected<A> g{};
  for (int64_t c = 0; c < C; ++c) {
    const int64_t i = c * N + n;
    if (radii[i] <= 0) continue;
    const Camera<A> cam = read_camera<A>(viewmats + c * 16, Ks + c * 9, width, height);
    // radius_clip and the frustum only decide culling, already recorded in radii
    g = project_one(in, cam, width, height, A(0), A(INFINITY), A(eps2d), A(-1));
    if (!(g.det > 0)) continue;  // radii from another call: nothing to differentiate
    const A gm2[2] = {to_acc(grad_means2d[i * 2]), to_acc(grad_means2d[i * 2 + 1])};
    const A gco[3] = {to_acc(grad_conics[i * 3]), to_acc(grad_conics[i * 3 + 1]), to_acc(grad_conics[i * 3 + 2])};
    camera_backward(g, cam, gm2, gco, to_acc(grad_depths[i]), dmean, dSigma);
    any = true;
  }
  A dquat[4] = {0, 0, 0, 0}, dscale[3] = {0, 0, 0};
  if (any) covariance_backward(g, in.scale, dSigma, dquat, dscale);
#pragma unroll
  for (int k = 0; k < 3; ++k) {
    grad_means[n * 3 + k] = from_acc<T>(dmean[k]);
    grad_scales[n * 3 + k] = from_acc<T>(dscale[k]);
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) grad_quats[n * 4 + k] = from_acc<T>(dquat[k]);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

cudaError_t launch_project_gaussians(DType dtype, const void* means, const void* quats, const void* scales,
                                     const void* viewmats, const void* Ks, int64_t C, int64_t N, int64_t width,
                                     int64_t height, double near_plane, double far_plane, double eps2d,
                                     double radius_clip, void* means2d, void* conics, void* depths, int32_t* radii,
                                     cudaStream_t stream) {
  if (C * N == 0) return cudaSuccess;
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    project_kernel<T><<<blocks_for(C * N), kThreads, 0, stream>>>(
        static_cast<const T*>(means), static_cast<const T*>(quats), static_cast<const T*>(scales),
        static_cast<const T*>(viewmats), static_cast<const T*>(Ks), C, N, width, height, near_plane, far_plane, eps2d,
        radius_clip, static_cast<T*>(means2d), static_cast<T*>(conics), static_cast<T*>(depths), radii);
    return 0;
  });
  return cudaGetLastError();
}

cudaError_t launch_project_gaussians_backward(DType dtype, const void* means, const void* quats, const void* scales,
                                              const void* viewmats, const void* Ks, int64_t C, int64_t N, int64_t width,
                                              int64_t height, double eps2d, const int32_t* radii,
                                              const void* grad_means2d, const void* grad_conics,
                                              const void* grad_depths, void* grad_means, void* grad_quats,
                                              void* grad_scales, cudaStream_t stream) {
  if (N == 0) return cudaSuccess;
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    project_backward_kernel<T><<<blocks_for(N), kThreads, 0, stream>>>(
        static_cast<const T*>(means), static_cast<const T*>(quats), static_cast<const T*>(scales),
        static_cast<const T*>(viewmats), static_cast<const T*>(Ks), C, N, width, height, eps2d, radii,
        static_cast<const T*>(grad_means2d), static_cast<const T*>(grad_conics), static_cast<const T*>(grad_depths),
        static_cast<T*>(grad_means), static_cast<T*>(grad_quats), static_cast<T*>(grad_scales));
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
