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

}  // namespace prismkit::sae
