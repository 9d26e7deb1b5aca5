"""File I/O: finding the Python files of a run, reading them with their encoding, writing atomically."""

from __future__ import annotations

import io
import os
import tempfile
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pathspec

from torchfix_mod.engine import SourceError

# Directories never worth descending into (Ruff and Black skip the same ones).
SKIPPED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".tox", ".nox", ".eggs", "build", "dist",
        "__pycache__", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", "site-packages",
        "__pypackages__", ".ipynb_checkpoints", ".torchfix_mod_cache",
    }
)


class SourceReadError(Exception):
    def __init__(self, error: SourceError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class SourceFile:
    path: Path
    text: str
    encoding: str  # as Python names it; "utf-8-sig" keeps a BOM
    data: bytes = b""  # the bytes read, to detect a change before writing


# Skipped even when a configured ``exclude`` replaces the defaults above.
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", ".torchfix_mod_cache"})
SOURCE_SUFFIXES = (".py", ".ipynb")


def _is_skipped_dir(path: Path, defaults: bool = True) -> bool:
    if path.name in ALWAYS_SKIPPED_DIRS:
        return True
    if not defaults:
        return False
    return path.name in SKIPPED_DIRS or path.name.endswith(".egg-info") or (path / "pyvenv.cfg").exists()


def _gitignore(directory: Path) -> pathspec.PathSpec | None:
    ignore_file = directory / ".gitignore"
    if not ignore_file.is_file():
        return None
    try:
        lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _parent_ignores(directory: Path) -> list[tuple[Path, pathspec.PathSpec]]:
    """The .gitignore files above ``directory`` up to its repository root, outermost first."""
    directory = directory.resolve()
    if (directory / ".git").exists():
        return []
    found = []
    for parent in directory.parents:
        spec = _gitignore(parent)
        if spec is not None:
            found.append((parent, spec))
        if (parent / ".git").exists():
            break
    return found[::-1]


def _ignored(
    path: Path, is_dir: bool, specs: Iterable[tuple[Path, pathspec.PathSpec]], resolved: Path | None = None
) -> bool:
    """Git's rule: the last matching pattern decides, deeper .gitignore files last,
    so a ``!pattern`` in a subdirectory re-includes what a parent ignored. ``resolved``:
    the path's real location when the caller already knows it."""
    if not specs:
        return False
    if resolved is None:
        resolved = path.resolve()
    verdict = None
    for base, spec in specs:
        try:
            rel = resolved.relative_to(base).as_posix()
        except ValueError:
            continue
        result = spec.check_file(rel + ("/" if is_dir else ""))
        if result.include is not None:
            verdict = result.include
    return bool(verdict)


def discover(
    paths: Iterable[Path],
    exclude: Callable[[Path, bool], bool] | None = None,
    default_excludes: bool = True,
    force_exclude: bool = False,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Python files and notebooks under ``paths`` (sorted, unique) and the paths that do not exist.

    Inside directories, virtualenvs, build output, VCS folders, what .gitignore ignores and
    what ``exclude(path, is_dir)`` (the configuration) rejects are skipped. A file named
    explicitly is always taken, unless ``force_exclude`` applies the exclusions to it too
    (pre-commit passes every staged file by name).
    """
    files: dict[Path, Path] = {}  # real path -> path as first reached, so a file is done once
    missing: list[tuple[Path, str]] = []

    def take(path: Path) -> None:
        files.setdefault(path.resolve(), path)

    for root in paths:
        if root.is_file():
            if not (force_exclude and exclude is not None and exclude(root, False)):
                take(root)
            continue
        if not root.is_dir():
            missing.append((root, "No such file or directory"))
            continue
        specs = _parent_ignores(root)
        stack = [(root, specs)]
        while stack:
            directory, inherited = stack.pop()
            own = _gitignore(directory)
            real_directory = directory.resolve()
            active = inherited + ([(real_directory, own)] if own else [])
            try:
                entries = sorted(directory.iterdir())
            except OSError as exc:
                missing.append((directory, exc.strerror or str(exc)))
                continue
            for entry in entries:
                # the real location of an entry that is not a link is its real directory's
                # child: one realpath per directory instead of one per entry (a link is only
                # resolved once it is known to lead to a file: a loop of links leads nowhere)
                is_link = entry.is_symlink()
                if entry.is_dir() and not is_link:
                    real = real_directory / entry.name
                    if _is_skipped_dir(entry, default_excludes) or _ignored(entry, True, active, real):
                        continue
                    if exclude is None or not exclude(entry, True):
                        stack.append((entry, active))
                elif entry.suffix in SOURCE_SUFFIXES and entry.is_file():
                    real = entry.resolve() if is_link else real_directory / entry.name
                    if _ignored(entry, False, active, real):
                        continue
                    if exclude is None or not exclude(entry, False):
                        files.setdefault(real, entry)
    return sorted(files.values(), key=lambda p: p.as_posix()), missing


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def decode(data: bytes) -> tuple[str, str]:
    """Text and encoding of Python source bytes (PEP 263 cookie, BOM), newlines untouched."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        line, column = 1, 1
        try:  # detect_encoding reads two lines; point at the byte that failed
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            line, column = _line_col(data, bad.start)
        raise SourceReadError(SourceError(line, column, f"cannot decode: {exc}")) from None
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line, column = _line_col(data, exc.start)
        raise SourceReadError(SourceError(line, column, f"cannot decode as {encoding}: {exc.reason}")) from None


def read_source(path: Path) -> SourceFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceReadError(SourceError(1, 1, f"cannot read: {exc.strerror or exc}")) from None
    text, encoding = decode(data)
    return SourceFile(path, text, encoding, data)


class WriteRefused(Exception):
    """The file is not written, for a reason the user should see."""


def write_atomic(path: Path, text: str, encoding: str, expected: bytes | None = None) -> None:
    """Replace ``path`` with ``text``: temp file in the same directory, fsync, rename; mode kept.

    With ``expected``, refuses when the file no longer holds those bytes (it changed
    since it was read). A read-only file is refused rather than replaced.
    """
    data = text.encode(encoding)
    path = path.resolve()  # write through a symlink to the file it names
    mode = path.stat().st_mode & 0o7777
    if not mode & 0o222:
        raise WriteRefused("file is read-only; not written")
    if expected is not None and path.read_bytes() != expected:
        raise WriteRefused("file changed since it was read; not written")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
