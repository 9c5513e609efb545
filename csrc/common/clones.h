// Compile a function once per instruction set (AVX-512, AVX2, baseline x86-64) and pick the
// version at load time from the CPU the library runs on, so the wheel stays portable. Feature
// names, not "arch=" names: an arch clone is chosen only on that exact CPU model. The helpers a
// cloned function calls must be force-inlined into it to be compiled for its instruction set.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PRISMKIT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PRISMKIT_CLONES
#endif

#define PRISMKIT_INLINE __attribute__((always_inline)) inline
