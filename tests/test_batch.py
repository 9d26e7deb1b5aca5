"""End-to-end tests of batch runs: -j, the result cache, [tool.torchfix-mod], stdin, notebooks,
CI output formats, the summary and progress bar, and project-wide class knowledge.

Runs are the real program (``python -m torchfix_mod``) in temporary directories, started together
when independent, since each pays for an interpreter start-up. Runs whose point is not the process
boundary (configuration variants, sequences of cached runs, stdin exit codes) go through the same
command in-process (``CliRunner``, ``-j 1``), and the tests that need to see inside a run call
``torchfix_mod.runner.run`` directly.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from typer.testing import CliRunner

from torchfix_mod import runner
from torchfix_mod.cache import CACHE_DIR_NAME, Cache
from torchfix_mod.cli import app
from torchfix_mod.rule import load_rules
from torchfix_mod.runner import RunOptions, run

ALL_RULES = tuple(load_rules())
RULE_NAMES = {rule.code: rule.name for rule in ALL_RULES}

# --------------------------------------------------------------------------- sources

LIST_SRC = """\
import torch.nn as nn


class Stack{n}(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4) for _ in range(2)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
"""
LIST_LINE = "self.layers = [nn.Linear(4, 4) for _ in range(2)]"
LIST_FIXED = "self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])"

INPLACE_SRC = """\
import torch
import torch.nn as nn


class Gate{n}(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        out = torch.sigmoid(self.fc(x))
        out += x
        return out
"""
INPLACE_LINE = "out += x"
INPLACE_FIXED = "out = out + x"

BUFFER_SRC = """\
import torch
import torch.nn as nn


class Masked{n}(nn.Module):
    def __init__(self):
        super().__init__()
        self.mask = torch.ones(3)

    def forward(self, x):
        return x * self.mask
"""
BUFFER_LINE = "self.mask = torch.ones(3)"

MIXED_SRC = """\
import torch
import torch.nn as nn


class Mixed{n}(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4) for _ in range(2)]
        self.mask = torch.ones(3)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        out = torch.sigmoid(x)
        out += x
        return out * self.mask
"""

CLEAN_SRC = """\
import torch.nn as nn


class Clean{n}(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)
"""

# TFM502's fix is unsafe (the full hook sees other grad_input): applied only with --unsafe-fixes
UNSAFE_SRC = """\
import torch.nn as nn


class Heads{n}(nn.Module):
    def __init__(self, names):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.fc.register_backward_hook(print)
"""
UNSAFE_LINE = "self.fc.register_backward_hook(print)"
UNSAFE_FIXED = "self.fc.register_full_backward_hook(print)"

BROKEN_SRC = "import torch\n\n\ndef broken(:\n    pass\n"

# an nn.Module class of one file, and a user of it in another
PROJECT_BLOCKS = """\
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = nn.Linear(n, n)

    def forward(self, x):
        return self.fc(x)
"""


def user(imports: str, construct: str, attribute: str = "stages") -> str:
    """A module keeping a Python list of ``construct``, a class imported by ``imports``."""
    return f"""\
import torch.nn as nn
{imports}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.{attribute} = [{construct} for _ in range(2)]

    def forward(self, x):
        for stage in self.{attribute}:
            x = stage(x)
        return x
"""


PROJECT_NET = user("from pkg.blocks import Block", "Block(4)")


def src(template: str, n: int | str = "") -> str:
    return template.format(n=n)


def position(source: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of ``needle``."""
    for number, line in enumerate(source.split("\n"), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in source")


# --------------------------------------------------------------------------- running the program

ENV = {
    **os.environ,
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def tfm(cwd: Path, *args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchfix_mod", *args],
        cwd=cwd,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=180,
        env=env or ENV,
    )


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def tfm_here(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """The same command run in this process (no interpreter start-up), for runs whose point is not
    the process boundary. Always ``-j 1``: no worker is forked from the test process. Never call it
    while other threads of the test run it too (it changes the working directory)."""
    with chdir(cwd):
        result = CliRunner().invoke(app, ["-j", "1", *args], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout_bytes, result.stderr_bytes)


def in_parallel(*calls):
    """Run zero-argument callables at once; their results in order."""
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return list(pool.map(lambda call: call(), calls))


def tfm_parallel(*jobs: tuple) -> list[subprocess.CompletedProcess]:
    """Independent runs at once, each ``(cwd, [args])`` or ``(cwd, [args], stdin_bytes)``."""
    return in_parallel(*[(lambda job=job: tfm(job[0], *job[1], stdin=job[2] if len(job) > 2 else None)) for job in jobs])


def out(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode("utf-8")


def err(result: subprocess.CompletedProcess) -> str:
    return result.stderr.decode("utf-8")


def show(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{out(result)}\n--- stderr\n{err(result)}"


FINDING = re.compile(
    r"^(?P<path>\S+?):(?:cell (?P<cell>\d+):)?(?P<line>\d+):(?P<col>\d+): (?P<code>TFM\d{3})(?P<mark> \[\*\])? (?P<message>\S.*)$"
)
ERROR = re.compile(r"^(?P<path>\S+?):(?:cell \d+:)?(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")


def findings(text: str) -> list[tuple[str, int, int, str, bool]]:
    """(path, line, column, code, fixable) of each finding line; other lines are skipped."""
    return [
        (m["path"], int(m["line"]), int(m["col"]), m["code"], bool(m["mark"]))
        for m in map(FINDING.match, text.splitlines())
        if m and m["cell"] is None
    ]


def codes_by_path(text: str) -> set[tuple[str, str]]:
    return {(path, code) for path, _, _, code, _ in findings(text)}


def errors(text: str) -> list[tuple[str, int, int, str]]:
    return [(m["path"], int(m["line"]), int(m["col"]), m["message"]) for m in map(ERROR.match, text.splitlines()) if m]


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` outside .git and the result cache, by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {".git", CACHE_DIR_NAME} & set(p.relative_to(root).parts)
    }


def copy_tree(src_dir: Path, dst: Path) -> Path:
    shutil.copytree(src_dir, dst, ignore=shutil.ignore_patterns(".git", CACHE_DIR_NAME))
    return dst


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, env=ENV, timeout=60)


def git_init(root: Path) -> Path:
    assert git(root, "init", "-q").returncode == 0
    return root


# --------------------------------------------------------------------------- 1. parallel runs

def batch_tree() -> dict[str, str]:
    """12 files: buggy models of three kinds, a mixed one, clean ones, one that does not parse, and
    a list of a class from another file (found only when the workers know the project's classes)."""
    return {
        "pkg/__init__.py": "",
        "pkg/stack_a.py": src(LIST_SRC, "A"),
        "pkg/net.py": user("from .blocks import Block", "Block(4)"),
        "pkg/gate_a.py": src(INPLACE_SRC, "A"),
        "pkg/masked_a.py": src(BUFFER_SRC, "A"),
        "pkg/blocks.py": PROJECT_BLOCKS,
        "pkg/sub/__init__.py": "",
        "pkg/sub/gate_b.py": src(INPLACE_SRC, "B"),
        "pkg/sub/masked_b.py": src(BUFFER_SRC, "B"),
        "pkg/sub/broken.py": BROKEN_SRC,
        "scripts/mixed.py": src(MIXED_SRC),
        "scripts/clean_b.py": src(CLEAN_SRC, "B"),
    }


def expected_batch_findings(files: dict[str, str]) -> set[tuple[str, int, int, str]]:
    needles = [(LIST_LINE, "TFM101"), ("self.stages = [", "TFM101"), (INPLACE_LINE, "TFM201"), (BUFFER_LINE, "TFM301")]
    found = set()
    for path, text in files.items():
        for needle, code in needles:
            if needle in text:
                found.add((path, *position(text, needle), code))
    return found


@pytest.fixture(scope="module")
def parallel_runs(tmp_path_factory):
    files = batch_tree()
    base = write_tree(tmp_path_factory.mktemp("jobs"), files)
    written = {j: copy_tree(base, tmp_path_factory.mktemp(f"jobs_write_{j}") / "t") for j in (1, 2)}
    modes = {"check": [], "diff": ["--diff"], "json": ["--output-format", "json"]}
    jobs = [(base, ["--no-cache", "-j", str(j), *args, "."]) for args in modes.values() for j in (1, 2)]
    jobs += [(written[j], ["--no-cache", "-j", str(j), "--write", "."]) for j in (1, 2)]
    results = tfm_parallel(*jobs)
    by_mode = {mode: (results[2 * i], results[2 * i + 1]) for i, mode in enumerate([*modes, "write"])}
    return {"files": files, "base": base, "written": written, "runs": by_mode}


@pytest.mark.parametrize("mode", ["check", "diff", "json", "write"])
def test_jobs_2_output_is_byte_identical_to_jobs_1(parallel_runs, mode):
    one, two = parallel_runs["runs"][mode]
    assert one.returncode == two.returncode == 2, show(one) + show(two)  # the syntax error
    assert one.stdout == two.stdout
    assert one.stderr == two.stderr
    assert [e[0] for e in errors(err(one))] == ["pkg/sub/broken.py"]


def test_jobs_runs_report_every_finding(parallel_runs):
    """The identical outputs are the real ones: every planted mistake, in path order."""
    expected = expected_batch_findings(parallel_runs["files"])
    assert len(expected) == 9
    _, check = parallel_runs["runs"]["check"]
    reported = [f[:4] for f in findings(out(check))]
    assert set(reported) == expected and len(reported) == len(expected)
    assert [f[0] for f in reported] == sorted(f[0] for f in reported)
    _, as_json = parallel_runs["runs"]["json"]
    items = json.loads(out(as_json))
    assert {(i["path"], i["line"], i["column"], i["code"]) for i in items} == expected
    _, diff = parallel_runs["runs"]["diff"]
    headers = re.findall(r"^--- a/(\S+)$", out(diff), re.M)
    assert headers == sorted({path for path, *_ in expected})


def test_jobs_write_trees_are_identical_and_fixed(parallel_runs):
    one, two = (snapshot(parallel_runs["written"][j]) for j in (1, 2))
    assert one == two
    files = parallel_runs["files"]
    assert one["pkg/sub/broken.py"] == BROKEN_SRC.encode()
    assert one["pkg/blocks.py"] == files["pkg/blocks.py"].encode()
    assert "self.stages = nn.ModuleList([Block(4) for _ in range(2)])" in one["pkg/net.py"].decode()
    assert INPLACE_FIXED in one["pkg/sub/gate_b.py"].decode()
    assert 'register_buffer("mask"' in one["pkg/sub/masked_b.py"].decode()
    mixed = one["scripts/mixed.py"].decode()
    assert LIST_FIXED in mixed and INPLACE_FIXED in mixed and 'register_buffer("mask"' in mixed
    changed = {path for path in files if one[path] != files[path].encode()}
    assert changed == {path for path, *_ in expected_batch_findings(files)}


# --------------------------------------------------------------------------- 2. cache

def no_marker_above(directory: Path) -> bool:
    return not any((d / ".git").exists() or (d / "pyproject.toml").is_file() for d in directory.resolve().parents)


def test_cache_lives_at_the_project_root_ignored_by_git_with_cachedir_tag(tmp_path):
    repo = git_init(write_tree(tmp_path / "repo", {"pkg/a.py": src(LIST_SRC), "pkg/b.py": src(INPLACE_SRC)}))
    pyproj = write_tree(tmp_path / "pyproj", {"pyproject.toml": "[project]\nname = 'x'\n", "pkg/a.py": src(LIST_SRC)})
    plain = write_tree(tmp_path / "plain", {"code/a.py": src(LIST_SRC)})
    nocache = write_tree(tmp_path / "nocache", {"a.py": src(LIST_SRC), "pyproject.toml": ""})
    in_repo = tfm(repo / "pkg", ".")
    in_pyproj, in_plain, without = tfm_here(pyproj / "pkg", "a.py"), tfm_here(plain, "code"), tfm_here(nocache, "--no-cache", ".")
    for result in (in_repo, in_pyproj, in_plain, without):
        assert result.returncode == 1, show(result)

    cache = repo / CACHE_DIR_NAME
    assert cache.is_dir() and not (repo / "pkg" / CACHE_DIR_NAME).exists()
    stored = list(cache.rglob("cache.sqlite"))
    assert len(stored) == 1 and sqlite3.connect(stored[0]).execute("SELECT COUNT(*) FROM entries").fetchone()[0] > 0
    assert "*" in (cache / ".gitignore").read_text().split("\n")
    assert (cache / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    status = git(repo, "status", "--porcelain", "--ignored", "--untracked-files=all")
    lines = status.stdout.decode().splitlines()
    assert sorted(line for line in lines if line.startswith("??")) == ["?? pkg/a.py", "?? pkg/b.py"]
    ignored = [line for line in lines if line.startswith("!!")]
    assert ignored and all(line.startswith(f"!! {CACHE_DIR_NAME}/") for line in ignored)
    assert len(lines) == 2 + len(ignored)

    assert (pyproj / CACHE_DIR_NAME).is_dir() and not (pyproj / "pkg" / CACHE_DIR_NAME).exists()
    if no_marker_above(plain):  # else the nearest marker above the temporary directory wins
        assert (plain / CACHE_DIR_NAME).is_dir() and not (plain / "code" / CACHE_DIR_NAME).exists()
    assert not any(CACHE_DIR_NAME in p.parts for p in nocache.rglob("*"))


def test_second_run_on_unchanged_tree_prints_exactly_the_same(tmp_path):
    files = batch_tree()
    dirs = [write_tree(tmp_path / name, files) for name in ("check", "diff")]
    diff1, diff2 = tfm(dirs[1], "-j", "2", "--diff", "."), tfm(dirs[1], "-j", "2", "--diff", ".")  # workers use the cache
    check1, check2 = tfm_here(dirs[0], "."), tfm_here(dirs[0], ".")
    for first, second in ((check1, check2), (diff1, diff2)):
        assert first.returncode == second.returncode == 2
        assert first.stdout == second.stdout
        assert first.stderr == second.stderr
    assert len(findings(out(check1))) == 9
    assert out(diff1).count("--- a/") == 7
    for directory in dirs:
        assert (directory / CACHE_DIR_NAME).is_dir()
        assert snapshot(directory) == {k: v.encode() for k, v in files.items()}


def report_key(reports) -> list:
    return [(r.display, r.diagnostics, r.errors, r.diff, r.changed) for r in reports]


def test_second_run_reads_every_result_from_the_cache_without_parsing(tmp_path, monkeypatch):
    write_tree(tmp_path, batch_tree())
    monkeypatch.chdir(tmp_path)
    first = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    assert len(first) == 12 and not any(r.cached for r in first)
    assert sum(len(r.diagnostics) for r in first) == 9

    def parse_again(*args, **kwargs):
        raise AssertionError("a cached file was parsed again")

    monkeypatch.setattr(runner, "transform_source", parse_again)
    monkeypatch.setattr(runner, "summarize", parse_again)
    second = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    assert all(r.cached for r in second), [r.display for r in second if not r.cached]
    assert report_key(second) == report_key(first)


def test_entries_made_by_worker_processes_are_written_once_and_serve_the_next_run(tmp_path, monkeypatch):
    """Workers hand their cache entries to the main process, which writes them in one
    transaction per pass: after a parallel cold run every file's result is in the database."""
    write_tree(tmp_path, batch_tree())
    monkeypatch.chdir(tmp_path)
    first = run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=2, cache=Cache(tmp_path, "salt"))
    database = next((tmp_path / CACHE_DIR_NAME).rglob("cache.sqlite"))
    count = sqlite3.connect(database).execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    assert count >= len(first) + 1  # an index or result entry per file, and the whole run's

    def analyse_again(*args, **kwargs):
        raise AssertionError("a file was analysed again")

    monkeypatch.setattr(runner, "transform_source", analyse_again)
    monkeypatch.setattr(runner, "_run_key", lambda *args: None)  # no whole-run entry: per file
    second = run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=2, cache=Cache(tmp_path, "salt"))
    assert all(r.cached for r in second) and report_key(second) == report_key(first)


def test_a_damaged_cache_database_is_started_again(tmp_path, monkeypatch):
    write_tree(tmp_path, batch_tree())
    monkeypatch.chdir(tmp_path)
    first = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    database = next((tmp_path / CACHE_DIR_NAME).rglob("cache.sqlite"))
    database.write_bytes(b"not a database at all" * 100)
    second = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    assert report_key(second) == report_key(first) and not any(r.cached for r in second)
    third = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    assert report_key(third) == report_key(first) and all(r.cached for r in third)


def test_second_run_does_not_even_ast_parse_an_unchanged_broken_file(tmp_path, monkeypatch):
    write_tree(tmp_path, {"a.py": src(LIST_SRC), "broken.py": BROKEN_SRC})
    monkeypatch.chdir(tmp_path)
    first = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))

    parsed = []
    real_parse, real_transform = runner.ast.parse, runner.transform_source

    def recording_parse(text, *args, **kwargs):
        parsed.append(text)
        return real_parse(text, *args, **kwargs)

    def recording_transform(text, settings, *rest):
        parsed.append(text)
        return real_transform(text, settings, *rest)

    monkeypatch.setattr(runner, "ast", SimpleNamespace(parse=recording_parse))
    monkeypatch.setattr(runner, "transform_source", recording_transform)
    second = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    assert report_key(second) == report_key(first)
    assert parsed == []


def test_warm_parallel_run_answers_from_the_cache_without_starting_workers(tmp_path, monkeypatch):
    files = batch_tree()
    write_tree(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    first = run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=2, cache=Cache(tmp_path, "salt"))

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for a fully cached run")

    with monkeypatch.context() as patched:
        patched.setattr(runner.multiprocessing, "get_context", no_pool)
        second = run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=2, cache=Cache(tmp_path, "salt"))
        assert all(r.cached for r in second)
        assert report_key(second) == report_key(first)

        # one edited file: the cache answers the others; the edited one is analysed (too few
        # misses for a pool, so in this process) and reported as it would be cold
        edited = "pkg/sub/masked_b.py"
        (tmp_path / edited).write_text(files[edited].replace("torch.ones(3)", "torch.ones(5)"))
        third = run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=2, cache=Cache(tmp_path, "salt"))
        assert {r.display: r.cached for r in third} == {path: path != edited for path in files}
    cold = run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=2, cache=None)
    assert report_key(third) == report_key(cold)


@pytest.mark.parametrize("mode", ["check", "diff"])
def test_unchanged_tree_is_answered_by_one_cache_entry(tmp_path, monkeypatch, mode):
    """A second run over files whose bytes, names and settings are all unchanged reads the
    whole run's reports from one entry: no file is indexed or looked up on its own."""
    write_tree(tmp_path, batch_tree())
    monkeypatch.chdir(tmp_path)
    first = run([Path(".")], ALL_RULES, RunOptions(mode=mode), jobs=2, cache=Cache(tmp_path, "salt"))
    assert sum(len(r.diagnostics) for r in first) == 9

    def per_file(*args, **kwargs):
        raise AssertionError("a file was looked at on its own")

    with monkeypatch.context() as patched:
        patched.setattr(runner, "_index_file", per_file)
        patched.setattr(runner, "process_file", per_file)
        second = run([Path(".")], ALL_RULES, RunOptions(mode=mode), jobs=2, cache=Cache(tmp_path, "salt"))
    assert all(r.cached for r in second)
    assert report_key(second) == report_key(first)
    assert [r.notes for r in second] == [r.notes for r in first]
    # another salt (other settings) or another rule selection is another run
    with monkeypatch.context() as patched:
        patched.setattr(runner, "_index_file", per_file)
        with pytest.raises(AssertionError, match="on its own"):
            run([Path(".")], ALL_RULES, RunOptions(mode=mode), jobs=2, cache=Cache(tmp_path, "other"))
        with pytest.raises(AssertionError, match="on its own"):
            run([Path(".")], ALL_RULES[:3], RunOptions(mode=mode), jobs=2, cache=Cache(tmp_path, "salt"))


def test_a_write_run_that_changed_files_leaves_no_whole_run_entry(tmp_path, monkeypatch):
    write_tree(tmp_path, batch_tree())
    monkeypatch.chdir(tmp_path)
    wrote = run([Path(".")], ALL_RULES, RunOptions(mode="write"), jobs=1, cache=Cache(tmp_path, "salt"))
    assert any(r.changed for r in wrote)
    again = run([Path(".")], ALL_RULES, RunOptions(mode="write"), jobs=1, cache=Cache(tmp_path, "salt"))
    assert not any(r.changed for r in again)  # the fixed files are analysed, and nothing is left to fix
    third = run([Path(".")], ALL_RULES, RunOptions(mode="write"), jobs=1, cache=Cache(tmp_path, "salt"))
    assert report_key(third) == report_key(again) and all(r.cached for r in third)


EARLY_BASE = """import torch.nn as nn


class Block(nn.Module):
    def forward(self, x):
        return x
"""
EARLY_USER = """import torch.nn as nn

from .blocks import Block


class Net(nn.Module):  # derives from torch only: nothing says up front that it needs blocks.py
    def __init__(self):
        super().__init__()
        self.layers = [Block() for _ in range(2)]
"""
EARLY_ALONE = """import torch
import torch.nn as nn


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2) for _ in range(2)]
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_first_pass_finishes_only_files_the_project_index_cannot_change(tmp_path, monkeypatch, jobs):
    """The first pass analyses a file on the tree it parsed for the index, and keeps the result
    only when no question about another file's classes came up: `Block()` is a module only
    through blocks.py, so user.py is analysed again with the index and its list is found."""
    write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/blocks.py": EARLY_BASE, "pkg/user.py": EARLY_USER,
                          "pkg/head.py": EARLY_ALONE, "pkg/extra.py": "X = 1\n"})
    monkeypatch.chdir(tmp_path)
    analysed = []
    original = runner.transform_source

    def counting(text, settings, *rest):
        analysed.append(text)
        return original(text, settings, *rest)

    monkeypatch.setattr(runner, "transform_source", counting)
    reports = {r.display: r for r in run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=jobs)}
    assert [(d.code, d.line) for d in reports["pkg/user.py"].diagnostics] == [("TFM101", 9)]
    assert [(d.code, d.line) for d in reports["pkg/head.py"].diagnostics] == [("TFM101", 8)]
    if jobs == 1:  # the counting wrapper only sees calls made in this process
        assert analysed.count(EARLY_USER) == 2  # stopped in the first pass, done in the second
        assert analysed.count(EARLY_ALONE) == 1 and analysed.count(EARLY_BASE) == 1
    monkeypatch.setattr(runner, "transform_source", original)
    # the same findings and diffs as a run whose first pass never finishes a file
    monkeypatch.setattr(runner, "_bases_from_the_run", lambda summary, packages: True)
    monkeypatch.setattr(runner, "_finish_early", lambda *args: None)
    two_pass = run([Path(".")], ALL_RULES, RunOptions(mode="diff"), jobs=1)
    assert report_key(sorted(reports.values(), key=lambda r: r.display)) == report_key(two_pass)


def test_editing_one_file_reparses_only_that_file(tmp_path, monkeypatch):
    files = batch_tree()
    write_tree(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    edited = "pkg/sub/masked_b.py"
    (tmp_path / edited).write_text(files[edited].replace("torch.ones(3)", "torch.ones(5)"))

    parsed = []
    original = runner.transform_source

    def counting(text, settings, *rest):
        parsed.append(text)
        return original(text, settings, *rest)

    monkeypatch.setattr(runner, "transform_source", counting)
    reports = run([Path(".")], ALL_RULES, RunOptions(), jobs=1, cache=Cache(tmp_path, "salt"))
    assert {r.display: r.cached for r in reports} == {path: path != edited for path in files}
    # the edited file alone is analysed (the first pass may stop its analysis when it reaches
    # a class of another file, and the second pass then does it again with the project index)
    assert set(parsed) == {(tmp_path / edited).read_text()}
    (report,) = [r for r in reports if r.display == edited]
    assert [(d.code, d.line) for d in report.diagnostics] == [("TFM301", position(files[edited], BUFFER_LINE)[0])]


def test_changed_settings_never_give_stale_cached_results(tmp_path):
    files = {
        "pyproject.toml": "[project]\nname = 'x'\n",
        "a.py": src(MIXED_SRC),
        "d.py": src(UNSAFE_SRC),
    }
    cached = write_tree(tmp_path / "cached", files)
    fresh = write_tree(tmp_path / "fresh", files)
    variants = [
        ["."],
        ["--select", "TFM2", "."],
        ["--diff", "."],
        ["--diff", "--unsafe-fixes", "."],
        ["--diff", "--buffer-persistent", "."],
        ["--select", "TFM1,TFM3", "."],
        ["."],
    ]

    cached_results = [tfm_here(cached, *args) for args in variants]
    # a setting changed in the configuration file, not on the command line
    (cached / "pyproject.toml").write_text('[tool.torchfix-mod]\nignore = ["TFM301"]\n')
    cached_results.append(tfm_here(cached, "."))
    assert (cached / CACHE_DIR_NAME).is_dir()

    fresh_results = [tfm_here(fresh, "--no-cache", *args) for args in variants]
    fresh_config = write_tree(tmp_path / "fresh_config", {**files, "pyproject.toml": '[tool.torchfix-mod]\nignore = ["TFM301"]\n'})
    fresh_results.append(tfm_here(fresh_config, "--no-cache", "."))
    assert not (fresh / CACHE_DIR_NAME).exists()
    for args, with_cache, without in zip([*variants, ["(config ignore)"]], cached_results, fresh_results):
        assert (with_cache.returncode, with_cache.stdout, with_cache.stderr) == (
            without.returncode,
            without.stdout,
            without.stderr,
        ), args
    # and the settings really changed the results
    check, select2, diff, unsafe, persistent, select13, again, config = cached_results
    assert {c for *_, c, _ in findings(out(check))} == {"TFM101", "TFM201", "TFM301", "TFM502"}
    assert {c for *_, c, _ in findings(out(select2))} == {"TFM201"}
    assert {c for *_, c, _ in findings(out(select13))} == {"TFM101", "TFM301"}
    assert {c for *_, c, _ in findings(out(config))} == {"TFM101", "TFM201", "TFM502"}
    assert again.stdout == check.stdout
    assert "--- a/d.py" not in out(diff) and "+        " + UNSAFE_FIXED in out(unsafe)
    assert "persistent=False" in out(diff) and "persistent=True" in out(persistent)
    assert snapshot(cached)["a.py"] == files["a.py"].encode()


def test_an_edited_rule_never_serves_a_stale_cached_result(tmp_path):
    """The cache key hashes the engine's and the rules' source: a run of an edited copy of the
    tool over the same project, with the same cache, gets the edited rule's result."""
    import torchfix_mod
    import torchfix_mod.codemods as rules

    tool = tmp_path / "tool"
    shutil.copytree(Path(torchfix_mod.__path__[0]), tool / "torchfix_mod", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(Path(rules.__path__[0]), tool / "codemods", ignore=shutil.ignore_patterns("__pycache__"))
    project = write_tree(tmp_path / "project", {
        "pyproject.toml": "[project]\nname = 'x'\n",
        "m.py": "import torch.nn as nn\n\ndef f(w):\n    nn.init.normal(w)\n",
    })
    env = {**os.environ, "PYTHONPATH": str(tool)}

    def check() -> str:
        done = subprocess.run([sys.executable, "-m", "torchfix_mod", "."], cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
        return done.stdout

    assert "without the warning" in check()
    assert (project / CACHE_DIR_NAME).is_dir()
    rule_file = tool / "codemods" / "deprecated" / "deprecated_init.py"
    rule_file.write_text(rule_file.read_text().replace("without the warning", "edited message"))
    assert "edited message" in check()


def test_cache_follows_other_files_classes(tmp_path):
    files = {"pkg/__init__.py": "", "pkg/blocks.py": PROJECT_BLOCKS, "pkg/net.py": PROJECT_NET}
    write_tree(tmp_path, files)
    line, column = position(PROJECT_NET, "self.stages = ")
    first = tfm_here(tmp_path, ".")
    assert first.returncode == 1, show(first)
    assert findings(out(first)) == [("pkg/net.py", line, column, "TFM101", True)]

    (tmp_path / "pkg/blocks.py").write_text(PROJECT_BLOCKS.replace("class Block(nn.Module)", "class Block(object)"))
    second, fresh = tfm_here(tmp_path, "."), tfm_here(tmp_path, "--no-cache", ".")
    assert second.returncode == 0, show(second)
    assert findings(out(second)) == []
    assert second.stdout == fresh.stdout

    (tmp_path / "pkg/blocks.py").write_text(PROJECT_BLOCKS)
    third = tfm_here(tmp_path, ".")
    assert third.stdout == first.stdout and third.returncode == 1


# --------------------------------------------------------------------------- 3. configuration

CONFIG_TREE = {
    "src/a.py": src(LIST_SRC),
    "src/b.py": src(INPLACE_SRC),
    "src/c.py": src(BUFFER_SRC),
    "src/d.py": src(UNSAFE_SRC),
    "legacy/old.py": src(MIXED_SRC),
    "gen/g.py": src(LIST_SRC, "G"),
    "build/x.py": src(LIST_SRC, "X"),  # skipped by default
}
ALL_FOUND = {
    ("src/a.py", "TFM101"),
    ("src/b.py", "TFM201"),
    ("src/c.py", "TFM301"),
    ("src/d.py", "TFM502"),
    ("legacy/old.py", "TFM101"),
    ("legacy/old.py", "TFM201"),
    ("legacy/old.py", "TFM301"),
    ("gen/g.py", "TFM101"),
}


def table(body: str) -> str:
    return "[tool.torchfix-mod]\n" + body + "\n"


CONFIG_CASES = {
    # name: (pyproject.toml, extra files, arguments)
    "none": (None, {}, ["."]),
    "select": (table('select = ["TFM1"]'), {}, ["."]),
    "ignore": (table('ignore = ["TFM2", "TFM301"]'), {}, ["."]),
    "extend-select": (table('select = ["TFM2"]\nextend-select = ["TFM301"]'), {}, ["."]),
    "per-file-ignores": (table('[tool.torchfix-mod.per-file-ignores]\n"legacy/*" = ["TFM2"]'), {}, ["."]),
    "exclude": (table('exclude = ["gen"]'), {}, ["."]),
    "extend-exclude": (table('extend-exclude = ["gen"]'), {}, ["."]),
    "unsafe-fixes": (table("unsafe-fixes = true"), {}, ["--write", "src/d.py"]),
    "no-unsafe-fixes-cli": (table("unsafe-fixes = true"), {}, ["--no-unsafe-fixes", "--write", "src/d.py"]),
    "no-config-unsafe": (None, {}, ["--write", "src/d.py"]),
    "buffer-persistent": (table("buffer-persistent = true"), {}, ["--diff", "src/c.py"]),
    "no-buffer-persistent-cli": (table("buffer-persistent = true"), {}, ["--no-buffer-persistent", "--diff", "src/c.py"]),
    "select-cli": (table('select = ["TFM1"]'), {}, ["--select", "TFM2", "."]),
    "config-option": (table('select = ["TFM1"]'), {"other.toml": table('select = ["TFM3"]')}, ["--config", "other.toml", "."]),
    "isolated": (table('select = ["TFM1"]\nexclude = ["gen"]'), {}, ["--isolated", "."]),
    "unknown-key": (table('selec = ["TFM1"]'), {}, ["."]),
    "bad-value": (table('unsafe-fixes = "yes"'), {}, ["."]),
    "bad-value-other-file": (
        table('select = ["TFM1"]'),
        {"conf/other.toml": table('[tool.torchfix-mod.per-file-ignores]\n"legacy/*" = "TFM2"')},
        ["--config", "conf/other.toml", "."],
    ),
    "force-exclude": (table('extend-exclude = ["gen"]'), {}, ["--force-exclude", "gen/g.py"]),
    "no-force-exclude": (table('extend-exclude = ["gen"]'), {}, ["gen/g.py"]),
}


@pytest.fixture(scope="module")
def config_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("config")
    jobs, dirs = [], {}
    for name, (pyproject, extra, args) in CONFIG_CASES.items():
        dirs[name] = write_tree(base / name, config_files(name))
        jobs.append((dirs[name], ["--no-cache", *args]))
    results = [tfm_here(directory, *args) for directory, args in jobs]
    return {name: (dirs[name], result) for name, result in zip(CONFIG_CASES, results)}


def config_files(case: str) -> dict[str, str]:
    pyproject, extra, _ = CONFIG_CASES[case]
    files = dict(CONFIG_TREE, **extra)
    if pyproject is not None:
        files["pyproject.toml"] = pyproject
    return files


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("none", ALL_FOUND),
        ("select", {f for f in ALL_FOUND if f[1].startswith("TFM1")}),
        ("ignore", {f for f in ALL_FOUND if not f[1].startswith("TFM2") and f[1] != "TFM301"}),
        ("extend-select", {f for f in ALL_FOUND if f[1] in ("TFM201", "TFM301")}),
        ("per-file-ignores", ALL_FOUND - {("legacy/old.py", "TFM201")}),
        ("exclude", (ALL_FOUND - {("gen/g.py", "TFM101")}) | {("build/x.py", "TFM101")}),
        ("extend-exclude", ALL_FOUND - {("gen/g.py", "TFM101")}),
        ("select-cli", {f for f in ALL_FOUND if f[1] == "TFM201"}),
        ("config-option", {f for f in ALL_FOUND if f[1] == "TFM301"}),
        ("isolated", ALL_FOUND),
    ],
)
def test_config_selects_the_findings(config_runs, case, expected):
    directory, result = config_runs[case]
    assert result.returncode == 1, show(result)
    assert codes_by_path(out(result)) == expected
    assert err(result) == ""
    assert snapshot(directory)["src/a.py"] == CONFIG_TREE["src/a.py"].encode()


def test_config_unsafe_fixes_and_cli_override(config_runs):
    fixed_dir, fixed = config_runs["unsafe-fixes"]
    assert fixed.returncode == 0, show(fixed)
    assert UNSAFE_FIXED in (fixed_dir / "src/d.py").read_text()
    for case in ("no-unsafe-fixes-cli", "no-config-unsafe"):
        directory, result = config_runs[case]
        assert result.returncode == 1, show(result)  # the finding stays, without a fix
        assert (directory / "src/d.py").read_text() == CONFIG_TREE["src/d.py"]
        line, column = position(CONFIG_TREE["src/d.py"], UNSAFE_LINE)
        assert findings(out(result)) == [("src/d.py", line, column, "TFM502", False)]


def test_config_buffer_persistent_and_cli_override(config_runs):
    _, persistent = config_runs["buffer-persistent"]
    _, overridden = config_runs["no-buffer-persistent-cli"]
    assert persistent.returncode == overridden.returncode == 1
    added = [line for line in out(persistent).splitlines() if line.startswith("+ ")]
    assert added == ['+        self.register_buffer("mask", torch.ones(3), persistent=True)']
    added = [line for line in out(overridden).splitlines() if line.startswith("+ ")]
    assert added == ['+        self.register_buffer("mask", torch.ones(3), persistent=False)']


@pytest.mark.parametrize(
    ("case", "key", "file"),
    [
        ("unknown-key", "selec", "pyproject.toml"),
        ("bad-value", "unsafe-fixes", "pyproject.toml"),
        ("bad-value-other-file", "per-file-ignores", "conf/other.toml"),
    ],
)
def test_config_errors_exit_2_naming_key_and_file(config_runs, case, key, file):
    directory, result = config_runs[case]
    assert result.returncode == 2, show(result)
    assert out(result) == ""
    message = err(result)
    assert key in message and file in message, message
    assert len(message.strip().splitlines()) == 1
    assert snapshot(directory) == {k: v.encode() for k, v in config_files(case).items()}


def test_force_exclude_skips_an_explicitly_named_excluded_file(config_runs):
    _, forced = config_runs["force-exclude"]
    _, named = config_runs["no-force-exclude"]
    assert forced.returncode == 0, show(forced)
    assert findings(out(forced)) == []
    line, column = position(CONFIG_TREE["gen/g.py"], LIST_LINE)
    assert named.returncode == 1, show(named)
    assert findings(out(named)) == [("gen/g.py", line, column, "TFM101", True)]  # named files are read


# --------------------------------------------------------------------------- 4. stdin

MODEL = src(MIXED_SRC, "Model")


@pytest.fixture(scope="module")
def stdin_runs(tmp_path_factory):
    repo = git_init(write_tree(tmp_path_factory.mktemp("stdin_repo"), {"model.py": MODEL, "pkg/other.py": src(LIST_SRC)}))
    written = copy_tree(repo, tmp_path_factory.mktemp("stdin_written") / "t")
    original = snapshot(repo)
    data = MODEL.encode()
    names = ["diff", "write_stdin", "check_stdin"]
    results = tfm_parallel(
        (repo, ["--diff", "-", "--stdin-filename", "model.py"], data),
        (repo, ["--write", "-"], data),
        (repo, ["-", "--stdin-filename", "model.py"], data),
    )
    # the same file named on the command line, for comparison
    write_file = tfm_here(written, "--no-cache", "--write", "model.py")
    check_file = tfm_here(repo, "--no-cache", "model.py")
    return {
        "repo": repo, "written": written, "original": original, "write_file": write_file, "check_file": check_file,
        **dict(zip(names, results)),
    }


def test_stdin_diff_git_applies_to_what_write_writes(stdin_runs, tmp_path):
    diff = stdin_runs["diff"]
    assert diff.returncode == 1, show(diff)
    assert diff.stdout.startswith(b"--- a/model.py\n+++ b/model.py\n@@ ")
    work = copy_tree(stdin_runs["repo"], tmp_path / "applied")
    git_init(work)
    applied = git(work, "apply", "-", stdin=diff.stdout)
    assert applied.returncode == 0, applied.stderr.decode()
    assert snapshot(work) == snapshot(stdin_runs["written"])
    assert snapshot(work)["model.py"] != MODEL.encode()


def test_stdin_write_prints_the_fixed_source_and_writes_nothing(stdin_runs):
    result = stdin_runs["write_stdin"]
    assert result.returncode == 0, show(result)
    assert result.stdout == (stdin_runs["written"] / "model.py").read_bytes()
    assert stdin_runs["write_file"].returncode == 0
    assert snapshot(stdin_runs["repo"]) == stdin_runs["original"]
    assert {p.name for p in stdin_runs["repo"].iterdir()} == {".git", "model.py", "pkg"}


def test_stdin_check_reports_with_the_given_filename(stdin_runs):
    from_stdin, from_file = stdin_runs["check_stdin"], stdin_runs["check_file"]
    assert from_stdin.returncode == from_file.returncode == 1
    reported = findings(out(from_stdin))
    assert {f[3] for f in reported} == {"TFM101", "TFM201", "TFM301"}
    assert {f[0] for f in reported} == {"model.py"}
    assert reported == findings(out(from_file))


def test_stdin_exit_codes_follow_the_file_rules(tmp_path):
    clean = tfm_here(tmp_path, "-", "--stdin-filename", "clean.py", stdin=src(CLEAN_SRC).encode())
    broken = tfm_here(tmp_path, "--write", "-", "--stdin-filename", "broken.py", stdin=BROKEN_SRC.encode())
    unfixable = tfm_here(tmp_path, "--write", "-", "--stdin-filename", "d.py", stdin=src(UNSAFE_SRC).encode())
    assert clean.returncode == 0, show(clean)
    assert findings(out(clean)) == []
    assert broken.returncode == 2, show(broken)
    assert [e[:2] for e in errors(err(broken))] == [("broken.py", position(BROKEN_SRC, "def broken(:")[0])]
    assert broken.stdout == BROKEN_SRC.encode()  # the source passes through unchanged
    assert unfixable.returncode == 1, show(unfixable)  # a finding without a (safe) fix remains
    assert unfixable.stdout == src(UNSAFE_SRC).encode()


@pytest.mark.parametrize("spelling", ["dot", "absolute"])
def test_stdin_filename_is_displayed_like_a_file_path(tmp_path, spelling):
    repo = git_init(write_tree(tmp_path / "repo", {"model.py": MODEL}))
    name = "./model.py" if spelling == "dot" else str((repo / "model.py").resolve())
    check = tfm_here(repo, "-", "--stdin-filename", name, stdin=MODEL.encode())
    diff = tfm_here(repo, "--diff", "-", "--stdin-filename", name, stdin=MODEL.encode())
    assert diff.returncode == 1
    applied = git(repo, "apply", "--check", "-", stdin=diff.stdout)
    assert applied.returncode == 0, applied.stderr.decode()
    assert diff.stdout.startswith(b"--- a/model.py\n+++ b/model.py\n")
    assert {f[0] for f in findings(out(check))} == {"model.py"}


# --------------------------------------------------------------------------- 5. notebooks

NB_IMPORTS = "import torch\nimport torch.nn as nn"
NB_MODEL = (
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.layers = [nn.Linear(4, 4) for _ in range(2)]\n"
    "\n"
    "    def forward(self, x):\n"
    "        for layer in self.layers:\n"
    "            x = layer(x)\n"
    "        return x"
)
NB_GATE = (
    "class Gate(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(4, 4)\n"
    "\n"
    "    def forward(self, x):\n"
    "        out = torch.sigmoid(self.fc(x))\n"
    "        out += x\n"
    "        return out"
)


def make_notebook() -> nbformat.NotebookNode:
    """Cells: 1 markdown, 2 imports, 3 magic, 4 markdown, 5 the list bug (with outputs), 6 the in-place bug."""
    return new_notebook(
        cells=[
            new_markdown_cell("# Training notes"),
            new_code_cell(NB_IMPORTS, execution_count=1),
            new_code_cell("%matplotlib inline", execution_count=2),
            new_markdown_cell("The model:"),
            new_code_cell(
                NB_MODEL,
                execution_count=3,
                outputs=[new_output("stream", name="stdout", text="built\n")],
                metadata={"tags": ["model"], "collapsed": False},
            ),
            new_code_cell(
                NB_GATE,
                execution_count=4,
                outputs=[new_output("execute_result", data={"text/plain": "Gate()"}, execution_count=4)],
            ),
        ],
        metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    )


@pytest.fixture(scope="module")
def notebook_runs(tmp_path_factory):
    nb_text = nbformat.writes(make_notebook())
    files = {"nb.ipynb": nb_text, "broken.ipynb": '{"cells": [', "other.py": src(LIST_SRC)}
    checked = write_tree(tmp_path_factory.mktemp("nb_check"), files)
    written = write_tree(tmp_path_factory.mktemp("nb_write"), files)
    write = tfm(written, "--no-cache", "--write", ".")
    check = tfm_here(checked, "--no-cache", ".")
    return {"files": files, "checked": checked, "written": written, "check": check, "write": write}


def test_notebook_findings_name_the_cell_counting_all_cells(notebook_runs):
    check = notebook_runs["check"]
    assert check.returncode == 2, show(check)  # the broken notebook
    lines = [line for line in out(check).splitlines() if line.startswith("nb.ipynb:")]
    list_line, list_col = position(NB_MODEL, LIST_LINE)
    gate_line, gate_col = position(NB_GATE, INPLACE_LINE)
    assert [re.match(r"^(\S+:cell \d+:\d+:\d+:) (TFM\d{3}) ", line).groups() for line in lines] == [
        (f"nb.ipynb:cell 5:{list_line}:{list_col}:", "TFM101"),
        (f"nb.ipynb:cell 6:{gate_line}:{gate_col}:", "TFM201"),
    ]
    assert findings(out(check)) == [("other.py", *position(src(LIST_SRC), LIST_LINE), "TFM101", True)]
    assert snapshot(notebook_runs["checked"]) == {k: v.encode() for k, v in notebook_runs["files"].items()}


def test_notebook_magic_cell_note_and_invalid_json_error(notebook_runs):
    for result in (notebook_runs["check"], notebook_runs["write"]):
        stderr = err(result)
        notes = [line for line in stderr.splitlines() if line.startswith("nb.ipynb")]
        assert len(notes) == 1 and re.search(r"\bcell 3\b", notes[0]) and "magic" in notes[0].lower(), stderr
        assert [e[0] for e in errors(stderr)] == ["broken.ipynb"]
        assert result.returncode == 2


def test_notebook_write_fixes_cells_and_keeps_outputs_and_metadata(notebook_runs):
    written = notebook_runs["written"]
    assert (written / "broken.ipynb").read_text() == notebook_runs["files"]["broken.ipynb"]
    assert LIST_FIXED in (written / "other.py").read_text()  # the other files are still fixed
    before = make_notebook()
    after = nbformat.read(written / "nb.ipynb", as_version=4)
    nbformat.validate(after)
    assert after.metadata == before.metadata
    assert len(after.cells) == len(before.cells)
    for index, (old, new) in enumerate(zip(before.cells, after.cells), 1):
        assert new.cell_type == old.cell_type and new.get("metadata") == old.get("metadata"), index
        assert new.get("outputs") == old.get("outputs") and new.get("execution_count") == old.get("execution_count")
        if index == 5:
            assert new.source == NB_MODEL.replace(LIST_LINE, LIST_FIXED)
        elif index == 6:
            assert new.source == NB_GATE.replace(INPLACE_LINE, INPLACE_FIXED)
        else:
            assert new.source == old.source, index
    assert findings(out(notebook_runs["write"])) == []


# --------------------------------------------------------------------------- 6. output formats

OUTPUT_TREE = {"a.py": src(MIXED_SRC), "pkg/b.py": src(LIST_SRC), "pkg/c.py": src(INPLACE_SRC), "clean.py": src(CLEAN_SRC)}


@pytest.fixture(scope="module")
def output_runs(tmp_path_factory):
    checked = write_tree(tmp_path_factory.mktemp("out_check"), OUTPUT_TREE)
    written = write_tree(tmp_path_factory.mktemp("out_write"), OUTPUT_TREE)
    github, sarif, report = tfm_parallel(
        (checked, ["--no-cache", "--output-format", "github", "."]),
        (checked, ["--no-cache", "--output-format", "sarif", "."]),
        (written, ["--no-cache", "--write", "--report", "report.md", "."]),
    )
    as_json = tfm_here(checked, "--no-cache", "--output-format", "json", ".")
    return {"checked": checked, "written": written, "github": github, "sarif": sarif, "json": as_json, "report": report}


def json_findings(output_runs) -> list[tuple[str, int, int, str]]:
    items = json.loads(out(output_runs["json"]))
    return [(i["path"], i["line"], i["column"], i["code"]) for i in items]


def test_github_annotations_point_at_the_right_lines(output_runs):
    result = output_runs["github"]
    assert result.returncode == 1, show(result)
    lines = out(result).splitlines()
    assert lines and all(line.startswith("::warning file=") for line in lines), lines
    parsed = []
    for line in lines:
        match = re.match(r"::warning (?P<props>[^:]*)::(?P<message>.+)$", line)
        assert match, line
        props = dict(item.split("=", 1) for item in match["props"].split(","))
        parsed.append((props["file"], int(props["line"]), int(props["col"]), props["title"]))
    assert parsed == json_findings(output_runs)
    needles = {"TFM101": LIST_LINE, "TFM201": INPLACE_LINE, "TFM301": BUFFER_LINE}
    for path, line, col, code in parsed:
        text = OUTPUT_TREE[path].split("\n")[line - 1]
        assert text[col - 1 :].startswith(needles[code]), (path, line, code)
    assert len(parsed) == 5


def test_sarif_is_valid_json_matching_the_json_findings(output_runs):
    result = output_runs["sarif"]
    assert result.returncode == 1, show(result)
    log = json.loads(out(result))
    assert log["version"] == "2.1.0"
    (sarif_run,) = log["runs"]
    results = [
        (
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
            r["locations"][0]["physicalLocation"]["region"]["startColumn"],
            r["ruleId"],
        )
        for r in sarif_run["results"]
    ]
    assert results == json_findings(output_runs)
    rule_ids = {rule["id"] for rule in sarif_run["tool"]["driver"]["rules"]}
    assert {r[3] for r in results} <= rule_ids


def test_markdown_report_lists_checkpoint_keys_of_list_fixes(output_runs):
    result = output_runs["report"]
    assert result.returncode == 0, show(result)
    report = (output_runs["written"] / "report.md").read_text()
    match = re.search(r"^#+ Checkpoint compatibility\n(?P<body>.*?)(?=^#+ |\Z)", report, re.M | re.S)
    assert match, report
    body = match["body"]
    entries = [line for line in body.splitlines() if line.startswith("- ")]
    assert len(entries) == 2, body  # the two files with a TFM101 fix, nothing for pkg/c.py
    assert "a.py" in entries[0] and "`layers.*`" in entries[0]
    assert "pkg/b.py" in entries[1] and "`layers.*`" in entries[1]
    assert "mask" not in body  # a non-persistent buffer adds no key
    assert LIST_FIXED in (output_runs["written"] / "pkg/b.py").read_text()


# --------------------------------------------------------------------------- 7. summary and progress

STATS = re.compile(r"^  (?P<code>TFM\d{3}) (?P<name>\S+) +(?P<counts>\S.*)$")


def summary_tree(n_clean: int = 0) -> dict[str, str]:
    files = {"a.py": src(MIXED_SRC), "b.py": src(INPLACE_SRC, "B"), "c.py": src(LIST_SRC, "C")}
    files.update({f"clean/m{i:02d}.py": src(CLEAN_SRC, i) for i in range(n_clean)})
    return files


@pytest.fixture(scope="module")
def summary_runs(tmp_path_factory):
    buggy = write_tree(tmp_path_factory.mktemp("sum"), summary_tree())
    single = write_tree(tmp_path_factory.mktemp("sum_single"), {"c.py": src(LIST_SRC), "d.py": src(LIST_SRC, "D")})
    clean = write_tree(tmp_path_factory.mktemp("sum_clean"), {f"m{i:02d}.py": src(CLEAN_SRC, i) for i in range(24)})
    text, clean_dir = tfm_parallel((buggy, ["--no-cache", "."]), (clean, ["."]))
    return {
        "text": text,
        "clean": clean_dir,
        "quiet": tfm_here(buggy, "--no-cache", "-q", "."),
        "single": tfm_here(single, "--no-cache", "."),
        "clean_files": tfm_here(clean, "--no-cache", *[f"m{i:02d}.py" for i in range(24)]),
    }


def test_text_summary_then_one_line_per_rule(summary_runs):
    result = summary_runs["text"]
    assert result.returncode == 1, show(result)
    lines = out(result).splitlines()
    reported = findings(out(result))
    per_rule = Counter(f[3] for f in reported)
    assert len(per_rule) == 3
    assert len(lines) == len(reported) + 1 + len(per_rule)
    summary, stats = lines[len(reported)], lines[len(reported) + 1 :]
    assert re.match(rf"^Found {len(reported)} findings in 3 files\b", summary), summary
    parsed = [STATS.match(line) for line in stats]
    assert all(parsed), stats
    assert [m["code"] for m in parsed] == sorted(per_rule)
    for m in parsed:
        assert m["name"] == RULE_NAMES[m["code"]]
        assert m["counts"] == f"{per_rule[m['code']]} remaining"
    assert err(result) == ""


def test_single_rule_run_has_no_per_rule_lines(summary_runs):
    result = summary_runs["single"]
    lines = out(result).splitlines()
    assert len(findings(out(result))) == 2
    assert len(lines) == 3 and lines[-1].startswith("Found 2 findings")
    assert not any(STATS.match(line) for line in lines)


def test_quiet_prints_findings_without_summary(summary_runs):
    quiet, text = summary_runs["quiet"], summary_runs["text"]
    assert quiet.returncode == 1
    finding_lines = [line for line in out(text).splitlines() if FINDING.match(line)]
    assert len(finding_lines) == 5
    assert out(quiet).splitlines() == finding_lines
    assert quiet.stderr == b""


def test_no_progress_output_when_stderr_is_not_a_tty(summary_runs):
    for name in ("clean", "clean_files"):  # a directory, and more files than the progress threshold
        result = summary_runs[name]
        assert result.returncode == 0, show(result)
        assert result.stderr == b""
        assert re.match(r"^No findings in 24 files\b", out(result)), out(result)


def run_on_tty(cwd: Path, *args: str) -> tuple[int, bytes, bytes]:
    """Run with a pseudo-terminal as stderr (stdout a pipe); returns (exit code, stderr bytes, stdout)."""
    pty = pytest.importorskip("pty")
    try:
        master, slave = pty.openpty()
    except OSError as exc:
        pytest.skip(f"no pseudo-terminal: {exc}")
    env = {k: v for k, v in ENV.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["TERM"] = "xterm-256color"
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "torchfix_mod", *args],
            cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env,
        )
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120

    def drain() -> bool:
        """Read what is there; False once the terminal is closed."""
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                return True
            except OSError:  # EIO: the child and its workers closed the terminal
                return False
            if not chunk:
                return False
            chunks.append(chunk)

    try:
        # keep reading while the child runs so it never blocks on a full terminal buffer
        open_ = True
        while open_ and child.poll() is None and time.monotonic() < deadline:
            select.select([master], [], [], 0.1)
            open_ = drain()
        stdout = child.communicate(timeout=max(1, deadline - time.monotonic()))[0]
        drain()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    return child.returncode, b"".join(chunks), stdout


def test_progress_bar_on_a_tty_and_quiet_suppresses_it(tmp_path):
    write_tree(tmp_path, {f"pkg/m{i:02d}.py": src(CLEAN_SRC, i) for i in range(6)})
    (code, bar, stdout), (quiet_code, quiet_bar, quiet_stdout) = in_parallel(
        lambda: run_on_tty(tmp_path, "--no-cache", "-j", "1", "."),
        lambda: run_on_tty(tmp_path, "--no-cache", "-j", "1", "-q", "."),
    )
    assert code == quiet_code == 0
    assert bar.strip() != b"", "nothing drawn on the terminal"
    assert quiet_bar == b""
    assert stdout.decode().startswith("No findings in 6 files")
    assert quiet_stdout == b""


# --------------------------------------------------------------------------- 8. project-wide knowledge

PROJECT_BLOCKS_MORE = PROJECT_BLOCKS.replace("import torch.nn as nn\n", "import torch.nn as nn\nfrom torch.nn import Linear\nfrom thirdparty.layers import Base\n") + """

class Lin(Linear):
    pass


class Ext(Base):
    def __init__(self, n):
        super().__init__()
"""


PROJECT_TREE = {
    "pkg/__init__.py": "from .blocks import Block\n",
    "pkg/blocks.py": PROJECT_BLOCKS_MORE,
    "pkg/from_package.py": user("from pkg import Block", "Block(4)"),
    "pkg/from_relative.py": user("from .blocks import Block", "Block(4)"),
    "pkg/module_alias.py": user("import pkg.blocks as b", "b.Block(4)"),
    "pkg/torch_base.py": user("from .blocks import Lin", "Lin(4, 4)"),
    "pkg/third_party_base.py": user("from .blocks import Ext", "Ext(4)"),
    "app.py": user("from pkg import Block", "Block(4)"),
}
PROJECT_FIXED = {"pkg/from_package.py", "pkg/from_relative.py", "pkg/module_alias.py", "pkg/torch_base.py", "app.py"}


@pytest.fixture(scope="module")
def project_runs(tmp_path_factory):
    checked = write_tree(tmp_path_factory.mktemp("proj_check"), PROJECT_TREE)
    written = write_tree(tmp_path_factory.mktemp("proj_write"), PROJECT_TREE)
    check, write = tfm_parallel((checked, ["--no-cache", "."]), (written, ["--no-cache", "--write", "."]))
    alone = tfm_here(checked, "--no-cache", "pkg/from_relative.py")
    return {"written": written, "check": check, "write": write, "alone": alone}


def test_project_classes_are_known_across_files(project_runs):
    check = project_runs["check"]
    assert check.returncode == 1, show(check)
    assert err(check) == ""
    line, column = position(PROJECT_TREE["app.py"], "self.stages = ")
    assert findings(out(check)) == [(path, line, column, "TFM101", True) for path in sorted(PROJECT_FIXED)]


def test_project_fixes_written_in_each_user_file(project_runs):
    write = project_runs["write"]
    assert write.returncode == 0, show(write)
    after = snapshot(project_runs["written"])
    for path, before in PROJECT_TREE.items():
        if path in PROJECT_FIXED:
            assert after[path].decode() == before.replace("self.stages = [", "self.stages = nn.ModuleList([").replace(
                "for _ in range(2)]", "for _ in range(2)])"
            ), path
        else:
            assert after[path] == before.encode(), path


def test_a_file_run_alone_knows_the_classes_it_imports_from_its_package(project_runs):
    """A run on one file (as a pre-commit hook makes) reads the files it imports from its own
    package: the class defined there is known, so the finding is the whole run's, fix included."""
    alone, check = project_runs["alone"], project_runs["check"]
    assert alone.returncode == 1, show(alone)
    found = findings(out(alone))
    assert found and found == [f for f in findings(out(check)) if f[0] == "pkg/from_relative.py"], show(alone)
    assert all(code == "TFM101" and fixable for _, _, _, code, fixable in found)


def test_dotted_import_does_not_block_a_list_attribute_of_the_same_name(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/blocks.py": PROJECT_BLOCKS,
        "pkg/net.py": user("import pkg.blocks as b", "b.Block(4)", attribute="blocks"),
    }
    write_tree(tmp_path, files)
    result = tfm_here(tmp_path, "--no-cache", "pkg")
    line, column = position(files["pkg/net.py"], "self.blocks = ")
    assert findings(out(result)) == [("pkg/net.py", line, column, "TFM101", True)], show(result)


def test_exit_non_zero_on_fix_reports_a_changed_file(tmp_path):
    (tmp_path / "m.py").write_text(
        "import torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.layers = [nn.Linear(2, 2) for _ in range(2)]\n\n    def forward(self, x):\n"
        "        for layer in self.layers:\n            x = layer(x)\n        return x\n"
    )
    first = subprocess.run(
        [sys.executable, "-m", "torchfix_mod", "--write", "--exit-non-zero-on-fix", "--no-cache", "m.py"],
        cwd=tmp_path, capture_output=True, timeout=120,
    )
    assert first.returncode == 1 and "nn.ModuleList(" in (tmp_path / "m.py").read_text()
    second = subprocess.run(
        [sys.executable, "-m", "torchfix_mod", "--write", "--exit-non-zero-on-fix", "--no-cache", "m.py"],
        cwd=tmp_path, capture_output=True, timeout=120,
    )
    assert second.returncode == 0
