// Scalar device helpers of the splat kernels (cuda/splat/*.cu), overloaded for the two
// accumulation types (float, double), and the compositing alpha that the rasterize forward and
// backward must compute identically (same code, so the same rounding and the same skips).
#pragma once

#include <cuda_runtime.h>

namespace prismkit::cuda::splat {

__device__ __forceinline__ float sqrt_(float v) { return sqrtf(v); }
__device__ __forceinline__ double sqrt_(double v) { return sqrt(v); }
__device__ __forceinline__ float ceil_(float v) { return ceilf(v); }
__device__ __forceinline__ double ceil_(double v) { return ceil(v); }
__device__ __forceinline__ float floor_(float v) { return floorf(v); }
__device__ __forceinline__ double floor_(double v) { return floor(v); }
__device__ __forceinline__ float exp_(float v) { return expf(v); }
__device__ __forceinline__ double exp_(double v) { return exp(v); }
__device__ __forceinline__ bool finite_(float v) { return isfinite(v); }
__device__ __forceinline__ bool finite_(double v) { return isfinite(v); }

// One Gaussian's alpha at pixel-centre offset (dx, dy) = mean - centre: false when it is skipped
// there (power > 0 or alpha < 1/255; a NaN skips too). vis = exp(power), for the backward.
template <typename A>
__device__ __forceinline__ bool splat_alpha(A a, A b, A c, A opacity, A dx, A dy, A* alpha, A* vis) {
  const A power = A(-0.5) * (a * dx * dx + c * dy * dy) - b * dx * dy;
  if (!(power <= A(0))) return false;
  *vis = exp_(power);
  const A al = opacity * *vis;
  *alpha = al > A(0.99) ? A(0.99) : al;
  return *alpha >= A(1.0 / 255.0);
}

// The backward's geometric gradients of one Gaussian at one pixel from dL/dalpha (v_alpha):
// means2d (2), conic (3) and opacity into vg[0..5] (the same code in every compositing backward); a
// clamped alpha passes nothing to opacity or power, so vg is left as it is (zeros).
template <typename A>
__device__ __forceinline__ void splat_geometry_grads(const A* geo, A dx, A dy, A al, A vis, A v_alpha, A* vg) {
  if (geo[5] * vis > A(0.99)) return;
  const A d_power = al * v_alpha;
  vg[0] = -d_power * (geo[2] * dx + geo[3] * dy);
  vg[1] = -d_power * (geo[3] * dx + geo[4] * dy);
  vg[2] = A(-0.5) * d_power * dx * dx;
  vg[3] = -d_power * dx * dy;
  vg[4] = A(-0.5) * d_power * dy * dy;
  vg[5] = vis * v_alpha;
}

}  // namespace prismkit::cuda::splat
