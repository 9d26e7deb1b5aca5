"""bench/differential.py keeps working: its comparison on hand-made runs, and one real run of the
baseline commit against the working tree on two small files and the rule examples (no corpus)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import differential  # noqa: E402
from bench.differential import Run, compare, parse_run  # noqa: E402


def _finding(path="m.py", line=3, code="TFM101", message="plain list", **extra) -> dict:
    record = {"path": path, "line": line, "column": 9, "end_line": line, "end_column": 20, "code": code,
              "message": message, "fix_available": True, "fixed": False}
    return {**record, **extra}


PATCH = """--- a/m.py
+++ b/m.py
@@ -1,3 +1,3 @@
 import torch
-x = torch.log(1 + y)
+x = torch.log1p(y)
 z = 1
"""


def _check_run(findings, stderr="", returncode=1) -> Run:
    return Run(returncode, json.dumps(findings, indent=2).encode() + b"\n", stderr, 0.1)


def _diff_run(findings, diff: str, errors=(), returncode=1) -> Run:
    stderr = json.dumps(findings, indent=2) + "\n" + "".join(f"{e}\n" for e in errors)
    return Run(returncode, diff.encode(), stderr, 0.1)


def test_identical_runs_have_no_difference():
    run = _check_run([_finding(), _finding(line=7)])
    assert compare(parse_run(run, "check"), parse_run(run, "check"), run, run) == []
    run = _diff_run([_finding(fixed=True)], PATCH, errors=["bad.py:1:1: error: cannot parse"])
    assert compare(parse_run(run, "diff"), parse_run(run, "diff"), run, run) == []


def test_each_kind_of_difference_is_reported():
    old = _diff_run([_finding(), _finding(line=9, code="TFM705")], PATCH, errors=["bad.py:1:1: error: cannot parse"])
    other_patch = PATCH.replace("torch.log1p(y)", "torch.log1p(y)  # fixed")
    new = _diff_run([_finding(message="changed"), _finding(path="n.py")], other_patch, returncode=2)
    found = compare(parse_run(old, "diff"), parse_run(new, "diff"), old, new)
    kinds = sorted(d["kind"] for d in found)
    assert kinds == ["diff", "exit code", "finding", "finding", "finding", "message"], found
    changed = next(d for d in found if d["kind"] == "finding" and d["old"] and d["new"])
    assert (changed["path"], changed["line"], changed["old"]["message"], changed["new"]["message"]) == (
        "m.py", 3, "plain list", "changed")
    assert next(d for d in found if d["kind"] == "diff")["line"] == 1
    assert {d["path"] for d in found if d["kind"] == "finding"} == {"m.py", "n.py"}


def test_a_crash_is_a_difference():
    old = _check_run([_finding()])
    new = Run(1, b"", "Traceback (most recent call last):\n  ...\nNameError: boom\n", 0.1)
    found = compare(parse_run(old, "check"), parse_run(new, "check"), old, new)
    assert [d["kind"] for d in found] == ["crash"]
    assert found[0]["side"] == "new" and "NameError: boom" in found[0]["detail"]


def test_patches_are_split_per_file():
    two = PATCH + PATCH.replace("m.py", "sub/n.py")
    patches = differential.split_patches(two)
    assert sorted(patches) == ["m.py", "sub/n.py"]
    assert patches["m.py"] == PATCH


def _baseline_available() -> bool:
    if shutil.which("git") is None:
        return False
    probe = subprocess.run(
        ["git", "cat-file", "-e", f"{differential.DEFAULT_BASELINE}^{{commit}}"], cwd=ROOT, capture_output=True
    )
    return probe.returncode == 0


SOURCES = {
    "model.py": (
        "import torch\nimport torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.layers = [nn.Linear(4, 4) for _ in range(3)]\n\n"
        "    def forward(self, x):\n        for layer in self.layers:\n            x = layer(x)\n        return x\n"
    ),
    "train.py": (
        "import torch\n\nstate = torch.load('w.pt')\nloss = torch.log(1 + torch.tensor(0.5))\n"
    ),
}


@pytest.mark.skipif(not _baseline_available(), reason="the baseline commit is not in this clone (shallow?)")
def test_baseline_against_working_tree_on_small_inputs(tmp_path):
    try:
        differential.baseline_worktree(differential.DEFAULT_BASELINE)
    except differential.SetupError as exc:
        pytest.skip(f"no baseline worktree: {exc}")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, source in SOURCES.items():
        (inputs / name).write_text(source, encoding="utf-8")
    outcome = differential.differential(
        corpus=False, samples=False, examples=True, inputs=[inputs], modes=["diff-unsafe"], jobs=2
    )
    names = {row.set_name for row in outcome.rows}
    assert "examples" in names and any(n.startswith("input1:") for n in names)
    for row in outcome.rows:
        assert row.old_result.crash is None, row.old_result.crash
        assert row.new_result.crash is None, f"the working tree crashed on {row.set_name}: {row.new_result.crash}"
    small = next(row for row in outcome.rows if row.set_name.startswith("input1:"))
    codes = {f["code"] for f in small.old_result.findings}
    assert {"TFM101", "TFM701", "TFM705"} <= codes, codes
    assert set(small.old_result.patches) == {"model.py", "train.py"}
    examples = next(row for row in outcome.rows if row.set_name == "examples")
    assert examples.files > 100 and examples.old_result.findings
    written = differential.write_out(outcome, tmp_path / "out")
    assert json.loads(written.read_text(encoding="utf-8"))["runs"]
