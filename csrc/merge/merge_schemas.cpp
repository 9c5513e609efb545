// The merge core's schemas (token merging: PiToMe, ToMe, DivPrune). Kernels register themselves
// beside their code: csrc/merge/<op>_cpu.cpp (CPU); the CUDA kernels are Triton
// (triton_kernels/merge.py). Semantics: the wrappers' docstrings in
// python/prismkit/ops/merge/__init__.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(prismkit, m) {
  m.def(
      "token_merge(Tensor x, Tensor? size, Tensor dest, int num_out, str reduce=\"wavg\") -> (Tensor x_out, "
      "Tensor size_out)");
  m.def("pitome_energy(Tensor metric, float margin, float alpha=1.0, str kernel=\"elu\") -> Tensor");
  m.def(
      "merge_plan(Tensor metric, int r, str method, float margin=0.9, float alpha=1.0, bool class_token=True, "
      "bool prune=False) -> (Tensor dest, Tensor energy)");
  m.def("divprune_select(Tensor metric, int k) -> Tensor");
}
