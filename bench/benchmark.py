"""Speed on real libraries: torchfix-mod side by side with TorchFix and two parse-only floors.

    python -m bench.benchmark                 # side by side on timm + diffusers; growth up to all three
    python -m bench.benchmark --quick         # a smoke run: 40 files of timm, no TorchFix

Every contender runs as a whole process over the same files, one after the other:

- ``torchfix-mod cold``: ``torchfix-mod --diff`` (default rules, output to /dev/null) with an
  empty cache, three times (``--cold-runs``); the run with the median time is reported;
- ``torchfix-mod warm``: the same command again, reading the cache the cold run wrote;
- ``TorchFix 0.7.0``: ``torchfix <dirs>`` with its default rules, installed on first use in its
  own virtualenv (``pip install torchfix==0.7.0``) under the cache directory;
- ``libcst floor`` / ``ast floor``: one process that reads every file and calls
  ``libcst.parse_module`` / ``ast.parse`` on it, nothing else;
- ``start-up``: ``torchfix-mod --version``, and one file with no findings (timm's
  ``models/resnet.py``) checked by torchfix-mod (no cache) and by TorchFix: what a pre-commit
  hook or an editor pays per call; the file is copied out of its package, and checked once
  more where it lives (the run then reads the files it imports). These are the median of
  several runs.

Wall time is measured around each process; peak memory is the largest sum of the resident
set sizes of the process and all its children seen while it ran (sampled from /proc every
20 ms; elsewhere the largest single child as the OS reports it). The table also shows
``-j 1`` against ``-j N`` and how the cold run grows with the corpus (timm, timm + diffusers,
all three). Results go to ``bench/results.json`` (or ``--json``). Nothing here is a test: CI
only runs ``--quick`` to keep the script working.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import WHEELS, cache_dir, python_files, source_dir  # noqa: E402

TORCHFIX_VERSION = "0.7.0"
QUICK_FILES = 40
SINGLE_FILE = ("timm", "timm/models/resnet.py")  # 2,300 lines, no findings
REPEATS = 5


@dataclass
class Measure:
    name: str
    files: int
    lines: int
    seconds: float
    peak_mb: float
    exit_code: int
    cpu_seconds: float = 0.0  # user + system time of the process and every child it waited for

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


# -- measuring a process ------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _tree_rss_kb(pid: int) -> int:
    children = _children_map()
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, ()))
        try:
            with open(f"/proc/{current}/status", encoding="ascii", errors="replace") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def run_process(name: str, argv: list[str], files: int, lines: int, cwd: Path | None = None, env=None) -> Measure:
    """Run ``argv`` to completion (output discarded) and measure it."""
    sampling = Path("/proc").is_dir()
    peak = 0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    while process.poll() is None:
        if sampling:
            peak = max(peak, _tree_rss_kb(process.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    reader.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    if not sampling:
        peak = max(usage.ru_maxrss, before)
    if process.returncode not in (0, 1):
        tail = b"".join(errors).decode("utf-8", "replace")[-2000:]
        print(f"warning: {name} exited {process.returncode}:\n{tail}", file=sys.stderr)
    measure = Measure(name, files, lines, seconds, peak / 1024, process.returncode, cpu)
    print(f"  {name}: {seconds:.2f} s wall, {cpu:.2f} s CPU, {peak / 1024:.0f} MB", file=sys.stderr)
    return measure


# -- the corpus ----------------------------------------------------------------------------

def corpus_files(libraries: list[str], quick: bool) -> tuple[list[Path], list[Path], int]:
    """The library roots, their .py files and their line count."""
    roots, files = [], []
    for name in libraries:
        root = source_dir(name)
        roots.append(root)
        files.extend(root / rel for rel in python_files(root))
    if quick:
        files = files[:QUICK_FILES]
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    return roots, files, lines


def _staged(files: list[Path], roots: list[Path], workdir: Path) -> list[Path]:
    """For --quick: copy the chosen files (keeping their package layout) into one directory."""
    target = workdir / "corpus"
    for path in files:
        root = next(r for r in roots if r in path.parents)
        dest = target / root.name / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return [target]


# -- contenders ----------------------------------------------------------------------------

FLOOR_SCRIPT = """
import sys
kind, listing = sys.argv[1], sys.argv[2]
paths = open(listing, encoding="utf-8").read().split("\\n")
if kind == "ast":
    import ast
    for p in paths:
        ast.parse(open(p, "rb").read())
else:
    import libcst
    for p in paths:
        libcst.parse_module(open(p, "rb").read())
"""


def torchfix_binary(explicit: str | None) -> str | None:
    """TorchFix 0.7.0 in its own virtualenv, installed on first use."""
    if explicit:
        return explicit
    venv = cache_dir().parent / "bench" / f"torchfix-{TORCHFIX_VERSION}"
    binary = venv / "bin" / "torchfix"
    if not binary.exists():
        print(f"installing torchfix=={TORCHFIX_VERSION} into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"torchfix=={TORCHFIX_VERSION}"], check=True)
    return str(binary)


def tool_argv(paths: list[Path], jobs: int) -> list[str]:
    return [sys.executable, "-m", "torchfix_mod", "--diff", "-j", str(jobs), *map(str, paths)]


def measure_all(args, libraries: list[str]) -> dict:
    roots, files, lines = corpus_files(libraries, args.quick)
    jobs = args.jobs or os.cpu_count() or 1
    results: list[Measure] = []
    with tempfile.TemporaryDirectory(prefix="tfm-bench-") as tmp:
        work = Path(tmp)
        paths = _staged(files, roots, work) if args.quick else roots
        listing = work / "files.txt"
        listing.write_text("\n".join(str(p) for p in files), encoding="utf-8")
        n = len(files)
        print(f"{n} files, {lines} lines; jobs={jobs}", file=sys.stderr)
        # the machine's speed drifts: the cold run is repeated, each from an empty cache, and
        # the median run is the one reported (all of them are in the JSON)
        colds = []
        for attempt in range(max(1, args.cold_runs)):
            cache_home = work / f"run{attempt}"  # the cache goes to the working directory
            cache_home.mkdir()
            measure = run_process(f"torchfix-mod cold (-j {jobs})", tool_argv(paths, jobs), n, lines, cwd=cache_home)
            colds.append((measure, cache_home))
        ordered = sorted(colds, key=lambda pair: pair[0].seconds)
        median, cache_home = ordered[len(ordered) // 2]
        results.append(median)
        cold_runs = [m.seconds for m, _ in colds]
        results.append(run_process(f"torchfix-mod warm (-j {jobs})", tool_argv(paths, jobs), n, lines, cwd=cache_home))
        if jobs > 1 and not args.skip_scaling:
            results.append(
                run_process("torchfix-mod cold (-j 1)", tool_argv(paths, 1) + ["--no-cache"], n, lines, cwd=cache_home)
            )
        if not args.no_torchfix:
            binary = torchfix_binary(args.torchfix)
            results.append(
                run_process(f"TorchFix {TORCHFIX_VERSION} (-j {jobs})", [binary, "-j", str(jobs), *map(str, paths)], n, lines)
            )
        results.append(run_process("libcst.parse_module floor (1 process)", [sys.executable, "-c", FLOOR_SCRIPT, "libcst", str(listing)], n, lines))
        results.append(run_process("ast.parse floor (1 process)", [sys.executable, "-c", FLOOR_SCRIPT, "ast", str(listing)], n, lines))
    return {"libraries": libraries, "files": len(files), "lines": lines, "jobs": jobs, "measures": results, "cold_runs": cold_runs}


def median_process(name: str, argv: list[str], files: int, lines: int, cwd: Path | None = None) -> Measure:
    """The run with the median wall time of ``REPEATS`` runs (after one warm-up)."""
    run_process(name, argv, files, lines, cwd=cwd)
    runs = sorted((run_process(name, argv, files, lines, cwd=cwd) for _ in range(REPEATS)), key=lambda m: m.seconds)
    return runs[len(runs) // 2]


def measure_startup(args) -> list[Measure]:
    """Per-call cost: ``--version`` and one file with no findings, torchfix-mod and TorchFix."""
    library, relative = SINGLE_FILE
    path = source_dir(library) / relative
    lines = path.read_bytes().count(b"\n")
    results = [median_process("torchfix-mod --version", [sys.executable, "-m", "torchfix_mod", "--version"], 0, 0)]
    with tempfile.TemporaryDirectory(prefix="tfm-single-") as tmp:
        single = Path(tmp) / path.name
        shutil.copyfile(path, single)
        results.append(
            median_process(f"torchfix-mod one file ({library} {relative})", [sys.executable, "-m", "torchfix_mod", "--no-cache", str(single)], 1, lines)
        )
        if not args.no_torchfix:
            binary = torchfix_binary(args.torchfix)
            results.append(median_process(f"TorchFix {TORCHFIX_VERSION} one file ({library} {relative})", [binary, str(single)], 1, lines))
    # the same file where it lives, as a pre-commit hook passes it: the run also reads the files
    # it imports from its package (no cache: every one of them is parsed)
    results.append(
        median_process(
            f"torchfix-mod one file in its package ({library} {relative})",
            [sys.executable, "-m", "torchfix_mod", "--no-cache", str(path)],
            1,
            lines,
        )
    )
    return results


def growth(args) -> list[dict]:
    """Cold runs on growing corpora: is time linear in lines?"""
    rows = []
    jobs = args.jobs or os.cpu_count() or 1
    for count in range(1, len(args.growth_libraries) + 1):
        libraries = args.growth_libraries[:count]
        roots, files, lines = corpus_files(libraries, False)
        with tempfile.TemporaryDirectory(prefix="tfm-growth-") as tmp:
            m = run_process("+".join(libraries), tool_argv(roots, jobs), len(files), lines, cwd=Path(tmp))
        rows.append(
            {
                "libraries": libraries, "files": len(files), "lines": lines, "seconds": m.seconds,
                "cpu_seconds": m.cpu_seconds, "peak_mb": m.peak_mb, "lines_per_second": m.lines_per_second,
            }
        )
    return rows


# -- report --------------------------------------------------------------------------------

def table(result: dict) -> str:
    measures: list[Measure] = result["measures"]
    by_name = {m.name.split(" (")[0]: m for m in measures}
    cold = next(m for m in measures if m.name.startswith("torchfix-mod cold"))
    lines = [
        "| contender | files | lines | wall s | CPU s | lines/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measures:
        lines.append(
            f"| {m.name} | {m.files} | {m.lines:,} | {m.seconds:.2f} | {m.cpu_seconds:.2f} | {m.lines_per_second:,.0f} | {m.peak_mb:.0f} |"
        )
    lines.append("")
    torchfix = next((m for m in measures if m.name.startswith("TorchFix")), None)
    warm = by_name.get("torchfix-mod warm")
    ast_floor = next(m for m in measures if m.name.startswith("ast.parse"))
    runs = result.get("cold_runs") or []
    if len(runs) > 1:
        lines.append(f"- torchfix-mod cold runs (wall s): {', '.join(f'{r:.2f}' for r in runs)}; the median is in the table")
    if torchfix:
        lines.append(f"- TorchFix / torchfix-mod cold (wall time): {torchfix.seconds / cold.seconds:.1f}x")
    if warm:
        lines.append(f"- warm / cold: {100 * warm.seconds / cold.seconds:.1f}%")
    lines.append(f"- torchfix-mod cold / ast floor: {cold.seconds / ast_floor.seconds:.2f}x")
    single = next((m for m in measures if m.name == "torchfix-mod cold (-j 1)"), None)
    if single:
        lines.append(f"- -j 1 / -j {result['jobs']}: {single.seconds / cold.seconds:.2f}x")
    if torchfix and cold.lines_per_second:
        lines.append(f"- lines/s, torchfix-mod cold / TorchFix: {cold.lines_per_second / torchfix.lines_per_second:.1f}x")
    startup = result.get("startup") or []
    if startup:
        lines += ["", "| per call (median of runs) | wall s | CPU s | peak RSS MB |", "|---|---:|---:|---:|"]
        for m in startup:
            lines.append(f"| {m.name} | {m.seconds:.3f} | {m.cpu_seconds:.3f} | {m.peak_mb:.0f} |")
        version = startup[0]
        one = next((m for m in startup if m.name.startswith("torchfix-mod one file")), None)
        theirs = next((m for m in startup if m.name.startswith("TorchFix")), None)
        if one and theirs:
            lines.append(f"- one file, TorchFix / torchfix-mod: {theirs.seconds / one.seconds:.1f}x")
        if warm:
            lines.append(f"- warm / --version: {warm.seconds / version.seconds:.2f}x")
    if result.get("growth"):
        lines += [
            "",
            "| corpus (cold) | files | lines | wall s | CPU s | lines/s | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in result["growth"]:
            lines.append(
                f"| {' + '.join(row['libraries'])} | {row['files']} | {row['lines']:,} | {row['seconds']:.2f} | "
                f"{row['cpu_seconds']:.2f} | {row['lines_per_second']:,.0f} | {row['peak_mb']:.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_FILES} files of timm, no TorchFix, no growth")
    parser.add_argument(
        "--libraries", default="timm,diffusers", help="the corpus of the side-by-side runs (comma-separated)"
    )
    parser.add_argument(
        "--growth-libraries", default=",".join(WHEELS),
        help="cold runs on the first one, two, ... of these (comma-separated): growth with size and peak memory",
    )
    parser.add_argument("-j", "--jobs", type=int, default=None, help="workers for both tools (default: CPUs)")
    parser.add_argument("--torchfix", default=None, help="a torchfix executable to use instead of installing one")
    parser.add_argument("--no-torchfix", action="store_true", help="leave TorchFix out")
    parser.add_argument("--skip-scaling", action="store_true", help="no -j 1 run")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold runs of torchfix-mod; the median is reported")
    parser.add_argument("--skip-growth", action="store_true", help="no growth runs")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    args.libraries = [name.strip() for name in args.libraries.split(",") if name.strip()]
    args.growth_libraries = [name.strip() for name in args.growth_libraries.split(",") if name.strip()]
    if args.quick:
        args.libraries, args.no_torchfix, args.skip_growth, args.skip_scaling = ["timm"], True, True, True
        args.cold_runs = 1
    result = measure_all(args, args.libraries)
    if not args.quick:
        result["startup"] = measure_startup(args)
    if not args.skip_growth and len(args.growth_libraries) > 1:
        result["growth"] = growth(args)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }
    text = table(result)
    print(text)
    serial = dict(
        result,
        measures=[asdict(m) | {"lines_per_second": m.lines_per_second} for m in result["measures"]],
        startup=[asdict(m) for m in result.get("startup", [])],
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(serial, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
