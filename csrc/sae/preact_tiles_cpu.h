// Sweeps the pre-activations A @ Bm.T + bias one [row block, column tile] at a time, for
// the SAE ops that reduce them on the fly without the dense matrix (threshold_encode,
// latent_stats). Each row block is handled by one thread from start to end, so per-row
// state needs no locking. Tile sizes follow row_topk_cpu.h (measured there).
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>

#include "sae/row_topk_cpu.h"

namespace prismkit::sae {

// fn(r0, nr, c0, nc, z) with z the row-major [nr, nc] tile of A[r0:r0+nr] @ Bm[c0:c0+nc].T
// + bias (bias indexed by row when bias_per_row, else by column). Columns of one row block
// arrive in increasing order.
template <typename T, typename TileFn>
void for_each_preact_tile(const at::Tensor& A, const at::Tensor& Bm, const at::Tensor& bias, bool bias_per_row,
                          const TileFn& fn) {
  const int64_t R = A.size(0), C = Bm.size(0);
  if (R == 0 || C == 0) return;
  const int64_t ROW_BLOCK = row_block_size(R);
  const int64_t num_blocks = (R + ROW_BLOCK - 1) / ROW_BLOCK;
  at::parallel_for(0, num_blocks, 1, [&](int64_t block_begin, int64_t block_end) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // see row_topk_cpu
    at::Tensor tile = at::empty({ROW_BLOCK * COL_TILE}, A.options());
    for (int64_t blk = block_begin; blk < block_end; ++blk) {
      const int64_t r0 = blk * ROW_BLOCK, nr = std::min(ROW_BLOCK, R - r0);
      const at::Tensor a_blk = A.narrow(0, r0, nr);
      for (int64_t c0 = 0; c0 < C; c0 += COL_TILE) {
        const int64_t nc = std::min(COL_TILE, C - c0);
        at::Tensor z = tile.narrow(0, 0, nr * nc).view({nr, nc});
        const at::Tensor b = bias_per_row ? bias.narrow(0, r0, nr).unsqueeze(1) : bias.narrow(0, c0, nc);
        at::addmm_out(z, b, a_blk, Bm.narrow(0, c0, nc).t());
        fn(r0, nr, c0, nc, static_cast<const T*>(z.const_data_ptr<T>()));
      }
    }
  });
}

}  // namespace prismkit::sae
