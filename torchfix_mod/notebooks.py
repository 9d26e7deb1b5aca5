"""Jupyter notebooks: their code cells analysed as one program, fixed, and written back.

A notebook becomes one *virtual source*: its code cells in order, so that an import or a
class of one cell is known in the cells after it. Between two cells stands a marker line, a
bare string statement carrying the cell's number and a token absent from the notebook, which
no fix writes, edits or removes. After the transform the markers split the fixed text back
into cells; a marker missing, repeated or out of order makes the split ambiguous and the
notebook is left alone (:class:`NotebookError`).

Cells are numbered as Jupyter users see them: the 1-based position among *all* cells of the
notebook, markdown and raw cells included. Cells that are not analysed (IPython magics and
shell escapes, cells that are not plain Python) are never edited, not even around the magic,
and what they define or import is unknown to the analysis of the other cells. Blank code
cells are neither analysed nor reported.

The notebook's JSON is not re-serialized blindly: when ``json.dumps`` with some layout
reproduces the file exactly (nbformat's own or another common one), the fixed notebook is
written with that layout; otherwise only the ``source`` values of the changed cells are
replaced in the original text. Outputs, metadata and everything else stay byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from torchfix_mod.engine import Diagnostic, Settings, SourceError, compile_error, parse_python, transform_source


class NotebookError(Exception):
    """The text is not a notebook this tool can read, or its fixes cannot be written back."""


@dataclass
class _Cell:
    index: int  # 1-based among all cells of the notebook
    text: str  # the cell's source joined
    as_list: bool  # the JSON holds the source as a list of lines (else one string)
    start: int = 0  # 1-based line of the virtual source where the cell begins
    lines: int = 0  # number of lines the cell occupies in the virtual source


@dataclass(frozen=True)
class _Layout:
    """``json.dumps`` arguments (and what follows) that reproduce the file exactly."""

    indent: str | None
    ensure_ascii: bool
    separators: tuple[str, str] | None
    trailing_newline: bool
    crlf: bool

    def dump(self, data: Any) -> str:
        text = json.dumps(
            data,
            indent=self.indent,
            ensure_ascii=self.ensure_ascii,
            separators=self.separators,
        )
        if self.trailing_newline:
            text += "\n"
        if self.crlf:  # newlines inside JSON strings are escaped: every raw one is layout
            text = text.replace("\n", "\r\n")
        return text


@dataclass
class Notebook:
    text: str  # the .ipynb file text as read
    virtual_source: str  # the analysed code cells joined, with a marker line between two cells
    skipped_cells: list[tuple[int, str]]  # (1-based index among all cells, reason) for cells not analysed
    data: dict[str, Any] = field(repr=False, default_factory=dict)
    cells: list[_Cell] = field(repr=False, default_factory=list)  # the analysed cells, in order
    token: str = field(repr=False, default="")
    _layout: object = field(repr=False, default=None)  # found on first use: most notebooks need none

    def marker(self, cell: _Cell) -> str:
        return _marker_line(cell.index, self.token)

    def layout(self) -> _Layout | None:
        """The JSON layout that reproduces ``text`` exactly, or None."""
        if self._layout is None:
            self._layout = _find_layout(self.text, self.data) or False
        return self._layout or None


# -- reading -----------------------------------------------------------------


def _marker_line(index: int, token: str) -> str:
    return f"'torchfix-mod cell {index} {token}'"


def _cell_source(cell: dict[str, Any], index: int) -> tuple[str, bool]:
    source = cell.get("source", "")
    if isinstance(source, str):
        return source, False
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source), True
    raise NotebookError(f"cell {index}: source is neither a string nor a list of strings")


_HELP_AT_END = re.compile(r"[\w.)\]]\?{1,2}\s*$")
_ASSIGNED_MAGIC = re.compile(r"^[\w.\[\]\s,()*]+?=\s*[%!]")


def _magic_line(text: str) -> int | None:
    """The first line IPython would rewrite (``%magic``, ``!cmd``, ``x = !cmd``, ``obj?``)."""
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped[0] in "%!?":
            return number
        if "#" not in stripped and _HELP_AT_END.search(stripped):
            return number
        if _ASSIGNED_MAGIC.match(stripped):
            return number
    return None


def _why_skipped(text: str) -> str | None:
    """Why a code cell cannot be analysed as Python, or None when it can.

    A magic or a shell escape is never valid Python where IPython rewrites it (at the start
    of a logical line, or ``?`` at its end), so a cell that parses holds none: the same
    characters inside brackets or strings are Python's, and IPython leaves them alone.
    """
    first = next((line for line in text.split("\n") if line.strip()), "")
    if first.lstrip().startswith("%%"):
        return "cell magic"
    tree = parse_python(text)
    if not isinstance(tree, SourceError):
        return None
    magic = _magic_line(text)
    if magic is not None:
        return f"IPython magic on line {magic}"
    return f"does not parse: {tree.message} (line {tree.line})"


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _count_lines(text: str) -> int:
    """Lines of ``text`` as the parsers count them (it ends with a newline)."""
    return len(_NEWLINE.findall(text))


def _join(cells: list[_Cell], token: str) -> str:
    parts = []
    line = 1
    for position, cell in enumerate(cells):
        if position:
            parts.append(_marker_line(cell.index, token) + "\n")
            line += 1
        text = cell.text if _NEWLINE.search(cell.text[-1:]) else cell.text + "\n"
        cell.start, cell.lines = line, _count_lines(text)
        parts.append(text)
        line += cell.lines
    return "".join(parts)


def _cell_at(cells: list[_Cell], line: int) -> _Cell | None:
    for cell in cells:
        if cell.start <= line < cell.start + cell.lines:
            return cell
    return None


def _choose_token(text: str) -> str:
    """A token absent from the notebook, the same on every run (results can be cached)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    for attempt in range(1000):
        token = f"{digest[:16]}{attempt or ''}"
        if token not in text:
            return token
    raise NotebookError("cannot choose a cell marker absent from the notebook")  # pragma: no cover


def _find_layout(text: str, data: Any) -> _Layout | None:
    """The ``json.dumps`` layout that writes ``data`` back as exactly ``text``, if there is one.

    Keys are never sorted: ``json.loads`` keeps the text's order, so writing that order back
    reproduces a sorted file (nbformat's ``sort_keys=True``) and an unsorted one alike.
    """
    indented = re.match(r"\{(\r?\n)([ \t]*)[\"}]", text)
    if indented:
        layouts = [(indented.group(2), (",", ": "))]
        crlf = indented.group(1) == "\r\n"
    elif text.startswith("{"):
        layouts = [(None, (", ", ": ")), (None, (",", ":"))]
        crlf = False
    else:
        return None
    # an ASCII file holds every other character escaped; any other file holds them as they are
    ensure_ascii = text.isascii()
    for indent, separators in layouts:
        layout = _Layout(indent, ensure_ascii, separators, False, crlf)
        try:
            dumped = layout.dump(data)
        except (TypeError, ValueError, RecursionError):  # pragma: no cover - loaded JSON dumps
            return None
        if dumped == text:
            return layout
        if dumped + ("\r\n" if crlf else "\n") == text:
            return replace(layout, trailing_newline=True)
    return None


def load_notebook(text: str) -> Notebook:
    """Read a notebook (nbformat 4) and build the virtual source of its analysable code cells."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise NotebookError("invalid JSON: too deeply nested") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError('not a notebook: no "cells" list (nbformat 4 or later is needed)')
    cells: list[_Cell] = []
    skipped: list[tuple[int, str]] = []
    for index, cell in enumerate(data["cells"], 1):
        if not isinstance(cell, dict):
            raise NotebookError(f"cell {index} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        source, as_list = _cell_source(cell, index)
        if not source.strip():
            continue  # nothing to analyse, nothing to report
        reason = _why_skipped(source)
        if reason is not None:
            skipped.append((index, reason))
            continue
        cells.append(_Cell(index, source, as_list))
    token = _choose_token(text)
    virtual = _join(cells, token)
    # every cell parses alone; together they must also compile (``from __future__`` only at
    # the top, no top-level ``await`` or ``return``), or the engine would refuse every fix
    for _ in range(len(cells)):
        error = compile_error(virtual)
        if error is None:
            break
        culprit = _cell_at(cells, error.line)
        if culprit is None:  # pragma: no cover - markers compile
            break
        skipped.append((culprit.index, f"does not compile: {error.message} (line {error.line - culprit.start + 1})"))
        cells.remove(culprit)
        virtual = _join(cells, token)
    skipped.sort()
    return Notebook(
        text=text,
        virtual_source=virtual,
        skipped_cells=skipped,
        data=data,
        cells=cells,
        token=token,
    )


# -- mapping findings back -----------------------------------------------------


def map_diagnostic(nb: Notebook, d: Diagnostic) -> Diagnostic:
    """A diagnostic on the virtual source moved to its cell: ``cell`` set, lines within the cell."""
    cell = _cell_at(nb.cells, d.line)
    if cell is None:
        return d
    end_line = d.end_line - cell.start + 1
    end_column = d.end_column
    if end_line > cell.lines:  # cannot happen for a finding inside one statement; never leave the cell
        end_line, end_column = cell.lines, 1
    return replace(d, cell=cell.index, line=d.line - cell.start + 1, end_line=end_line, end_column=end_column)


def map_error(nb: Notebook, e: SourceError) -> tuple[int | None, SourceError]:
    """An engine error moved to its cell, or ``(None, e)`` for one about the whole notebook.

    The engine puts errors that have no position (internal errors, nesting limits) at 1:1;
    they are not about the first cell's first character, so they stay notebook-wide.
    """
    if (e.line, e.column) == (1, 1):
        return None, e
    cell = _cell_at(nb.cells, e.line)
    if cell is None:
        return None, e
    return cell.index, replace(e, line=e.line - cell.start + 1)


# -- writing back ----------------------------------------------------------------


def _split_virtual(nb: Notebook, new_virtual_source: str) -> list[str]:
    """The fixed virtual source cut at the markers, one piece per analysed cell."""
    pieces: list[str] = []
    rest_start = 0
    for cell in nb.cells[1:]:
        marker = nb.marker(cell)
        if new_virtual_source.count(marker) != 1:
            found = new_virtual_source.count(marker)
            raise NotebookError(f"cannot split the fixed cells back: the marker of cell {cell.index} appears {found} times")
        at = new_virtual_source.find(marker)
        line_start = at == 0 or new_virtual_source[at - 1] in "\r\n"
        after = new_virtual_source[at + len(marker) : at + len(marker) + 2]
        if at < rest_start or not line_start or not _NEWLINE.match(after):
            raise NotebookError(f"cannot split the fixed cells back: the marker of cell {cell.index} moved")
        pieces.append(new_virtual_source[rest_start:at])
        rest_start = at + len(marker) + len(_NEWLINE.match(after).group())
    if nb.token in new_virtual_source[rest_start:]:
        raise NotebookError("cannot split the fixed cells back: a marker appears after the last cell")
    pieces.append(new_virtual_source[rest_start:])
    if new_virtual_source.count(nb.token) != len(nb.cells) - 1:
        raise NotebookError("cannot split the fixed cells back: unexpected cell markers")
    return pieces


def _trailing_newlines(text: str) -> str:
    return text[len(text.rstrip("\r\n")) :]


def _split_lines(text: str) -> list[str]:
    """A cell's text as the list nbformat stores: lines with their newline, last one without."""
    return re.findall(r"[^\n]*\n|[^\n]+", text)


def _new_cell_texts(nb: Notebook, new_virtual_source: str) -> dict[int, str]:
    """Position in ``data["cells"]`` (0-based) -> new source text, for the cells that changed."""
    pieces = _split_virtual(nb, new_virtual_source)
    changed: dict[int, str] = {}
    for cell, piece in zip(nb.cells, pieces):
        joined = cell.text if _NEWLINE.search(cell.text[-1:]) else cell.text + "\n"
        if piece == joined:
            continue
        # the newline the join added, and blank lines an added import leaves before the next
        # marker, are not the cell's: it ends as it ended before
        body = piece.rstrip("\r\n")
        new_text = body + _trailing_newlines(cell.text) if body.strip() else ""
        if new_text == cell.text:
            continue
        tree = parse_python(new_text)
        if isinstance(tree, SourceError):
            raise NotebookError(f"cannot split the fixed cells back: cell {cell.index} would not parse on its own ({tree.message})")
        changed[cell.index - 1] = new_text
    return changed


def _with_sources(nb: Notebook, changed: dict[int, str]) -> dict[str, Any]:
    cells = list(nb.data["cells"])
    shapes = {cell.index - 1: cell.as_list for cell in nb.cells}
    for position, text in changed.items():
        cells[position] = {**cells[position], "source": _split_lines(text) if shapes[position] else text}
    return {**nb.data, "cells": cells}


# A minimal scanner over the JSON text, to find where each cell's "source" value lies.
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip_ws(text: str, at: int) -> int:
    return _WHITESPACE.match(text, at).end()


def _expect(text: str, at: int, char: str) -> int:
    if text[at : at + 1] != char:
        raise NotebookError("cannot keep this notebook's JSON layout")
    return at + 1


def _members(text: str, at: int):
    """Yields (key, value start, value end) for each member of the object whose ``{`` is at ``at``."""
    at = _skip_ws(text, _expect(text, at, "{"))
    if text[at : at + 1] == "}":
        return at + 1
    while True:
        key, at = json.decoder.scanstring(text, _expect(text, at, '"'))
        at = _skip_ws(text, _expect(text, _skip_ws(text, at), ":"))
        _, end = _DECODER.raw_decode(text, at)
        yield key, at, end
        at = _skip_ws(text, end)
        if text[at : at + 1] == "}":
            return at + 1
        at = _skip_ws(text, _expect(text, at, ","))


def _source_spans(text: str) -> list[tuple[int, int] | None]:
    """For each cell, the span of its ``source`` value in ``text`` (None when it has none).

    Like ``json.loads``, a repeated key counts by its last occurrence.
    """
    cells_span = None
    for key, start, end in _members(text, _skip_ws(text, 0)):
        if key == "cells":
            cells_span = (start, end)
    if cells_span is None:
        raise NotebookError("cannot keep this notebook's JSON layout")
    spans: list[tuple[int, int] | None] = []
    at = _skip_ws(text, _expect(text, cells_span[0], "["))
    if text[at : at + 1] == "]":
        return spans
    while True:
        source = None
        members = _members(text, at)
        for key, start, end in members:
            if key == "source":
                source = (start, end)
        _, at = _DECODER.raw_decode(text, at)
        spans.append(source)
        at = _skip_ws(text, at)
        if text[at : at + 1] == "]":
            return spans
        at = _skip_ws(text, _expect(text, at, ","))


def _list_style(old_value: str) -> tuple[str, str, str]:
    """(after ``[``, between items, before ``]``) as the original list of lines writes them."""
    at = _skip_ws(old_value, 1)
    opening, closing, between = old_value[1:at], old_value[at:-1], None
    while old_value[at] != "]":
        _, end = _DECODER.raw_decode(old_value, at)
        at = _skip_ws(old_value, end)
        closing = old_value[end:at]
        if old_value[at] == ",":
            next_at = _skip_ws(old_value, at + 1)
            between = between if between is not None else old_value[end:next_at]
            at = next_at
    if between is None:  # a single line: items would be written as nbformat does, one per line
        between = "," + (opening or " ")
    return opening, between, closing


def _dump_source(value: Any, old_value: str, ensure_ascii: bool) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ensure_ascii)
    if not value:
        return "[]"
    opening, between, closing = _list_style(old_value) if old_value.startswith("[") else ("", ", ", "")
    items = between.join(json.dumps(line, ensure_ascii=ensure_ascii) for line in value)
    return f"[{opening}{items}{closing}]"


def _edit_text(nb: Notebook, new_data: dict[str, Any], changed: dict[int, str]) -> str:
    """The original text with only the changed cells' ``source`` values replaced."""
    error = NotebookError("cannot keep this notebook's JSON layout")
    try:
        spans = _source_spans(nb.text)
    except (ValueError, IndexError, RecursionError):
        raise error from None
    if len(spans) != len(nb.data["cells"]):
        raise error
    ensure_ascii = nb.text.isascii()
    out, done = [], 0
    for position in sorted(changed):
        span = spans[position]
        if span is None:
            raise error
        start, end = span
        out.append(nb.text[done:start])
        out.append(_dump_source(new_data["cells"][position]["source"], nb.text[start:end], ensure_ascii))
        done = end
    out.append(nb.text[done:])
    new_text = "".join(out)
    try:
        if json.loads(new_text) != new_data:
            raise error
    except json.JSONDecodeError:
        raise error from None
    return new_text


def rebuild(nb: Notebook, new_virtual_source: str) -> str:
    """The notebook's text with the fixed cells; the exact input text when nothing changed.

    Raises :class:`NotebookError` when the fixed virtual source cannot be split back into the
    same cells unambiguously, or the notebook's JSON layout cannot be kept.
    """
    if new_virtual_source == nb.virtual_source:
        return nb.text
    changed = _new_cell_texts(nb, new_virtual_source)
    if not changed:
        return nb.text
    new_data = _with_sources(nb, changed)
    layout = nb.layout()
    if layout is not None:
        return layout.dump(new_data)
    return _edit_text(nb, new_data, changed)


def transform_notebook(
    text: str, settings: Settings
) -> tuple[str, list[Diagnostic], list[tuple[int | None, SourceError]], list[tuple[int, str]]]:
    """Analyse and fix a notebook: (new text, diagnostics, errors, skipped cells).

    Raises :class:`NotebookError` for a text that is not a readable notebook. When the fixes
    cannot be written back, the text is returned unchanged, the diagnostics are marked not
    fixed and the reason is one more (notebook-wide) error.
    """
    nb = load_notebook(text)
    if not nb.cells:
        return text, [], [], nb.skipped_cells
    result = transform_source(nb.virtual_source, settings)
    diagnostics = [map_diagnostic(nb, d) for d in result.diagnostics]
    errors = [map_error(nb, e) for e in result.errors]
    new_text = text
    if result.changed:
        try:
            new_text = rebuild(nb, result.new_source)
        except NotebookError as exc:
            diagnostics = [replace(d, fixed=False) for d in diagnostics]
            errors.append((None, SourceError(1, 1, f"fixes not applied: {exc}; notebook left unchanged")))
            new_text = text
    return new_text, diagnostics, errors, nb.skipped_cells
