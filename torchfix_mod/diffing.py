"""Unified diffs that ``git apply`` and ``patch -p1`` accept, and their statistics."""

from __future__ import annotations

import difflib

import unidiff

NO_NEWLINE = "\\ No newline at end of file\n"


def split_lines(text: str) -> list[str]:
    """Lines ending in ``\n`` (``\r\n`` stays inside the line), as git sees them;
    unlike ``str.splitlines`` this never splits on form feeds or other separators."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def unified_diff(display_path: str, old: str, new: str) -> str:
    """A unified diff with ``a/``/``b/`` headers; empty when nothing changed."""
    if old == new:
        return ""
    # like git, end a header holding a space with a tab so `patch` reads the whole name
    tail = "\t" if " " in display_path else ""
    lines = difflib.unified_diff(
        split_lines(old),
        split_lines(new),
        fromfile=f"a/{display_path}{tail}",
        tofile=f"b/{display_path}{tail}",
        lineterm="\n",
    )
    out = []
    for line in lines:
        if line.endswith("\n"):
            out.append(line)
        else:  # the last line of a file without a final newline
            out.append(line + "\n" + NO_NEWLINE)
    return "".join(out)


def diff_stats(diff: str) -> tuple[int, int, int]:
    """Files, added lines and removed lines of a unified diff."""
    if not diff:
        return 0, 0, 0
    patch = unidiff.PatchSet(diff)
    return len(patch), patch.added, patch.removed
