"""Rendering run results for people (text) and machines (json); the summary line."""

from __future__ import annotations

import json
from collections.abc import Sequence

from torchfix_mod.diffing import diff_stats
from torchfix_mod.runner import FileReport


def finding_lines(reports: Sequence[FileReport], only_remaining: bool) -> list[str]:
    lines = []
    for report in reports:
        for d in report.diagnostics:
            if only_remaining and d.fixed:
                continue
            mark = " [*]" if d.fix_available and not d.fixed else ""
            lines.append(f"{report.display}:{d.line}:{d.column}: {d.code}{mark} {d.message}")
    return lines


def error_lines(reports: Sequence[FileReport]) -> list[str]:
    return [
        f"{report.display}:{e.line}:{e.column}: error: {e.message}"
        for report in reports
        for e in report.errors
    ]


def findings_json(reports: Sequence[FileReport]) -> str:
    items = [
        {
            "path": report.display,
            "line": d.line,
            "column": d.column,
            "end_line": d.end_line,
            "end_column": d.end_column,
            "code": d.code,
            "message": d.message,
            "fix_available": d.fix_available,
            "fixed": d.fixed,
        }
        for report in reports
        for d in report.diagnostics
    ]
    return json.dumps(items, indent=2)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(reports: Sequence[FileReport], mode: str) -> str:
    diagnostics = [d for r in reports for d in r.diagnostics]
    errors = sum(len(r.errors) for r in reports)
    fixed = sum(d.fixed for d in diagnostics)
    remaining = [d for d in diagnostics if not d.fixed]
    fixable = sum(d.fix_available for d in remaining)
    hidden = sum(d.unsafe_fix for d in remaining)
    scanned = sum(r.scanned for r in reports)
    parts = []
    if mode == "write":
        changed = sum(r.changed for r in reports)
        parts.append(f"Fixed {_plural(fixed, 'finding')} in {_plural(changed, 'file')}, {len(remaining)} remaining.")
    elif mode == "diff":
        files, added, removed = diff_stats(b"".join(r.diff for r in reports).decode("utf-8", "replace"))
        parts.append(f"Would fix {_plural(fixed, 'finding')} in {_plural(files, 'file')} (+{added} -{removed} lines), {len(remaining)} remaining.")
    elif diagnostics:
        parts.append(f"Found {_plural(len(diagnostics), 'finding')} in {_plural(scanned, 'file')} scanned ({fixable} fixable with --write).")
    else:
        parts.append(f"No findings in {_plural(scanned, 'file')} scanned.")
    if hidden:
        parts.append(f"{hidden} more {'fix' if hidden == 1 else 'fixes'} available with --unsafe-fixes.")
    if errors:
        parts.append(f"{_plural(errors, 'error')} (reported above; those files were left untouched).")
    return " ".join(parts)
