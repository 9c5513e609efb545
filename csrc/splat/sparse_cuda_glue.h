// What the sparse coefficient ops' CUDA glue shares (rasterize_sparse_coef*_cuda.cpp,
// rasterize_sparse_features_cuda.cpp, language_relevancy_cuda.cpp): the argument checks common to
// all, then the contiguous inputs and the kernels' SparseRaster over them. float16 and bfloat16
// are computed in float32 (common/float32_compute.h), as on the CPU.
#pragma once

#include "common/cuda_glue.h"
#include "cuda/splat/rasterize_sparse.h"
#include "splat/sparse_checks.h"

namespace prismkit::splat {

struct SparseCudaInputs {
  at::Tensor means2d, conics, opacities, weights, indices, tile_offsets, flatten_ids;  // contiguous; indices int32
  cuda::SparseRaster raster;
};

// Call after the argument checks and under the device guard: the CUDA limits, the value checks
// (one synchronization), and the kernels' view of the inputs.
inline SparseCudaInputs sparse_cuda_inputs(const char* op, const SparseArgs& a, const at::Tensor& means2d,
                                           const at::Tensor& conics, const at::Tensor& opacities,
                                           const at::Tensor& coef_indices, const at::Tensor& coef_weights,
                                           const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                           int64_t height, int64_t tile_size,
                                           const at::Tensor& last_ids = at::Tensor()) {
  check_rasterize_cuda_limits(op, a.raster, tile_size);
  SparseCudaInputs in{means2d.contiguous(),
                      conics.contiguous(),
                      opacities.contiguous(),
                      coef_weights.contiguous(),
                      check_sparse_values_cuda(op, a, coef_indices, tile_offsets, flatten_ids, last_ids),
                      tile_offsets.contiguous(),
                      flatten_ids.contiguous(),
                      {}};
  in.raster = {in.means2d.const_data_ptr(),
               in.conics.const_data_ptr(),
               in.opacities.const_data_ptr(),
               in.weights.const_data_ptr(),
               a.raster.camera_opacities,
               in.indices.const_data_ptr<int32_t>(),
               in.tile_offsets.const_data_ptr<int32_t>(),
               in.flatten_ids.const_data_ptr<int32_t>(),
               a.raster.C,
               a.raster.N,
               a.P,
               a.raster.M,
               a.num_coefs,
               width,
               height,
               tile_size};
  return in;
}

}  // namespace prismkit::splat
