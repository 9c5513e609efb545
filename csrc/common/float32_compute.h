// float16 and bfloat16 on the CPU: the CPU kernels compute in float32 (their vector code is
// float32 and float64 only; no reduced-precision kernel has been written or measured), so an op
// called with reduced-precision tensors converts its floating inputs to float32, runs, and converts
// its floating outputs back to the input dtype: one extra pass over inputs and outputs, and the
// argument checks run again on the converted call. The op checks its arguments before converting,
// so a mix of dtypes is still an error.
//
//   if (is_reduced_float(x)) return in_float32(&topk_encode_cpu, x, W_enc, b_enc, k);
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace prismkit {

inline bool is_reduced_float(const at::Tensor& t) {
  return t.defined() && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16);
}

namespace detail {

inline at::Tensor up(const at::Tensor& t) { return is_reduced_float(t) ? t.to(at::kFloat) : t; }
inline std::optional<at::Tensor> up(const std::optional<at::Tensor>& t) {
  return t.has_value() ? std::optional<at::Tensor>(up(*t)) : std::nullopt;
}
template <typename A>
const A& up(const A& a) {
  return a;
}

inline at::Tensor down(const at::Tensor& t, c10::ScalarType dtype) {
  return t.scalar_type() == at::kFloat ? t.to(dtype) : t;  // integer outputs (indices, counts) stay
}
template <typename... T>
std::tuple<T...> down(const std::tuple<T...>& outputs, c10::ScalarType dtype) {
  return std::apply([&](const auto&... o) { return std::tuple<T...>(down(o, dtype)...); }, outputs);
}

inline c10::ScalarType reduced_dtype_of() { return c10::ScalarType::Undefined; }
template <typename A, typename... Rest>
c10::ScalarType reduced_dtype_of(const A& a, const Rest&... rest) {
  if constexpr (std::is_same_v<std::decay_t<A>, at::Tensor>)
    if (is_reduced_float(a)) return a.scalar_type();
  return reduced_dtype_of(rest...);
}

}  // namespace detail

// kernel(args converted to float32), with its floating outputs converted back to the dtype of the
// first reduced-precision tensor argument.
template <typename Ret, typename... Params, typename... Args>
Ret in_float32(Ret (*kernel)(Params...), const Args&... args) {
  const c10::ScalarType dtype = detail::reduced_dtype_of(args...);
  return detail::down(kernel(detail::up(args)...), dtype);
}

}  // namespace prismkit
