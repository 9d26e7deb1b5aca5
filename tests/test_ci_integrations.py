"""The GitHub Action (action.yml), the project's workflows and the pre-commit hooks.

Static checks: action.yml and the workflows validate against the GitHub schemas
(check-jsonschema's built-in ``vendor.github-actions`` / ``vendor.github-workflows``),
the workflows pass actionlint (with shellcheck on their scripts), no ``run:`` script
contains ``${{``, and every third-party action is pinned by commit SHA.

The action's shell steps run for real: each ``run:`` step of action.yml is executed
the way the runner executes ``shell: bash`` (``bash --noprofile --norc -eo pipefail``),
in a temporary git repository, with ``GITHUB_OUTPUT`` / ``GITHUB_STEP_SUMMARY`` files
and the step's ``env:`` evaluated by a deliberately tiny evaluator: it knows
``inputs.<name>``, ``github.token``, ``steps.<id>.outputs.<name>`` and ``env.<NAME>``
(and, for ``if:``, ``<ref> == '<literal>'`` / ``!=`` joined by ``&&``); any other
expression fails the test, so nothing untested can slip into the action. ``uses:``
steps are not run; their ``if:`` and ``with:`` are evaluated and checked, and their
outputs are simulated (setup-python's interpreter, create-pull-request's PR).

pre-commit: ``pre-commit try-repo`` and a ``.pre-commit-config.yaml`` use a git snapshot
of this working tree (committed or not), and pre-commit builds its own virtualenv from
it; these tests need PyPI (or the configured index) and are skipped without pre-commit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
ACTION_FILE = ROOT / "action.yml"
HOOKS_FILE = ROOT / ".pre-commit-hooks.yaml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI_WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
EXAMPLE_WORKFLOW = ROOT / ".github" / "workflows" / "torchfix-mod.yml"
TEST_TOKEN = "ghs_not-a-real-token"
BIN_DIR = Path(sys.executable).parent

BLOCKS_PY = """\
from torch import nn


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return self.fc(x)
"""

BUGGY_MODEL_PY = """\
from torch import nn

from .blocks import Block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4) for _ in range(2)]
        self.blocks = [Block(4) for _ in range(2)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        for block in self.blocks:
            x = block(x)
        return x
"""

FIXED_MODEL_PY = BUGGY_MODEL_PY.replace(
    "[nn.Linear(4, 4) for _ in range(2)]", "nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])"
).replace("[Block(4) for _ in range(2)]", "nn.ModuleList([Block(4) for _ in range(2)])")


def _notebook(*cells: str) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src.splitlines(True)}
                for i, src in enumerate(cells)
            ],
            "metadata": {"language_info": {"name": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    ) + "\n"


BUGGY_NOTEBOOK = _notebook(
    "from torch import nn",
    "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.heads = [nn.Linear(2, 2) for _ in range(3)]\n\n"
    "    def forward(self, x):\n        return [h(x) for h in self.heads]\n",
)


# --------------------------------------------------------------------------- helpers


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_", "RUNNER_", "INPUT_"))}
    env.update(
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", *args],
        cwd=repo, env=_git_env(), check=True, capture_output=True, text=True,
    ).stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def buggy_files() -> dict[str, str]:
    return {
        "README.md": "# demo\n",
        "pkg/__init__.py": "",
        "pkg/blocks.py": BLOCKS_PY,
        "pkg/model.py": BUGGY_MODEL_PY,
    }


def clean_files() -> dict[str, str]:
    return {**buggy_files(), "pkg/model.py": FIXED_MODEL_PY}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def action() -> dict:
    return load_yaml(ACTION_FILE)


def workflow_triggers(doc: dict) -> dict:
    # YAML 1.1 reads the bare key `on` as a boolean
    triggers = doc.get("on", doc.get(True))
    return {name: None for name in triggers} if isinstance(triggers, list) else dict(triggers or {})


def all_steps() -> list[tuple[str, dict]]:
    steps = [("action.yml", s) for s in action()["runs"]["steps"]]
    for wf in WORKFLOWS:
        for job in load_yaml(wf)["jobs"].values():
            steps += [(wf.name, s) for s in job.get("steps", [])]
    return steps


# ------------------------------------------------------------ expression evaluator


class UnsupportedExpression(AssertionError):
    """An expression the test evaluator does not know: the action may only use what is tested."""


_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_REFERENCE = re.compile(
    r"inputs\.[A-Za-z_][\w-]*|github\.token|steps\.[A-Za-z_][\w-]*\.outputs\.[A-Za-z_][\w-]*|env\.[A-Za-z_]\w*"
)
_COMPARISON = re.compile(r"\s*(\S+)\s*(==|!=)\s*'([^']*)'\s*")


@dataclass
class Context:
    inputs: dict[str, str]
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def ref(self, text: str) -> str:
        text = text.strip()
        if not _REFERENCE.fullmatch(text):
            raise UnsupportedExpression(f"expression not supported by the test evaluator: {text!r}")
        head, _, rest = text.partition(".")
        if head == "inputs":
            if rest not in self.inputs:
                raise UnsupportedExpression(f"unknown input {rest!r}")
            return self.inputs[rest]
        if head == "github":
            return TEST_TOKEN
        if head == "env":
            return self.env.get(rest, "")
        step_id, _, name = rest.partition(".outputs.")
        return self.steps.get(step_id, {}).get(name, "")

    def interpolate(self, value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return _EXPRESSION.sub(lambda m: self.ref(m.group(1)), str(value))

    def condition(self, text: str) -> bool:
        text = str(text).strip()
        wrapped = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
        if wrapped:
            text = wrapped.group(1)
        result = True
        for part in text.split("&&"):
            m = _COMPARISON.fullmatch(part)
            if not m:
                raise UnsupportedExpression(f"condition not supported by the test evaluator: {part.strip()!r}")
            left, op, literal = self.ref(m.group(1)), m.group(2), m.group(3)
            # GitHub compares strings case-insensitively
            equal = left.lower() == literal.lower()
            result = result and (equal if op == "==" else not equal)
        return result


def parse_github_output(text: str) -> dict[str, str]:
    """The runner's GITHUB_OUTPUT format: ``name=value`` lines and ``name<<DELIM`` blocks."""
    outputs, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        heredoc = "<<" in line and ("=" not in line or line.index("<<") < line.index("="))
        if heredoc:
            name, delimiter = line.split("<<", 1)
            value = []
            while lines[i] != delimiter:
                value.append(lines[i])
                i += 1
            i += 1
            outputs[name] = "\n".join(value)
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


# ------------------------------------------------------------------ action runner


@dataclass
class ActionRun:
    returncode: int  # 0, or the exit code of the step that failed
    failed_step: str | None
    outputs: dict[str, str]  # the action's own outputs
    steps: dict[str, dict[str, str]]
    log: str
    summary: str
    ran: list[str]
    uses: dict[str, dict[str, str] | None]  # uses-step id -> its evaluated `with:`, None if its `if:` skipped it


def run_action(
    workspace: Path,
    runner_temp: Path,
    inputs: dict[str, str] | None = None,
    *,
    action_path: Path = ROOT,
    install: bool = False,
    cpr_outputs: dict[str, str] | None = None,
) -> ActionRun:
    """Runs action.yml's steps as the runner would, with simulated ``uses:`` steps.

    ``install=False`` skips the install step and hands the run step this interpreter
    (which has torchfix-mod installed) as the install step's ``python`` output.
    """
    spec = action()
    assert spec["runs"]["using"] == "composite"
    unknown = set(inputs or {}) - set(spec["inputs"])
    assert not unknown, f"no such inputs: {unknown}"
    ctx = Context(inputs={})
    ctx.inputs = {name: ctx.interpolate(decl.get("default", "")) for name, decl in spec["inputs"].items()}
    ctx.inputs.update(inputs or {})

    runner_temp.mkdir(parents=True, exist_ok=True)
    scratch = runner_temp / "_test_steps"
    scratch.mkdir(exist_ok=True)
    summary_file = scratch / "step_summary.md"
    summary_file.touch()
    base_env = _git_env()
    if sys.prefix != sys.base_prefix:  # the tool must not be found through PATH
        base_env["PATH"] = os.pathsep.join(p for p in base_env.get("PATH", "").split(os.pathsep) if Path(p) != BIN_DIR)
    base_env.update(
        CI="true",
        GITHUB_ACTIONS="true",
        GITHUB_ACTION_PATH=str(action_path),
        GITHUB_WORKSPACE=str(workspace),
        RUNNER_TEMP=str(runner_temp),
        GITHUB_STEP_SUMMARY=str(summary_file),
    )

    log, ran, uses = [], [], {}
    returncode, failed = 0, None
    for index, step in enumerate(spec["runs"]["steps"]):
        step_id = step.get("id", f"step{index}")
        if "if" in step and not ctx.condition(step["if"]):
            if "uses" in step:
                uses[step_id] = None
            continue
        if "uses" in step:
            uses[step_id] = {k: ctx.interpolate(v) for k, v in (step.get("with") or {}).items()}
            if step["uses"].startswith("actions/setup-python@"):
                ctx.steps[step_id] = {"python-path": sys.executable}
            elif step["uses"].startswith("peter-evans/create-pull-request@"):
                ctx.steps[step_id] = dict(cpr_outputs or {})
            continue
        if step_id == "install" and not install:
            ctx.steps[step_id] = {"python": sys.executable}
            continue
        assert step.get("shell") == "bash", f"step {step_id} must declare shell: bash"
        assert "${{" not in step["run"]
        script = scratch / f"{step_id}.sh"
        script.write_text(step["run"], encoding="utf-8")
        output_file = scratch / f"{step_id}.output"
        output_file.write_text("", encoding="utf-8")
        env = dict(base_env, GITHUB_OUTPUT=str(output_file))
        env.update({name: ctx.interpolate(value) for name, value in (step.get("env") or {}).items()})
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace, env=env, capture_output=True, text=True, timeout=600,
        )
        ran.append(step_id)
        log.append(f"## {step_id}\n{proc.stdout}{proc.stderr}")
        ctx.steps[step_id] = parse_github_output(output_file.read_text(encoding="utf-8"))
        if proc.returncode != 0:
            returncode, failed = proc.returncode, step_id
            break
    outputs = {name: ctx.interpolate(decl["value"]) for name, decl in spec["outputs"].items()}
    return ActionRun(
        returncode=returncode, failed_step=failed, outputs=outputs, steps=ctx.steps, log="\n".join(log),
        summary=summary_file.read_text(encoding="utf-8"), ran=ran, uses=uses,
    )


def git_status(repo: Path) -> list[str]:
    return git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()


# ------------------------------------------------------------------- static checks


def test_action_interface():
    spec = action()
    inputs = spec["inputs"]
    assert set(inputs) == {
        "paths", "mode", "select", "ignore", "unsafe-fixes", "python-version",
        "branch", "title", "commit-message", "labels", "token",
    }
    assert inputs["paths"]["default"] == "."
    assert inputs["mode"]["default"] == "pr"
    assert inputs["branch"]["default"] == "torchfix-mod/fixes"
    assert inputs["token"]["default"] == "${{ github.token }}"
    assert set(spec["outputs"]) == {"changed", "findings", "pull-request-number", "pull-request-url"}
    assert spec["runs"]["using"] == "composite"
    steps = {s.get("id"): s for s in spec["runs"]["steps"]}
    # the tool comes from the action's own checkout
    assert '"$GITHUB_ACTION_PATH"' in steps["install"]["run"]
    cpr = steps["cpr"]
    assert cpr["uses"].startswith("peter-evans/create-pull-request@")
    assert cpr["with"]["body-path"] == "${{ steps.run.outputs.report }}"
    text = ACTION_FILE.read_text(encoding="utf-8")
    assert re.search(r"uses: peter-evans/create-pull-request@[0-9a-f]{40} # v8\.\d+\.\d+\n", text)


def test_action_validates_against_the_github_action_schema():
    pytest.importorskip("check_jsonschema")
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions", str(ACTION_FILE)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_validate_against_the_github_workflow_schema():
    pytest.importorskip("check_jsonschema")
    assert CI_WORKFLOW in WORKFLOWS and EXAMPLE_WORKFLOW in WORKFLOWS
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _tool(name: str) -> str | None:
    found = BIN_DIR / name
    return str(found) if found.exists() else shutil.which(name)


def test_workflows_pass_actionlint():
    actionlint = _tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install -e '.[test]')")
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", "")]))  # its shellcheck
    # run from the repository root: `uses: ./` is checked against action.yml's inputs
    proc = subprocess.run(
        [actionlint, "-no-color", *[str(w.relative_to(ROOT)) for w in WORKFLOWS]],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_action_scripts_pass_shellcheck(tmp_path):
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install -e '.[test]')")
    for step in action()["runs"]["steps"]:
        if "run" in step:
            script = tmp_path / f"{step['id']}.sh"
            script.write_text("#!/usr/bin/env bash\n" + step["run"], encoding="utf-8")
            proc = subprocess.run([shellcheck, "-s", "bash", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, f"step {step['id']}:\n{proc.stdout}"


def test_no_expression_is_interpolated_into_a_script():
    steps = all_steps()
    assert any("run" in s for _, s in steps)
    for where, step in steps:
        if "run" in step:
            assert "${{" not in step["run"], f"{where}: step {step.get('name')!r} interpolates into run:"


def test_every_action_expression_is_known_to_the_evaluator():
    """Every ``${{ }}`` in action.yml parses with the test evaluator (so the runs below cover it)."""
    spec = action()
    ctx = Context(inputs={name: "" for name in spec["inputs"]})

    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    expressions = [m.group(1) for text in strings(spec) for m in _EXPRESSION.finditer(text)]
    assert len(expressions) > 20
    for expression in expressions:
        ctx.ref(expression)
    for step in spec["runs"]["steps"]:
        if "if" in step:
            ctx.condition(step["if"])
    with pytest.raises(UnsupportedExpression):
        ctx.ref("github.event.pull_request.title")
    with pytest.raises(UnsupportedExpression):
        ctx.condition("always()")


def test_third_party_actions_are_pinned_by_commit_sha():
    pinned = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w.-]+(?:/[\w./-]+)?)@([0-9a-f]{40}) # v\d+(?:\.\d+)*\s*$")
    count = 0
    for path in [ACTION_FILE, *WORKFLOWS]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"^\s*(?:-\s+)?uses:", line):
                ref = line.split("uses:", 1)[1].strip()
                if ref.startswith("./"):
                    continue
                assert pinned.match(line), f"{path.name}: not pinned by SHA with a tag comment: {line.strip()}"
                count += 1
    assert count >= 4


def test_ci_workflow_runs_the_ci_script_on_push_and_pull_request():
    doc = load_yaml(CI_WORKFLOW)
    assert {"push", "pull_request"} <= set(workflow_triggers(doc))
    assert doc["permissions"] == {"contents": "read"}
    runs = [s.get("run", "") for job in doc["jobs"].values() for s in job["steps"]]
    assert any(r.strip() == "bash .ci/run" for r in runs)


def test_example_workflow_runs_the_action_in_pr_mode_weekly_and_on_demand():
    doc = load_yaml(EXAMPLE_WORKFLOW)
    triggers = workflow_triggers(doc)
    assert "workflow_dispatch" in triggers
    assert triggers["schedule"] and all("cron" in entry for entry in triggers["schedule"])
    assert doc["permissions"] == {"contents": "read"}
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    (uses_action,) = [s for s in job["steps"] if s.get("uses") == "./"]
    assert uses_action["with"]["mode"] == "pr"


def test_pre_commit_hooks_manifest():
    hooks = {hook["id"]: hook for hook in load_yaml(HOOKS_FILE)}
    assert set(hooks) == {"torchfix-mod", "torchfix-mod-fix"}
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["types_or"] == ["python", "jupyter"]
        assert hook["require_serial"] is True
        assert "--force-exclude" in hook["entry"].split()
        assert hook["entry"].split()[0] == "torchfix-mod"
    assert "--write" in hooks["torchfix-mod-fix"]["entry"].split()
    assert "--write" not in hooks["torchfix-mod"]["entry"].split()
    if importlib.util.find_spec("pre_commit") is not None:
        proc = subprocess.run(
            [sys.executable, "-m", "pre_commit", "validate-manifest", str(HOOKS_FILE)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


# -------------------------------------------------------------- the action, for real


def test_pr_mode_fixes_the_repository_and_prepares_the_pull_request(tmp_path):
    repo = make_repo(tmp_path / "repo", buggy_files())
    pr = {"pull-request-number": "7", "pull-request-url": "https://example.invalid/pull/7", "pull-request-operation": "created"}
    run = run_action(repo, tmp_path / "temp", cpr_outputs=pr)
    assert run.returncode == 0, run.log
    assert run.ran == ["validate", "run", "outcome"]

    # the fixed files, and nothing else in the workspace
    assert (repo / "pkg" / "model.py").read_text(encoding="utf-8") == FIXED_MODEL_PY
    assert git_status(repo) == [" M pkg/model.py"]

    # the step outputs, as written to GITHUB_OUTPUT
    out = run.steps["run"]
    assert out["changed"] == "true"
    assert out["findings"] == "2"
    assert out["add-paths"] == "pkg/model.py"
    report = Path(out["report"])
    assert report.is_file() and not report.is_relative_to(repo)
    body = report.read_text(encoding="utf-8")
    assert "TFM101" in body and "pkg/model.py" in body and "layers.*" in body and "blocks.*" in body

    # create-pull-request would run, with the report as the body and only the fixed file
    cpr = run.uses["cpr"]
    assert cpr is not None
    assert cpr["body-path"] == str(report)
    assert cpr["add-paths"] == "pkg/model.py"
    assert cpr["branch"] == "torchfix-mod/fixes"
    assert cpr["token"] == TEST_TOKEN
    assert cpr["title"] and cpr["commit-message"]
    assert run.uses["setup-python"] is not None  # default python-version 3.12

    assert run.outputs == {
        "changed": "true",
        "findings": "2",
        "pull-request-number": "7",
        "pull-request-url": "https://example.invalid/pull/7",
    }
    assert "pull request #7 created: https://example.invalid/pull/7" in run.summary
    assert "TFM101" in run.summary


def test_pr_mode_on_a_clean_repository_opens_no_pull_request(tmp_path):
    repo = make_repo(tmp_path / "repo", clean_files())
    run = run_action(repo, tmp_path / "temp", {"python-version": ""})
    assert run.returncode == 0, run.log
    assert run.steps["run"]["changed"] == "false"
    assert run.steps["run"]["findings"] == "0"
    assert run.steps["run"]["add-paths"] == ""
    assert run.uses["cpr"] is None
    assert run.uses["setup-python"] is None
    assert run.outputs["changed"] == "false"
    assert run.outputs["pull-request-number"] == ""
    assert "::notice title=torchfix-mod::torchfix-mod found nothing to fix: no pull request" in run.log
    assert "nothing to fix" in run.summary
    assert git_status(repo) == []


def test_pr_mode_with_only_unfixable_findings_opens_no_pull_request(tmp_path):
    unfixable = BUGGY_MODEL_PY.replace(
        "        self.blocks = [Block(4) for _ in range(2)]\n", "        self.layers.reverse()\n"
    ).replace("        for block in self.blocks:\n            x = block(x)\n", "")
    repo = make_repo(tmp_path / "repo", {**buggy_files(), "pkg/model.py": unfixable})
    run = run_action(repo, tmp_path / "temp")
    assert run.returncode == 0, run.log
    assert run.steps["run"]["changed"] == "false"
    assert run.steps["run"]["findings"] == "1"
    assert run.uses["cpr"] is None
    assert "have no automatic fix" in run.log
    assert "Needs a manual look" in run.summary and "reverse()" in run.summary
    assert git_status(repo) == []


def test_pr_mode_honours_select_ignore_and_several_paths(tmp_path):
    repo = make_repo(tmp_path / "repo", buggy_files())
    run = run_action(repo, tmp_path / "temp", {"paths": "pkg/model.py\npkg/blocks.py", "ignore": "TFM101"})
    assert run.returncode == 0, run.log
    assert run.steps["run"]["changed"] == "false"
    assert run.uses["cpr"] is None
    assert git_status(repo) == []

    run = run_action(repo, tmp_path / "temp2", {"paths": "pkg/model.py  pkg/blocks.py", "select": "TFM1"})
    assert run.steps["run"]["changed"] == "true"
    assert run.steps["run"]["findings"] == "2"


def test_check_mode_annotates_and_fails_on_findings(tmp_path):
    repo = make_repo(tmp_path / "repo", buggy_files())
    run = run_action(repo, tmp_path / "temp", {"mode": "check"})
    assert run.returncode == 1
    assert run.failed_step == "run"
    assert "::warning file=pkg/model.py,line=9," in run.log
    assert "::warning file=pkg/model.py,line=10," in run.log
    assert run.steps["run"] == {"changed": "false", "findings": "2"}
    assert run.uses == {"setup-python": {"python-version": "3.12", "update-environment": "false"}}
    assert git_status(repo) == []


def test_check_mode_passes_on_a_clean_repository(tmp_path):
    repo = make_repo(tmp_path / "repo", clean_files())
    run = run_action(repo, tmp_path / "temp", {"mode": "check"})
    assert run.returncode == 0, run.log
    assert run.steps["run"] == {"changed": "false", "findings": "0"}
    assert "::warning" not in run.log


def test_diff_mode_prints_the_diff_to_the_log_and_the_job_summary(tmp_path):
    repo = make_repo(tmp_path / "repo", buggy_files())
    run = run_action(repo, tmp_path / "temp", {"mode": "diff"})
    assert run.returncode == 0, run.log
    added = "+        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])"
    assert added in run.log
    assert "```diff\n--- a/pkg/model.py\n+++ b/pkg/model.py\n" in run.summary
    assert added in run.summary
    assert "TFM101" in run.summary
    assert run.steps["run"] == {"changed": "true", "findings": "2"}
    assert run.uses.get("cpr") is None
    assert git_status(repo) == []


def test_inputs_are_validated_and_never_reach_a_shell_as_code(tmp_path):
    repo = make_repo(tmp_path / "repo", buggy_files())
    run = run_action(repo, tmp_path / "t1", {"mode": "fix"})
    assert (run.returncode, run.failed_step) == (1, "validate")
    run = run_action(repo, tmp_path / "t2", {"unsafe-fixes": "yes"})
    assert (run.returncode, run.failed_step) == (1, "validate")

    hostile = {
        "paths": "$(touch pwned1) `touch pwned2` pkg;touch${IFS}pwned3",
        "select": "TFM1,$(touch pwned4)",
        "title": '"; touch pwned5; echo "',
    }
    run = run_action(repo, tmp_path / "t3", hostile)
    assert (run.returncode, run.failed_step) == (1, "run")
    assert "does not exist" in run.log
    run = run_action(repo, tmp_path / "t4", {"select": hostile["select"]})
    assert run.failed_step == "run"
    assert "::error title=torchfix-mod::torchfix-mod stopped with exit code 2" in run.log
    assert not list(repo.glob("pwned*")) and not list(tmp_path.rglob("pwned*"))
    assert git_status(repo) == []


def test_workspace_modules_cannot_shadow_the_tool_or_the_standard_library(tmp_path):
    files = {
        **buggy_files(),
        "torchfix_mod/__init__.py": "raise SystemExit('imported the workspace torchfix_mod')\n",
        "json.py": "raise SystemExit('imported the workspace json')\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    for mode in ("diff", "pr"):
        run = run_action(repo, tmp_path / mode, {"mode": mode})
        assert run.returncode == 0, run.log
        assert "imported the workspace" not in run.log
        assert run.steps["run"]["findings"] == "2"


# ------------------------------------------------------- a snapshot of this checkout


@pytest.fixture(scope="module")
def checkout_snapshot(tmp_path_factory) -> Path:
    """This working tree, committed or not, as a git repository of its own.

    ``pre-commit try-repo`` leaves out files git does not track yet, and an
    in-tree pip build would write into the checkout: both use this copy instead.
    """
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    snapshot = tmp_path_factory.mktemp("torchfix-mod-checkout")
    for name in listed:
        source = ROOT / name
        if not name or name.startswith(".hypothesis/") or not source.is_file():
            continue
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git(snapshot, "init", "-q")
    git(snapshot, "add", "-A")
    git(snapshot, "commit", "-q", "-m", "snapshot")
    return snapshot


def test_install_step_installs_the_tool_from_the_action_checkout(tmp_path, checkout_snapshot):
    """The install step really runs: a private venv with torchfix-mod built from GITHUB_ACTION_PATH."""
    repo = make_repo(tmp_path / "repo", buggy_files())
    run = run_action(repo, tmp_path / "temp", {"mode": "check"}, action_path=checkout_snapshot, install=True)
    assert run.ran == ["validate", "install", "run"]
    assert run.failed_step == "run", run.log  # check mode fails on the findings
    python = Path(run.steps["install"]["python"])
    assert python.is_relative_to(tmp_path / "temp" / "torchfix-mod-venv")
    probe = subprocess.run(
        [str(python), "-I", "-c", "import torchfix_mod; print(torchfix_mod.__version__); print(torchfix_mod.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    declared = re.search(r'^version = "([^"]+)"', (checkout_snapshot / "pyproject.toml").read_text(), re.M).group(1)
    assert probe[0] == declared
    assert f"torchfix-mod {declared}" in run.log
    assert Path(probe[1]).is_relative_to(tmp_path / "temp" / "torchfix-mod-venv")
    assert run.steps["run"]["findings"] == "2"


# --------------------------------------------------------------------- pre-commit

needs_pre_commit = pytest.mark.skipif(
    importlib.util.find_spec("pre_commit") is None, reason="pre-commit is not installed (pip install -e '.[test]')"
)


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def pre_commit(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(_git_env(), PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


def hook_project(path: Path, snapshot: Path, files: dict[str, str]) -> Path:
    rev = git(snapshot, "rev-parse", "HEAD").strip()
    config = {
        "repos": [{"repo": str(snapshot), "rev": rev, "hooks": [{"id": "torchfix-mod"}, {"id": "torchfix-mod-fix"}]}]
    }
    files = {
        **files,
        ".pre-commit-config.yaml": yaml.safe_dump(config),
        "pyproject.toml": '[tool.torchfix-mod]\nextend-exclude = ["vendored/"]\n',
    }
    return make_repo(path, files)


@needs_pre_commit
def test_pre_commit_fix_hook_fixes_then_passes(tmp_path, checkout_snapshot, pre_commit_home):
    files = {
        **buggy_files(),
        "notebooks/demo.ipynb": BUGGY_NOTEBOOK,
        "vendored/copy.py": BUGGY_MODEL_PY,  # excluded by the configuration
    }
    project = hook_project(tmp_path / "project", checkout_snapshot, files)

    first = pre_commit(project, tmp_path / "try-repo-home", "try-repo", str(checkout_snapshot), "torchfix-mod-fix", "--all-files")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "files were modified by this hook" in first.stdout
    assert (project / "pkg" / "model.py").read_text(encoding="utf-8") == FIXED_MODEL_PY
    notebook = json.loads((project / "notebooks" / "demo.ipynb").read_text(encoding="utf-8"))
    assert "nn.ModuleList(" in "".join(notebook["cells"][1]["source"])
    assert (project / "vendored" / "copy.py").read_text(encoding="utf-8") == BUGGY_MODEL_PY  # --force-exclude
    assert sorted(git_status(project)) == [" M notebooks/demo.ipynb", " M pkg/model.py"]

    second = pre_commit(project, pre_commit_home, "run", "torchfix-mod-fix", "--all-files")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout


@needs_pre_commit
def test_pre_commit_report_hook_fails_on_findings_and_passes_when_clean(tmp_path, checkout_snapshot, pre_commit_home):
    buggy = hook_project(tmp_path / "buggy", checkout_snapshot, {**buggy_files(), "vendored/copy.py": BUGGY_MODEL_PY})
    result = pre_commit(buggy, pre_commit_home, "run", "torchfix-mod", "--all-files")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pkg/model.py:9:9: TFM101" in result.stdout
    assert "vendored/" not in result.stdout
    assert "files were modified" not in result.stdout
    assert git_status(buggy) == []

    clean = hook_project(tmp_path / "clean", checkout_snapshot, {**clean_files(), "vendored/copy.py": BUGGY_MODEL_PY})
    result = pre_commit(clean, pre_commit_home, "run", "torchfix-mod", "--all-files")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout
