"""Odd and hostile inputs: each is reported or handled, nothing is corrupted, the run goes on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ALL_RULES, transform
from torchfix_mod.files import WriteRefused, write_atomic

BUGGY = next(r for r in ALL_RULES if r.code == "TFM101").fixes[0]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchfix_mod", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "source",
    [
        "",
        "x = 1",  # no trailing newline
        "if True:\n\tx = 1\n",  # tabs
        "x = 1\n\x0c\ny = 2\n",  # form feed
        "x = 1\r\ny = 2\nz = 3\r",  # mixed newlines
    ],
    ids=["empty", "no-trailing-newline", "tabs", "form-feed", "mixed-newlines"],
)
def test_odd_but_valid_files_are_left_byte_identical(source):
    result = transform(source, unsafe=True)
    assert not result.errors
    assert result.new_source == source


def test_mixed_newlines_survive_a_fix():
    source = BUGGY.before.replace("\n", "\r\n", 3)
    result = transform(source)
    assert result.changed and not result.errors
    assert result.new_source == BUGGY.after.replace("\n", "\r\n", 3)


@pytest.mark.parametrize(
    "source",
    [
        "x = " + " + ".join(["a"] * 5000) + "\n",
        "x = " + "not " * 3000 + "a\n",
        "x = " + "(" * 300 + "1" + ")" * 300 + "\n",
        "print 'hello'\n",  # Python 2
        "<html><body>not python</body></html>\n",
    ],
    ids=["long-chain", "deep-not", "deep-parens", "python2", "not-python"],
)
def test_unparseable_or_too_deep_is_an_error_not_a_crash(source):
    result = transform(source, unsafe=True)
    assert result.errors
    assert result.new_source == source


def test_deeply_nested_but_valid_code_is_reported_and_left_alone(tmp_path):
    deep = (
        "import torch\n\nclass A(torch.nn.Module):\n    def forward(self, x):\n"
        "        y = torch.sigmoid(x)\n        y += " + " + ".join(["x"] * 900) + "\n        return y\n"
    )
    (tmp_path / "deep.py").write_text(deep)
    (tmp_path / "model.py").write_text(BUGGY.before)
    run = cli(tmp_path, "--write", ".")
    assert (tmp_path / "deep.py").read_text() == deep
    assert (tmp_path / "model.py").read_text() == BUGGY.after
    assert run.returncode in (0, 2)  # deep.py is either analysed or reported, never corrupted
    if run.returncode == 2:
        assert "deep.py:1:1: error:" in run.stderr


def test_a_50000_line_file(tmp_path):
    big = "import torch\n" + "".join(f"value_{i} = torch.zeros({i % 7})\n" for i in range(50_000))
    (tmp_path / "big.py").write_text(big)
    (tmp_path / "model.py").write_text(BUGGY.before)
    run = cli(tmp_path, "--write", ".")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "big.py").read_text() == big
    assert (tmp_path / "model.py").read_text() == BUGGY.after


def test_a_directory_named_like_a_python_file(tmp_path):
    (tmp_path / "pkg.py").mkdir()
    (tmp_path / "pkg.py" / "model.py").write_text(BUGGY.before)
    run = cli(tmp_path, "--write", ".")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "pkg.py" / "model.py").read_text() == BUGGY.after


def test_symlink_outside_the_given_paths_is_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "shared.py"
    target.write_text(BUGGY.before)
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.py").symlink_to(target)
    (project / "model.py").write_text(BUGGY.before)
    run = cli(project, "--write", ".")
    assert run.returncode == 2
    assert "link.py:1:1: error: symlink to a file outside the given paths" in run.stderr
    assert target.read_text() == BUGGY.before
    assert (project / "link.py").is_symlink()
    assert (project / "model.py").read_text() == BUGGY.after


def test_symlink_loops_do_not_hang(tmp_path):
    (tmp_path / "a.py").symlink_to(tmp_path / "b.py")
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "model.py").write_text(BUGGY.before)
    run = cli(tmp_path, "--write", ".")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "model.py").read_text() == BUGGY.after


def test_read_only_file_is_an_error_and_nothing_else_is_lost(tmp_path):
    locked = tmp_path / "locked.py"
    locked.write_text(BUGGY.before)
    locked.chmod(0o444)
    (tmp_path / "model.py").write_text(BUGGY.before)
    run = cli(tmp_path, "--write", ".")
    assert run.returncode == 2
    assert "locked.py:1:1: error: file is read-only; not written" in run.stderr
    assert locked.read_text() == BUGGY.before
    assert oct(locked.stat().st_mode & 0o777) == oct(0o444)
    assert (tmp_path / "model.py").read_text() == BUGGY.after


def test_a_file_changed_since_it_was_read_is_not_overwritten(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(BUGGY.before)
    original = path.read_bytes()
    path.write_text("# edited by someone else\n" + BUGGY.before)
    with pytest.raises(WriteRefused, match="changed since it was read"):
        write_atomic(path, BUGGY.after, "utf-8", expected=original)
    assert path.read_text().startswith("# edited by someone else")
    assert not [p for p in tmp_path.iterdir() if p.name != "model.py"]


def test_an_error_at_rename_keeps_the_original(tmp_path, monkeypatch):
    path = tmp_path / "model.py"
    path.write_text(BUGGY.before)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        write_atomic(path, BUGGY.after, "utf-8", expected=path.read_bytes())
    assert path.read_text() == BUGGY.before
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]
