#include "common/checks.h"

#include <c10/core/ScalarType.h>

#include <sstream>

namespace prismkit {

namespace {

// torch's Python names ("float32", not c10's "Float"), so messages read the same from
// C++ kernels and from the Python checks of the Triton kernels.
const char* dtype_name(c10::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

}  // namespace

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  std::ostringstream s;
  s << "a " << t.dim() << "-D " << dtype_name(t.scalar_type()) << " tensor of shape " << t.sizes() << " on "
    << t.device();
  return s.str();
}

void check_rank(const char* op, const char* name, const at::Tensor& t, int64_t rank, const char* layout) {
  TORCH_CHECK_VALUE(t.defined() && t.dim() == rank, "prismkit::", op, ": '", name, "' must be a ", rank, "-D tensor ",
                    layout, ", got ", describe(t));
}

void check_dtype(const char* op, const char* name, const at::Tensor& t,
                 std::initializer_list<c10::ScalarType> allowed) {
  for (auto dtype : allowed)
    if (t.scalar_type() == dtype) return;
  std::ostringstream want;
  const char* sep = "";
  for (auto dtype : allowed) {
    want << sep << dtype_name(dtype);
    sep = " or ";
  }
  TORCH_CHECK_TYPE(false, "prismkit::", op, ": '", name, "' must have dtype ", want.str(), " on ", t.device().type(),
                   ", got ", describe(t));
}

void check_float_dtype(const char* op, const char* name, const at::Tensor& t, bool cuda_float64) {
  if (t.is_cpu() || cuda_float64)
    check_dtype(op, name, t, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  else
    check_dtype(op, name, t, {at::kFloat, at::kHalf, at::kBFloat16});
}

void check_same_dtype(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                      const at::Tensor& ref) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), "prismkit::", op, ": '", name, "' must have the dtype of '",
                   ref_name, "' (", dtype_name(ref.scalar_type()), "), got ", describe(t));
}

void check_same_device(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                       const at::Tensor& ref) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), "prismkit::", op, ": '", name, "' must be on the device of '", ref_name,
                    "' (", ref.device(), "), got ", describe(t));
}

void check_size(const char* op, const char* name, const at::Tensor& t, int64_t dim, int64_t expected,
                const char* what) {
  TORCH_CHECK_VALUE(t.size(dim) == expected, "prismkit::", op, ": '", name, "' must have size ", expected, " in dim ",
                    dim, " (", what, "), got ", describe(t));
}

}  // namespace prismkit
