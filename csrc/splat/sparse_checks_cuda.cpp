// check_sparse_values_cuda: the tile lists' checks (splat_checks_cuda.cpp), then coef_indices'
// range reduced on the device and read back (one more synchronization per call: an index out of
// range is an error here, where the official kernel rounds float indices unchecked).
#include "splat/sparse_checks.h"

#include <ATen/ops/aminmax.h>
#include <ATen/ops/stack.h>

namespace prismkit::splat {

at::Tensor check_sparse_values_cuda(const char* op, const SparseArgs& a, const at::Tensor& coef_indices,
                                    const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                                    const at::Tensor& last_ids) {
  check_tile_lists_cuda(op, tile_offsets, flatten_ids, a.raster, last_ids);
  if (coef_indices.numel() > 0) {
    const auto [lo, hi] = at::aminmax(coef_indices);
    const at::Tensor host = at::stack({lo.to(at::kLong), hi.to(at::kLong)}).to(at::kCPU);
    const int64_t* v = host.const_data_ptr<int64_t>();
    check_coef_index_range(op, v[0], v[1], a.num_coefs, a.levels > 0 ? "levels * L" : "num_coefs");
  }
  return coef_indices.to(at::kInt).contiguous();
}

}  // namespace prismkit::splat
