"""The manifest grader: materialising repositories from local clones, and grading a file alone
against grading it inside its repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import grade

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

BASE = """\
import torch.nn as nn


class Model(nn.Module):
    pass
"""

TRAINER = """\
from pkg.base import Model


class Trainer:
    def __init__(self, model: Model):
        self._model = model

    def _batch_loss(self, batch):
        return self._model.forward(**batch)

    def fit(self, data):
        return [self._batch_loss(b) for b in data]
"""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env).stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "clones" / "acme+trainer"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "base.py").write_text(BASE)
    (repo / "pkg" / "trainer.py").write_text(TRAINER)
    (repo / "weights.bin").write_bytes(b"\0" * 16)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    return tmp_path / "clones", _git(repo, "rev-parse", "HEAD")


def test_checkout_writes_the_python_files_of_the_commit(tmp_path, clone):
    clones, commit = clone
    cases = tmp_path / "cases"
    assert grade.checkout(cases, clones, "acme/trainer", commit) == 3
    tree = cases / "acme+trainer" / commit
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()) == [
        "pkg/__init__.py", "pkg/base.py", "pkg/trainer.py",
    ]
    assert (tree / "pkg" / "trainer.py").read_text() == TRAINER
    assert grade.checkout(cases, clones, "acme/trainer", commit) == 0  # already there


def test_a_file_alone_and_in_its_repository(tmp_path, clone):
    """``Model`` is an nn.Module only for a run that can read ``pkg/base.py``: alone, the call
    is not reported; in its tree, it is (without a fix)."""
    clones, commit = clone
    row = {"id": "t-1", "repo": "acme/trainer", "commit": commit, "path": "pkg/trainer.py", "line": 9,
           "rule": "TFM402", "label": "bug"}
    alone = tmp_path / "alone" / "acme+trainer" / commit / "pkg"
    alone.mkdir(parents=True)
    (alone / "trainer.py").write_text(TRAINER)
    tool = [sys.executable, "-m", "torchfix_mod"]
    assert grade.grade([row], tmp_path / "alone", tool)[0]["outcome"] == "fn"
    grade.checkout(tmp_path / "repos", clones, "acme/trainer", commit)
    [outcome] = grade.grade([row], tmp_path / "repos", tool)
    assert (outcome["outcome"], outcome["fix_offered"]) == ("tp", False)


def test_the_row_matches_only_findings_in_its_statement():
    source = textwrap.dedent("""\
        def f(x):
            y = (x +
                 1)
            return y
        """)
    assert grade.statement_span(source, 3) == (2, 3)
    assert grade.statement_span(source, 1) == (1, 1)
