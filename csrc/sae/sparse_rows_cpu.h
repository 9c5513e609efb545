// Walking a sparse code on the CPU: which entries belong to row r, and which row an entry
// belongs to, in either layout (fixed-k: row r holds entries [r*k, (r+1)*k); row-compressed:
// [offsets[r], offsets[r+1])).
#pragma once

#include <cstdint>
#include <vector>

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

  EntriesByLatent(const SparseRows& layout, int64_t B, int64_t nnz, const int64_t* indices, const T* vals,
                  int64_t F)
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

}  // namespace prismkit::sae
