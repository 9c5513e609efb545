// CUDA glue of prismkit::rasterize: checks (the tile lists' values reduced on the device, one
// transfer), allocation, device guard and stream; the kernel is cuda/splat/rasterize.cu.
#include "common/cuda_glue.h"
#include "splat/splat_checks.h"
#include "cuda/splat/rasterize.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor> rasterize_cuda(const at::Tensor& means2d, const at::Tensor& conics,
                                                              const at::Tensor& features, const at::Tensor& opacities,
                                                              const at::Tensor& tile_offsets,
                                                              const at::Tensor& flatten_ids, int64_t width,
                                                              int64_t height, int64_t tile_size,
                                                              const std::optional<at::Tensor>& backgrounds) {
  const char* op = "rasterize";
  const RasterArgs a = check_rasterize_args(op, means2d, conics, features, opacities, tile_offsets, flatten_ids, width,
                                            height, tile_size, backgrounds);
  check_rasterize_cuda_limits(op, a, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  check_tile_lists_cuda(op, tile_offsets, flatten_ids, a);
  at::Tensor render = at::empty({a.C, height, width, a.D}, means2d.options());
  at::Tensor alpha = at::empty({a.C, height, width, 1}, means2d.options());
  at::Tensor last_ids = at::empty({a.C, height, width}, tile_offsets.options());
  const at::Tensor m = means2d.contiguous(), co = conics.contiguous(), f = features.contiguous();
  const at::Tensor op_ = opacities.contiguous(), off = tile_offsets.contiguous(), ids = flatten_ids.contiguous();
  const at::Tensor bg = backgrounds.has_value() ? backgrounds->contiguous() : at::Tensor();
  C10_CUDA_CHECK(cuda::launch_rasterize(
      cuda_dtype(means2d.scalar_type()), m.const_data_ptr(), co.const_data_ptr(), f.const_data_ptr(), a.camera_features,
      op_.const_data_ptr(), a.camera_opacities, bg.defined() ? bg.const_data_ptr() : nullptr,
      off.const_data_ptr<int32_t>(), ids.const_data_ptr<int32_t>(), a.C, a.N, a.D, a.M, width, height, tile_size,
      render.data_ptr(), alpha.data_ptr(), last_ids.data_ptr<int32_t>(), c10::cuda::getCurrentCUDAStream()));
  return {render, alpha, last_ids};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("rasterize", &rasterize_cuda); }

}  // namespace prismkit::splat
