"""A content-addressed result cache, so an unchanged file is not parsed again.

Entries live in one SQLite database, ``.torchfix_mod_cache/<version>/cache.sqlite`` at the
project root, as JSON text under a key. A key hashes everything a result depends on: the
tool version, the effective settings, the project-wide class table, the file's module name
and its bytes, and a hash of the engine's and the rules' own source, so an edited rule never
serves stale results. A stale entry therefore cannot be found; old ones are simply never read
again. The directory ignores itself for git (it holds a ``.gitignore`` of ``*``).

Entries are not written one by one: ``put`` keeps them in memory, worker processes hand theirs
to the main process with their results (``take``/``keep``), and ``flush`` writes all of them
in one transaction, so an interrupted run leaves either all of a batch or none of it, and a
run of thousands of files costs one write instead of thousands of small files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
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


class _Store:
    """The database and the entries waiting to be written, shared by a cache and its salted
    copies. A connection belongs to the process that opened it (workers are forked or
    spawned with a copy of this object, never with its connection)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pending: dict[str, str] = {}
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._broken = False
        self._damaged = False

    def __getstate__(self) -> dict:
        return {"directory": self.directory, "pending": {}, "_connection": None, "_pid": 0, "_broken": False, "_damaged": False}

    def close(self) -> None:
        """Close this process's connection (before forking workers: SQLite connections must
        not cross a fork); the next use opens another."""
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None

    def connection(self, create: bool) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        path = self.directory / "cache.sqlite"
        if not create and (self._damaged or not path.is_file()):
            return None
        try:
            if create:
                _prepare(self.directory)
            connection = _open(path)
        except sqlite3.DatabaseError:
            if not create:  # read nothing from it; the first write starts it again
                self._damaged = True
                return None
            try:  # not a database (a damaged or foreign file): start again from an empty one
                path.unlink()
                connection = _open(path)
            except (OSError, sqlite3.Error):
                self._broken = True
                return None
        except (OSError, sqlite3.Error):
            self._broken = True  # an unusable cache only costs speed
            return None
        self._connection, self._pid, self._damaged = connection, os.getpid(), False
        return connection


def _open(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    top = directory.parent
    ignore = top / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by torchfix-mod\n*\n", encoding="utf-8")
    tag = top / "CACHEDIR.TAG"
    if not tag.exists():
        tag.write_text(
            "Signature: 8a477f597d28d172789f06886806bc55\n# torchfix-mod result cache; safe to delete\n",
            encoding="utf-8",
        )


class Cache:
    def __init__(self, root: Path, salt: str, store: _Store | None = None) -> None:
        self.root = root
        self.directory = root / CACHE_DIR_NAME / __version__
        self.salt_text = salt
        self.salt = f"{__version__}\0{source_fingerprint()}\0{salt}".encode("utf-8", "surrogatepass")
        self.store = store or _Store(self.directory)

    def salted(self, extra: str) -> Cache:
        """The same cache with keys that also depend on ``extra``."""
        return Cache(self.root, f"{self.salt_text}\0{extra}", self.store)

    def key(self, kind: str, data: bytes, *context: str) -> str:
        digest = hashlib.sha256(self.salt)
        digest.update(kind.encode())
        for part in context:
            digest.update(b"\0" + part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
        digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> dict | None:
        store = self.store
        text = store.pending.get(key)
        if text is None:
            connection = store.connection(create=False)
            if connection is None:
                return None
            try:
                row = connection.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error:
                return None
            if row is None:
                return None
            text = row[0]
        try:
            return json.loads(text)
        except ValueError:
            return None

    def put(self, key: str, value: dict) -> None:
        """Keep an entry to be written by the next ``flush``."""
        self.store.pending[key] = json.dumps(value, separators=(",", ":"))

    def take(self) -> dict[str, str]:
        """The entries not yet written, handed over (a worker gives them to the main process)."""
        pending, self.store.pending = self.store.pending, {}
        return pending

    def keep(self, entries: dict[str, str]) -> None:
        """Entries another process made, to be written by this one's ``flush``."""
        self.store.pending.update(entries)

    def flush(self) -> None:
        """Write every waiting entry in one transaction; a cache that cannot be written only
        costs speed."""
        pending = self.take()
        if not pending:
            return
        connection = self.store.connection(create=True)
        if connection is None:
            return
        try:
            with connection:
                connection.execute("BEGIN")
                connection.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", pending.items())
        except sqlite3.Error:
            pass
