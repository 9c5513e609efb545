// The merge core's schemas (token merging: PiToMe, ToMe, DivPrune). Kernels register themselves
// beside their code: csrc/merge/<op>_cpu.cpp (CPU); the CUDA kernels are Triton
// (triton_kernels/merge.py). Semantics: the wrappers' docstrings in
// python/prismkit/ops/merge/__init__.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(prismkit, m) {
  m.def(
      "token_merge(Tensor x, Tensor? size, Tensor dest, int num_out, str reduce=\"wavg\") -> (Tensor x_out, "
      "Tensor size_out)");
}
