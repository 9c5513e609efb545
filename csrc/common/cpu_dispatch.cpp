// Which CPU path runs (common/cpu_dispatch.h). Compiled for the baseline instruction set, like every
// file that is not an *_isa.cpp.
#include "common/cpu_dispatch.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>

namespace prismkit {
namespace {

CpuIsa detect() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();  // cpuid, and whether the OS saves the wider registers (XCR0)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
    return CpuIsa::kAVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::kAVX2;
#endif
  return CpuIsa::kBaseline;
}

bool parse(const std::string& name, CpuIsa* isa) {
  if (name == "baseline" || name == "default" || name == "neon")
    *isa = CpuIsa::kBaseline;
  else if (name == "avx2")
    *isa = CpuIsa::kAVX2;
  else if (name == "avx512")
    *isa = CpuIsa::kAVX512;
  else
    return false;
  return true;
}

std::string requested_from_env() {
  const char* env = std::getenv("PRISMKIT_CPU_CAPABILITY");
  return env ? std::string(env) : std::string();
}

// The path at load time: the best supported, lowered (never raised) by the environment variable.
// An unknown value is ignored here and reported by python -m prismkit info and at import.
CpuIsa initial() {
  CpuIsa isa = detect(), wanted;
  const std::string env = requested_from_env();
  if (!env.empty() && parse(env, &wanted) && static_cast<int>(wanted) < static_cast<int>(isa)) isa = wanted;
  return isa;
}

std::atomic<int> current{static_cast<int>(initial())};

}  // namespace

CpuIsa cpu_isa() { return static_cast<CpuIsa>(current.load(std::memory_order_relaxed)); }

CpuIsa best_cpu_isa() {
  static const CpuIsa best = detect();
  return best;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAVX512: return "avx512";
    case CpuIsa::kAVX2: return "avx2";
    default:
#if defined(__aarch64__)
      return "neon";
#else
      return "baseline";
#endif
  }
}

std::string cpu_isa_requested() { return requested_from_env(); }

void set_cpu_isa(const std::string& name) {
  CpuIsa isa;
  TORCH_CHECK_VALUE(parse(name, &isa), "prismkit: CPU capability must be one of baseline, avx2, avx512, got '", name,
                    "'");
  TORCH_CHECK_VALUE(static_cast<int>(isa) <= static_cast<int>(best_cpu_isa()), "prismkit: this CPU cannot run the ",
                    name, " path (its best is ", cpu_isa_name(best_cpu_isa()), ")");
  current.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace prismkit
