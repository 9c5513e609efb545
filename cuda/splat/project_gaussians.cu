// prismkit::project_gaussians on CUDA. Forward: one thread per (camera, Gaussian), the scalar EWA
// projection of csrc/splat/projection.h (the CPU kernels' own, compiled for the device). Backward:
// one thread per Gaussian that recomputes its projection into each camera and sums the cameras'
// gradients in camera order, so it needs no atomics and is bit-deterministic.
#include "csrc/splat/projection.h"
#include "cuda/common/device_math.cuh"
#include "cuda/splat/project_gaussians.h"

namespace prismkit::cuda {
namespace {

using ::prismkit::splat::Camera;
using ::prismkit::splat::camera_backward;
using ::prismkit::splat::covariance_backward;
using ::prismkit::splat::project_one;
using ::prismkit::splat::Projected;
using ::prismkit::splat::read_camera;

constexpr int kThreads = 256;

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

// The camera in the accumulation type (K and viewmat converted element by element).
template <typename A, typename T>
__device__ __forceinline__ Camera<A> camera_at(const T* viewmat, const T* K, int64_t width, int64_t height) {
  A v[16], k[9];
#pragma unroll
  for (int i = 0; i < 16; ++i) v[i] = to_acc(viewmat[i]);
#pragma unroll
  for (int i = 0; i < 9; ++i) k[i] = to_acc(K[i]);
  return read_camera<A>(v, k, width, height);
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
  const Camera<A> cam = camera_at<A>(viewmats + c * 16, Ks + c * 9, width, height);
  const GaussianIn<A> in = read_gaussian<A>(means, quats, scales, n);
  const Projected<A> g = project_one(in.mean, in.quat, in.scale, cam, width, height, A(near_plane), A(far_plane),
                                     A(eps2d), A(radius_clip));
  const bool kept = g.radius > 0;
  means2d[i * 2] = from_acc<T>(kept ? g.mean2d[0] : A(0));
  means2d[i * 2 + 1] = from_acc<T>(kept ? g.mean2d[1] : A(0));
#pragma unroll
  for (int k = 0; k < 3; ++k) conics[i * 3 + k] = from_acc<T>(kept ? g.conic[k] : A(0));
  depths[i] = from_acc<T>(kept ? g.p[2] : A(0));
  radii[i] = g.radius;
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
    const Camera<A> cam = camera_at<A>(viewmats + c * 16, Ks + c * 9, width, height);
    // radius_clip and the frustum only decide culling, already recorded in radii
    g = project_one(in.mean, in.quat, in.scale, cam, width, height, A(0), A(INFINITY), A(eps2d), A(-1));
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
