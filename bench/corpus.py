"""Pinned real-library source trees to run torchfix-mod over.

Each library is a wheel pinned by version and sha256. ``source_dir(name)`` downloads the wheel
with pip (only when it is not cached yet), checks its hash and unpacks its ``.py`` files once
into ``<cache>/<name>-<version>/``. The cache lives outside the repository: the directory named
by ``TORCHFIX_MOD_CORPUS``, else ``~/.cache/torchfix-mod/corpus``.

As a script, ``python -m bench.corpus [NAME...]`` prepares the named libraries (all of them by
default) and prints their source directories, one per line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CACHE_ENV = "TORCHFIX_MOD_CORPUS"


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.version}"


WHEELS: dict[str, Wheel] = {
    w.name: w
    for w in (
        Wheel("timm", "1.0.31", "5bd50f7d0fe6d09bf9285ac2523234a1b7e6bf075c0be3e7aed09139fcb617c7"),
        Wheel("diffusers", "0.42.1", "9154faa704ce00e0b77f568e0d64786064368528aab5fc14eeea92f87d788014"),
        Wheel("transformers", "5.23.0", "018e82fd07490ad5bb58414f65e31576033dc7f36bed10c574843f69b90991bf"),
    )
}


class CorpusError(RuntimeError):
    """A wheel that could not be downloaded, has the wrong hash, or cannot be unpacked."""


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured) if configured else Path.home() / ".cache" / "torchfix-mod" / "corpus"
    return base.expanduser().resolve()


def _wheel(name: str) -> Wheel:
    try:
        return WHEELS[name]
    except KeyError:
        raise CorpusError(f"unknown corpus library {name!r}; known: {', '.join(WHEELS)}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_wheel(wheel: Wheel, cache: Path) -> Path | None:
    # wheel file names spell the project name with underscores (PEP 427)
    stem = f"{wheel.name.replace('-', '_')}-{wheel.version}-"
    found = sorted(p for p in cache.glob("*.whl") if p.name.startswith(stem))
    return found[0] if found else None


def wheel_path(name: str, cache: Path | None = None) -> Path:
    """The verified wheel of ``name`` in the cache, downloaded with pip if it is not there."""
    wheel = _wheel(name)
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    path = _cached_wheel(wheel, cache)
    if path is None:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", wheel.requirement, "-d", str(cache),
        ]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CorpusError(
                f"pip could not download {wheel.requirement} (exit {proc.returncode}):\n"
                f"$ {' '.join(command)}\n{proc.stdout}{proc.stderr}"
            )
        path = _cached_wheel(wheel, cache)
        if path is None:
            raise CorpusError(f"pip reported success but no {wheel.dirname} wheel is in {cache}:\n{proc.stdout}")
    actual = _sha256(path)
    if actual != wheel.sha256:
        raise CorpusError(
            f"sha256 mismatch for {path}:\n  expected {wheel.sha256}\n  actual   {actual}\n"
            "delete the file to download it again"
        )
    return path


def _python_members(archive: zipfile.ZipFile) -> list[str]:
    members = []
    for member in archive.namelist():
        parts = PurePosixPath(member).parts
        if not member.endswith(".py") or not parts:
            continue
        if member.startswith("/") or ".." in parts or "\\" in member:
            raise CorpusError(f"unsafe path in wheel: {member!r}")
        if parts[0].endswith((".dist-info", ".data")):
            continue
        members.append(member)
    return members


def source_dir(name: str, cache: Path | None = None) -> Path:
    """``<cache>/<name>-<version>/`` holding the wheel's ``.py`` files, unpacked once."""
    wheel = _wheel(name)
    cache = cache or cache_dir()
    target = cache / wheel.dirname
    if target.is_dir():  # only ever created complete, by the rename below
        return target
    archive_path = wheel_path(name, cache)
    staging = Path(tempfile.mkdtemp(prefix=f".{wheel.dirname}-", dir=cache))
    staging.chmod(0o755)  # mkdtemp makes it private; the unpacked sources are not secret
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = _python_members(archive)
            if not members:
                raise CorpusError(f"{archive_path} holds no .py files")
            for member in members:
                archive.extract(member, staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent unpack that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def python_files(root: Path) -> list[str]:
    """Every ``.py`` file under ``root``, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(WHEELS)
    if any(n in ("-h", "--help") for n in names):
        print(f"usage: python -m bench.corpus [{' '.join(WHEELS)}]\n\n{__doc__.strip()}")
        return 0
    unknown = [n for n in names if n not in WHEELS]
    if unknown:
        print(f"unknown library: {', '.join(unknown)} (known: {', '.join(WHEELS)})", file=sys.stderr)
        return 2
    try:
        for name in names:
            print(source_dir(name))
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
