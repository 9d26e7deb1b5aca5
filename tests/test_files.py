"""Unit tests of torchfix_mod.files: discovering the files of a run, decoding, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from torchfix_mod.files import SourceReadError, decode, discover, read_source, write_atomic


def touch(root: Path, *relpaths: str, text: str = "x = 1\n") -> None:
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def rel(root: Path, paths: list[Path]) -> list[str]:
    return [p.resolve().relative_to(root.resolve()).as_posix() for p in paths]


def found(root: Path, *paths: Path) -> list[str]:
    files, missing = discover(list(paths) or [root])
    assert missing == []
    return rel(root, files)


# --------------------------------------------------------------------------- discover


def test_discover_is_recursive_and_takes_only_py_files(tmp_path):
    touch(tmp_path, "a.py", "pkg/__init__.py", "pkg/deep/er/c.py", "pkg/b.py")
    touch(tmp_path, "notes.txt", "pkg/stub.pyi", "pkg/script", "pkg/data.py.bak", "pkg/c.pyc")
    assert found(tmp_path) == ["a.py", "pkg/__init__.py", "pkg/b.py", "pkg/deep/er/c.py"]


def test_discover_result_is_sorted_posix_order_and_unique(tmp_path):
    # "a.py" < "a/b.py" < "a_b.py" < "b.py" as strings ('.' < '/' < '_')
    touch(tmp_path, "b.py", "a_b.py", "a/b.py", "a.py", "Z.py")
    files, missing = discover([tmp_path / "b.py", tmp_path, tmp_path / "a" / "b.py", tmp_path / "a"])
    assert missing == []
    assert rel(tmp_path, files) == ["Z.py", "a.py", "a/b.py", "a_b.py", "b.py"]
    assert [p.as_posix() for p in files] == sorted(p.as_posix() for p in files)
    assert len(set(files)) == len(files)


@pytest.mark.parametrize(
    "skipped",
    [
        ".git/hooks/x.py",
        ".venv/lib/x.py",
        "venv/lib/x.py",
        "build/lib/x.py",
        "dist/x.py",
        "__pycache__/x.py",
        "pkg/__pycache__/x.py",
        "torchfix_mod.egg-info/x.py",
        "pkg/build/x.py",
        ".tox/py311/x.py",
        "node_modules/x.py",
    ],
)
def test_discover_skips_tool_and_build_directories(tmp_path, skipped):
    touch(tmp_path, "keep.py", "pkg/keep.py", skipped)
    assert found(tmp_path) == ["keep.py", "pkg/keep.py"]


def test_discover_skips_any_directory_holding_pyvenv_cfg(tmp_path):
    touch(tmp_path, "keep.py", "my-env/lib/python3.11/site.py", "my-env/bin/activate_this.py")
    (tmp_path / "my-env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    # a sibling named like a venv but without pyvenv.cfg is an ordinary package
    touch(tmp_path, "environment/config.py")
    assert found(tmp_path) == ["environment/config.py", "keep.py"]


def test_discover_skipped_names_are_directories_only(tmp_path):
    # a *file* called build.py or dist.py is ordinary code
    touch(tmp_path, "build.py", "dist.py", "pkg/venv.py")
    assert found(tmp_path) == ["build.py", "dist.py", "pkg/venv.py"]


def test_discover_honours_root_gitignore(tmp_path):
    (tmp_path / ".gitignore").write_text("# generated\nignored.py\ngen/\n*_pb2.py\n/top_only.py\n")
    touch(tmp_path, "keep.py", "ignored.py", "gen/x.py", "pkg/gen/y.py", "pkg/model_pb2.py", "pkg/ignored.py")
    touch(tmp_path, "top_only.py", "pkg/top_only.py")
    assert found(tmp_path) == ["keep.py", "pkg/top_only.py"]


def test_discover_honours_gitignore_in_subdirectories_relative_to_them(tmp_path):
    touch(tmp_path, "local.py", "scratch.py", "pkg/local.py", "pkg/keep.py", "pkg/sub/local.py", "pkg/sub/scratch.py")
    touch(tmp_path, "other/local.py")
    # unanchored pattern: anywhere under pkg/; anchored one: only pkg/scratch.py
    (tmp_path / "pkg" / ".gitignore").write_text("local.py\n/scratch.py\n")
    touch(tmp_path, "pkg/scratch.py")
    assert found(tmp_path) == [
        "local.py",
        "other/local.py",
        "pkg/keep.py",
        "pkg/sub/scratch.py",
        "scratch.py",
    ]


def test_discover_honours_parent_gitignore_when_a_subdirectory_is_given(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".gitignore").write_text("secret.py\ngen/\npkg/vendored/\n")
    touch(repo, "pkg/a.py", "pkg/secret.py", "pkg/gen/x.py", "pkg/vendored/v.py", "pkg/sub/b.py")
    assert found(repo, repo / "pkg") == ["pkg/a.py", "pkg/sub/b.py"]
    # the same with a relative path and from inside the subdirectory
    monkeypatch.chdir(repo)
    files, _ = discover([Path("pkg")])
    assert [p.as_posix() for p in files] == ["pkg/a.py", "pkg/sub/b.py"]
    monkeypatch.chdir(repo / "pkg")
    files, _ = discover([Path(".")])
    assert [p.as_posix() for p in files] == ["a.py", "sub/b.py"]


def test_discover_parent_gitignore_search_stops_at_the_repository_root(tmp_path):
    (tmp_path / ".gitignore").write_text("*.py\n")  # outside the repository: not git's business
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    touch(repo, "pkg/a.py")
    assert found(repo, repo / "pkg") == ["pkg/a.py"]


def test_discover_repo_root_given_ignores_gitignore_above_the_repository(tmp_path):
    (tmp_path / ".gitignore").write_text("*.py\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    touch(repo, "a.py", "pkg/b.py")
    assert found(repo, repo) == ["a.py", "pkg/b.py"]


def test_discover_subdirectory_gitignore_negation_reincludes(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("*_gen.py\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / ".gitignore").write_text("!keep_gen.py\n")
    touch(tmp_path, "pkg/keep_gen.py", "pkg/drop_gen.py", "pkg/a.py")
    assert found(tmp_path) == ["pkg/a.py", "pkg/keep_gen.py"]


def test_discover_takes_an_explicitly_named_ignored_or_skipped_file(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("ignored.py\ngen/\n")
    touch(tmp_path, "ignored.py", "gen/x.py", "build/y.py", "keep.py")
    assert found(tmp_path) == ["keep.py"]
    named = [tmp_path / "ignored.py", tmp_path / "gen" / "x.py", tmp_path / "build" / "y.py"]
    assert found(tmp_path, *named) == ["build/y.py", "gen/x.py", "ignored.py"]


def test_discover_reports_missing_paths_and_still_takes_the_others(tmp_path):
    touch(tmp_path, "a.py")
    files, missing = discover([tmp_path / "nope.py", tmp_path, tmp_path / "nodir"])
    assert rel(tmp_path, files) == ["a.py"]
    assert [(p.name, msg) for p, msg in missing] == [
        ("nope.py", "No such file or directory"),
        ("nodir", "No such file or directory"),
    ]


def test_discover_does_not_follow_directory_symlinks(tmp_path):
    touch(tmp_path, "pkg/a.py")
    (tmp_path / "alias").symlink_to(tmp_path / "pkg", target_is_directory=True)
    assert found(tmp_path) == ["pkg/a.py"]


# --------------------------------------------------------------------------- decode / read_source


def test_decode_plain_utf8_keeps_crlf():
    data = "x = 'é'\r\ny = 2\r\n".encode("utf-8")
    text, encoding = decode(data)
    assert (text, encoding) == ("x = 'é'\r\ny = 2\r\n", "utf-8")


def test_decode_latin1_cookie():
    data = b"# -*- coding: latin-1 -*-\n# caf\xe9\nx = 1\n"
    text, encoding = decode(data)
    assert text == "# -*- coding: latin-1 -*-\n# caf\u00e9\nx = 1\n"
    assert encoding == "iso-8859-1"
    assert text.encode(encoding) == data


def test_decode_cookie_on_second_line_and_crlf():
    data = b"#!/usr/bin/env python\r\n# coding=latin-1\r\ns = '\xff'\r\n"
    text, encoding = decode(data)
    assert text == "#!/usr/bin/env python\r\n# coding=latin-1\r\ns = '\u00ff'\r\n"
    assert text.encode(encoding) == data


def test_decode_bom():
    data = b"\xef\xbb\xbfx = '\xc3\xa9'\r\n"
    text, encoding = decode(data)
    assert encoding == "utf-8-sig"
    assert text == "x = '\u00e9'\r\n"  # the BOM is not part of the text
    assert text.encode(encoding) == data


def test_decode_bom_with_conflicting_cookie_is_an_error():
    with pytest.raises(SourceReadError) as info:
        decode(b"\xef\xbb\xbf# -*- coding: latin-1 -*-\nx = 1\n")
    assert info.value.error.line == 1
    assert "cannot decode" in info.value.error.message


def test_decode_invalid_utf8_names_line_and_column():
    data = b"import torch\n\nx = 1  # caf\xe9 au lait\ny = 2\n"
    with pytest.raises(SourceReadError) as info:
        decode(data)
    error = info.value.error
    assert (error.line, error.column) == (3, len("x = 1  # caf") + 1)
    assert "utf-8" in error.message


def test_decode_invalid_utf8_on_line_two_after_a_comment_names_line_two():
    with pytest.raises(SourceReadError) as info:
        decode(b"# header comment\n# caf\xe9\nx = 1\n")
    assert info.value.error.line == 2


def test_read_source_then_write_atomic_round_trips_bytes(tmp_path):
    samples = {
        "crlf.py": b"import torch\r\nx = 1\r\n",
        "latin.py": b"# -*- coding: latin-1 -*-\n# caf\xe9\nx = 1\n",
        "bom.py": b"\xef\xbb\xbfx = '\xc3\xa9'\n",
        "nonl.py": b"x = 1\r\ny = 2",
    }
    for name, data in samples.items():
        path = tmp_path / name
        path.write_bytes(data)
        source = read_source(path)
        write_atomic(path, source.text, source.encoding)
        assert path.read_bytes() == data, name


def test_read_source_missing_file_is_a_source_read_error(tmp_path):
    with pytest.raises(SourceReadError) as info:
        read_source(tmp_path / "gone.py")
    assert info.value.error.message.startswith("cannot read")


# --------------------------------------------------------------------------- write_atomic


@pytest.mark.parametrize("mode", [0o640, 0o755, 0o600])
def test_write_atomic_replaces_content_and_keeps_mode(tmp_path, mode):
    path = tmp_path / "m.py"
    path.write_text("old\n")
    path.chmod(mode)
    write_atomic(path, "new = 'é'\n", "utf-8")
    assert path.read_bytes() == "new = 'é'\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(os.listdir(tmp_path)) == ["m.py"]  # no temp file left behind


def test_write_atomic_encodes_with_the_given_encoding(tmp_path):
    path = tmp_path / "l.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\n")
    write_atomic(path, "# -*- coding: latin-1 -*-\n# caf\u00e9\r\n", "iso-8859-1")
    assert path.read_bytes() == b"# -*- coding: latin-1 -*-\n# caf\xe9\r\n"
    write_atomic(path, "x = 1\n", "utf-8-sig")
    assert path.read_bytes() == b"\xef\xbb\xbfx = 1\n"


def test_write_atomic_failure_leaves_original_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "f.py"
    path.write_bytes(b"original\n")
    path.chmod(0o640)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(path, "changed\n", "utf-8")
    assert path.read_bytes() == b"original\n"
    assert sorted(os.listdir(tmp_path)) == ["f.py"]


def test_write_atomic_unencodable_text_leaves_file_untouched(tmp_path):
    path = tmp_path / "f.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "# -*- coding: latin-1 -*-\nx = '\u20ac'\n", "iso-8859-1")
    assert path.read_bytes() == b"# -*- coding: latin-1 -*-\n"
    assert sorted(os.listdir(tmp_path)) == ["f.py"]


def test_write_atomic_writes_through_a_symlink(tmp_path):
    real = tmp_path / "real.py"
    real.write_text("x = 1\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    write_atomic(link, "x = 2\n", "utf-8")
    assert link.is_symlink()
    assert real.read_text() == "x = 2\n"
