"""A content-addressed result cache, so an unchanged file is not parsed again.

Entries live in ``.torchfix_mod_cache/<version>/`` at the project root, one small JSON
file per key. A key hashes everything a result depends on: the tool version, the
effective settings, the project-wide class table, the file's module name and its bytes, and a
hash of the engine's and the rules' own source, so an edited rule never serves stale results.
A stale entry therefore cannot be found; old ones are simply never read again. The
directory ignores itself for git (it holds a ``.gitignore`` of ``*``), and writes are
atomic, so parallel workers and interrupted runs never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from torchfix_mod import __version__

CACHE_DIR_NAME = ".torchfix_mod_cache"
_FINGERPRINT: str | None = None


def source_fingerprint() -> str:
    """A hash of every ``.py`` file of the package and of its rules package (which a source
    checkout keeps outside it): what the results are computed by."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import torchfix_mod
        import torchfix_mod.codemods as rules

        _FINGERPRINT = fingerprint_of([*torchfix_mod.__path__, *rules.__path__])
    return _FINGERPRINT


def fingerprint_of(directories: list[str]) -> str:
    digest = hashlib.sha256()
    for directory in directories:
        for path in sorted(Path(directory).rglob("*.py")):
            digest.update(str(path.relative_to(directory)).encode("utf-8", "surrogatepass") + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"?")
    return digest.hexdigest()


def project_root(paths: list[Path], config_root: Path | None = None) -> Path:
    """Where the cache lives: the config's directory, else the nearest directory above the
    paths that holds ``.git`` or ``pyproject.toml``, else the current directory."""
    if config_root is not None:
        return config_root
    resolved = [Path(p).resolve() for p in paths] or [Path.cwd().resolve()]
    common = Path(os.path.commonpath([str(p) for p in resolved]))
    start = common if common.is_dir() else common.parent
    for directory in (start, *start.parents):
        if (directory / ".git").exists() or (directory / "pyproject.toml").is_file():
            return directory
    return Path.cwd().resolve()


class Cache:
    def __init__(self, root: Path, salt: str) -> None:
        self.root = root
        self.directory = root / CACHE_DIR_NAME / __version__
        self.salt_text = salt
        self.salt = f"{__version__}\0{source_fingerprint()}\0{salt}".encode("utf-8", "surrogatepass")
        self._ready = False

    def salted(self, extra: str) -> Cache:
        """The same cache with keys that also depend on ``extra``."""
        return Cache(self.root, f"{self.salt_text}\0{extra}")

    def key(self, kind: str, data: bytes, *context: str) -> str:
        digest = hashlib.sha256(self.salt)
        digest.update(kind.encode())
        for part in context:
            digest.update(b"\0" + part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
        digest.update(data)
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict) -> None:
        """Store an entry; a cache that cannot be written only costs speed."""
        try:
            self._prepare()
            target = self._path(key)
            target.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(value, handle, separators=(",", ":"))
            os.replace(tmp, target)
        except OSError:
            pass

    def _prepare(self) -> None:
        if self._ready:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        top = self.directory.parent
        ignore = top / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# created by torchfix-mod\n*\n", encoding="utf-8")
        tag = top / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(
                "Signature: 8a477f597d28d172789f06886806bc55\n# torchfix-mod result cache; safe to delete\n",
                encoding="utf-8",
            )
        self._ready = True
