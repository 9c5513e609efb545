// CUDA glue of prismkit::tile_bin: checks, allocation (the kernels' scratch memory from torch's
// caching allocator), device guard and stream; kernels in cuda/splat/tile_bin.cu. The number of
// intersections M sizes flatten_ids, so it is read back between the two launches: one
// device-to-host copy per call.
#include "common/cuda_glue.h"
#include "splat/splat_checks.h"
#include "cuda/splat/tile_bin.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor> tile_bin_cuda(const at::Tensor& means2d, const at::Tensor& radii,
                                                 const at::Tensor& depths, int64_t tile_size, int64_t tiles_x,
                                                 int64_t tiles_y) {
  const ProjectArgs a = check_tile_bin_args(means2d, radii, depths, tile_size, tiles_x, tiles_y);
  const c10::cuda::CUDAGuard guard(means2d.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cuda::DType dtype = cuda_dtype(means2d.scalar_type());
  const int64_t pairs = a.C * a.N, all_tiles = a.C * tiles_x * tiles_y;
  const at::Tensor m = means2d.contiguous(), r = radii.contiguous(), d = depths.contiguous();
  const at::TensorOptions bytes = radii.options().dtype(at::kByte);
  at::Tensor cum_counts = at::empty({pairs}, radii.options().dtype(at::kLong));
  const size_t count_bytes = cuda::tile_bin_count_workspace_bytes(pairs);
  at::Tensor count_workspace = at::empty({static_cast<int64_t>(count_bytes)}, bytes);
  C10_CUDA_CHECK(cuda::launch_tile_bin_count(dtype, m.const_data_ptr(), r.const_data_ptr<int32_t>(), pairs, tile_size,
                                             tiles_x, tiles_y, cum_counts.data_ptr<int64_t>(),
                                             count_workspace.data_ptr(), count_bytes, stream));
  const int64_t M = pairs > 0 ? cum_counts.select(0, pairs - 1).item<int64_t>() : 0;
  TORCH_CHECK_VALUE(M <= 2147483647, "prismkit::tile_bin: ", M,
                    " tile-Gaussian intersections exceed the int32 flatten_ids (at most 2^31 - 1)");
  at::Tensor tile_offsets = at::empty({a.C, tiles_y, tiles_x}, radii.options());
  at::Tensor flatten_ids = at::empty({M}, radii.options());
  const size_t bin_bytes = cuda::tile_bin_workspace_bytes(M, all_tiles);
  at::Tensor bin_workspace = at::empty({static_cast<int64_t>(bin_bytes)}, bytes);
  C10_CUDA_CHECK(cuda::launch_tile_bin(dtype, m.const_data_ptr(), r.const_data_ptr<int32_t>(), d.const_data_ptr(), a.C,
                                       a.N, tile_size, tiles_x, tiles_y, cum_counts.const_data_ptr<int64_t>(), M,
                                       tile_offsets.data_ptr<int32_t>(), flatten_ids.data_ptr<int32_t>(),
                                       bin_workspace.data_ptr(), bin_bytes, stream));
  return {tile_offsets, flatten_ids};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("tile_bin", &tile_bin_cuda); }

}  // namespace prismkit::splat
