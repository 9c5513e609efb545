// What the CUDA compositing forward and backward (rasterize.cu, rasterize_backward.cu) share: the
// block's tile and the thread's pixel, the channel chunk, and the staging of a batch of the tile's
// Gaussians in shared memory.
//
// Run-time D: a block owns one (camera, tile) and one chunk of CH channels (blockIdx.y), with CH a
// compiled power of two up to 32 (16 for double) chosen from D at launch; each thread keeps its
// pixel's CH channels in registers and the chunk's feature rows of a batch sit in shared memory.
// Every chunk's block recomputes the same alphas with the same code (so the same transmittance and
// the same stopping point); the last chunk masks the channels past D. No width is compiled in and
// nothing is padded in memory.
#pragma once

#include <cstdint>

#include "cuda/common/device_math.cuh"
#include "cuda/splat/splat_math.cuh"

namespace prismkit::cuda::splat {

constexpr int kRasterThreads = 256;  // the launch bound: tile_size <= 16

// Channels per chunk: the smallest compiled width that holds D, else the widest.
inline int chunk_width(int64_t D, bool is_double) {
  const int widest = is_double ? 16 : 32;
  int w = 1;
  while (w < D && w < widest) w *= 2;
  return w;
}

// Threads per block: the tile's pixels rounded up to whole warps, so every warp is full for the
// backward's shuffles (the extra threads own no pixel).
inline int raster_threads(int64_t tile_size) { return static_cast<int>((tile_size * tile_size + 31) / 32 * 32); }

// One batch of Gaussians per block size: ids, feature rows, 6 parameters and CH channels each.
template <typename A>
__host__ __device__ inline size_t raster_smem_bytes(int threads, int CH) {
  return static_cast<size_t>(threads) * (2 * sizeof(int32_t) + (6 + CH) * sizeof(A));
}

template <typename T>
struct RasterParams {
  const T *means2d, *conics, *features, *opacities, *backgrounds;
  const int32_t *tile_offsets, *flatten_ids;
  int64_t C, N, D, M, width, height, tile_size, tiles_x, tiles_y;
  bool camera_features, camera_opacities;
};

// The launchers' untyped arguments as RasterParams<T> (the forward's and the backward's alike).
template <typename T>
RasterParams<T> raster_params(const void* means2d, const void* conics, const void* features, bool camera_features,
                              const void* opacities, bool camera_opacities, const void* backgrounds,
                              const int32_t* tile_offsets, const int32_t* flatten_ids, int64_t C, int64_t N, int64_t D,
                              int64_t M, int64_t width, int64_t height, int64_t tile_size) {
  return {static_cast<const T*>(means2d),
          static_cast<const T*>(conics),
          static_cast<const T*>(features),
          static_cast<const T*>(opacities),
          static_cast<const T*>(backgrounds),
          tile_offsets,
          flatten_ids,
          C,
          N,
          D,
          M,
          width,
          height,
          tile_size,
          (width + tile_size - 1) / tile_size,
          (height + tile_size - 1) / tile_size,
          camera_features,
          camera_opacities};
}

// The batch in shared memory: fid (camera * N + gaussian), feature row, (mx, my, a, b, c,
// opacity) and the chunk's CH channels per Gaussian.
template <typename A>
struct Stage {
  int32_t *fid, *row;
  A *geom, *feat;
};

template <typename A>
__device__ __forceinline__ Stage<A> carve(unsigned char* smem, int batch) {
  Stage<A> s;
  s.fid = reinterpret_cast<int32_t*>(smem);
  s.row = s.fid + batch;
  s.geom = reinterpret_cast<A*>(s.row + batch);  // batch is a multiple of 32: aligned
  s.feat = s.geom + 6 * batch;
  return s;
}

// The flat [C, H, W] index of thread q's pixel in this block's tile, or -1 if it owns none.
template <typename T>
__device__ __forceinline__ int64_t pixel_of(const RasterParams<T>& p, int q) {
  const int64_t tiles = p.tiles_x * p.tiles_y, k = blockIdx.x;
  const int64_t camera = k / tiles, t = k % tiles;
  const int64_t ts = p.tile_size;
  if (q >= ts * ts) return -1;
  const int64_t x = (t % p.tiles_x) * ts + q % ts, y = (t / p.tiles_x) * ts + q / ts;
  if (x >= p.width || y >= p.height) return -1;
  return (camera * p.height + y) * p.width + x;
}

// Pixel (x, y)'s centre (x + 0.5, y + 0.5).
template <typename A, typename T>
__device__ __forceinline__ void pixel_centre(const RasterParams<T>& p, int q, A* px, A* py) {
  const int64_t t = blockIdx.x % (p.tiles_x * p.tiles_y), ts = p.tile_size;
  *px = static_cast<A>((t % p.tiles_x) * ts + q % ts) + A(0.5);
  *py = static_cast<A>((t / p.tiles_x) * ts + q / ts) + A(0.5);
}

// What a compositing block and one of its threads own: the thread's pixel (pixel_of) and its
// centre, the block's camera, its channel chunk [c0, c0 + nch) and its tile's range [begin, end) of
// flatten_ids. The forward and the backward kernel start from the same.
template <typename A>
struct BlockTile {
  int64_t pix;
  A px, py;
  int64_t camera, c0;
  int nch;
  int64_t begin, end;
};

template <typename A, int CH, typename T>
__device__ __forceinline__ BlockTile<A> block_tile(const RasterParams<T>& p, int tr) {
  BlockTile<A> b;
  b.pix = pixel_of(p, tr);
  pixel_centre(p, tr, &b.px, &b.py);
  b.camera = blockIdx.x / (p.tiles_x * p.tiles_y);
  b.c0 = static_cast<int64_t>(blockIdx.y) * CH;
  b.nch = static_cast<int>(p.D - b.c0 < CH ? p.D - b.c0 : CH);
  b.begin = p.tile_offsets[blockIdx.x];
  b.end = blockIdx.x + 1 < gridDim.x ? p.tile_offsets[blockIdx.x + 1] : p.M;
  return b;
}

// Stages the n Gaussians at flatten_ids[first + dir * j], j < n (dir = 1 front to back, -1 back to
// front), and their channels [c0, c0 + nch) (zeros up to CH; CH = 0 stages no channels). Every
// thread of the block calls it.
template <int CH, typename A, typename T>
__device__ __forceinline__ void stage_batch(const RasterParams<T>& p, const Stage<A>& s, int64_t first, int dir, int n,
                                            int64_t c0, int nch) {
  const int tr = threadIdx.x;
  if (tr < n) {
    const int32_t fid = p.flatten_ids[first + dir * tr];
    const int32_t g = static_cast<int32_t>(fid % p.N);
    s.fid[tr] = fid;
    s.row[tr] = p.camera_features ? fid : g;
    A* geo = s.geom + 6 * tr;
    geo[0] = to_acc(p.means2d[int64_t(fid) * 2]);
    geo[1] = to_acc(p.means2d[int64_t(fid) * 2 + 1]);
    geo[2] = to_acc(p.conics[int64_t(fid) * 3]);
    geo[3] = to_acc(p.conics[int64_t(fid) * 3 + 1]);
    geo[4] = to_acc(p.conics[int64_t(fid) * 3 + 2]);
    geo[5] = to_acc(p.opacities[p.camera_opacities ? fid : g]);
    // a Gaussian with a non-finite parameter is skipped (as on the CPU): zero opacity never reaches 1/255
    bool ok = true;
#pragma unroll
    for (int k = 0; k < 6; ++k) ok = ok && finite_(geo[k]);
    if (!ok) geo[5] = A(0);
  }
  __syncthreads();
  if constexpr (CH > 0) {  // CH = 0: geometry only (the sparse kernels, sparse_tile.cuh)
    // consecutive threads read consecutive channels of a row
    for (int e = tr; e < n * CH; e += blockDim.x) {
      const int j = e / CH, k = e % CH;
      s.feat[e] = k < nch ? to_acc(p.features[int64_t(s.row[j]) * p.D + c0 + k]) : A(0);
    }
    __syncthreads();
  }
}

// Sums v[0, N) over the warp and scatters the sums: afterwards lane l holds, in v[0], the sum of
// element l / (32 / N) (N a power of two <= 32; the lanes of a group of 32 / N hold the same sum).
template <int N, int OFFSET, typename A>
__device__ __forceinline__ void reduce_scatter(A* v, int lane) {
  if constexpr (N > 1) {
    constexpr int H = N / 2;
    const bool upper = (lane & OFFSET) != 0;
#pragma unroll
    for (int i = 0; i < H; ++i) {
      const A send = upper ? v[i] : v[i + H];
      const A keep = upper ? v[i + H] : v[i];
      v[i] = keep + __shfl_xor_sync(0xffffffffu, send, OFFSET);
    }
    reduce_scatter<H, OFFSET / 2>(v, lane);
  } else if constexpr (OFFSET > 0) {
    v[0] += __shfl_xor_sync(0xffffffffu, v[0], OFFSET);
    reduce_scatter<1, OFFSET / 2>(v, lane);
  }
}

}  // namespace prismkit::cuda::splat
