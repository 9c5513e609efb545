// CUDA glue of prismkit::rasterize_backward: checks (the tile lists' values reduced on the device,
// one transfer), allocation, device guard and stream; the kernel is
// cuda/splat/rasterize_backward.cu. The kernel adds into zeroed buffers of the accumulation type
// (float32 for float16 and bfloat16, whose atomics would round at every add), converted at the end.
#include "common/cuda_glue.h"
#include "splat/splat_checks.h"
#include "cuda/splat/rasterize_backward.h"

#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& features, const at::Tensor& opacities,
    const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size,
    const std::optional<at::Tensor>& backgrounds, const at::Tensor& alpha, const at::Tensor& last_ids,
    const at::Tensor& grad_render, const at::Tensor& grad_alpha) {
  const char* op = "rasterize_backward";
  const RasterArgs a =
      check_rasterize_backward_args(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height,
                                    tile_size, backgrounds, alpha, last_ids, grad_render, grad_alpha);
  check_rasterize_cuda_limits(op, a, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  check_tile_lists_cuda(op, tile_offsets, flatten_ids, a, last_ids);
  const at::ScalarType dtype = means2d.scalar_type();
  const at::TensorOptions acc = means2d.options().dtype(dtype == at::kDouble ? at::kDouble : at::kFloat);
  at::Tensor grad_means2d = at::zeros({a.C, a.N, 2}, acc);
  at::Tensor grad_conics = at::zeros({a.C, a.N, 3}, acc);
  at::Tensor grad_features = at::zeros(features.sizes(), acc);
  at::Tensor grad_opacities = at::zeros(opacities.sizes(), acc);
  at::Tensor grad_backgrounds = at::zeros({a.C, a.D}, acc);  // stays zero without backgrounds
  const at::Tensor m = means2d.contiguous(), co = conics.contiguous(), f = features.contiguous();
  const at::Tensor op_ = opacities.contiguous(), off = tile_offsets.contiguous(), ids = flatten_ids.contiguous();
  const at::Tensor bg = backgrounds.has_value() ? backgrounds->contiguous() : at::Tensor();
  const at::Tensor al = alpha.contiguous(), li = last_ids.contiguous();
  const at::Tensor gr = grad_render.contiguous(), ga = grad_alpha.contiguous();
  C10_CUDA_CHECK(cuda::launch_rasterize_backward(
      cuda_dtype(dtype), m.const_data_ptr(), co.const_data_ptr(), f.const_data_ptr(), a.camera_features,
      op_.const_data_ptr(), a.camera_opacities, bg.defined() ? bg.const_data_ptr() : nullptr,
      off.const_data_ptr<int32_t>(), ids.const_data_ptr<int32_t>(), a.C, a.N, a.D, a.M, width, height, tile_size,
      al.const_data_ptr(), li.const_data_ptr<int32_t>(), gr.const_data_ptr(), ga.const_data_ptr(),
      grad_means2d.data_ptr(), grad_conics.data_ptr(), grad_features.data_ptr(), grad_opacities.data_ptr(),
      bg.defined() ? grad_backgrounds.data_ptr() : nullptr, c10::cuda::getCurrentCUDAStream()));
  auto down = [&](const at::Tensor& t) { return t.scalar_type() == dtype ? t : t.to(dtype); };
  return {down(grad_means2d), down(grad_conics), down(grad_features), down(grad_opacities), down(grad_backgrounds)};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("rasterize_backward", &rasterize_backward_cuda); }

}  // namespace prismkit::splat
