// Launch of prismkit::tile_bin's CUDA kernels (torch-free; glue in csrc/splat/tile_bin_cuda.cpp).
// Two launches because the output length M (the number of intersections) is data dependent: the
// caller counts, reads M back (one device-to-host copy), allocates, then bins.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/common/dtype.h"

namespace prismkit::cuda {

// Bytes of scratch memory launch_tile_bin_count needs for `pairs` = C * N (host-side query).
size_t tile_bin_count_workspace_bytes(int64_t pairs);

// cum_counts[i] = the number of tiles pairs 0..i touch (an inclusive sum), for the pairs
// i = camera * N + gaussian of means2d [C, N, 2] (dtype) and radii [C, N]. M = cum_counts[pairs - 1].
cudaError_t launch_tile_bin_count(DType dtype, const void* means2d, const int32_t* radii, int64_t pairs,
                                  int64_t tile_size, int64_t tiles_x, int64_t tiles_y, int64_t* cum_counts,
                                  void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Bytes of scratch memory launch_tile_bin needs for M intersections over C * tiles_y * tiles_x tiles.
size_t tile_bin_workspace_bytes(int64_t M, int64_t all_tiles);

// The intersections as 64-bit keys (camera * tiles + tile) << 32 | float32 bits of the depth with
// values camera * N + gaussian, radix-sorted (stable, so depth ties keep Gaussian order); writes
// flatten_ids [M] and tile_offsets [C, tiles_y, tiles_x] (each tile's first position, a lower
// bound, so an empty tile gets the next one's start). Needs M < 2^31 and C * tiles < 2^31.
cudaError_t launch_tile_bin(DType dtype, const void* means2d, const int32_t* radii, const void* depths, int64_t C,
                            int64_t N, int64_t tile_size, int64_t tiles_x, int64_t tiles_y, const int64_t* cum_counts,
                            int64_t M, int32_t* tile_offsets, int32_t* flatten_ids, void* workspace,
                            size_t workspace_bytes, cudaStream_t stream);

}  // namespace prismkit::cuda
