"""Suppression comments: ``# noqa`` / ``# noqa: TFM101, TFM201`` on a reported line
(Ruff and flake8 spelling; TorchFix's codes, ``# noqa: TOR101``, silence the rule that makes
the same check) and ``# torchfix-mod: skip-file`` anywhere in a file."""

from __future__ import annotations

import io
import re
import tokenize

NOQA = re.compile(r"#\s*noqa(?::[\s]*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
SKIP_FILE = re.compile(r"#\s*torchfix-mod:\s*skip-file\b")
ALL = frozenset({"*"})


LONE_CR = re.compile(r"\r(?!\n)")


def tokenizable(source: str) -> str:
    """``source`` with each lone ``\r`` made a ``\n``: the same length and, for ``tokenize``,
    the same lines ``ast`` counts (``ast`` ends a line at a lone ``\r``; ``tokenize`` reading
    through ``StringIO`` does not)."""
    return LONE_CR.sub("\n", source) if "\r" in source else source


def comments(source: str) -> dict[int, str]:
    """Comment text by line number, read from real comment tokens (never from strings)."""
    found: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(tokenizable(source)).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def skips_file(source: str) -> bool:
    return "skip-file" in source and any(SKIP_FILE.match(c) for c in comments(source).values())


def noqa_codes(source: str) -> dict[int, frozenset[str]]:
    """Line -> the codes its ``# noqa`` suppresses (``{"*"}`` for a bare ``# noqa``)."""
    result: dict[int, frozenset[str]] = {}
    if "noqa" not in source.lower():
        return result
    for line, text in comments(source).items():
        match = NOQA.search(text)
        if match:
            codes = match.group("codes")
            result[line] = frozenset(re.split(r"[\s,]+", codes.upper().strip())) if codes else ALL
    return result


def is_suppressed(codes_by_line: dict[int, frozenset[str]], code: str, lines: range, aliases: tuple[str, ...] = ()) -> bool:
    """``code`` is silenced on one of ``lines`` by a bare ``# noqa`` or one naming it, or
    naming one of its ``aliases`` (the TorchFix codes of the same check, ``TOR101``)."""
    for line in lines:
        codes = codes_by_line.get(line)
        if codes is not None and (codes is ALL or code in codes or any(a in codes for a in aliases)):
            return True
    return False
