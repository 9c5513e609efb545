"""Run the benchmark suite, print one table per core and write bench/results/<device>.json.

    python bench/run.py                      # CPU, all cases (paper sizes), ~16 minutes on 2 cores
    python bench/run.py --cases small        # seconds
    python bench/run.py --device cuda        # GPU rows (bf16), for make gpu-check
    python bench/run.py -k cswin_tiny --merge   # re-measure some rows, keep the file's others
    PRISMKIT_CPU_CAPABILITY=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
        MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/run.py    # the AVX2 path on an AVX-512 machine
                                                             # (make bench-avx2), both sides on AVX2

Each result row pairs a prismkit measurement (pytest-benchmark median) with one baseline timed in
the same rounds, interleaved with it (see bench/conftest.py). CPU peak memory is the rise of the process's
peak resident set size during one call (prismkit/_measure.py); GPU peak memory is
torch.cuda.max_memory_allocated beyond the inputs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_results  # noqa: E402

from prismkit.ops import registry  # noqa: E402


def suites() -> list[str]:
    """bench/<core>.py and the core's method-level bench/<core>_*.py, for every registered core
    (files without benchmark tests, such as sae_quality.py, contribute none)."""
    found = []
    for core in registry.cores():
        found += sorted(f for f in os.listdir(HERE) if f == f"{core.name}.py" or f.startswith(f"{core.name}_"))
    return found


def device_label(device: str) -> tuple[str, str]:
    """(description stored in the file, file stem). CPU files are named after the instruction-set
    path prismkit's kernels ran (cpu-2core-avx512.json, cpu-2core-avx2.json), and say which processor
    ran them and which ISA torch's own kernels were held to (ATEN_CPU_CAPABILITY and friends), so
    both sides of each ratio are known."""
    if device == "cuda":
        name = torch.cuda.get_device_name()
        stem = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-").split("-")[0]
        return name, stem
    from prismkit import _cpu

    threads, path = torch.get_num_threads(), _cpu.capability()["path"]
    torch_isa = {k: os.environ[k] for k in TORCH_ISA_VARIABLES if k in os.environ}
    torch_note = ", ".join(f"{k}={v}" for k, v in torch_isa.items()) or "torch's default ISA"
    return (
        f"{_cpu.processor()}, prismkit CPU path {_cpu.describe()}, {torch_note} "
        f"({threads} threads, {os.cpu_count()} logical cores)",
        f"cpu-{threads}core-{path}",
    )


# What holds torch's own CPU kernels (the baselines) to an instruction set, for same-ISA ratios.
TORCH_ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def to_rows(entries, peaks):
    rows = []
    for e in entries:
        info = e["extra_info"]
        ms = e["stats"]["median"] * 1e3
        for name, base in info["baselines"].items():
            row = {
                "core": info["core"], "op": info["op"], "mode": info["mode"], "case": info["case"],
                "impl": info["impl"], "baseline": name, "median_ms": round(ms, 4),
                "baseline_median_ms": round(base["median_ms"], 4), "speedup": round(base["median_ms"] / ms, 4),
                "peak_mem_mb": round(info["peak_mem_mb"], 2), "baseline_peak_mem_mb": round(base["peak_mem_mb"], 2),
                "rounds": e["stats"]["rounds"],
            }  # fmt: skip
            if "products_per_call" in info:  # one timed call ran this many products (quant's GPU graphs)
                row["products_per_call"] = info["products_per_call"]
            if "images_per_call" in info:  # end-to-end model rows: throughput, and merge's token schedule
                row["images_per_s"] = round(info["images_per_call"] / (ms / 1e3), 2)
                row["baseline_images_per_s"] = round(info["images_per_call"] / (base["median_ms"] / 1e3), 2)
            for key in ("tokens_per_layer", "images_matching_official"):
                if key in info:
                    row[key] = info[key]
            if peaks:
                bandwidth, flops = peaks
                if "bytes" in info:
                    row["roofline_fraction"] = round(info["bytes"] / (ms / 1e3) / bandwidth, 4)
                elif "flops" in info:
                    row["roofline_fraction"] = round(info["flops"] / (ms / 1e3) / flops, 4)
            rows.append(row)
    return rows


def print_table(rows):
    for core in sorted({r["core"] for r in rows}):
        print(f"\n== {core} ==")
        header = ("op", "mode", "case", "impl", "baseline", "ms", "base ms", "speedup", "MiB", "base MiB", "roofline")
        table = [(r["op"], r["mode"], r["case"], r["impl"], r["baseline"], f"{r['median_ms']:.2f}",
                  f"{r['baseline_median_ms']:.2f}", f"{r['speedup']:.2f}x", f"{r['peak_mem_mb']:.1f}",
                  f"{r['baseline_peak_mem_mb']:.1f}", f"{r['roofline_fraction']:.2f}" if "roofline_fraction" in r else "")
                 for r in rows if r["core"] == core]  # fmt: skip
        widths = [max(len(str(x[i])) for x in table + [header]) for i in range(len(header))]
        for line in [header] + table:
            print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))


def markdown(paths) -> str:
    """The README's benchmark table: the rows of one or more result files (one per CPU path) side
    by side, each file's device, torch and date in a line above."""
    files = []
    for path in paths:
        with open(path) as f:
            files.append((os.path.basename(path), json.load(f)))
    lines = [f"- `{name}`: {d['device']}, torch {d['torch']}, {d['date']}" for name, d in files] + [""]
    head = "| op | mode | case | baseline |" + "".join(
        f" {name.removesuffix('.json')}: ms / baseline ms / speedup | MiB / baseline MiB |" for name, _ in files
    )
    lines += [head, "|---|---|---|---|" + "---:|---:|" * len(files)]
    key = lambda r: (r["core"], r["op"], r["mode"], r["case"], r["baseline"])  # noqa: E731
    by_file = [{key(r): r for r in d["rows"]} for _, d in files]
    for k in dict.fromkeys(key(r) for _, d in files for r in d["rows"]):
        cells = []
        for rows in by_file:
            r = rows.get(k)
            roof = f" (roofline {r['roofline_fraction']:.2f})" if r and "roofline_fraction" in r else ""
            cells.append(f"{r['median_ms']:.2f} / {r['baseline_median_ms']:.2f} / **{r['speedup']:.2f}x**{roof} | "
                         f"{r['peak_mem_mb']:.1f} / {r['baseline_peak_mem_mb']:.1f}" if r else "- | -")  # fmt: skip
        lines.append(f"| {k[1]} | {k[2]} | {k[3]} | {k[4]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def row_key(row) -> tuple:
    return row["core"], row["op"], row["mode"], row["case"], row["baseline"]


def merged(path: str, result: dict) -> dict:
    """``result``'s rows merged into the file at ``path``: its rows of the same key replaced in
    place, new ones appended, the others kept. Every row then carries the date it was measured, and
    the file's command lists each run's."""
    with open(path) as f:
        old = json.load(f)
    for field in ("device", "torch"):
        if old[field] != result[field]:
            raise SystemExit(f"--merge: {path} has {field} {old[field]!r}, this run {result[field]!r}; not merged")
    new = {row_key(r): dict(r, date=result["date"]) for r in result["rows"]}
    rows = [new.pop(row_key(r)) if row_key(r) in new else dict(r, date=r.get("date", old["date"])) for r in old["rows"]]
    return dict(result, command=f"{old['command']}; then {result['command']}", rows=rows + list(new.values()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--cases", default="all", choices=["all", "small"])
    parser.add_argument("--out", help="result file (default <out-dir>/<device>.json)")
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"), help="default bench/results")
    parser.add_argument("-k", dest="select", help="pytest -k expression to run a subset")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the result file's other rows and replace only those this run measured (with -k: re-measure "
        "one core or op); the file must come from the same device and torch",
    )
    parser.add_argument(
        "--markdown", metavar="FILE", nargs="+", help="only print the files' rows as one markdown table"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(args.markdown))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.json")
        pytest_args = [os.path.join(HERE, s) for s in suites()] + [
            "-q", "-p", "no:cacheprovider", f"--rootdir={HERE}", f"--benchmark-json={raw}",
            "--benchmark-columns=median,rounds", "--benchmark-sort=name",
            f"--bench-device={args.device}", f"--bench-cases={args.cases}",
        ]  # fmt: skip
        if args.select:
            pytest_args += ["-k", args.select]
        code = pytest.main(pytest_args)
        if code not in (0, 5) or not os.path.exists(raw):
            print(f"benchmarks failed (pytest exit code {code})")
            return 1
        with open(raw) as f:
            entries = json.load(f)["benchmarks"]

    peaks = None
    if args.device == "cuda":
        from sae import gpu_peaks

        peaks = gpu_peaks()
    description, stem = device_label(args.device)
    rows = to_rows(entries, peaks)
    result = {
        "device": description,
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "timing": "medians over 3-50 rounds (about 6 s per comparison) after a warm-up call; in each round "
        "every baseline is timed once right before the pytest-benchmark-timed prismkit call",
        "memory": "CPU: rise of peak RSS during one call (VmHWM reset via /proc/self/clear_refs); "
        "GPU: torch.cuda.max_memory_allocated beyond the inputs",
        "rows": rows,
    }
    out = args.out or os.path.join(args.out_dir, f"{stem}.json")
    if args.merge and os.path.exists(out):
        result = merged(out, result)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print_table(rows)
    print(f"\nwrote {out}")
    found = check_results.problems(result)
    for p in found:
        print(f"format problem: {p}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
