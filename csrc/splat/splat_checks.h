// The splat ops' argument contract on the C++ side (CPU kernels and CUDA glue alike). The Python
// side (fake implementations) is python/prismkit/ops/splat/checks.py: same checks, same order,
// same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <utility>
#include <vector>

namespace prismkit::splat {

struct ProjectArgs {
  int64_t C, N;  // cameras, Gaussians
};

// means [N, 3], quats [N, 4] (w, x, y, z; any norm but zero), scales [N, 3], viewmats [C, 4, 4]
// (world to camera), Ks [C, 3, 3]: one floating dtype and device; width, height >= 1;
// 0 < near_plane < far_plane; eps2d >= 0; radius_clip >= 0.
ProjectArgs check_project_gaussians_args(const char* op, const at::Tensor& means, const at::Tensor& quats,
                                         const at::Tensor& scales, const at::Tensor& viewmats, const at::Tensor& Ks,
                                         int64_t width, int64_t height, double near_plane, double far_plane,
                                         double eps2d, double radius_clip);

// The forward's inputs, radii [C, N] int32 (the forward's output) and the gradients of means2d
// [C, N, 2], conics [C, N, 3] and depths [C, N] in means' dtype and device.
ProjectArgs check_project_gaussians_backward_args(const at::Tensor& means, const at::Tensor& quats,
                                                  const at::Tensor& scales, const at::Tensor& viewmats,
                                                  const at::Tensor& Ks, int64_t width, int64_t height, double eps2d,
                                                  const at::Tensor& radii, const at::Tensor& grad_means2d,
                                                  const at::Tensor& grad_conics, const at::Tensor& grad_depths);

// means2d [C, N, 2] floating, radii [C, N] int32, depths [C, N] in means2d's dtype, one device;
// tile_size, tiles_x, tiles_y >= 1; C * N and the tile count fit the int32 ids.
ProjectArgs check_tile_bin_args(const at::Tensor& means2d, const at::Tensor& radii, const at::Tensor& depths,
                                int64_t tile_size, int64_t tiles_x, int64_t tiles_y);

struct RasterArgs {
  int64_t C, N, D, M;        // cameras, Gaussians, feature channels, intersections
  int64_t tiles_x, tiles_y;  // ceil(width / tile_size), ceil(height / tile_size)
  bool camera_features;      // features [C, N, D] (else [N, D], shared by the cameras)
  bool camera_opacities;     // opacities [C, N] (else [N])
};

// means2d [C, N, 2], conics [C, N, 3], features [C, N, D] or [N, D] (D >= 1), opacities [N] or
// [C, N], backgrounds [C, D] or None: one floating dtype and device; tile_offsets [C, tiles_y,
// tiles_x] int32 and flatten_ids [M] int32 on that device (tile_bin's outputs); width, height,
// tile_size >= 1.
RasterArgs check_rasterize_args(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                const at::Tensor& features, const at::Tensor& opacities, const at::Tensor& tile_offsets,
                                const at::Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size,
                                const std::optional<at::Tensor>& backgrounds);

// The forward's arguments, its outputs alpha [C, H, W, 1] and last_ids [C, H, W] int32, and the
// gradients grad_render [C, H, W, D] and grad_alpha [C, H, W, 1].
RasterArgs check_rasterize_backward_args(const at::Tensor& means2d, const at::Tensor& conics,
                                         const at::Tensor& features, const at::Tensor& opacities,
                                         const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                         int64_t height, int64_t tile_size,
                                         const std::optional<at::Tensor>& backgrounds, const at::Tensor& alpha,
                                         const at::Tensor& last_ids, const at::Tensor& grad_render,
                                         const at::Tensor& grad_alpha);

// Value checks of CPU tile lists (they read the data): tile_offsets non-decreasing within
// [0, M], flatten_ids within [0, C * N), and, when given (the backward), last_ids within [-1, M).
// The CUDA glue reduces the same conditions on the device.
void check_tile_lists_cpu(const char* op, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                          const RasterArgs& a, const at::Tensor& last_ids = at::Tensor());

// The same conditions and messages on CUDA tensors, reduced on the device and read back in one
// transfer (one synchronization per call); splat_checks_cuda.cpp, built with the CUDA glue.
void check_tile_lists_cuda(const char* op, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                           const RasterArgs& a, const at::Tensor& last_ids = at::Tensor());

// The CUDA compositing kernels' limits (cuda/splat/rasterize.h): tile_size <= 16, the channel
// count, and the number of tiles on the grid.
void check_rasterize_cuda_limits(const char* op, const RasterArgs& a, int64_t tile_size);

// last_ids' value range, checked by both devices' tile-list checks with one message.
void check_last_ids_range(const char* op, int64_t low, int64_t high, int64_t M);

// The pieces the splat ops' contracts are written with (sparse_checks.cpp uses them too).
// 'name' must be a tensor of exactly this shape; layout names the dims ("[C, N, 2]").
void check_shape(const char* op, const char* name, const at::Tensor& t, const std::vector<int64_t>& sizes,
                 const char* layout);
void check_positive(const char* op, const char* name, int64_t v);
// t has the dtype and device of ref
void check_like(const char* op, const char* name, const at::Tensor& t, const char* ref_name, const at::Tensor& ref);
void check_int32_on(const char* op, const char* name, const at::Tensor& t, const char* ref_name, const at::Tensor& ref);
// means2d [C, N, 2] floating and conics [C, N, 3]; returns (C, N).
std::pair<int64_t, int64_t> check_means_conics(const char* op, const at::Tensor& means2d, const at::Tensor& conics);
// opacities [N] or [C, N]; returns whether per camera.
bool check_opacities(const char* op, const at::Tensor& opacities, int64_t C, int64_t N);
// width, height, tile_size >= 1, tile_offsets [C, tiles_y, tiles_x] int32, flatten_ids [M] int32;
// returns (tiles_x, tiles_y).
std::pair<int64_t, int64_t> check_tile_grid(const char* op, const at::Tensor& means2d, const at::Tensor& tile_offsets,
                                            const at::Tensor& flatten_ids, int64_t width, int64_t height,
                                            int64_t tile_size);

}  // namespace prismkit::splat
