// Where the attention windows of cross-shaped window attention lie, and which tokens they hold.
//
// Mode "cross": heads [0, heads/2) (channels [0, C/2)) attend within vertical stripes, full
// height by split_size columns; heads [heads/2, heads) within horizontal stripes, split_size rows
// by full width. Mode "full": every head attends over the whole map. When the map does not divide
// into stripes it is padded, centred (top/left get pad // 2) as the official segmentation backbone
// does; padded positions hold no token (their q, k, v are zero).
//
// LePE, a depthwise 3x3 conv of V, runs inside each window: a neighbour outside the window or
// outside the image contributes nothing (the official per-stripe zero padding).
#pragma once

#include <cstdint>
#include <vector>

#include "cswin/cswin_checks.h"

namespace prismkit::cswin {

struct WindowGrid {
  int64_t win_h, win_w;  // window size in padded coordinates
  int64_t top, left;     // padding before the image
  int64_t n_wy, n_wx;    // windows down and across
  int64_t count() const { return n_wy * n_wx; }
  int64_t size() const { return win_h * win_w; }
};

// The window grid of one branch: 0 = vertical stripes, 1 = horizontal stripes, or "full".
inline WindowGrid window_grid(const CSWinArgs& a, int branch) {
  int64_t win_h = a.H, win_w = a.W;
  if (!a.full) (branch == 0 ? win_w : win_h) = a.split_size;
  const int64_t pad_h = (win_h - a.H % win_h) % win_h, pad_w = (win_w - a.W % win_w) % win_w;
  return {win_h, win_w, pad_h / 2, pad_w / 2, (a.H + pad_h) / win_h, (a.W + pad_w) / win_w};
}

inline int branch_of_head(const CSWinArgs& a, int64_t head) { return a.full ? 0 : (head < a.heads / 2 ? 0 : 1); }

// The real tokens of every window of a grid, and each token's LePE neighbours.
struct WindowTables {
  WindowGrid grid;
  std::vector<int64_t> start;      // window w's tokens are tokens[start[w]:start[w+1]]
  std::vector<int64_t> tokens;     // y * W + x, row-major within the window
  std::vector<int32_t> neighbour;  // [token slot][9]: the neighbour's slot within its window, or -1

  WindowTables(const CSWinArgs& a, int branch) : grid(window_grid(a, branch)) {
    const WindowGrid& g = grid;
    start.assign(g.count() + 1, 0);
    std::vector<int32_t> slot(g.size());
    for (int64_t wy = 0; wy < g.n_wy; ++wy) {
      for (int64_t wx = 0; wx < g.n_wx; ++wx) {
        const int64_t w = wy * g.n_wx + wx, first = static_cast<int64_t>(tokens.size());
        for (int64_t iy = 0; iy < g.win_h; ++iy) {
          for (int64_t ix = 0; ix < g.win_w; ++ix) {
            const int64_t y = wy * g.win_h + iy - g.top, x = wx * g.win_w + ix - g.left;
            const bool real = y >= 0 && y < a.H && x >= 0 && x < a.W;
            slot[iy * g.win_w + ix] = real ? static_cast<int32_t>(tokens.size() - first) : -1;
            if (real) tokens.push_back(y * a.W + x);
          }
        }
        for (int64_t iy = 0; iy < g.win_h; ++iy) {
          for (int64_t ix = 0; ix < g.win_w; ++ix) {
            if (slot[iy * g.win_w + ix] < 0) continue;
            for (int tap = 0; tap < 9; ++tap) {
              const int64_t ny = iy + tap / 3 - 1, nx = ix + tap % 3 - 1;
              const bool inside = ny >= 0 && ny < g.win_h && nx >= 0 && nx < g.win_w;
              neighbour.push_back(inside ? slot[ny * g.win_w + nx] : -1);
            }
          }
        }
        start[w + 1] = static_cast<int64_t>(tokens.size());
      }
    }
  }
};

}  // namespace prismkit::cswin
