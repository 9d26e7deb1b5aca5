"""Screens change no result: the corpus run with screens on and off, compared file by file.

    python -m bench.screens                      # timm, diffusers, transformers
    python -m bench.screens --libraries timm     # one library

The screens let most files skip LibCST; they must never hide a finding. This runs every
default rule (and ``--unsafe-fixes``) over the corpus twice, once with the screens and once
with every file going through every rule, and compares each file's findings, errors and diff.
It prints the files that differ (none is the only acceptable answer) and how many files and
lines the screens sent to LibCST. It takes long with screens off (every file through LibCST),
so it is a script, not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import WHEELS, source_dir  # noqa: E402
from torchfix_mod.rule import load_rules  # noqa: E402
from torchfix_mod.runner import RunOptions, run  # noqa: E402


def _outcome(reports) -> dict[str, tuple]:
    return {r.display: (r.diagnostics, r.errors, r.diff) for r in reports}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.screens", description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", default=",".join(WHEELS), help="comma-separated")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    rules = [r for r in load_rules() if r.default_enabled]
    roots = [source_dir(name) for name in args.libraries.split(",")]
    cwd = roots[0].parent
    results = {}
    for screen in (True, False):
        started = time.perf_counter()
        reports = run(roots, rules, RunOptions(mode="diff", unsafe_fixes=True, screen=screen), cwd=cwd, jobs=args.jobs)
        results[screen] = _outcome(reports)
        findings = sum(len(r.diagnostics) for r in reports)
        label = "on " if screen else "off"
        print(f"screens {label}: {len(reports)} files, {findings} findings, {time.perf_counter() - started:.1f} s", flush=True)
    differing = sorted(p for p in results[False] if results[True].get(p) != results[False][p])
    for path in differing:
        print(f"DIFFERS: {path}")
    print(f"{len(differing)} files differ")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
