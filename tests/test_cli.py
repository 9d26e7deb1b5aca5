"""End-to-end tests of the ``torchfix-mod`` command: the real program in temporary directories.

Inputs are built from the rules' own examples, so the expected fixed text is known exactly.
"""

from __future__ import annotations

from collections import Counter

import ast
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from torchfix_mod.codemods.module_api.inplace_forward import InplaceForwardRule
from torchfix_mod.codemods.containers.module_dict import ModuleDictRule
from torchfix_mod.codemods.deprecated.full_backward_hook import FullBackwardHookRule
from torchfix_mod.codemods.containers.module_list import ModuleListRule
from torchfix_mod.codemods.attributes.register_buffer import RegisterBufferRule
from torchfix_mod import __version__
from torchfix_mod.cli import app
from torchfix_mod.engine import Settings, transform_source
from torchfix_mod.rule import load_rules

# --------------------------------------------------------------------------- examples

LIST = ModuleListRule.fixes[0]  # TFM101, `self.dec_layers = []` filled by append
LIST_IMPORT = ModuleListRule.fixes[3]  # TFM101, also rewrites the first line (the import)
LIST_COMMENT = ModuleListRule.fixes[1]  # TFM101 on the last line
DICT = ModuleDictRule.fixes[0]  # TFM102, literal keys: safe
UNSAFE = FullBackwardHookRule.fixes[0]  # TFM502: an unsafe fix
INPLACE = InplaceForwardRule.fixes[1]  # several TFM201 findings in one forward
BUFFER = RegisterBufferRule.fixes[0]  # TFM301
UNFIXABLE = next(case for case in ModuleListRule.keeps if case.reported)  # reported, never fixed

assert not DICT.unsafe and UNSAFE.unsafe and not any((LIST.unsafe, INPLACE.unsafe, BUFFER.unsafe))

ALL_RULES = tuple(load_rules())


def expected_findings(source: str, unsafe: bool = False) -> list[tuple[int, int, str, bool]]:
    """(line, column, code, fixable) of every finding the engine makes in ``source``: what the CLI must print.

    Counts are taken from the engine, not hard-coded, so the tests follow edits of the examples.
    """
    result = transform_source(source, Settings(rules=ALL_RULES, unsafe_fixes=unsafe, apply_fixes=False))
    assert not result.errors
    return [(d.line, d.column, d.code, d.fix_available) for d in result.diagnostics]


def fixable(source: str, unsafe: bool = False) -> int:
    return sum(fix for *_, fix in expected_findings(source, unsafe))


FINDING = re.compile(r"^(?P<path>\S+?):(?P<line>\d+):(?P<col>\d+): (?P<code>TFM\d{3})(?P<mark> \[\*\])? (?P<message>\S.*)$")
ERROR = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")
HAS_PATCH = shutil.which("patch") is not None

ENV = {
    **os.environ,
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def position(source: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of ``needle``."""
    for number, line in enumerate(source.split("\n"), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in source")


def tfm(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchfix_mod", *args],
        cwd=cwd,
        capture_output=True,
        timeout=120,
        env=env or ENV,
    )


def tfm_parallel(*jobs: tuple) -> list[subprocess.CompletedProcess]:
    """Independent runs at once, each ``(cwd, *args)`` or ``(cwd, args, env)``; results in order.

    Each run costs about a second of interpreter start-up, so independent ones overlap.
    """

    def one(job: tuple) -> subprocess.CompletedProcess:
        if len(job) == 3 and isinstance(job[1], list):
            return tfm(job[0], *job[1], env=job[2])
        return tfm(job[0], *job[1:])

    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return list(pool.map(one, jobs))


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    return dst


def out(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode("utf-8")


def err(result: subprocess.CompletedProcess) -> str:
    return result.stderr.decode("utf-8")


def findings(text: str) -> list[tuple[str, int, int, str, bool]]:
    """The finding lines of ``text``: (path, line, column, code, fixable); other lines are skipped."""
    found = []
    for line in text.splitlines():
        match = FINDING.match(line)
        if match:
            found.append((match["path"], int(match["line"]), int(match["col"]), match["code"], bool(match["mark"])))
    return found


def errors(text: str) -> list[tuple[str, int, int, str]]:
    found = []
    for line in text.splitlines():
        match = ERROR.match(line)
        if match:
            found.append((match["path"], int(match["line"]), int(match["col"]), match["message"]))
    return found


def write_tree(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (outside .git and the result cache) by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {".git", ".torchfix_mod_cache"} & set(p.relative_to(root).parts)
    }


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, env=ENV, timeout=60)


def apply_with_git(tree: Path, diff: bytes, work: Path) -> dict[str, bytes]:
    """A copy of ``tree`` in its own git repository with ``diff`` applied by ``git apply``."""
    shutil.copytree(tree, work, ignore=shutil.ignore_patterns(".git"))
    assert git(work, "init", "-q").returncode == 0
    applied = git(work, "apply", "--verbose", "-", stdin=diff)
    assert applied.returncode == 0, applied.stderr.decode()
    return snapshot(work)


def apply_with_patch(tree: Path, diff: bytes, work: Path) -> dict[str, bytes]:
    shutil.copytree(tree, work, ignore=shutil.ignore_patterns(".git"))
    patched = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch"],
        cwd=work, input=diff, capture_output=True, timeout=60,
    )
    assert patched.returncode == 0, patched.stdout.decode() + patched.stderr.decode()
    return snapshot(work)


def diff_headers(diff: str) -> list[tuple[str, str]]:
    lines = diff.splitlines()
    return [(lines[i][4:], lines[i + 1][4:]) for i, line in enumerate(lines) if line.startswith("--- ")]


DIFF_LINE = re.compile(r"^(--- a/.+|\+\+\+ b/.+|@@ -\d+(,\d+)? \+\d+(,\d+)? @@.*|[ +-].*|\\ No newline at end of file)$")


def assert_only_diff(stdout: bytes) -> None:
    """stdout is a unified diff and nothing else (no findings, no summary)."""
    lines = stdout.split(b"\n")
    assert lines[-1] == b""  # ends with a newline
    for line in lines[:-1]:
        assert DIFF_LINE.match(line.decode("latin-1").rstrip("\r")), line


# --------------------------------------------------------------------------- check mode


MIXED = BUFFER.before + "\n\n" + INPLACE.before + "\n\n" + LIST.before  # TFM301, TFM201..., TFM101 top to bottom
MIXED_AFTER = BUFFER.after + "\n\n" + INPLACE.after + "\n\n" + LIST.after


def test_check_reports_findings_sorted_by_file_then_position(tmp_path):
    files = {
        "b.py": MIXED,
        "a.py": LIST.before,
        "sub/c.py": BUFFER.before,
        "clean.py": LIST.after,
        "sub/notes.txt": LIST.before,  # not Python
    }
    write_tree(tmp_path, files)
    before = snapshot(tmp_path)

    result = tfm(tmp_path, ".")

    assert result.returncode == 1
    assert err(result) == ""
    lines = out(result).splitlines()
    reported = findings(out(result))
    expected = [(path, *f) for path in ("a.py", "b.py", "sub/c.py") for f in expected_findings(files[path])]
    assert reported == expected
    # anchors independent of the engine: where the examples' mistakes are
    assert reported[0] == ("a.py", *position(LIST.before, "self.dec_layers = []"), "TFM101", True)
    in_b = [f for f in reported if f[0] == "b.py"]
    assert in_b[0] == ("b.py", *position(MIXED, "self.mask = "), "TFM301", True)  # by position, not by code
    assert in_b[-1] == ("b.py", *position(MIXED, "self.dec_layers = []"), "TFM101", True)
    assert {f[3] for f in in_b[1:-1]} == {"TFM201"} and len(in_b) >= 4
    assert [f[1:3] for f in in_b] == sorted(f[1:3] for f in in_b)
    assert reported[-1] == ("sub/c.py", *position(BUFFER.before, "self.mask = "), "TFM301", True)
    # findings of the documented form, the summary, then a count per rule
    stats = [line for line in lines if line.startswith("  ")]
    lines = lines[: len(lines) - len(stats)]
    assert all(FINDING.match(line) for line in lines[:-1]), lines
    per_rule = Counter(f[3] for f in reported)
    assert [(line.split()[0], int(line.split()[-2])) for line in stats] == sorted(per_rule.items())
    n, k = len(expected), sum(f[4] for f in expected)
    assert k == n  # all these examples have safe fixes
    assert lines[-1] == f"Found {n} findings in 4 files scanned ({k} fixable with --write)."
    assert len(lines) == n + 1
    assert snapshot(tmp_path) == before  # check mode writes nothing


def test_check_clean_file_exits_0_with_a_summary(tmp_path):
    write_tree(tmp_path, {"clean.py": LIST.after, "other.py": INPLACE.after})
    result = tfm(tmp_path, "clean.py", "other.py")
    assert result.returncode == 0, out(result) + err(result)
    assert out(result).strip() == "No findings in 2 files scanned."
    assert findings(out(result)) == []
    assert err(result) == ""


# --------------------------------------------------------------------------- --diff


@pytest.fixture(scope="module")
def diff_run(tmp_path_factory):
    """The same tree run once with --diff (in a git repository) and once with --write."""
    files = {
        "a.py": LIST.before,
        "b.py": INPLACE.before,
        "sub/c.py": BUFFER.before,
        "clean.py": LIST.after,
        "unfixable.py": UNFIXABLE.source,
        "sub/deep/d.py": DICT.before,
    }
    repo = tmp_path_factory.mktemp("diff_repo")
    write_tree(repo, files)
    assert git(repo, "init", "-q").returncode == 0
    written = copy_tree(repo, tmp_path_factory.mktemp("diff_written"))
    original = snapshot(repo)
    diff, write = tfm_parallel((repo, "--diff", "."), (written, "--write", "."))
    return {"repo": repo, "original": original, "diff": diff, "write": write, "written": written}


def test_diff_writes_nothing_and_exits_1(diff_run):
    assert diff_run["diff"].returncode == 1, err(diff_run["diff"])
    assert snapshot(diff_run["repo"]) == diff_run["original"]


def test_diff_stdout_is_only_the_diff_with_relative_headers(diff_run):
    stdout = diff_run["diff"].stdout
    assert_only_diff(stdout)
    text = stdout.decode("utf-8")
    assert text.startswith("--- a/a.py\n+++ b/a.py\n@@ ")
    assert diff_headers(text) == [
        ("a/a.py", "b/a.py"),
        ("a/b.py", "b/b.py"),
        ("a/sub/c.py", "b/sub/c.py"),
        ("a/sub/deep/d.py", "b/sub/deep/d.py"),
    ]
    assert "+        self.dec_layers = nn.ModuleList()\n" in text
    assert "-        self.dec_layers = []\n" in text
    # the summary and the unfixable finding go to stderr, never into the patch
    stderr = err(diff_run["diff"])
    added = sum(1 for line in text.splitlines() if line.startswith("+") and not line.startswith("+++ "))
    removed = sum(1 for line in text.splitlines() if line.startswith("-") and not line.startswith("--- "))
    n = sum(fixable(diff_run["original"][path].decode()) for path in ("a.py", "b.py", "sub/c.py", "sub/deep/d.py"))
    assert f"Would fix {n} findings in 4 files (+{added} -{removed} lines), 1 remaining." in stderr
    assert [f[0] for f in findings(stderr)] == ["unfixable.py"]
    assert "unfixable.py" not in text


def test_write_fixes_and_exits_1_when_a_finding_without_fix_remains(diff_run):
    """The --write run the diff is compared with: fixes what the examples say; the KeepCase stays and exits 1."""
    written = snapshot(diff_run["written"])
    assert written["a.py"] == LIST.after.encode()
    assert written["b.py"] == INPLACE.after.encode()
    assert written["sub/c.py"] == BUFFER.after.encode()
    assert written["sub/deep/d.py"] == DICT.after.encode()
    assert written["clean.py"] == diff_run["original"]["clean.py"]
    assert written["unfixable.py"] == diff_run["original"]["unfixable.py"]
    write = diff_run["write"]
    assert write.returncode == 1  # the unfixable finding remains
    line, column = position(UNFIXABLE.source, "self.layers = [")
    assert findings(out(write)) == [("unfixable.py", line, column, "TFM101", False)]  # fixed ones not listed
    n = sum(fixable(diff_run["original"][path].decode()) for path in ("a.py", "b.py", "sub/c.py", "sub/deep/d.py"))
    summary_line = [line for line in out(write).splitlines() if not line.startswith("  ")][-1]
    assert summary_line == f"Fixed {n} findings in 4 files, 1 remaining."


def test_git_apply_of_diff_equals_write(diff_run, tmp_path):
    applied = apply_with_git(diff_run["repo"], diff_run["diff"].stdout, tmp_path / "applied")
    assert applied == snapshot(diff_run["written"])


@pytest.mark.skipif(not HAS_PATCH, reason="no `patch` binary")
def test_patch_p1_of_diff_equals_write(diff_run, tmp_path):
    patched = apply_with_patch(diff_run["repo"], diff_run["diff"].stdout, tmp_path / "patched")
    assert patched == snapshot(diff_run["written"])


def test_diff_with_nothing_to_fix_exits_0_and_prints_no_diff(tmp_path):
    write_tree(tmp_path, {"clean.py": LIST.after, "unfixable.py": UNFIXABLE.source})
    before = snapshot(tmp_path)
    result = tfm(tmp_path, "--diff", ".")
    assert result.returncode == 0
    assert result.stdout == b""
    assert "Would fix 0 findings in 0 files (+0 -0 lines), 1 remaining." in err(result)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- --write


def test_write_fixes_in_place_keeps_mode_and_is_idempotent(tmp_path):
    write_tree(tmp_path, {"a.py": LIST.before, "pkg/b.py": MIXED})
    (tmp_path / "a.py").chmod(0o640)
    (tmp_path / "pkg" / "b.py").chmod(0o755)

    first = tfm(tmp_path, "--write", ".")

    assert first.returncode == 0, out(first) + err(first)
    assert (tmp_path / "a.py").read_text() == LIST.after
    assert (tmp_path / "pkg" / "b.py").read_text() == MIXED_AFTER
    assert stat.S_IMODE((tmp_path / "a.py").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "pkg" / "b.py").stat().st_mode) == 0o755
    assert findings(out(first)) == []  # fixed findings are not listed again
    assert out(first).splitlines()[0] == f"Fixed {fixable(LIST.before) + fixable(MIXED)} findings in 2 files, 0 remaining."
    assert sorted(snapshot(tmp_path)) == ["a.py", "pkg/b.py"]  # no temp files left

    fixed = snapshot(tmp_path)
    second = tfm(tmp_path, "--write", ".")
    assert second.returncode == 0
    assert snapshot(tmp_path) == fixed
    assert out(second).strip() == "Fixed 0 findings in 0 files, 0 remaining."
    assert stat.S_IMODE((tmp_path / "a.py").stat().st_mode) == 0o640


# --------------------------------------------------------------------------- files that cannot be processed

BAD = "import torch\n\n\nclass Broken:\n    def f(self:\n        return 1\n"


def not_utf8() -> bytes:
    """The TFM101 example with a latin-1 comment on line 7 and no coding cookie."""
    lines = LIST.before.split("\n")
    lines.insert(6, "        # caf\xe9 cr\xe8me")
    return "\n".join(lines).encode("latin-1")


def test_unprocessable_files_exit_2_are_untouched_and_others_still_processed(tmp_path):
    with pytest.raises(SyntaxError) as info:
        ast.parse(BAD)
    assert info.value.lineno == 5
    with pytest.raises(UnicodeDecodeError):
        not_utf8().decode("utf-8")
    files = {"a.py": LIST.before, "bad.py": BAD, "latin_no_cookie.py": not_utf8(), "z.py": INPLACE.before}
    written, checked = tmp_path / "written", tmp_path / "checked"
    write_tree(written, files)
    write_tree(checked, files)
    args = ["a.py", "bad.py", "latin_no_cookie.py", "missing.py", "no_such_dir", "z.py"]

    write, check = tfm_parallel((written, "--write", *args), (checked, *args))

    expected_errors = [("bad.py", 5), ("latin_no_cookie.py", 7), ("missing.py", 1), ("no_such_dir", 1)]
    for result in (write, check):
        assert result.returncode == 2
        reported = errors(err(result))
        assert [(path, line) for path, line, _, _ in reported] == expected_errors
        assert re.search(r"^bad\.py:5:\d+: error: SyntaxError", err(result), re.M)
        assert re.search(r"^latin_no_cookie\.py:7:14: error: cannot decode as utf-8", err(result), re.M)
        assert "missing.py:1:1: error: No such file or directory" in err(result).splitlines()
        assert "4 errors" in out(result)

    # --write: the good files are fixed, the bad ones byte-identical
    assert (written / "a.py").read_text() == LIST.after
    assert (written / "z.py").read_text() == INPLACE.after
    assert (written / "bad.py").read_bytes() == BAD.encode()
    assert (written / "latin_no_cookie.py").read_bytes() == not_utf8()
    assert out(write).startswith(f"Fixed {1 + fixable(INPLACE.before)} findings in 2 files, 0 remaining.")
    # check mode: the good files' findings are still reported; nothing written
    assert [f[0] for f in findings(out(check))] == ["a.py"] + ["z.py"] * len(expected_findings(INPLACE.before))
    assert snapshot(checked) == {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


# --------------------------------------------------------------------------- encodings and line endings

LATIN = "# -*- coding: latin-1 -*-\n# caf\xe9\n"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def latin_source(text: str) -> bytes:
    body = text.replace("self.dec_layers = []", "self.dec_layers = []  # d\xe9j\xe0").replace(
        "self.dec_layers = nn.ModuleList()", "self.dec_layers = nn.ModuleList()  # d\xe9j\xe0"
    )
    return (LATIN + body).encode("latin-1")


def cookie_source(text: str, encoding: str, comment: str) -> bytes:
    """``text`` under a coding cookie, with a comment only that codec spells this way."""
    return (f"# -*- coding: {encoding} -*-\n# {comment}\n" + text).encode(encoding)


BOM = b"\xef\xbb\xbf"
ENCODING_CASES = {
    "cp1252.py": (cookie_source(LIST.before, "cp1252", "price: 5 \u20ac"), cookie_source(LIST.after, "cp1252", "price: 5 \u20ac")),
    "euc_kr.py": (
        cookie_source(INPLACE.before, "euc-kr", "\ubaa8\ub4c8 \ub4f1\ub85d"),
        cookie_source(INPLACE.after, "euc-kr", "\ubaa8\ub4c8 \ub4f1\ub85d"),
    ),
    "crlf.py": (crlf(LIST_IMPORT.before), crlf(LIST_IMPORT.after)),
    "crlf_no_final_newline.py": (crlf(LIST_COMMENT.before.rstrip("\n")), crlf(LIST_COMMENT.after.rstrip("\n"))),
    "no_final_newline.py": (LIST_COMMENT.before.rstrip("\n").encode(), LIST_COMMENT.after.rstrip("\n").encode()),
    "latin.py": (latin_source(LIST.before), latin_source(LIST.after)),
    "bom.py": (BOM + LIST_IMPORT.before.encode(), BOM + LIST_IMPORT.after.encode()),
    "bom_crlf.py": (BOM + crlf(INPLACE.before), BOM + crlf(INPLACE.after)),
}


@pytest.fixture(scope="module")
def encoding_run(tmp_path_factory):
    repo = tmp_path_factory.mktemp("enc_repo")
    write_tree(repo, {name: before for name, (before, _) in ENCODING_CASES.items()})
    assert git(repo, "init", "-q").returncode == 0
    written = copy_tree(repo, tmp_path_factory.mktemp("enc_written"))
    original = snapshot(repo)
    diff, write = tfm_parallel((repo, "--diff", "."), (written, "--write", "."))
    return {"repo": repo, "original": original, "diff": diff, "write": write, "written": written}


def test_encodings_write_exact_bytes(encoding_run):
    assert encoding_run["write"].returncode == 0, err(encoding_run["write"])
    written = snapshot(encoding_run["written"])
    for name, (_, after) in ENCODING_CASES.items():
        assert written[name] == after, name


def test_crlf_kept_on_every_line_and_unchanged_lines_identical(encoding_run):
    for name in ("crlf.py", "crlf_no_final_newline.py", "bom_crlf.py"):
        before = encoding_run["original"][name]
        after = (encoding_run["written"] / name).read_bytes()
        assert after != before
        assert re.search(rb"(?<!\r)\n", after) is None, f"bare LF introduced in {name}"
        assert after.count(b"\r\n") == before.count(b"\r\n")
        old_lines, new_lines = before.split(b"\r\n"), after.split(b"\r\n")
        assert len(old_lines) == len(new_lines)
        changed = [i for i, (old, new) in enumerate(zip(old_lines, new_lines)) if old != new]
        # only the lines the fix rewrote differ; all others are byte-identical
        expected_text = {"crlf.py": LIST_IMPORT, "crlf_no_final_newline.py": LIST_COMMENT, "bom_crlf.py": INPLACE}[name]
        rewritten = [
            i for i, (old, new) in enumerate(zip(expected_text.before.split("\n"), expected_text.after.split("\n"))) if old != new
        ]
        assert changed == rewritten and changed


def test_crlf_import_line_rewritten(encoding_run):
    data = (encoding_run["written"] / "crlf.py").read_bytes()
    assert data.startswith(b"from torch.nn import ModuleList, Module, Linear\r\n")


def test_latin1_file_stays_latin1(encoding_run):
    data = (encoding_run["written"] / "latin.py").read_bytes()
    assert b"# caf\xe9\n" in data
    assert b"nn.ModuleList()  # d\xe9j\xe0\n" in data
    assert "é".encode("utf-8") not in data
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


def test_bom_kept_once(encoding_run):
    for name in ("bom.py", "bom_crlf.py"):
        data = (encoding_run["written"] / name).read_bytes()
        assert data.startswith(BOM) and data.count(BOM) == 1, name
    assert (encoding_run["written"] / "bom.py").read_bytes().startswith(BOM + b"from torch.nn import ModuleList,")


def test_encodings_diff_exits_1_and_writes_nothing(encoding_run):
    assert encoding_run["diff"].returncode == 1, err(encoding_run["diff"])
    assert snapshot(encoding_run["repo"]) == encoding_run["original"]
    assert_only_diff(encoding_run["diff"].stdout)
    assert encoding_run["diff"].stdout.count(b"\\ No newline at end of file\n") == 4


def test_encodings_git_apply_equals_write(encoding_run, tmp_path):
    applied = apply_with_git(encoding_run["repo"], encoding_run["diff"].stdout, tmp_path / "applied")
    assert applied == snapshot(encoding_run["written"])


@pytest.mark.skipif(not HAS_PATCH, reason="no `patch` binary")
def test_encodings_patch_p1_equals_write(encoding_run, tmp_path):
    patched = apply_with_patch(encoding_run["repo"], encoding_run["diff"].stdout, tmp_path / "patched")
    assert patched == snapshot(encoding_run["written"])


# --------------------------------------------------------------------------- rule selection

RULE_FILES = {"l.py": LIST.before, "d.py": DICT.before, "i.py": INPLACE.before, "r.py": BUFFER.before}


def test_select_prefix_with_write_touches_only_selected_rules(tmp_path):
    write_tree(tmp_path, RULE_FILES)
    result = tfm(tmp_path, "--write", "--select", "TFM2", ".")
    assert result.returncode == 0, err(result)
    assert (tmp_path / "i.py").read_text() == INPLACE.after
    for name in ("l.py", "d.py", "r.py"):
        assert (tmp_path / name).read_text() == RULE_FILES[name], name
    assert out(result).strip() == f"Fixed {fixable(INPLACE.before)} findings in 1 file, 0 remaining."


@pytest.mark.parametrize(
    ("args", "codes"),
    [
        ([], {"TFM101", "TFM102", "TFM201", "TFM301"}),
        (["--select", "TFM2"], {"TFM201"}),
        (["--select", "TFM101"], {"TFM101"}),
        (["--select", "TFM1", "--ignore", "TFM101"], {"TFM102"}),
        (["--ignore", "TFM2,TFM101"], {"TFM102", "TFM301"}),
        (["--select", "tfm3, TFM102"], {"TFM102", "TFM301"}),
        (["--select", "TFM"], {"TFM101", "TFM102", "TFM201", "TFM301"}),
        (["--select", "all", "--ignore", "TFM1"], {"TFM201", "TFM301"}),  # Ruff's ALL
        (["--select", "TFM101", "--extend-select", "ALL", "--ignore", "TFM3"], {"TFM101", "TFM102", "TFM201"}),
    ],
)
def test_select_and_ignore_codes_and_prefixes(tmp_path, monkeypatch, args, codes):
    write_tree(tmp_path, RULE_FILES)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*args, "."])
    assert result.exit_code == 1, result.output
    assert {code for *_, code, _ in findings(result.stdout)} == codes


def test_unknown_rule_code_exits_2_and_changes_nothing(tmp_path):
    write_tree(tmp_path, {"a.py": LIST.before})
    result = tfm(tmp_path, "--write", "--select", "TFM101,TFM999", "a.py")
    assert result.returncode == 2
    assert "'TFM999' matches no rule" in err(result)
    assert out(result) == ""
    assert (tmp_path / "a.py").read_text() == LIST.before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one file or directory"),
        (["--write"], "give at least one file or directory"),
        (["--diff", "--write", "a.py"], "--diff and --write cannot be combined"),
        (["--write", "--diff", "."], "--diff and --write cannot be combined"),
        (["--select", "TFM9", "a.py"], "'TFM9' matches no rule"),
        (["--ignore", "XYZ", "."], "'XYZ' matches no rule"),
        (["--explain", "TFM999"], "unknown rule code"),
        (["--output-format", "xml", "."], "xml"),
    ],
)
def test_usage_errors_exit_2(tmp_path, monkeypatch, args, message):
    write_tree(tmp_path, {"a.py": LIST.before})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # keep the error box from wrapping the message
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert (tmp_path / "a.py").read_text() == LIST.before


def test_cli_runner_diff_mode_stdout_is_the_diff(tmp_path, monkeypatch):
    write_tree(tmp_path, {"a.py": LIST.before})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--diff", "a.py"])
    assert result.exit_code == 1
    assert result.stdout.startswith("--- a/a.py\n+++ b/a.py\n@@ ")
    assert_only_diff(result.stdout_bytes)
    assert f"Would fix {fixable(LIST.before)} finding in 1 file" in result.stderr
    assert (tmp_path / "a.py").read_text() == LIST.before


# --------------------------------------------------------------------------- json

JSON_KEYS = {"path", "line", "column", "end_line", "end_column", "code", "message", "fix_available", "fixed"}


def test_json_output_then_fixed_after_write(tmp_path):
    checked, tmp_path = tmp_path / "checked", tmp_path / "written"
    files = {"b.py": INPLACE.before, "a.py": LIST.before, "u.py": UNFIXABLE.source}
    write_tree(tmp_path, files)
    copy_tree(tmp_path, checked)
    result, written = tfm_parallel(
        (checked, "--output-format", "json", "."), (tmp_path, "--write", "--output-format", "json", ".")
    )
    expected = [(path, *f) for path in ("a.py", "b.py", "u.py") for f in expected_findings(files[path])]

    assert result.returncode == 1
    items = json.loads(out(result))  # the whole of stdout is one JSON document: no summary, no text lines
    assert isinstance(items, list) and len(items) == len(expected)
    assert all(set(item) == JSON_KEYS for item in items)
    assert [(i["path"], i["line"], i["column"], i["code"], i["fix_available"]) for i in items] == expected
    assert not any(i["fixed"] for i in items)
    line, column = position(LIST.before, "self.dec_layers = []")
    assert items[0] == {
        "path": "a.py",
        "line": line,
        "column": column,
        "end_line": line,
        "end_column": column + len("self.dec_layers = []"),
        "code": "TFM101",
        "message": items[0]["message"],
        "fix_available": True,
        "fixed": False,
    }
    assert "nn.ModuleList" in items[0]["message"]
    assert {i["code"] for i in items if i["path"] == "b.py"} == {"TFM201"}
    assert [(i["path"], i["fix_available"]) for i in items if i["path"] == "u.py"] == [("u.py", False)]
    assert all(i["end_line"] > i["line"] or i["end_column"] > i["column"] for i in items)

    assert written.returncode == 1  # u.py's finding has no fix
    after = json.loads(out(written))
    assert [(i["path"], i["line"], i["code"]) for i in after] == [(p, line, code) for p, line, _, code, _ in expected]
    assert [i["fixed"] for i in after] == [i["path"] != "u.py" for i in after]
    assert (tmp_path / "a.py").read_text() == LIST.after
    assert (tmp_path / "b.py").read_text() == INPLACE.after
    assert (checked / "a.py").read_text() == LIST.before


# --------------------------------------------------------------------------- --unsafe-fixes


def test_unsafe_fix_needs_the_flag(tmp_path, monkeypatch):
    dirs = [tmp_path / name for name in ("check", "safe", "unsafe")]
    for directory in dirs:
        write_tree(directory, {"u.py": UNSAFE.before})
    line, column = position(UNSAFE.before, "model.fc.register_backward_hook")
    safe_write, unsafe_write = tfm_parallel((dirs[1], "--write", "u.py"), (dirs[2], "--write", "--unsafe-fixes", "u.py"))

    # check mode (in-process): reported, but not marked fixable
    monkeypatch.chdir(dirs[0])
    check = CliRunner().invoke(app, ["u.py"])
    assert check.exit_code == 1
    assert findings(check.stdout) == [("u.py", line, column, "TFM502", False)]  # no [*]
    assert "1 more fix available with --unsafe-fixes." in check.stdout
    with_flag = CliRunner().invoke(app, ["--unsafe-fixes", "u.py"])
    assert findings(with_flag.stdout) == [("u.py", line, column, "TFM502", True)]
    assert (dirs[0] / "u.py").read_text() == UNSAFE.before

    # --write without the flag leaves the file alone and still reports it
    assert safe_write.returncode == 1
    assert findings(out(safe_write)) == [("u.py", line, column, "TFM502", False)]
    assert "1 more fix available with --unsafe-fixes." in out(safe_write)
    assert (dirs[1] / "u.py").read_text() == UNSAFE.before

    assert unsafe_write.returncode == 0, out(unsafe_write)
    assert (dirs[2] / "u.py").read_text() == UNSAFE.after
    assert out(unsafe_write).strip() == "Fixed 1 finding in 1 file, 0 remaining."


# --------------------------------------------------------------------------- --explain, --version, console script


def test_explain_prints_rule_docs(tmp_path):
    result = tfm(tmp_path, "--explain", "TFM101")
    assert result.returncode == 0
    text = out(result)
    assert text.startswith(f"# TFM101 ({ModuleListRule.name})\n\n{ModuleListRule.summary}\n")
    assert ModuleListRule.docs() in text
    assert "## Fix safety" in text


def test_explain_is_case_insensitive_via_cli_runner():
    result = CliRunner().invoke(app, ["--explain", "tfm301"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"# TFM301 ({RegisterBufferRule.name})")
    assert RegisterBufferRule.docs() in result.stdout


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"torchfix-mod {__version__}\n"


def test_console_script_runs(tmp_path):
    script = shutil.which("torchfix-mod", path=str(Path(sys.executable).parent)) or shutil.which("torchfix-mod")
    if script is None:
        pytest.skip("torchfix-mod console script not installed")
    write_tree(tmp_path, {"a.py": LIST.before})
    result = subprocess.run([script, "a.py"], cwd=tmp_path, capture_output=True, timeout=120, env=ENV)
    assert result.returncode == 1
    assert findings(out(result)) == [("a.py", *position(LIST.before, "self.dec_layers = []"), "TFM101", True)]


# --------------------------------------------------------------------------- determinism


def test_output_is_deterministic(tmp_path):
    files = {
        "z.py": MIXED,
        "a.py": INPLACE.before,
        "m/b.py": DICT.before,
        "M.py": LIST.before,
        "m/n/o.py": UNFIXABLE.source,
        "a_b.py": LIST_IMPORT.before,
    }
    write_tree(tmp_path, files)
    runs = tfm_parallel(
        *[(tmp_path, args, {**ENV, "PYTHONHASHSEED": seed}) for args in (["."], ["--diff", "."]) for seed in ("1", "2")]
    )
    check_1, check_2, diff_1, diff_2 = runs
    assert check_1.returncode == check_2.returncode == 1
    assert check_1.stdout == check_2.stdout
    assert diff_1.returncode == diff_2.returncode == 1
    assert diff_1.stdout == diff_2.stdout and diff_1.stderr == diff_2.stderr
    paths = [f[0] for f in findings(out(check_1))]
    assert paths == sorted(paths)
    assert set(paths) == set(files)
    headers = [old for old, _ in diff_headers(out(diff_1))]
    assert headers == sorted(headers)


# --------------------------------------------------------------------------- bugs found


@pytest.mark.skipif(not HAS_PATCH, reason="no `patch` binary")
def test_diff_of_path_with_spaces_applies_with_patch(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    write_tree(tree, {"my dir/x y.py": LIST.before})
    monkeypatch.chdir(tree)
    result = CliRunner().invoke(app, ["--diff", "."])
    assert result.exit_code == 1
    assert result.stdout_bytes.startswith(b"--- a/my dir/x y.py")
    assert apply_with_git(tree, result.stdout_bytes, tmp_path / "git")["my dir/x y.py"] == LIST.after.encode()
    patched = apply_with_patch(tree, result.stdout_bytes, tmp_path / "patched")  # fails here
    assert patched["my dir/x y.py"] == LIST.after.encode()


def test_same_file_named_twice_is_processed_once(tmp_path, monkeypatch):
    write_tree(tmp_path, {"a.py": LIST.before})
    monkeypatch.chdir(tmp_path)
    check = CliRunner().invoke(app, ["a.py", str(tmp_path / "a.py")])
    diff = CliRunner().invoke(app, ["--diff", "a.py", str(tmp_path / "a.py")])
    assert check.exit_code == diff.exit_code == 1
    assert len(findings(check.stdout)) == len(expected_findings(LIST.before))
    assert diff.stdout_bytes.count(b"--- a/a.py\n") == 1


LIBCST_PROBE = """
import sys
sys.argv = ["torchfix-mod", *sys.argv[1:]]
from torchfix_mod.cli import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
print("libcst loaded:", any(name == "libcst" or name.startswith("libcst.") for name in sys.modules), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "args, loads_libcst",
    [
        ([], False),
        (["--output-format", "json"], False),
        (["--output-format", "github"], False),
        (["--output-format", "sarif"], False),
        (["--diff"], True),  # writing a fix is LibCST's job
    ],
)
def test_only_writing_a_fix_imports_libcst(tmp_path, args, loads_libcst):
    """Deciding runs on Python's ast alone: checking, and every machine output format, never
    import LibCST, even on files full of findings; only a run that writes fixes does."""
    root = Path(__file__).resolve().parents[1] / "samples"
    for sample in sorted(root.glob("*/before.py")):
        shutil.copyfile(sample, tmp_path / f"{sample.parent.name}.py")
    done = subprocess.run(
        [sys.executable, "-c", LIBCST_PROBE, *args, "-j", "1", "--no-cache", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert f"libcst loaded: {loads_libcst}" in done.stderr


VERSION_PROBE = """
import sys
sys.argv = ["torchfix-mod", "--version"]
from torchfix_mod.launch import main
main()
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("typer", "click", "rich", "libcst", "pathspec")
               or name in ("torchfix_mod.cli", "torchfix_mod.engine", "torchfix_mod.runner"))
print("heavy:", heavy, file=sys.stderr)
"""


def test_version_is_answered_before_anything_heavy_is_imported():
    """``--version`` is what tools call to probe for the command: it prints the version of the
    installed package and loads neither typer nor the engine."""
    from torchfix_mod import __version__

    done = subprocess.run([sys.executable, "-c", VERSION_PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"torchfix-mod {__version__}\n"
    assert "heavy: []" in done.stderr


def test_python_dash_m_and_the_console_script_share_one_entry_point():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["torchfix-mod"] == "torchfix_mod.launch:main"
    main_module = (Path(__file__).resolve().parents[1] / "torchfix_mod" / "__main__.py").read_text()
    assert "from torchfix_mod.launch import main" in main_module
    done = subprocess.run([sys.executable, "-m", "torchfix_mod", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("torchfix-mod ")
