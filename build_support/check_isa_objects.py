"""Build check for the per-instruction-set objects (csrc/*/*_isa.cpp, see csrc/common/isa_config.h).

    python build_support/check_isa_objects.py OBJECT [OBJECT ...]

Each *_isa.cpp is compiled once per instruction set. A weak (COMDAT) symbol defined in one of
those objects, such as an out-of-line copy of an inline or template function from a shared header,
exists once per compilation, and the linker keeps one of the copies for every caller: if it keeps
the AVX-512 one, a CPU without AVX-512 crashes on the baseline path. So these objects may define no
weak symbols; only their tables (strong, one name per instruction set) and local code. Exits 1 and
names the symbols otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

WEAK_TYPES = set("WwVvu")  # nm: weak object/function, unique global


def weak_symbols(path: str) -> list[str]:
    out = subprocess.run(["nm", "--defined-only", "-C", path], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[1] in WEAK_TYPES:
            found.append(parts[2])
    return found


def main(paths: list[str]) -> int:
    if not shutil.which("nm"):
        print("check_isa_objects: nm not found, skipping the weak-symbol check")
        return 0
    bad = 0
    for path in paths:
        for symbol in weak_symbols(path):
            print(f"{path}: weak symbol '{symbol}' (make it local, or keep it out of *_isa.cpp)")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
