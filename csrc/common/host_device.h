// PRISMKIT_HD: a function both the host compiler and nvcc compile, for the torch-free math headers
// a core's CPU kernel and its .cu share (csrc/splat/projection.h, csrc/quant/kmeans1d_math.h).
#pragma once

#if defined(__CUDACC__)
#define PRISMKIT_HD __host__ __device__ inline
#else
#define PRISMKIT_HD inline
#endif
