// prismkit._C: loading this module loads the library, whose static initializers register
// every op with the dispatcher (csrc/<core>/<core>_schemas.cpp and the kernel files). The Python module
// itself only reports how the library was built; ops are called through torch.ops.prismkit.
#include <pybind11/pybind11.h>

#include <c10/util/Exception.h>

#include <string>

#include "common/cpu_dispatch.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "prismkit compiled library: build facts (ops live in torch.ops.prismkit)";
  m.def("build_info", [] {
    py::dict info;
    info["version"] = PRISMKIT_VERSION;
    info["torch_version"] = PRISMKIT_TORCH_VERSION;
#ifdef PRISMKIT_WITH_CUDA
    info["with_cuda"] = true;
#else
    info["with_cuda"] = false;
#endif
    info["cuda_archs"] = std::string(PRISMKIT_CUDA_ARCHS);
#ifdef _OPENMP
    info["openmp"] = true;
#else
    info["openmp"] = false;
#endif
    return info;
  });
  m.def("cpu_capability", [] {
    py::dict cpu;
    cpu["path"] = prismkit::cpu_isa_name(prismkit::cpu_isa());
    cpu["best"] = prismkit::cpu_isa_name(prismkit::best_cpu_isa());
    cpu["requested"] = prismkit::cpu_isa_requested();  // PRISMKIT_CPU_CAPABILITY, "" when unset
    return cpu;
  });
  // For the tests, which run every path the CPU supports in one process.
  m.def("_set_cpu_capability", [](const std::string& name) {
    try {
      prismkit::set_cpu_isa(name);
    } catch (const c10::Error& e) {
      throw py::value_error(e.what_without_backtrace());
    }
  });
}
