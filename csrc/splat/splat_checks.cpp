#include "splat/splat_checks.h"

#include "common/checks.h"

#include <ATen/ops/aminmax.h>

#include <cmath>
#include <sstream>
#include <vector>

namespace prismkit::splat {

namespace {

std::string sizes_str(const std::vector<int64_t>& sizes) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  s << "]";
  return s.str();
}

constexpr int64_t kMaxInt32 = 2147483647;

}  // namespace

void check_shape(const char* op, const char* name, const at::Tensor& t, const std::vector<int64_t>& sizes,
                 const char* layout) {
  check_rank(op, name, t, static_cast<int64_t>(sizes.size()), layout);
  TORCH_CHECK_VALUE(t.sizes() == at::IntArrayRef(sizes), "prismkit::", op, ": '", name, "' must have shape ", layout,
                    " = ", sizes_str(sizes), ", got ", describe(t));
}

void check_positive(const char* op, const char* name, int64_t v) {
  TORCH_CHECK_VALUE(v >= 1, "prismkit::", op, ": '", name, "' must be >= 1, got ", v);
}

void check_like(const char* op, const char* name, const at::Tensor& t, const char* ref_name, const at::Tensor& ref) {
  check_same_dtype(op, name, t, ref_name, ref);
  check_same_device(op, name, t, ref_name, ref);
}

void check_int32_on(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                    const at::Tensor& ref) {
  check_dtype(op, name, t, {at::kInt});
  check_same_device(op, name, t, ref_name, ref);
}

ProjectArgs check_project_gaussians_args(const char* op, const at::Tensor& means, const at::Tensor& quats,
                                         const at::Tensor& scales, const at::Tensor& viewmats, const at::Tensor& Ks,
                                         int64_t width, int64_t height, double near_plane, double far_plane,
                                         double eps2d, double radius_clip) {
  check_rank(op, "means", means, 2, "[N, 3]");
  check_float_dtype(op, "means", means, /*cuda_float64=*/true);
  const int64_t N = means.size(0);
  check_shape(op, "means", means, {N, 3}, "[N, 3]");
  check_shape(op, "quats", quats, {N, 4}, "[N, 4] (w, x, y, z)");
  check_shape(op, "scales", scales, {N, 3}, "[N, 3]");
  check_rank(op, "viewmats", viewmats, 3, "[C, 4, 4] (world to camera)");
  const int64_t C = viewmats.size(0);
  check_shape(op, "viewmats", viewmats, {C, 4, 4}, "[C, 4, 4] (world to camera)");
  check_shape(op, "Ks", Ks, {C, 3, 3}, "[C, 3, 3] (the cameras' intrinsics)");
  check_like(op, "quats", quats, "means", means);
  check_like(op, "scales", scales, "means", means);
  check_like(op, "viewmats", viewmats, "means", means);
  check_like(op, "Ks", Ks, "means", means);
  check_positive(op, "width", width);
  check_positive(op, "height", height);
  TORCH_CHECK_VALUE(near_plane > 0 && near_plane < far_plane, "prismkit::", op,
                    ": 'near_plane' and 'far_plane' must satisfy 0 < near_plane < far_plane, got ", near_plane, " and ",
                    far_plane);
  TORCH_CHECK_VALUE(eps2d >= 0 && std::isfinite(eps2d), "prismkit::", op, ": 'eps2d' must be finite and >= 0, got ",
                    eps2d);
  TORCH_CHECK_VALUE(radius_clip >= 0 && std::isfinite(radius_clip), "prismkit::", op,
                    ": 'radius_clip' must be finite and >= 0, got ", radius_clip);
  TORCH_CHECK_VALUE(C * N <= kMaxInt32, "prismkit::", op, ": C * N = ", C, " * ", N,
                    " camera-Gaussian pairs exceed the int32 ids of tile_bin (at most 2^31 - 1)");
  return {C, N};
}

ProjectArgs check_project_gaussians_backward_args(const at::Tensor& means, const at::Tensor& quats,
                                                  const at::Tensor& scales, const at::Tensor& viewmats,
                                                  const at::Tensor& Ks, int64_t width, int64_t height, double eps2d,
                                                  const at::Tensor& radii, const at::Tensor& grad_means2d,
                                                  const at::Tensor& grad_conics, const at::Tensor& grad_depths) {
  const char* op = "project_gaussians_backward";
  const ProjectArgs a =
      check_project_gaussians_args(op, means, quats, scales, viewmats, Ks, width, height, 0.01, 1e10, eps2d, 0.0);
  check_shape(op, "radii", radii, {a.C, a.N}, "[C, N]");
  check_int32_on(op, "radii", radii, "means", means);
  check_shape(op, "grad_means2d", grad_means2d, {a.C, a.N, 2}, "[C, N, 2]");
  check_shape(op, "grad_conics", grad_conics, {a.C, a.N, 3}, "[C, N, 3]");
  check_shape(op, "grad_depths", grad_depths, {a.C, a.N}, "[C, N]");
  check_like(op, "grad_means2d", grad_means2d, "means", means);
  check_like(op, "grad_conics", grad_conics, "means", means);
  check_like(op, "grad_depths", grad_depths, "means", means);
  return a;
}

ProjectArgs check_tile_bin_args(const at::Tensor& means2d, const at::Tensor& radii, const at::Tensor& depths,
                                int64_t tile_size, int64_t tiles_x, int64_t tiles_y) {
  const char* op = "tile_bin";
  check_rank(op, "means2d", means2d, 3, "[C, N, 2]");
  check_float_dtype(op, "means2d", means2d, /*cuda_float64=*/true);
  const int64_t C = means2d.size(0), N = means2d.size(1);
  check_shape(op, "means2d", means2d, {C, N, 2}, "[C, N, 2]");
  check_shape(op, "radii", radii, {C, N}, "[C, N]");
  check_int32_on(op, "radii", radii, "means2d", means2d);
  check_shape(op, "depths", depths, {C, N}, "[C, N]");
  check_like(op, "depths", depths, "means2d", means2d);
  check_positive(op, "tile_size", tile_size);
  check_positive(op, "tiles_x", tiles_x);
  check_positive(op, "tiles_y", tiles_y);
  // each factor first, so the products cannot wrap
  const bool fits = tiles_x <= kMaxInt32 && tiles_y <= kMaxInt32 && C * N <= kMaxInt32 &&
                    (C == 0 || tiles_x * tiles_y <= kMaxInt32 / C);
  TORCH_CHECK_VALUE(fits, "prismkit::", op, ": C * N = ", C, " * ", N, " and C * tiles_y * tiles_x = ", C, " * ",
                    tiles_y, " * ", tiles_x, " must fit the int32 ids (at most 2^31 - 1)");
  return {C, N};
}

std::pair<int64_t, int64_t> check_means_conics(const char* op, const at::Tensor& means2d, const at::Tensor& conics) {
  check_rank(op, "means2d", means2d, 3, "[C, N, 2]");
  check_float_dtype(op, "means2d", means2d, /*cuda_float64=*/true);
  const int64_t C = means2d.size(0), N = means2d.size(1);
  check_shape(op, "means2d", means2d, {C, N, 2}, "[C, N, 2]");
  check_shape(op, "conics", conics, {C, N, 3}, "[C, N, 3] (a, b, c of the inverse 2-D covariance)");
  return {C, N};
}

bool check_opacities(const char* op, const at::Tensor& opacities, int64_t C, int64_t N) {
  TORCH_CHECK_VALUE(opacities.defined() && (opacities.dim() == 1 || opacities.dim() == 2), "prismkit::", op,
                    ": 'opacities' must be a 1-D tensor [N] or a 2-D tensor [C, N], got ", describe(opacities));
  const bool camera_opacities = opacities.dim() == 2;
  if (camera_opacities)
    check_shape(op, "opacities", opacities, {C, N}, "[C, N]");
  else
    check_shape(op, "opacities", opacities, {N}, "[N]");
  return camera_opacities;
}

std::pair<int64_t, int64_t> check_tile_grid(const char* op, const at::Tensor& means2d, const at::Tensor& tile_offsets,
                                            const at::Tensor& flatten_ids, int64_t width, int64_t height,
                                            int64_t tile_size) {
  const int64_t C = means2d.size(0);
  check_positive(op, "width", width);
  check_positive(op, "height", height);
  check_positive(op, "tile_size", tile_size);
  const int64_t tiles_x = (width + tile_size - 1) / tile_size, tiles_y = (height + tile_size - 1) / tile_size;
  check_shape(op, "tile_offsets", tile_offsets, {C, tiles_y, tiles_x},
              "[C, tiles_y, tiles_x] (tile_bin's, for this image and tile_size)");
  check_int32_on(op, "tile_offsets", tile_offsets, "means2d", means2d);
  check_rank(op, "flatten_ids", flatten_ids, 1, "[M] (tile_bin's)");
  check_int32_on(op, "flatten_ids", flatten_ids, "means2d", means2d);
  return {tiles_x, tiles_y};
}

RasterArgs check_rasterize_args(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                const at::Tensor& features, const at::Tensor& opacities, const at::Tensor& tile_offsets,
                                const at::Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size,
                                const std::optional<at::Tensor>& backgrounds) {
  const auto [C, N] = check_means_conics(op, means2d, conics);
  TORCH_CHECK_VALUE(features.defined() && (features.dim() == 2 || features.dim() == 3), "prismkit::", op,
                    ": 'features' must be a 2-D tensor [N, D] or a 3-D tensor [C, N, D], got ", describe(features));
  const bool camera_features = features.dim() == 3;
  const int64_t D = features.size(-1);
  if (camera_features)
    check_shape(op, "features", features, {C, N, D}, "[C, N, D]");
  else
    check_shape(op, "features", features, {N, D}, "[N, D]");
  TORCH_CHECK_VALUE(D >= 1, "prismkit::", op, ": 'features' must have D >= 1 channels, got ", describe(features));
  const bool camera_opacities = check_opacities(op, opacities, C, N);
  check_like(op, "conics", conics, "means2d", means2d);
  check_like(op, "features", features, "means2d", means2d);
  check_like(op, "opacities", opacities, "means2d", means2d);
  if (backgrounds.has_value()) {
    check_shape(op, "backgrounds", *backgrounds, {C, D}, "[C, D]");
    check_like(op, "backgrounds", *backgrounds, "means2d", means2d);
  }
  const auto [tiles_x, tiles_y] = check_tile_grid(op, means2d, tile_offsets, flatten_ids, width, height, tile_size);
  return {C, N, D, flatten_ids.size(0), tiles_x, tiles_y, camera_features, camera_opacities};
}

RasterArgs check_rasterize_backward_args(const at::Tensor& means2d, const at::Tensor& conics,
                                         const at::Tensor& features, const at::Tensor& opacities,
                                         const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                         int64_t height, int64_t tile_size,
                                         const std::optional<at::Tensor>& backgrounds, const at::Tensor& alpha,
                                         const at::Tensor& last_ids, const at::Tensor& grad_render,
                                         const at::Tensor& grad_alpha) {
  const char* op = "rasterize_backward";
  const RasterArgs a = check_rasterize_args(op, means2d, conics, features, opacities, tile_offsets, flatten_ids, width,
                                            height, tile_size, backgrounds);
  check_shape(op, "alpha", alpha, {a.C, height, width, 1}, "[C, H, W, 1]");
  check_like(op, "alpha", alpha, "means2d", means2d);
  check_shape(op, "last_ids", last_ids, {a.C, height, width}, "[C, H, W]");
  check_int32_on(op, "last_ids", last_ids, "means2d", means2d);
  check_shape(op, "grad_render", grad_render, {a.C, height, width, a.D}, "[C, H, W, D]");
  check_like(op, "grad_render", grad_render, "means2d", means2d);
  check_shape(op, "grad_alpha", grad_alpha, {a.C, height, width, 1}, "[C, H, W, 1]");
  check_like(op, "grad_alpha", grad_alpha, "means2d", means2d);
  return a;
}

void check_tile_lists_cpu(const char* op, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                          const RasterArgs& a, const at::Tensor& last_ids) {
  const at::Tensor off = tile_offsets.contiguous();
  const int32_t* o = off.const_data_ptr<int32_t>();
  const int64_t tiles = off.numel();
  int64_t previous = 0;
  for (int64_t t = 0; t < tiles; ++t) {
    TORCH_CHECK_INDEX(o[t] >= previous && o[t] <= a.M, "prismkit::", op,
                      ": 'tile_offsets' must be non-decreasing within [0, M = ", a.M,
                      "] (tile_bin's, for these flatten_ids), got ", o[t], " at flat tile ", t);
    previous = o[t];
  }
  if (a.M > 0) {
    const auto [lo, hi] = at::aminmax(flatten_ids);
    const int64_t low = lo.item<int32_t>(), high = hi.item<int32_t>();
    TORCH_CHECK_INDEX(low >= 0 && high < a.C * a.N, "prismkit::", op,
                      ": 'flatten_ids' must lie in [0, C * N = ", a.C * a.N, "), got values in [", low, ", ", high,
                      "]");
  }
  if (last_ids.defined() && last_ids.numel() > 0) {
    const auto [lo, hi] = at::aminmax(last_ids);
    check_last_ids_range(op, lo.item<int32_t>(), hi.item<int32_t>(), a.M);
  }
}

void check_last_ids_range(const char* op, int64_t low, int64_t high, int64_t M) {
  TORCH_CHECK_INDEX(low >= -1 && high < M, "prismkit::", op, ": 'last_ids' must lie in [-1, M = ", M,
                    ") (rasterize's, for these flatten_ids), got values in [", low, ", ", high, "]");
}

}  // namespace prismkit::splat
