// Small dense vector kernels for the CPU ops (float and double). They are compiled once
// per instruction set (AVX-512, AVX2+FMA, baseline x86-64) and picked at load time by the
// CPU the library runs on, so the wheel stays portable.
#pragma once

#include <cstdint>

namespace prismkit {

// y[0:n] += a * x[0:n]
void axpy(float a, const float* x, float* y, int64_t n);
void axpy(double a, const double* x, double* y, int64_t n);

// sum of a[i] * b[i]
float dot(const float* a, const float* b, int64_t n);
double dot(const double* a, const double* b, int64_t n);

// The first i with !(p[i] <= w) (a larger value, or a NaN on either side), or n if none.
int64_t first_not_at_most(const float* p, int64_t n, float w);
int64_t first_not_at_most(const double* p, int64_t n, double w);

}  // namespace prismkit
