// What an *_isa.cpp file is compiled for. CMake compiles each such file once per instruction set
// with PRISMKIT_ISA set to baseline, avx2 or avx512 (aarch64: baseline, which is NEON there) and
// that set's compiler flags; this header turns that into the vector width and register count the
// kernels size their tiles by, and into the name of the table the file exports.
//
// Rules for *_isa.cpp files (the build checks the second, build_support/check_isa_objects.py):
//   - no torch headers (they are not on these files' include path): raw pointers and sizes only;
//   - every function in an anonymous namespace except the exported table function, and no
//     out-of-line instantiation of an inline or template function from a shared header (std::
//     included): such a weak symbol compiled with AVX-512 could be picked by the linker for the
//     baseline path too, and crash a CPU without AVX-512.
#pragma once

#include <cstdint>

#if !defined(PRISMKIT_ISA)
#error "*_isa.cpp files are compiled by CMake once per instruction set, with PRISMKIT_ISA set"
#endif

#define PRISMKIT_ISA_CONCAT2(a, b) a##_##b
#define PRISMKIT_ISA_CONCAT(a, b) PRISMKIT_ISA_CONCAT2(a, b)
// PRISMKIT_ISA_TABLE(window_kernels) -> window_kernels_avx2 (the exported table function)
#define PRISMKIT_ISA_TABLE(name) PRISMKIT_ISA_CONCAT(name, PRISMKIT_ISA)

#define PRISMKIT_INLINE __attribute__((always_inline)) inline

namespace prismkit::isa {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;  // zmm
constexpr int kVectorRegisters = 32;
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;  // ymm
constexpr int kVectorRegisters = 16;
#elif defined(__aarch64__)
constexpr int kVectorBytes = 16;  // NEON q registers
constexpr int kVectorRegisters = 32;
#else
constexpr int kVectorBytes = 16;  // SSE2 xmm (the x86-64 baseline)
constexpr int kVectorRegisters = 16;
#endif

// Elements of T in one vector register.
template <typename T>
constexpr int64_t kLanes = kVectorBytes / static_cast<int64_t>(sizeof(T));

// One register's worth of floats or doubles (GCC vector extensions), and loads and stores of them
// from any element-aligned address. Through an under-aligned vector type rather than memcpy: GCC
// expands a 32-byte memcpy into two 16-byte moves, and a vector stored in halves and read back
// whole stalls on store forwarding.
typedef float VecF __attribute__((vector_size(kVectorBytes)));
typedef double VecD __attribute__((vector_size(kVectorBytes)));
typedef float UnalignedVecF __attribute__((vector_size(kVectorBytes), aligned(4), may_alias));
typedef double UnalignedVecD __attribute__((vector_size(kVectorBytes), aligned(8), may_alias));

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  using type = VecF;
};
template <>
struct VecOf<double> {
  using type = VecD;
};
template <typename T>
using Vec = typename VecOf<T>::type;

namespace {
PRISMKIT_INLINE VecF load(const float* p) { return *reinterpret_cast<const UnalignedVecF*>(p); }
PRISMKIT_INLINE VecD load(const double* p) { return *reinterpret_cast<const UnalignedVecD*>(p); }
PRISMKIT_INLINE void store(float* p, VecF v) { *reinterpret_cast<UnalignedVecF*>(p) = v; }
PRISMKIT_INLINE void store(double* p, VecD v) { *reinterpret_cast<UnalignedVecD*>(p) = v; }
}  // namespace

}  // namespace prismkit::isa
