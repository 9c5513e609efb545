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
TORCH_INC=$("$PY" -c "from torch.utils.cpp_extension import include_paths; print(' '.join('-isystem ' + p for p in include_paths()))")
PY_INC=$("$PY" -c "import sysconfig; print('-isystem ' + sysconfig.get_paths()['include'])")
PYBIND_INC=$("$PY" -m pybind11 --includes | sed 's/-I/-isystem /g')
ABI=$("$PY" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
FLAGS="-std=c++20 -O1 -fPIC -fopenmp -Wall -Wno-unused-function -Icsrc -I. -D_GLIBCXX_USE_CXX11_ABI=$ABI
  -DPRISMKIT_VERSION=\"check\" -DPRISMKIT_TORCH_VERSION=\"check\" -DPRISMKIT_CUDA_ARCHS=\"\""
# CUDA glue (*_cuda.cpp) needs the CUDA toolkit's headers for aarch64, which this check does not have.
files=$(git ls-files 'csrc/*.cpp' | grep -v '_cuda\.cpp$')
echo "compiling $(echo "$files" | wc -l) files for aarch64 with $($CXX --version | head -1)"
echo "$files" | xargs -P "$(nproc)" -I{} sh -c \
  "$CXX $FLAGS $TORCH_INC $PY_INC $PYBIND_INC \$(case {} in *_isa.cpp) echo -DPRISMKIT_ISA=baseline;; esac) \
   -c {} -o $OUT/\$(echo {} | tr / _).o || exit 255"
echo "NEON kernels under qemu-aarch64:"
$CXX -std=c++20 -O2 -static -DPRISMKIT_ISA=baseline -Icsrc tests/cpp/isa_kernels_test.cpp \
  csrc/common/vector_math_isa.cpp csrc/cswin/cswin_window_kernels_isa.cpp -o "$OUT/isa_kernels_test"
qemu-aarch64 "$OUT/isa_kernels_test"
