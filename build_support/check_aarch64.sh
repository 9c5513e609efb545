#!/usr/bin/env bash
# make check-aarch64: every C++ file of csrc/ compiled for aarch64 (Debian's aarch64-linux-gnu-g++)
# against the installed torch headers, and the torch-free unit test of the NEON kernels
# (tests/cpp/isa_kernels_test.cpp) run under qemu-aarch64. A compile check: no ARM speed claims.
#   build_support/check_aarch64.sh PYTHON
set -euo pipefail
PY=${1:-python3}
CXX=aarch64-linux-gnu-g++
OUT=build/aarch64
mkdir -p "$OUT"
mapfile -t TORCH_INC < <("$PY" -c "from torch.utils.cpp_extension import include_paths; print('\n'.join(include_paths()))")
PY_INC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
PYBIND_INC=$("$PY" -c "import pybind11; print(pybind11.get_include())")
ABI=$("$PY" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
FLAGS=(-std=c++20 -O1 -fPIC -fopenmp -Wall -Wno-unused-function -Icsrc -I. "-D_GLIBCXX_USE_CXX11_ABI=$ABI"
       '-DPRISMKIT_VERSION="check"' '-DPRISMKIT_TORCH_VERSION="check"' '-DPRISMKIT_CUDA_ARCHS=""')
for inc in "${TORCH_INC[@]}" "$PY_INC" "$PYBIND_INC"; do FLAGS+=(-isystem "$inc"); done

compile() {  # one file; the per-instruction-set files as the aarch64 build compiles them
  local extra=()
  [[ $1 == *_isa.cpp ]] && extra=(-DPRISMKIT_ISA=baseline)
  "$CXX" "${FLAGS[@]}" "${extra[@]}" -c "$1" -o "$OUT/$(echo "$1" | tr / _).o"
}

# CUDA glue (*_cuda.cpp) needs the CUDA toolkit's headers for aarch64, which this check does not have.
mapfile -t files < <(git ls-files 'csrc/*.cpp' | grep -v '_cuda\.cpp$')
echo "compiling ${#files[@]} files for aarch64 with $($CXX --version | head -1)"
jobs_max=$(nproc)
for f in "${files[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n; done
  compile "$f" &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
((status == 0)) || { echo "aarch64 compile check failed"; exit 1; }
echo "NEON kernels under qemu-aarch64:"
"$CXX" -std=c++20 -O2 -static -DPRISMKIT_ISA=baseline -Icsrc tests/cpp/isa_kernels_test.cpp \
  csrc/common/vector_math_isa.cpp csrc/cswin/cswin_window_kernels_isa.cpp csrc/splat/composite_kernels_isa.cpp \
  csrc/merge/similarity_kernels_isa.cpp -o "$OUT/isa_kernels_test"
qemu-aarch64 "$OUT/isa_kernels_test"
