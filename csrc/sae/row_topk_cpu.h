// The fused "matmul then keep the best few per row" routine behind all three CPU
// encoders. For each row r of A ([R, d]) it keeps the cap(r) best entries of
//     relu(A[r] . Bm[c] + bias)      over the columns c of Bm ([C, d]),
// never holding more than one [ROW_BLOCK, COL_TILE] tile of pre-activations.
//   topk_encode:           A = x,     Bm = W_enc, bias per column, cap = k
//   batch_topk_encode:     the same, with a larger cap, then a global selection
//   feature_choice_encode: A = W_enc, Bm = x,     bias per row,    cap = capacity[latent]
//
// Ranking: larger value first; NaN ranks above every number (as torch.topk); equal values
// go to the lower column index. ReLU maps every non-positive number to +0.
#pragma once

#include "common/vector_math.h"
#include "sae/preact_tiles_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace prismkit::sae {

template <typename T>
struct Candidate {
  T value;
  int64_t index;
};

template <typename T>
inline bool ranks_above(const Candidate<T>& a, const Candidate<T>& b) {
  const bool a_nan = std::isnan(a.value), b_nan = std::isnan(b.value);
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a.value != b.value) return a.value > b.value;
  return a.index < b.index;
}

template <typename T>
inline T relu(T v) {
  return v > T(0) || std::isnan(v) ? v : T(0);
}

// Keeps the `cap` best candidates offered so far in a heap whose top is the worst kept.
// Candidates must be offered in increasing index order: then a newcomer that ties the
// worst kept value loses, and one plain comparison rejects almost every entry.
template <typename T>
class BestK {
 public:
  BestK(Candidate<T>* storage, int64_t cap) : heap_(storage), cap_(cap) {}

  void scan(const T* pre, int64_t n, int64_t first_index) {
    if (cap_ == 0) return;
    int64_t j = 0;
    for (; size_ < cap_ && j < n; ++j) {
      heap_[size_++] = {relu(pre[j]), first_index + j};
      std::push_heap(heap_, heap_ + size_, ranks_above<T>);
    }
    if (j == n) return;
    T worst = heap_[0].value;
    // Skip, vectorized, to the next entry that is not <= the worst kept value (a larger
    // value, or a NaN on either side); only those need the exact comparison.
    j += first_not_at_most(pre + j, n - j, worst);
    while (j < n) {
      const Candidate<T> c{relu(pre[j]), first_index + j};
      if (ranks_above(c, heap_[0])) {
        std::pop_heap(heap_, heap_ + cap_, ranks_above<T>);
        heap_[cap_ - 1] = c;
        std::push_heap(heap_, heap_ + cap_, ranks_above<T>);
        worst = heap_[0].value;
      }
      ++j;
      j += first_not_at_most(pre + j, n - j, worst);
    }
  }

  // Writes the kept candidates best first and returns how many there are.
  int64_t write_sorted(T* values, int64_t* indices) {
    std::sort(heap_, heap_ + size_, ranks_above<T>);
    for (int64_t i = 0; i < size_; ++i) {
      values[i] = heap_[i].value;
      indices[i] = heap_[i].index;
    }
    return size_;
  }

 private:
  Candidate<T>* heap_;
  int64_t cap_;
  int64_t size_ = 0;
};

struct RowTopKOutput {
  // Row r keeps cap(r) = caps ? caps[r] : uniform_cap candidates (at most C), written best
  // first at out_offsets ? out_offsets[r] : r * uniform_cap.
  const int64_t* caps = nullptr;
  int64_t uniform_cap = 0;
  const int64_t* out_offsets = nullptr;
  int64_t cap(int64_t r) const { return caps ? caps[r] : uniform_cap; }
  int64_t offset(int64_t r) const { return out_offsets ? out_offsets[r] : r * uniform_cap; }
};

template <typename T>
void row_topk_cpu(const at::Tensor& A, const at::Tensor& Bm, const at::Tensor& bias, bool bias_per_row,
                  const RowTopKOutput& out, T* out_values, int64_t* out_indices) {
  const int64_t C = Bm.size(0);
  for_each_row_block<T>(A, Bm, bias, bias_per_row, [&](int64_t r0, int64_t nr, const auto& sweep) {
    int64_t total_cap = 0;
    for (int64_t i = 0; i < nr; ++i) total_cap += std::min(out.cap(r0 + i), C);
    if (total_cap == 0) return;  // nothing to keep: skip the block's GEMM
    std::vector<Candidate<T>> storage(total_cap);
    std::vector<BestK<T>> best;
    best.reserve(nr);
    for (int64_t i = 0, at_ = 0; i < nr; ++i) {
      const int64_t cap = std::min(out.cap(r0 + i), C);
      best.emplace_back(storage.data() + at_, cap);
      at_ += cap;
    }
    sweep([&](int64_t c0, int64_t nc, const T* z) {
      for (int64_t i = 0; i < nr; ++i) best[i].scan(z + i * nc, nc, c0);
    });
    for (int64_t i = 0; i < nr; ++i) {
      const int64_t off = out.offset(r0 + i);
      best[i].write_sorted(out_values + off, out_indices + off);
    }
  });
}

}  // namespace prismkit::sae
