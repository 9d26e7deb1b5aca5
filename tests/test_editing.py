"""The edits an editor receives: they turn the text into the fixed text exactly, touch only what
differs, and a ``# noqa`` is only ever written where it parses and silences the code."""

from __future__ import annotations

import ast
import re

from hypothesis import given, settings, strategies as st

from torchfix_mod.editing import TextEdit, apply_edits, noqa_edit, text_edits
from torchfix_mod.suppress import noqa_codes


def offset(text: str, line: int, column: int) -> int:
    """An LSP position as a string offset, computed on its own (not with the module's helpers)."""
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    return starts[line] + column


def editor_apply(text: str, edits: list[TextEdit]) -> str:
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[: offset(text, *edit.start)] + edit.new_text + text[offset(text, *edit.end) :]
    return text


texts = st.lists(st.sampled_from(["a", "b", "é", "😀", " ", "\n", "\r\n", "\r", "x = 1\n", "\t"]), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(texts, texts)
def test_the_edits_turn_the_old_text_into_the_new_one(old, new):
    edits = text_edits(old, new)
    assert editor_apply(old, edits) == new
    assert apply_edits(old, edits) == new
    # in order and not overlapping; never between the \r and \n of a line break
    for a, b in zip(edits, edits[1:]):
        assert a.end <= b.start
    for e in edits:
        for line, column in (e.start, e.end):
            at = offset(old, line, column)
            assert not (0 < at < len(old) and old[at - 1] == "\r" and old[at] == "\n")
    assert (edits == []) == (old == new)


def test_an_edit_covers_only_the_characters_that_change():
    old = "import torch.nn as nn\nself.layers = [a, b]  # keep\nreturn x\n"
    new = "import torch.nn as nn\nself.layers = nn.ModuleList([a, b])  # keep\nreturn x\n"
    # one edit per changed block of lines, trimmed to the characters that differ
    assert text_edits(old, new) == [TextEdit((1, 14), (1, 20), "nn.ModuleList([a, b])")]


def _noqa(source: str, code: str, lines: tuple[int, ...]) -> str | None:
    found = noqa_edit(source, code, lines)
    return None if found is None else apply_edits(source, [found[0]])


def test_noqa_is_appended_extended_or_put_after_a_comment():
    assert _noqa("x = [a]\n", "TFM101", (1,)) == "x = [a]  # noqa: TFM101\n"
    assert _noqa("x = [a]   \n", "TFM101", (1,)) == "x = [a]  # noqa: TFM101\n"
    assert _noqa("x = [a]  # noqa: TFM201\n", "TFM101", (1,)) == "x = [a]  # noqa: TFM201, TFM101\n"
    assert _noqa("x = [a]  # keep this\n", "TFM101", (1,)) == "x = [a]  # keep this  # noqa: TFM101\n"
    assert _noqa("x = [a]", "TFM101", (1,)) == "x = [a]  # noqa: TFM101"  # no newline at the end
    assert _noqa("x = [a]  # noqa\n", "TFM101", (1,)) is None  # already silenced


def test_noqa_never_lands_inside_a_string_or_after_a_backslash():
    multiline = 'x = f("""first\nsecond""", [a])\n'
    # the first line ends inside the string: the comment goes on the last line
    assert _noqa(multiline, "TFM101", (1, 2)) == 'x = f("""first\nsecond""", [a])  # noqa: TFM101\n'
    assert _noqa(multiline, "TFM101", (1,)) is None
    continued = "x = [a] + \\\n    [b]\n"
    assert _noqa(continued, "TFM101", (1, 2)) == "x = [a] + \\\n    [b]  # noqa: TFM101\n"
    for source in (multiline, continued):
        fixed = _noqa(source, "TFM101", (1, 2))
        ast.parse(fixed)
        assert "TFM101" in set().union(*noqa_codes(fixed).values())


def test_noqa_on_a_crlf_file_keeps_its_line_ends():
    assert _noqa("x = [a]\r\ny = 1\r\n", "TFM101", (1,)) == "x = [a]  # noqa: TFM101\r\ny = 1\r\n"


def test_noqa_on_a_file_with_lone_carriage_returns():
    """``ast`` ends a line at a lone \\r: the comment goes on that line and silences it."""
    source = "import torch\rx = [a]\ry = 1\r"
    fixed = _noqa(source, "TFM101", (2,))
    assert fixed == "import torch\rx = [a]  # noqa: TFM101\ry = 1\r"
    assert noqa_codes(fixed) == {2: frozenset({"TFM101"})}
