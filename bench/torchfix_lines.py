"""Line parity with TorchFix: every line TorchFix reports, and whether torchfix-mod reports the
same check there.

Runs ``torchfix --select ALL`` and ``torchfix-mod --select ALL --output-format json`` over the
same folders, maps each TOR code to the torchfix-mod rules that name it in their summary
("(TorchFix TOR104/TOR105)"), and counts, per TOR code, the lines both tools report and the
lines only TorchFix reports (each listed, to be judged: most are code kept for older releases
or calls whose ``**kwargs`` may hold the argument, which torchfix-mod leaves alone on purpose).
TOR901 (no torchfix-mod counterpart) is not counted.

    python -m bench.torchfix_lines --torchfix .venv-torchfix/bin/torchfix DIR [DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

LINE = re.compile(r"^(?P<path>\S+?\.py):(?P<line>\d+):\d+: (?P<code>TOR\d{3}) (?P<message>.*)$")


def torchfix_lines(binary: str, folders: list[str], cwd: Path) -> list[tuple[str, int, str, str]]:
    done = subprocess.run(
        [binary, "--select", "ALL", *folders], cwd=cwd, capture_output=True, text=True, check=False
    )
    found = []
    for row in done.stdout.splitlines():
        match = LINE.match(row)
        if match and match["code"] != "TOR901":
            found.append((os.path.normpath(match["path"]), int(match["line"]), match["code"], match["message"]))
    return found


def our_lines(folders: list[str], cwd: Path) -> dict[tuple[str, int], set[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "torchfix_mod", "--select", "ALL", "--output-format", "json", *folders],
        cwd=cwd, capture_output=True, text=True, check=False,
    )
    found: dict[tuple[str, int], set[str]] = defaultdict(set)
    for finding in json.loads(done.stdout or "[]"):
        found[(os.path.normpath(finding["path"]), finding["line"])].add(finding["code"])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchfix", default="torchfix", help="the torchfix executable (0.7)")
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    from torchfix_mod.rule import load_rules

    same_check: dict[str, set[str]] = defaultdict(set)
    for rule in load_rules():
        for tor in rule.torchfix_codes():
            same_check[tor].add(rule.code)
    cwd = Path.cwd()
    theirs = torchfix_lines(args.torchfix, args.folders, cwd)
    ours = our_lines(args.folders, cwd)
    both, only = Counter(), defaultdict(list)
    for path, line, code, message in theirs:
        if ours.get((path, line), set()) & same_check[code]:
            both[code] += 1
        else:
            only[code].append(f"{path}:{line}: {message}")
    print(f"{'TorchFix':<9}{'ours':<16}{'both':>6}{'TorchFix only':>15}")
    for code in sorted(set(both) | set(only)):
        print(f"{code:<9}{','.join(sorted(same_check[code])) or '-':<16}{both[code]:>6}{len(only[code]):>15}")
    for code in sorted(only):
        print(f"\n{code}, reported by TorchFix only:")
        for row in only[code]:
            print(f"  {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
