"""Grade torchfix-mod on the labelled real-world manifest (``bench/manifest.jsonl``).

Each manifest row names a location in a public repository (repository, commit, path, line), the
rule it concerns, and a label: ``bug`` (a real defect the rule should report there) or ``ok`` (a
look-alike the rule must leave alone). The files themselves are not part of this repository:
``--fetch`` downloads each one from raw.githubusercontent.com into the cases folder, laid out as
``<cases>/<owner>+<name>/<commit>/<path>``. ``--from-git CLONES`` instead writes every Python file
of each row's repository at the row's commit there, read from local clones named
``CLONES/<owner>+<name>`` (plain or bare).

Every file is checked as the only path of the run, with the default rule selection: alone when
the cases folder holds only the manifest's files, and with the rest of its repository beside it
(the files it imports from its own package are read, as in a pre-commit run in a checkout)
when the folder holds whole trees. A
row counts as reported when a finding of its rule starts inside the innermost statement that
holds the row's line (for ``def __init__`` rows, inside that function's header line). For each
rule the script prints true and false positives, misses, precision and recall, and the fixes
offered on look-alikes; ``--json`` writes the per-row outcomes.

    python -m bench.grade --cases ~/.cache/torchfix-mod/cases [--fetch] [--json out.json]
    python -m bench.grade --cases ~/.cache/torchfix-mod/repos --from-git ~/clones
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

MANIFEST = Path(__file__).with_name("manifest.jsonl")


def load_manifest(path: Path = MANIFEST) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def case_path(cases: Path, row: dict) -> Path:
    return cases / row["repo"].replace("/", "+") / row["commit"] / row["path"]


def fetch(cases: Path, row: dict) -> Path:
    target = case_path(cases, row)
    if not target.exists():
        url = f"https://raw.githubusercontent.com/{row['repo']}/{row['commit']}/{row['path']}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (a fixed https host)
            data = response.read()
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target


def checkout(cases: Path, clones: Path, repo: str, commit: str) -> int:
    """Every ``.py`` file of ``repo`` at ``commit``, from the local clone, under the cases folder
    (blobs the clone lacks, such as large files kept elsewhere, are skipped). Returns the count."""
    name = repo.replace("/", "+")
    target = cases / name / commit
    if target.exists():
        return 0
    clone = clones / name
    git_dir = clone / ".git" if (clone / ".git").exists() else clone
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", commit], capture_output=True, check=True
    ).stdout
    staging = target.with_name(target.name + ".part")
    written = 0
    for entry in filter(None, listing.split(b"\0")):
        meta, _, raw_path = entry.partition(b"\t")
        _, kind, sha = meta.split()
        path = raw_path.decode("utf-8", "surrogateescape")
        if kind != b"blob" or not path.endswith(".py") or ".." in Path(path).parts:
            continue
        blob = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "blob", sha.decode()], capture_output=True)
        if blob.returncode:
            continue
        out = staging / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob.stdout)
        written += 1
    staging.mkdir(parents=True, exist_ok=True)
    staging.replace(target)
    return written


def statement_span(source: str, line: int) -> tuple[int, int]:
    """Lines of the innermost statement that holds ``line`` (a ``def``/``class`` counts only by
    its header, so a row on ``def __init__`` is not matched by findings in its body)."""
    best = (line, line)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return best
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        start, end = node.lineno, node.end_lineno or node.lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            end = node.body[0].lineno - 1 if node.body[0].lineno > start else start
        elif hasattr(node, "body") and isinstance(node.body, list) and node.body:
            end = max(start, node.body[0].lineno - 1)  # the header of a compound statement
        if start <= line <= end and (end - start) <= (best[1] - best[0] if best != (line, line) else 10**9):
            best = (start, end)
    return best


def findings_for(path: Path, tool: list[str]) -> list[dict]:
    result = subprocess.run(
        [*tool, "--output-format", "json", "--no-cache", "--isolated", "-j1", str(path)],
        capture_output=True, text=True, check=False,
    )
    try:
        return json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return []


def grade(rows: list[dict], cases: Path, tool: list[str]) -> list[dict]:
    outcomes = []
    by_file: dict[Path, list[dict]] = {}
    for row in rows:
        path = case_path(cases, row)
        if not path.exists():
            outcomes.append({**row, "outcome": "missing"})
            continue
        if path not in by_file:
            by_file[path] = findings_for(path, tool)
        source = path.read_text(encoding="utf-8", errors="replace")
        start, end = statement_span(source, row["line"])
        hits = [f for f in by_file[path] if f["code"] == row["rule"] and start <= f["line"] <= end]
        reported = bool(hits)
        fixed = any(f.get("fix_available") for f in hits)
        if row["label"] == "bug":
            outcome = "tp" if reported else "fn"
        else:
            outcome = "fp" if reported else "tn"
        outcomes.append({**row, "outcome": outcome, "fix_offered": fixed})
    return outcomes


def summary(outcomes: list[dict]) -> str:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for o in outcomes:
        counts[o["rule"]][o["outcome"]] += 1
        counts["all"][o["outcome"]] += 1
        if o["outcome"] == "fp" and o.get("fix_offered"):
            counts[o["rule"]]["fp_fixed"] += 1
            counts["all"]["fp_fixed"] += 1
    lines = ["| rule | bugs | found | missed | look-alikes | reported | fixed look-alikes | precision | recall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rule in sorted(counts, key=lambda r: (r == "all", r)):
        c = counts[rule]
        tp, fn, fp, tn = c["tp"], c["fn"], c["fp"], c["tn"]
        precision = f"{tp / (tp + fp):.0%}" if tp + fp else "n/a"
        recall = f"{tp / (tp + fn):.0%}" if tp + fn else "n/a"
        lines.append(f"| {rule} | {tp + fn} | {tp} | {fn} | {fp + tn} | {fp} | {c['fp_fixed']} | {precision} | {recall} |")
    missing = sum(1 for o in outcomes if o["outcome"] == "missing")
    if missing:
        lines.append(f"\n{missing} row(s) skipped: file not in the cases folder (use --fetch)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, required=True, help="folder holding the manifest's files")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--fetch", action="store_true", help="download missing files from GitHub first")
    parser.add_argument("--from-git", type=Path, metavar="CLONES", help="write each repository's Python files from local clones first")
    parser.add_argument("--tool", default=f"{sys.executable} -m torchfix_mod", help="command that runs torchfix-mod")
    parser.add_argument("--json", type=Path, help="write the per-row outcomes here")
    args = parser.parse_args(argv)
    rows = load_manifest(args.manifest)
    if args.from_git:
        for repo, commit in sorted({(row["repo"], row["commit"]) for row in rows}):
            checkout(args.cases, args.from_git, repo, commit)
    if args.fetch:
        for row in rows:
            fetch(args.cases, row)
    outcomes = grade(rows, args.cases, args.tool.split())
    print(summary(outcomes))
    if args.json:
        args.json.write_text(json.dumps(outcomes, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
