"""Renderings of a run for CI: GitHub Actions annotations, SARIF 2.1.0 and a Markdown report.

All three take the ``list[FileReport]`` that :func:`torchfix_mod.runner.run` returns.

Choices that hold for every rendering:

* Fixed findings are gone from the code after the run, so the annotations and SARIF leave
  them out; only the migration report (which describes the change) lists them.
* Lines and columns are the tool's own: 1-based, the end column exclusive, columns counted in
  Unicode code points. GitHub annotations and SARIF regions get the same numbers as the text
  and JSON output (SARIF says so with ``columnKind: unicodeCodePoints``).
* Notebook findings (``Diagnostic.cell`` set) cannot be pointed at: GitHub and SARIF address a
  notebook file by the lines of its JSON, not by cell. They are placed on line 1 of the file,
  without columns, and the message starts with ``cell N, line L: `` (L within the cell). SARIF
  results also carry ``properties.notebookCell`` and ``properties.cellRegion``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import unidiff

from torchfix_mod import __version__
from torchfix_mod.docs import rule_safety
from torchfix_mod.engine import Diagnostic, SourceError
from torchfix_mod.rule import Rule
from torchfix_mod.runner import FileReport

TOOL_NAME = "torchfix-mod"
INFORMATION_URI = "https://pypi.org/project/torchfix-mod/"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
FINGERPRINT_KEY = "torchfixMod/v1"
SOURCE_ERROR_ID = "source-error"
PR_BODY_LIMIT = 65_536  # characters GitHub accepts in a pull-request body (measured in UTF-8 bytes here)
MAX_FINDINGS_PER_FILE = 100  # fixed findings listed in one file's <details> block


def _location_prefix(d: Diagnostic) -> str:
    return "" if d.cell is None else f"cell {d.cell}, line {d.line}: "


# --- GitHub Actions workflow commands -------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _workflow_command(kind: str, properties: Sequence[tuple[str, object]], message: str) -> str:
    props = ",".join(f"{key}={_escape_property(str(value))}" for key, value in properties)
    return f"::{kind} {props}::{_escape_data(message)}"


def github_annotations(reports: Sequence[FileReport]) -> list[str]:
    """One ``::warning`` per finding left in the code and one ``::error`` per file error.

    Notebook findings go on line 1 of the notebook with the cell in the message (see the
    module docstring); errors carry their line and column and the title ``torchfix-mod``.
    """
    commands = []
    for report in reports:
        for d in report.diagnostics:
            if d.fixed:
                continue
            if d.cell is None:
                props = [
                    ("file", report.display),
                    ("line", d.line),
                    ("col", d.column),
                    ("endLine", d.end_line),
                    ("endColumn", d.end_column),
                    ("title", d.code),
                ]
            else:
                props = [("file", report.display), ("line", 1), ("title", d.code)]
            commands.append(_workflow_command("warning", props, _location_prefix(d) + d.message))
        for e in report.errors:
            props = [
                ("file", report.display),
                ("line", max(e.line, 1)),
                ("col", max(e.column, 1)),
                ("title", TOOL_NAME),
            ]
            commands.append(_workflow_command("error", props, e.message))
    return commands


# --- SARIF 2.1.0 ----------------------------------------------------------------------------


def pascal_case(name: str) -> str:
    """``module-list`` -> ``ModuleList`` (SARIF wants a readable identifier, not the id)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_\s]+", name) if part)


def artifact_location(display: str) -> dict:
    """A relative path becomes a URI under ``%SRCROOT%``; a path outside the working directory
    (shown absolute) becomes a ``file:`` URI, which code scanning cannot map to the repository."""
    def encode(text: str, safe: str = "/") -> str:
        return quote(text, safe=safe, encoding="utf-8", errors="surrogateescape")

    if display.startswith("/"):
        return {"uri": "file://" + encode(display)}
    if re.match(r"[A-Za-z]:/", display):
        return {"uri": "file:///" + display[:2] + encode(display[2:])}
    return {"uri": encode(display), "uriBaseId": "%SRCROOT%"}


def _what_it_does(docs: str) -> str:
    """The body of the documentation's first section, as one paragraph of text."""
    sections = re.split(r"^#+ .*$", docs, flags=re.M)
    for body in sections:
        text = " ".join(body.split())
        if text:
            return text
    return ""


def _rule_descriptor(rule: type[Rule]) -> dict:
    docs = rule.docs() or rule.summary
    return {
        "id": rule.code,
        "name": pascal_case(rule.name),
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": _what_it_does(docs) or rule.summary},
        "help": {"text": docs, "markdown": docs},
        "defaultConfiguration": {"level": "warning"},
        "properties": {
            "tags": ["pytorch"],
            "precision": "high",
            "torchfixModName": rule.name,
            "applicability": rule.applicability.value,
            "fixSafety": rule_safety(rule),
        },
    }


def _fingerprint(display: str, d: Diagnostic, occurrence: int) -> str:
    """Stable across runs while the finding stays: no line number in it, so edits above a
    finding keep its alert; ``occurrence`` tells identical findings of one file apart."""
    key = "\0".join([display, d.code, d.message, str(occurrence)])
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _result(display: str, d: Diagnostic, rule_index: int, occurrence: int) -> dict:
    if d.cell is None:
        region = {"startLine": d.line, "startColumn": d.column, "endLine": d.end_line, "endColumn": d.end_column}
    else:
        region = {"startLine": 1}
    properties: dict = {"fixAvailable": d.fix_available, "unsafeFix": d.unsafe_fix}
    if d.fix_note:
        properties["fixNotApplied"] = d.fix_note
    if d.cell is not None:
        properties["notebookCell"] = d.cell
        properties["cellRegion"] = {
            "startLine": d.line,
            "startColumn": d.column,
            "endLine": d.end_line,
            "endColumn": d.end_column,
        }
    return {
        "ruleId": d.code,
        "ruleIndex": rule_index,
        "level": "warning",
        "message": {"text": _location_prefix(d) + d.message},
        "locations": [{"physicalLocation": {"artifactLocation": artifact_location(display), "region": region}}],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(display, d, occurrence)},
        "properties": properties,
    }


def _notification(display: str, e: SourceError) -> dict:
    region = {"startLine": max(e.line, 1), "startColumn": max(e.column, 1)}
    return {
        "level": "error",
        "message": {"text": e.message},
        "locations": [{"physicalLocation": {"artifactLocation": artifact_location(display), "region": region}}],
        "descriptor": {"id": SOURCE_ERROR_ID, "index": 0},
    }


def sarif_log(reports: Sequence[FileReport], rules: Sequence[type[Rule]]) -> dict:
    """The SARIF log as a JSON-ready dict (see :func:`sarif`)."""
    descriptors = [_rule_descriptor(rule) for rule in rules]
    index = {rule.code: i for i, rule in enumerate(rules)}
    results, notifications = [], []
    for report in reports:
        seen: Counter[tuple[str, str]] = Counter()
        for d in report.diagnostics:
            if d.fixed:
                continue
            if d.code not in index:  # a finding of a rule not passed in still needs its descriptor
                index[d.code] = len(descriptors)
                descriptors.append({"id": d.code, "shortDescription": {"text": d.code}})
            occurrence = seen[(d.code, d.message)]
            seen[(d.code, d.message)] += 1
            results.append(_result(report.display, d, index[d.code], occurrence))
        notifications.extend(_notification(report.display, e) for e in report.errors)
    driver = {
        "name": TOOL_NAME,
        "version": __version__,
        "semanticVersion": __version__,
        "informationUri": INFORMATION_URI,
        "rules": descriptors,
        "notifications": [
            {
                "id": SOURCE_ERROR_ID,
                "name": "SourceError",
                "shortDescription": {
                    "text": "A file could not be read, parsed, fixed or written; it was left unchanged"
                },
                "defaultConfiguration": {"level": "error"},
            }
        ],
    }
    invocation = {"executionSuccessful": True, "toolExecutionNotifications": notifications}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "invocations": [invocation],
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def sarif(reports: Sequence[FileReport], rules: Sequence[type[Rule]]) -> str:
    """A SARIF 2.1.0 log of one run, for GitHub code scanning (``upload-sarif``).

    * ``tool.driver.rules``: one descriptor per rule passed in (id = code, name = PascalCase of
      the rule name, help = its documentation in text and Markdown, fix safety in properties).
    * ``results``: one ``warning`` per finding left in the code. Fixed findings are not results:
      the code they pointed at no longer exists. ``partialFingerprints`` holds a line-free key.
    * File errors (unreadable, unparsable, not writable) are not results of any rule: they are
      ``error`` notifications in ``invocations[0].toolExecutionNotifications``, which code
      scanning accepts but does not turn into alerts. ``executionSuccessful`` stays true: the
      run itself completed.
    * Paths inside the working directory are relative to ``%SRCROOT%``: run the tool from the
      repository root so they match the repository's paths.
    """
    return json.dumps(sarif_log(reports, rules), indent=2)


# --- Markdown migration report --------------------------------------------------------------

_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_INLINE_SPECIAL = re.compile(r"([\\*_\[\]<>~|&`])")


def _clean(text: str) -> str:
    """One line of printable text: undecodable bytes shown as U+FFFD, line breaks as spaces."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return re.sub(r"[\r\n\t\v\f\x85\u2028\u2029]+", " ", text)


def markdown_text(text: str, table: bool = False) -> str:
    """Text safe inside a Markdown paragraph or list item (``table``: a table cell). Backtick
    code spans are kept (rule messages use them on purpose); elsewhere, characters Markdown
    would read as emphasis, links, HTML or cell borders are escaped. In a table cell pipes are
    escaped inside code spans too, as GitHub tables require (elsewhere that would show the
    backslash)."""
    text = _clean(text)
    out, pos = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_INLINE_SPECIAL.sub(r"\\\1", text[pos : match.start()]))
        out.append(match.group(0).replace("|", "\\|") if table else match.group(0))
        pos = match.end()
    out.append(_INLINE_SPECIAL.sub(r"\\\1", text[pos:]))
    return "".join(out)


def markdown_code(text: str, table: bool = False) -> str:
    """``text`` as one code span, whatever backticks it holds (``table``: pipes escaped)."""
    text = _clean(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ")) else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    return span.replace("|", "\\|") if table else span


def _html_code(text: str) -> str:
    return f"<code>{html.escape(_clean(text))}</code>"


def diff_line_counts(diff: bytes) -> tuple[int, int]:
    """Added and removed lines of one file's diff, as unidiff counts them."""
    if not diff:
        return 0, 0
    try:
        patch = unidiff.PatchSet.from_string(diff, encoding="utf-8", errors="replace")
    except unidiff.UnidiffParseError:  # never expected from our own diffs: count by hand
        lines = diff.decode("utf-8", "replace").split("\n")
        added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++ "))
        removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("--- "))
        return added, removed
    return patch.added, patch.removed


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _where(d: Diagnostic) -> str:
    return f"line {d.line}" if d.cell is None else f"cell {d.cell}, line {d.line}"


@dataclass
class _Section:
    """A report section whose entries may be cut to fit the body limit."""

    title: str
    intro: str
    entries: list[str] = field(default_factory=list)
    unit: str = "entries"
    empty: str = ""

    def render(self, shown: int | None = None) -> str:
        shown = len(self.entries) if shown is None else shown
        parts = [f"### {self.title}", ""]
        if self.intro:
            parts += [self.intro, ""]
        if not self.entries:
            if self.empty:
                parts += [self.empty, ""]
            return "\n".join(parts)
        parts += self.entries[:shown]
        if shown < len(self.entries):
            parts += ["", self.truncation_note(len(self.entries) - shown)]
        parts.append("")
        return "\n".join(parts)

    def truncation_note(self, hidden: int) -> str:
        return (
            f"_{hidden} more {self.unit} not shown: this report is kept under GitHub's "
            f"{PR_BODY_LIMIT:,}-character limit for a pull-request body._"
        )


def _size(text: str) -> int:
    """Length as UTF-8 bytes: never less than the count in characters or UTF-16 units, so the
    body fits however the limit is counted."""
    return len(text.encode("utf-8", "replace"))


def _allocate(sizes: list[int], budget: int) -> list[int]:
    """Max-min fair shares of ``budget``: small sections keep everything, the largest share
    what is left equally."""
    shares = [0] * len(sizes)
    pending = sorted(range(len(sizes)), key=lambda i: sizes[i])
    remaining = max(budget, 0)
    while pending:
        share = remaining // len(pending)
        first = pending[0]
        if sizes[first] <= share:
            shares[first] = sizes[first]
            remaining -= sizes[first]
            pending.pop(0)
        else:
            for i in pending:
                shares[i] = share
            break
    return shares


def _fit(sections: list[_Section], budget: int) -> list[int]:
    """How many entries of each section fit in ``budget`` characters."""
    sizes = [sum(_size(entry) + 1 for entry in s.entries) for s in sections]
    if sum(sizes) <= budget:
        return [len(s.entries) for s in sections]
    shown = []
    for section, share in zip(sections, _allocate(sizes, budget)):
        used, count = 0, 0
        for entry in section.entries:
            if used + _size(entry) + 1 > share:
                break
            used += _size(entry) + 1
            count += 1
        shown.append(count)
    return shown


def _headline(reports: Sequence[FileReport], mode: str, line_counts: Sequence[tuple[int, int]]) -> list[str]:
    diagnostics = [d for r in reports for d in r.diagnostics]
    fixed = sum(d.fixed for d in diagnostics)
    remaining = len(diagnostics) - fixed
    changed = sum(r.changed for r in reports)
    errors = sum(len(r.errors) for r in reports)
    failed = sum(bool(r.errors) for r in reports)
    added = sum(a for a, _ in line_counts)
    removed = sum(m for _, m in line_counts)
    findings = _plural(fixed, "finding")
    files = _plural(changed, "file")
    if mode == "write":
        sentence = f"torchfix-mod fixed {findings} in {files} (+{added} -{removed} lines)."
    elif mode == "diff":
        sentence = f"The torchfix-mod diff fixes {findings} in {files} (+{added} -{removed} lines)."
    else:
        scanned = sum(r.scanned for r in reports)
        sentence = (
            f"torchfix-mod checked {_plural(scanned, 'file')} and changed nothing "
            "(run it with `--diff` or `--write` to apply fixes)."
        )
    if remaining:
        sentence += f" {_plural(remaining, 'finding')} {'remains' if remaining == 1 else 'remain'} for a manual look."
    if errors:
        sentence += f" {_plural(failed, 'file')} could not be processed ({_plural(errors, 'error')})."
    return [
        "## torchfix-mod: nn.Module fixes",
        "",
        sentence,
        "",
        "| files changed | findings fixed | remaining | errors |",
        "|---:|---:|---:|---:|",
        f"| {changed} | {fixed} | {remaining} | {errors} |",
        "",
    ]


def _rule_table(reports: Sequence[FileReport], rules: Sequence[type[Rule]]) -> list[str]:
    names = {rule.code: rule.name for rule in rules}
    fixed: Counter[str] = Counter()
    remaining: Counter[str] = Counter()
    files: dict[str, set[str]] = defaultdict(set)
    for r in reports:
        for d in r.diagnostics:
            (fixed if d.fixed else remaining)[d.code] += 1
            files[d.code].add(r.display)
    lines = ["### Findings by rule", ""]
    if not files:
        return lines + ["No findings.", ""]
    lines += ["| code | rule | fixed | remaining | files |", "|---|---|---:|---:|---:|"]
    for code in sorted(files):
        name = markdown_code(names[code], table=True) if code in names else ""
        lines.append(f"| {markdown_text(code, table=True)} | {name} | {fixed[code]} | {remaining[code]} | {len(files[code])} |")
    return lines + [""]


CHECKPOINT_INTRO = (
    "These fixes register submodules, parameters or persistent buffers that `state_dict()` did "
    "not hold before, so the key patterns below are new. They are relative to the module class "
    "that defines them: in a full model they carry its prefix (`encoder.layers.0.weight`). A "
    "checkpoint saved before this change lacks them, and `model.load_state_dict(sd)` fails with "
    "`Missing key(s) in state_dict`.\n\n"
    "To keep using an old checkpoint, load it with "
    "`missing, unexpected = model.load_state_dict(sd, strict=False)`, check that `missing` holds "
    "only these keys, then save it again (`torch.save(model.state_dict(), path)`); or convert "
    "the checkpoint by adding the missing entries. Those values were never saved, so after "
    "loading they keep what the constructor gives them: right for a buffer computed in "
    "`__init__`, but evaluate (or fine-tune) the model before trusting layers or parameters "
    "that training used without saving them."
)
CHECKPOINT_UNAFFECTED = (
    "Checkpoints are unaffected: no fix in this change adds `state_dict()` keys, so checkpoints "
    "saved before it load as they did."
)


def _checkpoint_section(reports: Sequence[FileReport]) -> _Section:
    entries = []
    for r in reports:
        keys = [
            f"{markdown_code(key)} ({_where(d)}, {markdown_text(d.code)})"
            for d in r.diagnostics
            if d.fixed
            for key in d.state_keys
        ]
        if keys:
            entries.append(f"- {markdown_code(r.display)}: " + ", ".join(keys))
    if not entries:
        return _Section("Checkpoint compatibility", CHECKPOINT_UNAFFECTED)
    return _Section("Checkpoint compatibility", CHECKPOINT_INTRO, entries, unit="files")


def _file_details(report: FileReport, added: int, removed: int) -> str | None:
    fixed = [d for d in report.diagnostics if d.fixed]
    if not report.diff and not fixed:
        return None
    summary = f"{_html_code(report.display)}: +{added} -{removed} lines, {_plural(len(fixed), 'finding')} fixed"
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    for d in fixed[:MAX_FINDINGS_PER_FILE]:
        lines.append(f"- {_where(d)}: {markdown_text(d.code)} {markdown_text(d.message)}")
    if len(fixed) > MAX_FINDINGS_PER_FILE:
        lines.append(f"- _and {len(fixed) - MAX_FINDINGS_PER_FILE} more_")
    lines += ["", "</details>"]
    return "\n".join(lines)


def _manual_entry(display: str, d: Diagnostic) -> str:
    hint = ""
    if d.unsafe_fix:
        hint = " (a fix is available with `--unsafe-fixes`)"
    elif d.fix_available:
        hint = " (fixable: run with `--write`)"
    elif d.fix_note:
        hint = f" (fix not applied: {markdown_text(d.fix_note)})"
    return f"- {markdown_code(display)} {_where(d)}: {markdown_text(d.code)} {markdown_text(d.message)}{hint}"


MODES = ("check", "diff", "write")


def migration_report(reports: Sequence[FileReport], rules: Sequence[type[Rule]], mode: str) -> str:
    """A Markdown pull-request body describing a run's changes.

    ``mode`` is the run's mode (``check``, ``diff`` or ``write``); it only changes the wording
    of the headline. Sections: headline counts; findings by rule; checkpoint compatibility
    (the ``state_dict`` key patterns fixed findings add, per file, with the remedy, or a note
    that checkpoints are unaffected); changed files (``<details>`` per file with its +/- line
    counts and fixed findings); findings needing a manual look; errors. The body stays within
    GitHub's 65,536 characters: the lists of the last four sections share the room left after
    the headline and rule table, and a note says how many entries each cut.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    line_counts = [diff_line_counts(r.diff) for r in reports]
    head = "\n".join(_headline(reports, mode, line_counts) + _rule_table(reports, rules))
    details = [
        block for block in (_file_details(r, *counts) for r, counts in zip(reports, line_counts)) if block is not None
    ]
    manual = [_manual_entry(r.display, d) for r in reports for d in r.diagnostics if not d.fixed]
    errors = [
        f"- {markdown_code(r.display)} line {e.line}: {markdown_text(e.message)}" for r in reports for e in r.errors
    ]
    sections = [
        _checkpoint_section(reports),
        _Section("Changed files", "", details, unit="files", empty="No file was changed."),
        _Section(
            "Needs a manual look",
            "Findings this change does not fix; the message says why.",
            manual,
            unit="findings",
            empty="Nothing: every finding was fixed." if any(r.diagnostics for r in reports) else "No findings.",
        ),
    ]
    if errors:
        sections.append(_Section("Errors", "These files were left unchanged.", errors, unit="errors"))

    # the frame (headings, intros, a worst-case note per section) first, then the entries
    frame = _size(head) + 1 + sum(_size(s.render(0)) + _size(s.truncation_note(10**9)) + 4 for s in sections)
    shown = _fit(sections, PR_BODY_LIMIT - frame)
    body = "\n".join([head, *(s.render(n) for s, n in zip(sections, shown))]).rstrip("\n") + "\n"
    if _size(body) > PR_BODY_LIMIT:  # only a frame larger than the limit itself gets here
        note = "\n\n_Report cut at GitHub's pull-request body limit._\n"
        cut = PR_BODY_LIMIT - _size(note)
        while _size(body[:cut]) > PR_BODY_LIMIT - _size(note):
            cut -= max(1, (_size(body[:cut]) - (PR_BODY_LIMIT - _size(note))) // 4)
        body = body[:cut] + note
    return body
