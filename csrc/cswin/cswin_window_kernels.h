// The per-window math of cross-shaped window attention on the CPU: one (batch, head, window)
// at a time, with the window's q, k and v gathered into small buffers that stay in L1/L2.
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.h"

namespace prismkit::cswin {

template <typename T>
struct WindowTask {
  const T* qkv;                  // this batch item's [H*W, 3C] rows
  T* out;                        // forward: [H*W, C]
  const T* grad_out;             // backward: [H*W, C]
  T* grad_qkv;                   // backward: [H*W, 3C]
  T* grad_weight;                // backward: LePE weight gradient [C * 9], accumulated into
  T* grad_bias;                  // backward: LePE bias gradient [C], accumulated into
  int64_t C, head_dim, channel;  // the head's channels are [channel, channel + head_dim)
  const int64_t* tokens;         // the window's real tokens (y * W + x)
  int64_t L;                     // how many
  const int32_t* neighbour;      // [L][9] LePE neighbour slots (-1: none)
  int64_t phantoms;              // padded keys that stay in the softmax ("zeros" padding)
  T scale;
  const T* lepe_weight;  // [C * 9]
  const T* lepe_bias;    // [C]
};

// Requests the rows a window task reads (its head's q, k, v and, backward, dO) and writes, so a
// thread can fetch the next window while it computes this one: a stripe's tokens lie a whole image
// row apart in memory, beyond what the hardware prefetcher follows.
template <typename T>
inline void prefetch_window(const WindowTask<T>& t, bool backward) {
  const int64_t bytes = t.head_dim * static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < t.L; ++i) {
    const char* row = reinterpret_cast<const char*>(t.qkv + t.tokens[i] * 3 * t.C + t.channel);
    const int64_t part = t.C * static_cast<int64_t>(sizeof(T));
    for (int64_t at = 0; at < bytes; at += 64) {
      __builtin_prefetch(row + at);
      __builtin_prefetch(row + part + at);
      __builtin_prefetch(row + 2 * part + at);
      if (backward)
        __builtin_prefetch(reinterpret_cast<const char*>(t.grad_out + t.tokens[i] * t.C + t.channel) + at);
      else
        __builtin_prefetch(reinterpret_cast<const char*>(t.out + t.tokens[i] * t.C + t.channel) + at, 1);
    }
  }
}

// The per-window kernels, compiled once per instruction set (cswin_window_kernels_isa.cpp).
struct WindowKernels {
  // Scratch elements (of float, or of double) a window of L tokens needs.
  int64_t (*scratch_size)(int64_t L, int64_t head_dim, bool is_double);
  // out[token, channel:channel+head_dim] = softmax(scale q k^T) v + LePE(v), for the window's tokens.
  void (*forward_f)(const WindowTask<float>& task, float* scratch);
  void (*forward_d)(const WindowTask<double>& task, double* scratch);
  // Recomputes the window's softmax and writes grad_qkv for its tokens and the head's channels;
  // accumulates the LePE weight and bias gradients.
  void (*backward_f)(const WindowTask<float>& task, float* scratch);
  void (*backward_d)(const WindowTask<double>& task, double* scratch);
};

PRISMKIT_ISA_DISPATCH(WindowKernels, window_kernels)

inline int64_t window_scratch_size(int64_t L, int64_t head_dim, bool is_double) {
  return window_kernels().scratch_size(L, head_dim, is_double);
}
inline void window_forward(const WindowTask<float>& t, float* scratch) { window_kernels().forward_f(t, scratch); }
inline void window_forward(const WindowTask<double>& t, double* scratch) { window_kernels().forward_d(t, scratch); }
inline void window_backward(const WindowTask<float>& t, float* scratch) { window_kernels().backward_f(t, scratch); }
inline void window_backward(const WindowTask<double>& t, double* scratch) { window_kernels().backward_d(t, scratch); }

}  // namespace prismkit::cswin
