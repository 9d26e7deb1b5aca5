"""Edits for editors: the few replacements that turn a text into its fixed version, and the
``# noqa`` comment that silences one finding.

Positions are LSP's: a 0-based line and a 0-based column, here counted in characters (code
points); the language server converts columns to the client's encoding. Lines end at
``\\r\\n``, ``\\r`` or ``\\n``, as in the LSP specification and for ``ast`` (``tokenize`` is given
the text with each lone ``\\r`` made a ``\\n``, which keeps every offset).
"""

from __future__ import annotations

import ast
import bisect
import difflib
import io
import re
import tokenize
from dataclasses import dataclass

from torchfix_mod.suppress import NOQA, noqa_codes, tokenizable

LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class TextEdit:
    """Replace the text from ``start`` to ``end`` (each ``(line, column)``) by ``new_text``."""

    start: tuple[int, int]
    end: tuple[int, int]
    new_text: str


class Lines:
    """Offsets in a text <-> LSP positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in LINE_BREAK.finditer(text))]

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        return line, offset - self.starts[line]

    def offset(self, line: int, column: int) -> int:
        if line >= len(self.starts):
            return len(self.text)
        return self.starts[line] + column

    def line_text(self, line: int) -> str:
        """Line ``line`` (0-based) without its line break."""
        end = self.starts[line + 1] if line + 1 < len(self.starts) else len(self.text)
        return self.text[self.starts[line] : end].rstrip("\r\n")


def _pieces(text: str) -> list[str]:
    """The text cut after each line break (a piece never splits ``\\r\\n``)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    limit = min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def text_edits(old: str, new: str) -> list[TextEdit]:
    """Non-overlapping edits, in order, that turn ``old`` into ``new``: one per changed block of
    lines, each trimmed to the characters that differ (a ``\\r\\n`` is never cut in two)."""
    if old == new:
        return []
    old_pieces, new_pieces = _pieces(old), _pieces(new)
    old_offsets = [0]
    for piece in old_pieces:
        old_offsets.append(old_offsets[-1] + len(piece))
    lines = Lines(old)
    edits: list[TextEdit] = []
    matcher = difflib.SequenceMatcher(None, old_pieces, new_pieces, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start, end = old_offsets[i1], old_offsets[i2]
        before, after = old[start:end], "".join(new_pieces[j1:j2])
        head = _common_prefix(before, after)
        tail = _common_prefix(before[head:][::-1], after[head:][::-1])
        # never start or end an edit between the \r and the \n of one line break
        while head and before[head - 1] == "\r" and head < len(before) and before[head] == "\n":
            head -= 1
        while tail and before[len(before) - tail] == "\n" and len(before) - tail > head and before[len(before) - tail - 1] == "\r":
            tail -= 1
        edits.append(
            TextEdit(lines.position(start + head), lines.position(end - tail), after[head : len(after) - tail])
        )
    return edits


def apply_edits(text: str, edits: list[TextEdit]) -> str:
    """``text`` with ``edits`` applied (as an editor applies a list of LSP text edits)."""
    lines = Lines(text)
    out, at = [], 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        start, end = lines.offset(*edit.start), lines.offset(*edit.end)
        out.append(text[at:start])
        out.append(edit.new_text)
        at = end
    out.append(text[at:])
    return "".join(out)


def _comment_lines(source: str) -> tuple[set[int], dict[int, tokenize.TokenInfo]]:
    """1-based lines at whose end a comment may be written (a comment or a line end token
    starts there: not inside a string, not continued by a backslash), and their comments."""
    ends: set[int] = set()
    found: dict[int, tokenize.TokenInfo] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(tokenizable(source)).readline):
            if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT):
                ends.add(token.start[0])
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token
    except (tokenize.TokenError, SyntaxError):
        return set(), {}
    return ends, found


def noqa_edit(source: str, code: str, lines: tuple[int, ...]) -> tuple[TextEdit, int] | None:
    """The edit that silences ``code`` with a ``# noqa`` on the first of ``lines`` (1-based) that
    can take a comment, and that line; None when none can. An existing ``# noqa: CODES`` comment
    gets the code added; any other comment keeps its text and gets ``# noqa: CODE`` after it.
    The result is checked: it parses, and the line's ``# noqa`` names the code."""
    ends, comments = _comment_lines(source)
    text = Lines(source)
    for line in lines:
        if line not in ends or line > len(text.starts):
            continue
        content = text.line_text(line - 1)
        comment = comments.get(line)
        match = NOQA.search(comment.string) if comment is not None else None
        if match is not None and match.group("codes"):
            at = comment.start[1] + match.end("codes")
            edit = TextEdit((line - 1, at), (line - 1, at), f", {code}")
        elif match is not None:
            return None  # a bare `# noqa` silences every code already
        else:
            kept = len(content.rstrip())
            edit = TextEdit((line - 1, kept), (line - 1, len(content)), f"  # noqa: {code}")
        new = apply_edits(source, [edit])
        try:
            ast.parse(new)
        except (SyntaxError, ValueError):
            continue
        if code in noqa_codes(new).get(line, frozenset()):
            return edit, line
    return None
