// Walking a sparse code on the CPU: which entries belong to row r, and which row an entry
// belongs to, in either layout (fixed-k: row r holds entries [r*k, (r+1)*k); row-compressed:
// [offsets[r], offsets[r+1])).
#pragma once

#include <ATen/Parallel.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "common/vector_math.h"

namespace prismkit::sae {

struct SparseRows {
  const int64_t* offsets;  // nullptr in the fixed-k layout
  int64_t k;
  int64_t begin(int64_t r) const { return offsets ? offsets[r] : r * k; }
  int64_t end(int64_t r) const { return offsets ? offsets[r + 1] : (r + 1) * k; }

  std::vector<int64_t> row_of_entries(int64_t B, int64_t nnz) const {
    std::vector<int64_t> row(nnz);
    for (int64_t r = 0; r < B; ++r)
      for (int64_t p = begin(r); p < end(r); ++p) row[p] = r;
    return row;
  }
};

// The entries regrouped by latent (a stable counting sort): latent f's entries are
// order[start[f]:start[f+1]], with their rows and values copied alongside so the per-latent
// loops read them contiguously.
template <typename T>
struct EntriesByLatent {
  std::vector<int64_t> start, order, rows;
  std::vector<T> values;

  EntriesByLatent(const SparseRows& layout, int64_t B, int64_t nnz, const int64_t* indices, const T* vals, int64_t F)
      : start(F + 1, 0), order(nnz), rows(nnz), values(nnz) {
    for (int64_t p = 0; p < nnz; ++p) ++start[indices[p] + 1];
    for (int64_t f = 0; f < F; ++f) start[f + 1] += start[f];
    std::vector<int64_t> cursor(start.begin(), start.end() - 1);
    for (int64_t r = 0; r < B; ++r) {
      for (int64_t p = layout.begin(r); p < layout.end(r); ++p) {
        const int64_t q = cursor[indices[p]]++;
        order[q] = p;
        rows[q] = r;
        values[q] = vals[p];
      }
    }
  }
};

// The weight gradient of a decode, grad_weight[f] = sum over latent f's entries p of
// values[p] * grad_out[row(p)] (and value_sum[f] = sum of those values[p] when value_sum is
// given). With W given, also grad_values[p] = grad_out[row(p)] . W[f] in the same pass, so each
// grad_out row is gathered once for both. Threads own whole latents and write each row once.
template <typename T>
void weight_grad_by_latent(const SparseRows& layout, int64_t B, int64_t nnz, const int64_t* indices, const T* values,
                           const T* grad_out, int64_t d, int64_t F, T* grad_weight, T* value_sum, const T* W = nullptr,
                           T* grad_values = nullptr) {
  const EntriesByLatent<T> by_latent(layout, B, nnz, indices, values, F);
  std::vector<T> dots(W ? nnz : 0);
  at::parallel_for(0, F, 64, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f) {
      const int64_t q0 = by_latent.start[f], n = by_latent.start[f + 1] - q0;
      gather_sum(grad_out, d, by_latent.rows.data() + q0, by_latent.values.data() + q0, n, nnz - q0,
                 W ? W + f * d : nullptr, W ? dots.data() + q0 : nullptr, grad_weight + f * d);
      if (value_sum)
        value_sum[f] = std::accumulate(by_latent.values.begin() + q0, by_latent.values.begin() + q0 + n, T(0));
      if (W)
        for (int64_t q = q0; q < q0 + n; ++q) grad_values[by_latent.order[q]] = dots[q];
    }
  });
}

}  // namespace prismkit::sae
