#include "common/checks.h"

#include <c10/core/ScalarType.h>

#include <sstream>

namespace prismkit {

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  std::ostringstream s;
  s << "a " << t.dim() << "-D " << c10::toString(t.scalar_type()) << " tensor of shape " << t.sizes()
    << " on " << t.device();
  return s.str();
}

void check_rank(const char* op, const char* name, const at::Tensor& t, int64_t rank, const char* layout) {
  TORCH_CHECK_VALUE(t.defined() && t.dim() == rank, "prismkit::", op, ": '", name, "' must be a ", rank,
                    "-D tensor ", layout, ", got ", describe(t));
}

void check_dtype(const char* op, const char* name, const at::Tensor& t,
                 std::initializer_list<c10::ScalarType> allowed) {
  for (auto dtype : allowed)
    if (t.scalar_type() == dtype) return;
  std::ostringstream want;
  const char* sep = "";
  for (auto dtype : allowed) {
    want << sep << c10::toString(dtype);
    sep = " or ";
  }
  TORCH_CHECK_TYPE(false, "prismkit::", op, ": '", name, "' must have dtype ", want.str(), " on ",
                   t.device().type(), ", got ", describe(t));
}

void check_float_dtype(const char* op, const char* name, const at::Tensor& t) {
  if (t.is_cuda())
    check_dtype(op, name, t, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  else
    check_dtype(op, name, t, {at::kFloat, at::kDouble});
}

void check_same_dtype(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                      const at::Tensor& ref) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), "prismkit::", op, ": '", name,
                   "' must have the dtype of '", ref_name, "' (", c10::toString(ref.scalar_type()), "), got ",
                   describe(t));
}

void check_same_device(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                       const at::Tensor& ref) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), "prismkit::", op, ": '", name, "' must be on the device of '",
                    ref_name, "' (", ref.device(), "), got ", describe(t));
}

void check_size(const char* op, const char* name, const at::Tensor& t, int64_t dim, int64_t expected,
                const char* what) {
  TORCH_CHECK_VALUE(t.size(dim) == expected, "prismkit::", op, ": '", name, "' must have size ", expected,
                    " in dim ", dim, " (", what, "), got ", describe(t));
}

}  // namespace prismkit
