// prismkit::kmeans1d on the CPU: exact 1-D k-means of each row (sort, prefix sums, dynamic
// programming). Clusters of sorted values are contiguous, so the optimum is a choice of k - 1 split
// points; layer m of the program, D_m(i) = min_j D_{m-1}(j) + cost(j, i), has its leftmost optimal
// j non-decreasing in i (the cost satisfies the quadrangle inequality), so each layer is computed
// by divide and conquer in O(n log n): O(n log n + k n log n) per row, and only the layers 1..k-1
// are stored (the last is needed at i = n only; the splits are recovered by one scan per layer).
// Rows run in parallel; within a large row the divide and conquer's top levels are breadth-first,
// and its subtrees then run in parallel. Deterministic: leftmost optima everywhere, fixed order.
#include "quant/kmeans1d_math.h"
#include "quant/quant_checks.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

namespace prismkit::quant {
namespace {

struct Best {
  double value;
  int64_t split;
};

struct Row {
  std::vector<double> P1, P2;  // prefix sums of the sorted, centered values
  double mean = 0;
  int64_t n = 0;
};

// A row's values in ascending order, in float64. float64 rows: std::sort. Rows that are float32
// (or narrower, converted exactly): an LSD radix sort of the bit patterns mapped to unsigned
// integers of the same order (negative: all bits flipped; positive: the sign bit set), three passes
// of 11, 11 and 10 bits, O(n); std::sort was about half of a Linear weight's clustering time.
std::vector<double> sorted_row(const double* v, int64_t n) {
  std::vector<double> sorted(v, v + n);
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

std::vector<double> sorted_row(const float* v, int64_t n) {
  std::vector<uint32_t> keys(n), scratch(n);
  std::vector<int64_t> counts(3 * 2048, 0);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, v + i, sizeof(u));
    const uint32_t key = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    keys[i] = key;
    ++counts[key & 2047];
    ++counts[2048 + ((key >> 11) & 2047)];
    ++counts[4096 + (key >> 22)];
  }
  for (int pass = 0; pass < 3; ++pass) {
    int64_t* c = counts.data() + pass * 2048;
    int64_t offset = 0;
    for (int d = 0; d < 2048; ++d) {
      const int64_t count = c[d];
      c[d] = offset;
      offset += count;
    }
    const int shift = 11 * pass;
    for (int64_t i = 0; i < n; ++i) scratch[c[(keys[i] >> shift) & 2047]++] = keys[i];
    keys.swap(scratch);
  }
  std::vector<double> sorted(n);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = keys[i];
    const uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    float f;
    std::memcpy(&f, &u, sizeof(f));
    sorted[i] = f;
  }
  return sorted;
}

template <typename T>
Row prepare_row(const T* v, int64_t n) {
  const std::vector<double> sorted = sorted_row(v, n);
  Row row;
  row.n = n;
  double sum = 0;
  for (double x : sorted) sum += x;
  row.mean = sum / static_cast<double>(n);
  row.P1.assign(n + 1, 0.0);
  row.P2.assign(n + 1, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double x = sorted[i] - row.mean;
    row.P1[i + 1] = row.P1[i] + x;
    row.P2[i + 1] = row.P2[i] + x * x;
  }
  return row;
}

// min over j in [jlo, jhi] of D_{m-1}(j) + cost(j, i), leftmost; jlo <= jhi.
Best best_split(const Row& row, const double* prev, int64_t i, int64_t jlo, int64_t jhi) {
  Best b{std::numeric_limits<double>::infinity(), jlo};
  const double* P1 = row.P1.data();
  const double* P2 = row.P2.data();
  for (int64_t j = jlo; j <= jhi; ++j) {
    const double v = previous_layer(prev, P1, P2, j) + segment_cost(P1, P2, j, i);
    if (v < b.value) b = {v, j};
  }
  return b;
}

struct Task {
  int64_t lo, hi, jlo, jhi;  // compute D_m(i) for i in [lo, hi]; optimal splits lie in [jlo, jhi]
};

// Layer m for every i in [m, n] into cur (divide and conquer on the monotone optimal split).
void layer(const Row& row, const double* prev, double* cur, int64_t m) {
  const auto run = [&](const Task& t, const auto& self) -> void {
    if (t.lo > t.hi) return;
    const int64_t mid = t.lo + (t.hi - t.lo) / 2;
    const Best b = best_split(row, prev, mid, t.jlo, std::min(t.jhi, mid - 1));
    cur[mid] = b.value;
    self(Task{t.lo, mid - 1, t.jlo, b.split}, self);
    self(Task{mid + 1, t.hi, b.split, t.jhi}, self);
  };
  // Breadth-first until there are enough independent subtrees to share among the threads.
  std::vector<Task> tasks{{m, row.n, m - 1, row.n - 1}};
  const size_t enough = 8 * static_cast<size_t>(std::max(1, at::get_num_threads()));
  while (!tasks.empty() && tasks.size() < enough && !at::in_parallel_region()) {
    std::vector<Best> best(tasks.size());
    at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const Task& task = tasks[t];
        const int64_t mid = task.lo + (task.hi - task.lo) / 2;
        best[t] = best_split(row, prev, mid, task.jlo, std::min(task.jhi, mid - 1));
      }
    });
    std::vector<Task> next;
    for (size_t t = 0; t < tasks.size(); ++t) {
      const Task& task = tasks[t];
      const int64_t mid = task.lo + (task.hi - task.lo) / 2;
      cur[mid] = best[t].value;
      if (task.lo <= mid - 1) next.push_back({task.lo, mid - 1, task.jlo, best[t].split});
      if (mid + 1 <= task.hi) next.push_back({mid + 1, task.hi, best[t].split, task.jhi});
    }
    tasks.swap(next);
  }
  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) run(tasks[t], run);
  });
}

// Centers (ascending) and boundaries (midpoints of consecutive centers) of one row.
template <typename T>
void cluster_row(const T* v, int64_t n, int64_t k, double* centers, double* boundaries) {
  const Row row = prepare_row(v, n);
  // layers[m] = D_m over i in [0, n] for m in [1, k - 1]; D_1 is stored too, so the next layer's
  // O(n log n) lookups read it instead of each dividing again
  std::vector<std::vector<double>> layers(std::max<int64_t>(k, 2));
  layers[1].assign(n + 1, 0.0);
  for (int64_t i = 1; i <= n; ++i) layers[1][i] = segment_cost(row.P1.data(), row.P2.data(), 0, i);
  for (int64_t m = 2; m < k; ++m) {
    layers[m].assign(n + 1, 0.0);
    layer(row, layers[m - 1].data(), layers[m].data(), m);
  }
  // splits[m] = where cluster m (1-based) ends; cluster m spans [splits[m-1], splits[m])
  std::vector<int64_t> splits(k + 1, 0);
  splits[k] = n;
  for (int64_t m = k; m >= 2; --m) {
    splits[m - 1] = best_split(row, layers[m - 1].data(), splits[m], m - 1, splits[m] - 1).split;
  }
  for (int64_t c = 0; c < k; ++c) {
    const int64_t a = splits[c], b = splits[c + 1];
    centers[c] = (row.P1[b] - row.P1[a]) / static_cast<double>(b - a) + row.mean;
  }
  for (int64_t c = 0; c + 1 < k; ++c) boundaries[c] = 0.5 * (centers[c] + centers[c + 1]);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> kmeans1d_cpu(const at::Tensor& values, int64_t k) {
  const RowsShape shape = check_kmeans1d_args(values, k);
  check_kmeans1d_values(values);
  // float64 rows stay float64; every narrower type is exact in float32, which the radix sort takes
  const bool wide = values.scalar_type() == at::kDouble;
  const at::Tensor v = values.to(wide ? at::kDouble : at::kFloat).contiguous();
  at::Tensor centers = at::empty({shape.R, k}, v.options().dtype(at::kDouble));
  at::Tensor boundaries = at::empty({shape.R, k - 1}, v.options().dtype(at::kDouble));
  double* cp = centers.data_ptr<double>();
  double* bp = boundaries.data_ptr<double>();
  const auto rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (wide) {
        cluster_row(v.const_data_ptr<double>() + r * shape.n, shape.n, k, cp + r * k, bp + r * (k - 1));
      } else {
        cluster_row(v.const_data_ptr<float>() + r * shape.n, shape.n, k, cp + r * k, bp + r * (k - 1));
      }
    }
  };
  // One row (a Linear weight) shares its divide and conquer among the threads; many rows (Conv2d's
  // kernels) go one per thread. (at::parallel_for marks even a one-element range as a parallel
  // region, which would keep the row's own parallel loops serial.)
  if (shape.R == 1) {
    rows(0, 1);
  } else {
    at::parallel_for(0, shape.R, 1, rows);
  }
  return {centers.to(values.scalar_type()), boundaries.to(values.scalar_type())};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("kmeans1d", &kmeans1d_cpu); }

}  // namespace prismkit::quant
