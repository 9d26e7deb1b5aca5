"""One run over files: read, transform, diff or write. The CLI renders what this returns."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from torchfix_mod.diffing import unified_diff
from torchfix_mod.engine import Diagnostic, Settings, SourceError, transform_source
from torchfix_mod.files import SourceReadError, WriteRefused, discover, read_source, write_atomic
from torchfix_mod.rule import Rule, RuleOptions


@dataclass(frozen=True)
class RunOptions:
    mode: str = "check"  # "check", "diff" or "write"
    unsafe_fixes: bool = False
    rule_options: RuleOptions = field(default_factory=RuleOptions)


@dataclass
class FileReport:
    path: Path
    display: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    diff: bytes = b""
    changed: bool = False
    scanned: bool = True  # False for a path that does not exist


def display_path(path: Path, cwd: Path) -> str:
    """The path as diff headers and reports show it: relative to ``cwd`` when inside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(cwd).as_posix()
    except ValueError:
        return absolute.as_posix()


def _encoded_diff(display: str, old: str, new: str, encoding: str) -> bytes:
    """The diff in the file's own bytes, so ``git apply`` reproduces them exactly."""
    if encoding == "utf-8-sig":  # the BOM is part of the first line on disk
        old, new, encoding = "\ufeff" + old, "\ufeff" + new, "utf-8"
    text = unified_diff(display, old, new)
    if not text:
        return b""
    header_end = text.index("\n", text.index("\n") + 1) + 1
    return text[:header_end].encode("utf-8", "surrogateescape") + text[header_end:].encode(encoding)


def outside_roots(path: Path, roots: Sequence[Path]) -> bool:
    """A symlink whose target lies outside every path the run was given."""
    if not path.is_symlink():
        return False
    target = path.resolve()
    return not any(target == root or root in target.parents for root in roots)


def process_file(
    path: Path, display: str, rules: Sequence[type[Rule]], options: RunOptions, roots: Sequence[Path] = ()
) -> FileReport:
    report = FileReport(path, display)
    try:
        source = read_source(path)
    except SourceReadError as exc:
        report.errors.append(exc.error)
        return report
    settings = Settings(
        rules=tuple(rules),
        unsafe_fixes=options.unsafe_fixes,
        apply_fixes=options.mode != "check",
        rule_options=options.rule_options,
    )
    result = transform_source(source.text, settings)
    report.diagnostics = result.diagnostics
    report.errors = result.errors
    if result.changed:
        report.changed = True
        report.diff = _encoded_diff(display, source.text, result.new_source, source.encoding)
        if options.mode == "write":
            problem = None
            if outside_roots(path, roots):
                problem = "symlink to a file outside the given paths; not written"
            else:
                try:
                    write_atomic(path, result.new_source, source.encoding, expected=source.data)
                except WriteRefused as exc:
                    problem = str(exc)
                except OSError as exc:
                    problem = f"cannot write: {exc.strerror or exc}"
            if problem is not None:
                report.errors.append(SourceError(1, 1, problem))
                report.changed = False
                report.diagnostics = [_unfixed(d) for d in report.diagnostics]
    return report


def _unfixed(diagnostic: Diagnostic) -> Diagnostic:
    return replace(diagnostic, fixed=False)


def run(paths: Sequence[Path], rules: Sequence[type[Rule]], options: RunOptions, cwd: Path | None = None) -> list[FileReport]:
    """Process every Python file under ``paths``; reports come back in path order."""
    cwd = Path(os.path.abspath(cwd or Path.cwd()))
    files, missing = discover(paths)
    roots = [Path(p).resolve() for p in paths]
    reports = [FileReport(p, display_path(p, cwd), errors=[SourceError(1, 1, msg)], scanned=False) for p, msg in missing]
    for path in files:
        reports.append(process_file(path, display_path(path, cwd), rules, options, roots))
    reports.sort(key=lambda r: r.display)
    return reports
