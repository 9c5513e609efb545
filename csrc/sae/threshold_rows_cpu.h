// The entry selection that threshold_encode and jumprelu_encode share on the CPU: tiles of the
// pre-activations z = x . W_enc[j] + b_enc[j] are swept once (preact_tiles_cpu.h) into per-token
// lists, which are then packed into the row-compressed layout (latents ascending per token).
//
// Entry (t, j) is kept when z is above both threshold[j] and 0 (NaN is kept, as in the other
// encoders); its value is z. With WINDOW (jumprelu_encode), an entry inside the straight-through
// estimator's window, -half_window < z - threshold[j] < half_window, is listed too: with value 0
// when it is not kept, and flagged in `in_window` either way.
#pragma once

#include "sae/preact_tiles_cpu.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <tuple>
#include <vector>

namespace prismkit::sae {

struct ThresholdRows {
  at::Tensor values, indices, offsets, in_window;  // in_window: undefined without WINDOW
};

template <typename T, bool WINDOW>
ThresholdRows threshold_rows(const at::Tensor& x, const at::Tensor& W_enc, const at::Tensor& b_enc,
                             const at::Tensor& thr, int64_t B, T half_window) {
  const T* theta = thr.const_data_ptr<T>();
  std::vector<std::vector<T>> row_values(B);
  std::vector<std::vector<int64_t>> row_latents(B);
  std::vector<std::vector<bool>> row_window(WINDOW ? B : 0);
  for_each_preact_tile<T>(x, W_enc, b_enc, /*bias_per_row=*/false,
                          [&](int64_t r0, int64_t nr, int64_t c0, int64_t nc, const T* z) {
                            for (int64_t i = 0; i < nr; ++i) {
                              auto& vals = row_values[r0 + i];
                              auto& lats = row_latents[r0 + i];
                              const T* zr = z + i * nc;
                              for (int64_t j = 0; j < nc; ++j) {
                                const T v = zr[j], t = theta[c0 + j];
                                const bool keep = !(v <= t) && !(v <= T(0));
                                if constexpr (WINDOW) {
                                  const T gap = v - t;
                                  const bool window = gap > -half_window && gap < half_window;
                                  if (keep || window) {
                                    vals.push_back(keep ? v : T(0));
                                    lats.push_back(c0 + j);
                                    row_window[r0 + i].push_back(window);
                                  }
                                } else if (keep) {
                                  vals.push_back(v);
                                  lats.push_back(c0 + j);
                                }
                              }
                            }
                          });
  ThresholdRows out;
  out.offsets = at::zeros({B + 1}, x.options().dtype(at::kLong));
  int64_t* off = out.offsets.data_ptr<int64_t>();
  for (int64_t r = 0; r < B; ++r) off[r + 1] = off[r] + (int64_t)row_latents[r].size();
  out.values = at::empty({off[B]}, x.options());
  out.indices = at::empty({off[B]}, x.options().dtype(at::kLong));
  if (WINDOW) out.in_window = at::empty({off[B]}, x.options().dtype(at::kBool));
  T* v = out.values.data_ptr<T>();
  int64_t* idx = out.indices.data_ptr<int64_t>();
  bool* win = WINDOW ? out.in_window.data_ptr<bool>() : nullptr;
  at::parallel_for(0, B, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      std::copy(row_values[r].begin(), row_values[r].end(), v + off[r]);
      std::copy(row_latents[r].begin(), row_latents[r].end(), idx + off[r]);
      if constexpr (WINDOW) std::copy(row_window[r].begin(), row_window[r].end(), win + off[r]);
    }
  });
  return out;
}

}  // namespace prismkit::sae
