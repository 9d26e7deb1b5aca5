"""torchfix-mod on real libraries: every file of timm and diffusers, pinned (see ``bench/corpus.py``).

With every rule and unsafe fixes on, each file must come back without a crash or an error, its
output must parse and compile, and a second run over the output must change nothing. The files
that change are then run through the real command line: the ``--diff`` piped to ``git apply``
must give byte for byte what ``--write`` gives, and both what the per-file transform predicted.

The wheels are downloaded on first use into a cache outside the repository. Set
``TORCHFIX_MOD_CORPUS_ALL=1`` to include transformers; deselect the lot with ``-m "not corpus"``.
``-s`` shows the summary that ``test_corpus_report`` also writes to ``corpus-report.txt``.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

import torchfix_mod
from torchfix_mod.diffing import unified_diff
from torchfix_mod.engine import Settings, transform_source
from torchfix_mod.files import SourceReadError, read_source
from torchfix_mod.rule import load_rules

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is not installed; make it importable however pytest is run
    sys.path.insert(0, str(ROOT))

from bench.corpus import WHEELS, python_files, source_dir  # noqa: E402

pytestmark = pytest.mark.corpus

RULES = tuple(load_rules())
SETTINGS = Settings(rules=RULES, unsafe_fixes=True)

LIBRARIES = ["timm", "diffusers"] + (["transformers"] if os.environ.get("TORCHFIX_MOD_CORPUS_ALL") == "1" else [])

# Files CPython itself cannot parse: the only errors the tool may report. None in these releases.
UNPARSABLE: dict[str, frozenset[str]] = {"timm": frozenset(), "diffusers": frozenset(), "transformers": frozenset()}

CHUNKSIZE = 8


@dataclass
class Finding:
    line: int
    column: int
    code: str
    message: str
    fix_available: bool
    fixed: bool


@dataclass
class Outcome:
    """What happened to one file; plain data, so it crosses the process boundary."""

    rel: str
    encoding: str = ""
    unparsable: str | None = None  # CPython's own complaint about the original
    crash: str | None = None  # a traceback out of transform_source itself
    errors: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    new_source: str | None = None  # set only when the file changed
    source: str | None = None  # likewise
    output_problem: str | None = None  # the output failed ast.parse or compile
    not_idempotent: str | None = None  # what a second run over the output did
    cpu_seconds: float = 0.0


def _check_file(job: tuple[str, str]) -> Outcome:
    root, rel = job
    outcome = Outcome(rel)
    start = time.process_time()
    try:
        try:
            source = read_source(Path(root) / rel)
        except SourceReadError as exc:
            outcome.errors.append(f"{exc.error.line}:{exc.error.column}: {exc.error.message}")
            return outcome
        outcome.encoding = source.encoding
        try:
            ast.parse(source.text)
        except (SyntaxError, ValueError) as exc:
            outcome.unparsable = f"{type(exc).__name__}: {exc}"

        result = transform_source(source.text, SETTINGS)
        outcome.errors = [f"{e.line}:{e.column}: {e.message}" for e in result.errors]
        outcome.findings = [
            Finding(d.line, d.column, d.code, d.message, d.fix_available, d.fixed) for d in result.diagnostics
        ]
        output = result.new_source
        try:
            ast.parse(output)
            compile(output, rel, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            if outcome.unparsable is None:
                outcome.output_problem = f"{type(exc).__name__}: {exc}"
        if result.changed:
            outcome.source, outcome.new_source = source.text, output
            again = transform_source(output, SETTINGS)
            if again.errors or again.changed:
                problems = [f"{e.line}:{e.column}: {e.message}" for e in again.errors]
                if again.changed:
                    problems.append(unified_diff(rel, output, again.new_source))
                outcome.not_idempotent = "\n".join(problems)
    except Exception:
        outcome.crash = traceback.format_exc()
    outcome.cpu_seconds = time.process_time() - start
    return outcome


@dataclass
class CorpusRun:
    name: str
    version: str
    root: Path
    outcomes: list[Outcome]
    seconds: float

    @property
    def changed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.new_source is not None]


def _pool():
    # spawn, not fork: workers forked from the pytest process spent a third of their time in
    # page faults (sys time); fresh interpreters import this module by name and run at full speed
    return multiprocessing.get_context("spawn").Pool(processes=os.cpu_count() or 1)


@cache
def corpus_run(name: str) -> CorpusRun:
    """Every file of one library through the engine, once per session."""
    root = source_dir(name)
    files = python_files(root)
    assert files, f"no .py files under {root}"
    jobs = sorted(files, key=lambda rel: (root / rel).stat().st_size, reverse=True)  # big files first: no long tail
    start = time.perf_counter()
    with _pool() as pool:
        outcomes = list(pool.imap_unordered(_check_file, [(str(root), rel) for rel in jobs], chunksize=CHUNKSIZE))
    seconds = time.perf_counter() - start
    outcomes.sort(key=lambda o: o.rel)
    assert [o.rel for o in outcomes] == files
    return CorpusRun(name, WHEELS[name].version, root, outcomes, seconds)


def _listing(title: str, items: list[str]) -> str:
    return f"{title} ({len(items)}):\n" + "\n".join(f"  {item}" for item in items)


@pytest.mark.parametrize("name", LIBRARIES)
def test_every_file_transforms_cleanly(name: str) -> None:
    run = corpus_run(name)
    unparsable = sorted(o.rel for o in run.outcomes if o.unparsable)
    assert set(unparsable) == UNPARSABLE[name], _listing(
        f"{name}: files CPython cannot parse, expected {sorted(UNPARSABLE[name])}",
        [f"{o.rel}: {o.unparsable}" for o in run.outcomes if o.unparsable],
    )
    crashes = [f"{o.rel}:\n{o.crash}" for o in run.outcomes if o.crash]
    assert not crashes, _listing(f"{name}: transform_source raised", crashes)
    errors = [f"{o.rel}:{e}" for o in run.outcomes if not o.unparsable for e in o.errors]
    assert not errors, _listing(f"{name}: errors on files CPython parses", errors)
    broken = [f"{o.rel}: {o.output_problem}" for o in run.outcomes if o.output_problem]
    assert not broken, _listing(f"{name}: outputs that do not parse or compile", broken)
    unstable = [f"{o.rel}:\n{o.not_idempotent}" for o in run.outcomes if o.not_idempotent]
    assert not unstable, _listing(f"{name}: a second run over the output changed it", unstable)
    unfixed = [
        f"{o.rel}:{f.line}:{f.column}: {f.code} {f.message}"
        for o in run.outcomes
        for f in o.findings
        if f.fix_available and not f.fixed
    ]
    assert not unfixed, _listing(f"{name}: fixes offered but not applied", unfixed)


def _git(args: list[str], cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True)
    assert proc.returncode == 0, f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}"
    return proc


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    package_root = str(Path(torchfix_mod.__file__).resolve().parents[1])  # the tool under test, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "torchfix_mod", *args], cwd=cwd, capture_output=True, env=env)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {".git", ".torchfix_mod_cache"} & set(p.relative_to(root).parts)
    }


def _diff_paths(diff: bytes) -> set[str]:
    return {line[len(b"+++ b/"):].decode().rstrip("\t") for line in diff.splitlines() if line.startswith(b"+++ b/")}


@pytest.mark.parametrize("name", LIBRARIES)
def test_cli_diff_applies_as_write(name: str, tmp_path: Path) -> None:
    run = corpus_run(name)
    changed = run.changed
    predicted = {o.rel for o in changed}
    if not changed:
        pytest.skip(f"the tool changes nothing in {name} {run.version}")

    base = tmp_path / "base"
    base.mkdir()
    _git(["init", "--quiet"], base)
    for o in changed:
        (base / o.rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run.root / o.rel, base / o.rel)
    original = _tree(base)
    applied, written = tmp_path / "applied", tmp_path / "written"
    shutil.copytree(base, applied, symlinks=True)
    shutil.copytree(base, written, symlinks=True)

    diff = _cli(["--diff", "--unsafe-fixes", "."], applied)
    assert diff.returncode == 1, f"--diff exited {diff.returncode}:\n{diff.stderr.decode(errors='replace')}"
    assert _diff_paths(diff.stdout) == predicted, (
        f"files in the CLI diff != files the transform changed\n"
        f"only in diff: {sorted(_diff_paths(diff.stdout) - predicted)}\n"
        f"only predicted: {sorted(predicted - _diff_paths(diff.stdout))}"
    )
    _git(["apply", "--whitespace=nowarn", "-"], applied, stdin=diff.stdout)

    write = _cli(["--write", "--unsafe-fixes", "."], written)
    assert write.returncode in (0, 1), f"--write exited {write.returncode}:\n{write.stderr.decode(errors='replace')}"
    assert b"error:" not in write.stderr, write.stderr.decode(errors="replace")

    after_apply, after_write = _tree(applied), _tree(written)
    assert after_apply.keys() == after_write.keys() == original.keys()
    differ = sorted(rel for rel in original if after_apply[rel] != after_write[rel])
    assert not differ, _listing("`--diff | git apply` and `--write` disagree on", differ)

    touched = {rel for rel in original if after_write[rel] != original[rel]}
    assert touched == predicted, (
        f"files --write changed != files the transform changed\n"
        f"only written: {sorted(touched - predicted)}\nonly predicted: {sorted(predicted - touched)}"
    )
    mismatched = [o.rel for o in changed if after_write[o.rel] != o.new_source.encode(o.encoding)]
    assert not mismatched, _listing("--write output differs from the per-file transform", mismatched)


def _report(run: CorpusRun) -> str:
    findings = [(o.rel, f) for o in run.outcomes for f in o.findings]
    fixed = Counter(f.code for _, f in findings if f.fix_available)
    report_only = Counter(f.code for _, f in findings if not f.fix_available)
    lines = [
        f"== {run.name} {run.version}: {len(run.outcomes)} files in {run.seconds:.1f} s "
        f"({sum(o.cpu_seconds for o in run.outcomes):.1f} s of CPU in {os.cpu_count() or 1} processes), "
        f"{len(run.changed)} changed, {len(findings)} findings "
        f"({sum(fixed.values())} with a fix, {sum(report_only.values())} report-only) ==",
        "",
        _listing("changed files", [o.rel for o in run.changed]),
        "",
        _listing(
            "findings with a fix",
            [f"{rel}:{f.line}: {f.code} {f.message}" for rel, f in findings if f.fix_available],
        ),
        "",
        "findings per rule:            with a fix  report-only",
    ]
    for rule in RULES:
        lines.append(f"  {rule.code} {rule.name:<26} {fixed[rule.code]:>6} {report_only[rule.code]:>12}")
    lines += ["", "report-only findings:"]
    lines += [f"  {rel}:{f.line}: {f.code} {f.message}" for rel, f in findings if not f.fix_available]
    slowest = sorted(run.outcomes, key=lambda o: o.cpu_seconds, reverse=True)[:5]
    lines += ["", _listing("slowest files", [f"{o.cpu_seconds:6.2f} s  {o.rel}" for o in slowest])]
    lines += ["", "diff:"]
    lines += [unified_diff(o.rel, o.source, o.new_source).rstrip("\n") for o in run.changed]
    return "\n".join(lines) + "\n"


def test_corpus_report(tmp_path: Path) -> None:
    header = "torchfix-mod over real libraries: all rules, unsafe fixes on\n\n"
    text = header + "\n".join(_report(corpus_run(name)) for name in LIBRARIES)
    path = tmp_path / "corpus-report.txt"
    path.write_text(text, encoding="utf-8")
    print(f"\n{text}\n(written to {path})")
    assert path.read_text(encoding="utf-8") == text
