// The work list of the CPU kernels: one item per (branch, window, batch item, head).
#pragma once

#include <vector>

#include "cswin/cswin_window_kernels.h"
#include "cswin/cswin_windows.h"

namespace prismkit::cswin {

struct CSWinWork {
  struct Item {
    int branch;
    int64_t window, b, head;
  };
  std::vector<WindowTables> tables;  // per branch
  std::vector<Item> items;

  explicit CSWinWork(const CSWinArgs& a) {
    const int branches = a.full ? 1 : 2;
    for (int br = 0; br < branches; ++br) tables.emplace_back(a, br);
    // Heads of one branch share windows: adjacent items re-read the same qkv rows from cache.
    for (int br = 0; br < branches; ++br)
      for (int64_t b = 0; b < a.B; ++b)
        for (int64_t w = 0; w < tables[br].grid.count(); ++w)
          for (int64_t head = 0; head < a.heads; ++head)
            if (branch_of_head(a, head) == br) items.push_back({br, w, b, head});
  }

  // The task of one item, with the tensors' base pointers filled in by the caller.
  template <typename T>
  WindowTask<T> task(const CSWinArgs& a, const Item& it, T scale, const T* lepe_weight, const T* lepe_bias) const {
    const WindowTables& t = tables[it.branch];
    const int64_t first = t.start[it.window], L = t.start[it.window + 1] - first;
    WindowTask<T> task{};
    task.C = a.C;
    task.head_dim = a.head_dim;
    task.channel = it.head * a.head_dim;
    task.tokens = t.tokens.data() + first;
    task.L = L;
    task.neighbour = t.neighbour.data() + first * 9;
    task.phantoms = a.mask_padding ? 0 : t.grid.size() - L;
    task.scale = scale;
    task.lepe_weight = lepe_weight;
    task.lepe_bias = lepe_bias;
    return task;
  }
};

}  // namespace prismkit::cswin
