"""Rendering run results for people (text) and machines (json); the summary line."""

from __future__ import annotations

import json
from collections.abc import Sequence

from torchfix_mod.diffing import diff_stats
from torchfix_mod.engine import is_rule_error
from torchfix_mod.runner import FileReport


def finding_lines(reports: Sequence[FileReport], only_remaining: bool) -> list[str]:
    lines = []
    for report in reports:
        for d in report.diagnostics:
            if only_remaining and d.fixed:
                continue
            mark = " [*]" if d.fix_available and not d.fixed else ""
            note = f" (fix not applied: {d.fix_note})" if d.fix_note else ""
            lines.append(f"{report.display}:{_cell(d.cell)}{d.line}:{d.column}: {d.code}{mark} {d.message}{note}")
    return lines


def _cell(cell: int | None) -> str:
    return "" if cell is None else f"cell {cell}:"


def error_lines(reports: Sequence[FileReport]) -> list[str]:
    return [
        f"{report.display}:{_cell(e.cell)}{e.line}:{e.column}: error: {e.message}"
        for report in reports
        for e in report.errors
    ]


def note_lines(reports: Sequence[FileReport]) -> list[str]:
    return [f"{report.display}: note: {note}" for report in reports for note in report.notes]


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
            **({"cell": d.cell} if d.cell is not None else {}),
            **({"fix_note": d.fix_note} if d.fix_note else {}),
        }
        for report in reports
        for d in report.diagnostics
    ]
    return json.dumps(items, indent=2)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(reports: Sequence[FileReport], mode: str) -> str:
    diagnostics = [d for r in reports for d in r.diagnostics]
    rule_errors = sum(is_rule_error(e) for r in reports for e in r.errors)
    errors = sum(len(r.errors) for r in reports) - rule_errors
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
    if rule_errors:
        others = {
            "write": "the other rules' fixes were applied",
            "diff": "the other rules' fixes are in the diff",
        }.get(mode, "the other rules' findings are reported")
        parts.append(
            f"{_plural(rule_errors, 'internal rule error')} (reported above; the failing rule's findings "
            f"in those files are lost, {others})."
        )
    return " ".join(parts)


def rule_statistics(reports: Sequence[FileReport], rules) -> list[str]:
    """One line per rule with findings (fixed, remaining, fixes waiting for --unsafe-fixes),
    when more than one rule reported."""
    names = {r.code: r.name for r in rules}
    counts: dict[str, list[int]] = {}
    for report in reports:
        for d in report.diagnostics:
            fixed, remaining, unsafe = counts.setdefault(d.code, [0, 0, 0])
            counts[d.code] = [fixed + d.fixed, remaining + (not d.fixed), unsafe + (d.unsafe_fix and not d.fixed)]
    if len(counts) < 2:  # one rule: the summary line already says it all
        return []
    lines = []
    for code in sorted(counts):
        fixed, remaining, unsafe = counts[code]
        parts = [f"{fixed} fixed"] if fixed else []
        parts.append(f"{remaining} remaining")
        if unsafe:
            parts.append(f"{unsafe} with an unsafe fix")
        lines.append(f"  {code} {names.get(code, ''):<24} {', '.join(parts)}")
    return lines
