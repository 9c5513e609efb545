// CPU instruction-set dispatch, one pattern for every CPU kernel (CONTRIBUTING.md, "CPU
// kernels"): the hot code lives in csrc/<core>/<name>_isa.cpp, which CMake compiles once per
// instruction set (x86-64: baseline SSE2, AVX2+FMA, AVX-512; aarch64: NEON) with vector widths and
// register tiles for that set (common/isa_config.h); each compilation exports its kernels as a
// table of function pointers, name_<isa>(). name() returns the table of the path in use, chosen
// once at load time from the running CPU, the way ATen's CPU_CAPABILITY dispatch works:
//   - the best path the CPU supports (and the OS enables),
//   - lowered by the environment variable PRISMKIT_CPU_CAPABILITY (baseline, avx2, avx512; a
//     path the CPU lacks falls back to the best it has), so every path can be tested and
//     benchmarked on one machine,
//   - or switched by set_cpu_isa() (the tests run every supported path in one process).
#pragma once

#include <cstdint>
#include <string>

namespace prismkit {

// Ordered: a higher path needs everything a lower one does. On aarch64 the only path is NEON,
// reported as "neon" under kBaseline (NEON is part of the base ISA there).
enum class CpuIsa : int { kBaseline = 0, kAVX2 = 1, kAVX512 = 2 };

CpuIsa cpu_isa();                           // the path in use
CpuIsa best_cpu_isa();                      // the best this CPU supports
const char* cpu_isa_name(CpuIsa isa);       // "baseline" ("neon" on aarch64), "avx2", "avx512"
std::string cpu_isa_requested();            // PRISMKIT_CPU_CAPABILITY as set ("" when unset)
void set_cpu_isa(const std::string& name);  // throws for a name this CPU (or build) cannot run

}  // namespace prismkit

// Declares the per-path tables name_<isa>() that this architecture compiles and defines name(),
// which returns the table of the path in use (the lookup is one load and a compare per call).
#if defined(__x86_64__)
#define PRISMKIT_ISA_DISPATCH(Table, name)                      \
  const Table& name##_baseline();                               \
  const Table& name##_avx2();                                   \
  const Table& name##_avx512();                                 \
  inline const Table& name() {                                  \
    switch (::prismkit::cpu_isa()) {                            \
      case ::prismkit::CpuIsa::kAVX512: return name##_avx512(); \
      case ::prismkit::CpuIsa::kAVX2: return name##_avx2();     \
      default: return name##_baseline();                        \
    }                                                           \
  }
#else
#define PRISMKIT_ISA_DISPATCH(Table, name) \
  const Table& name##_baseline();          \
  inline const Table& name() { return name##_baseline(); }
#endif
