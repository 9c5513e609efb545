// Output allocation for the CPU kernels' large results.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdint>

namespace prismkit {

// at::empty, but a large CPU buffer is backed by 2 MiB transparent huge pages where the
// kernel allows them (THP "madvise" mode): a fresh allocation is page-faulted in as it is first
// written, and with 4 KiB pages those faults cost as much as the kernel's own work on a 600 MB
// weight gradient. Torch's allocator does the same only when THP_MEM_ALLOC_ENABLE=1 is set.
inline at::Tensor empty_for_large_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + t.nbytes();
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (t.device().is_cpu() && last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
  return t;
}

}  // namespace prismkit
