"""Command line: ``python -m prismkit info`` and ``python -m prismkit demo``."""

from __future__ import annotations

import argparse
import sys


def info() -> None:
    import torch

    import prismkit
    from prismkit import _build_info, _cpu
    from prismkit.ops import registry

    build = prismkit._C.build_info()
    print(f"prismkit {prismkit.__version__}")
    print(f"torch {torch.__version__} (prismkit built against {build['torch_version']})")
    if build["with_cuda"]:
        archs = ", ".join(f"sm_{a}" for a in build["cuda_archs"].split(";") if a)
        print(f"CUDA kernels: built for {archs} (torch CUDA {_build_info.TORCH_CUDA_VERSION})")
    else:
        print("CUDA kernels: not built (torch has no CUDA; cuda/ was only compile-checked)")
    print(f"CUDA device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none visible'}")
    try:
        import triton

        print(f"Triton: {triton.__version__}")
        triton_ok = True
    except ImportError:
        print("Triton: not installed (the encoders cannot run on CUDA tensors)")
        triton_ok = False
    print(f"CPU: {_cpu.processor()}; kernel path: {_cpu.describe()}")
    print(f"CPU threads: {torch.get_num_threads()} (OpenMP: {'yes' if build['openmp'] else 'no'})")

    has = torch._C._dispatch_has_kernel_for_dispatch_key
    rows = []
    for core in registry.cores():
        for op in core.ops:
            cpu = "C++" if has(f"prismkit::{op.name}", "CPU") else "-"
            if op.cuda == "triton":
                cuda = "Triton" if triton_ok else "Triton (missing)"
            elif build["with_cuda"]:
                cuda = "CUDA C++"
            else:
                cuda = "- (built without CUDA kernels)" if torch.version.cuda else "-"
            rows.append((core.name, op.name, cpu, cuda))
    width = max(len(r[1]) for r in rows)
    print(f"\n{'core':7}{'op (torch.ops.prismkit.*)'.ljust(width + 2)}CPU    CUDA")
    for core, name, cpu, cuda in rows:
        print(f"{core:7}{name.ljust(width + 2)}{cpu.ljust(7)}{cuda}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prismkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, build and which kernel serves each op on each device")
    demo = sub.add_parser(
        "demo",
        help="fused ops vs plain PyTorch on synthetic data (time, memory, result check)",
        description="SAE encode+decode (TopK, BatchTopK, Feature Choice) at GPT-2-small sizes and a CSWin-T "
        "forward, prismkit against the plain-PyTorch way, on built-in synthetic data. About a minute on 2 CPU "
        "cores; --small takes seconds but its shapes are too small to show speed (see the printed note).",
    )
    demo.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu (default) or cuda")
    demo.add_argument("--small", action="store_true", help="tiny sizes (seconds): a smoke test, not a speed test")
    demo.add_argument("--repeat", type=int, default=3, help="timed calls per measurement, >= 1 (median)")
    args = parser.parse_args(argv)
    if args.command == "info":
        info()
        return 0
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)")
    from prismkit import demo as demo_module

    return 0 if demo_module.run(args.device, args.small, args.repeat) else 1


if __name__ == "__main__":
    sys.exit(main())
