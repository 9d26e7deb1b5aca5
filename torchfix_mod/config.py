"""Project configuration: the ``[tool.torchfix-mod]`` table of the nearest ``pyproject.toml``.

Discovery
---------
The directory to start from is the common parent of all the paths given (a file counts as its
directory; no paths means the current directory). From there the parents are walked upward and
the first ``pyproject.toml`` holding a ``[tool.torchfix-mod]`` table wins; a ``pyproject.toml``
without the table is skipped and the walk goes on. One configuration applies to the whole run.
A ``pyproject.toml`` met on the way that is not valid TOML is an error (its table cannot be
ruled out). ``--config PATH`` reads that file instead (it must exist and be valid TOML; without
the table it gives the defaults); ``--isolated`` reads nothing.

Keys
----
``select``, ``ignore``, ``extend-select``
    Lists of rule codes or code prefixes (``"TFM1"``, ``"TFM301"``); each must match a rule.
``unsafe-fixes``, ``buffer-persistent``
    Booleans, the defaults of the command-line flags of the same name.
``exclude``
    Gitignore-style patterns that replace the default skipped directories
    (``torchfix_mod.files.SKIPPED_DIRS``); ``extend-exclude`` adds patterns to the defaults.
``per-file-ignores``
    A table from a gitignore-style glob to the codes or prefixes not reported for the files it
    matches. A glob starting with ``!`` applies to the files it does *not* match.

Every pattern and glob is relative to the directory holding the ``pyproject.toml``; paths
outside that directory match none of them.

Rule selection precedence
-------------------------
:func:`effective_codes` computes the enabled rules from the configuration and the command line:

1. The base set is the command line's ``--select`` when given, else the configuration's
   ``select``, else every rule.
2. ``extend-select`` (configuration and command line together) adds to it.
3. ``ignore`` (configuration and command line together) removes from it.

A more specific pattern beats a less specific one: for each rule, the longest pattern matching
its code among the selecting ones (the base set and ``extend-select``) is compared with the
longest among ``ignore``; the longer wins, a tie goes to ``ignore``. Selecting every rule by
default counts as the shortest pattern of all. So ``select = ["TFM1"]`` with
``ignore = ["TFM101"]`` enables TFM1 without TFM101, while ``select = ["TFM101"]`` with
``ignore = ["TFM1"]`` keeps TFM101.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pathspec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TABLE = "tool.torchfix-mod"
CONFIG_FILE = "pyproject.toml"

_CODE_LIST_KEYS = ("select", "ignore", "extend-select")
_BOOL_KEYS = ("unsafe-fixes", "buffer-persistent")
_PATTERN_KEYS = ("exclude", "extend-exclude")
KEYS = (*_CODE_LIST_KEYS, *_BOOL_KEYS, *_PATTERN_KEYS, "per-file-ignores")


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is one line naming the file and key."""


@dataclass(frozen=True)
class Config:
    """The settings of one ``[tool.torchfix-mod]`` table; ``None`` means "not set"."""

    path: Path | None = None  # the pyproject.toml it came from (None: defaults)
    root: Path | None = None  # its directory; patterns are relative to it
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    unsafe_fixes: bool | None = None
    buffer_persistent: bool | None = None
    exclude: tuple[str, ...] | None = None  # not None: replaces the default skipped directories
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @cached_property
    def _exclude_spec(self) -> pathspec.PathSpec | None:
        patterns = (*(self.exclude or ()), *self.extend_exclude)
        return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None

    @cached_property
    def _per_file_specs(self) -> tuple[tuple[pathspec.PathSpec, bool, tuple[str, ...]], ...]:
        specs = []
        for glob, codes in self.per_file_ignores:
            negated = glob.startswith("!")
            spec = pathspec.GitIgnoreSpec.from_lines([glob[1:] if negated else glob])
            specs.append((spec, negated, codes))
        return tuple(specs)

    def _relative(self, path: Path) -> str | None:
        """``path`` relative to ``root`` in POSIX form ("" for the root itself), or None outside it."""
        if self.root is None:
            return None
        path = Path(path)
        candidates = [Path(os.path.abspath(path))]
        roots = [self.root]
        try:
            candidates.append(path.resolve())
            roots.append(self.root.resolve())
        except OSError:
            pass
        for candidate in candidates:
            for root in roots:
                try:
                    relative = candidate.relative_to(root)
                except ValueError:
                    continue
                return "" if not relative.parts else relative.as_posix()
        return None

    def excluded(self, path: Path) -> bool:
        """Whether ``path`` (a file or directory, absolute or relative to the current directory)
        matches ``exclude`` / ``extend-exclude``, itself or through one of its directories below
        ``root``. Paths outside ``root``, and ``root`` itself, are never excluded. The default
        skipped directories are not checked here; they apply when ``exclude`` is None."""
        spec = self._exclude_spec
        if spec is None:
            return False
        relative = self._relative(path)
        if not relative:
            return False
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            if spec.match_file("/".join(parts[:depth]) + "/"):
                return True
        return spec.match_file(relative + ("/" if Path(path).is_dir() else ""))

    def ignored_codes(self, path: Path) -> frozenset[str]:
        """The codes and code prefixes ``per-file-ignores`` assigns to the file ``path``."""
        if not self.per_file_ignores:
            return frozenset()
        relative = self._relative(path)
        if not relative:
            return frozenset()
        found: set[str] = set()
        for spec, negated, codes in self._per_file_specs:
            if spec.match_file(relative) != negated:
                found.update(codes)
        return frozenset(found)

    def fingerprint(self) -> str:
        """A stable string of the settings (not of ``path`` or ``root``): equal for configurations
        that behave the same on the same relative paths, different when a setting changes."""
        settings = {
            "select": None if self.select is None else sorted(set(self.select)),
            "ignore": sorted(set(self.ignore)),
            "extend-select": sorted(set(self.extend_select)),
            "unsafe-fixes": self.unsafe_fixes,
            "buffer-persistent": self.buffer_persistent,
            # pattern order matters to gitignore negation, so it is kept
            "exclude": None if self.exclude is None else list(self.exclude),
            "extend-exclude": list(self.extend_exclude),
            "per-file-ignores": sorted([glob, sorted(set(codes))] for glob, codes in self.per_file_ignores),
        }
        return json.dumps(settings, sort_keys=True, separators=(",", ":"))


# -- reading -------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    """``path`` as the user would type it: relative to the current directory when below it."""
    try:
        return Path(os.path.abspath(path)).relative_to(Path.cwd()).as_posix()
    except (ValueError, OSError):
        return str(path)


def _show(value: Any, limit: int = 60) -> str:
    """A TOML value written back in one line, for error messages."""

    def render(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (str, int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(render(item) for item in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {render(item)}" for k, item in v.items()) + "}"
        return str(v)  # dates and times

    text = render(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{_display(path)}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{_display(path)}: invalid TOML: not UTF-8 ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"{_display(path)}: invalid TOML: {message}") from None


def _table(data: dict[str, Any]) -> Any:
    """The ``[tool.torchfix-mod]`` value of a parsed file, or None without one."""
    tool = data.get("tool")
    if not isinstance(tool, dict):
        return None
    return tool.get("torchfix-mod")


def _start_dir(paths: Sequence[Path]) -> Path:
    if not paths:
        return Path.cwd()
    dirs = []
    for path in paths:
        absolute = Path(os.path.abspath(path))
        dirs.append(absolute if absolute.is_dir() else absolute.parent)
    try:
        return Path(os.path.commonpath(dirs))
    except ValueError:  # different drives
        return dirs[0]


def find_config(paths: Sequence[Path]) -> Path | None:
    """The ``pyproject.toml`` with a ``[tool.torchfix-mod]`` table nearest to the common parent
    of ``paths`` (walking up), or None. Raises :class:`ConfigError` for an unreadable or invalid
    ``pyproject.toml`` met on the way."""
    start = _start_dir(paths)
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILE
        if candidate.is_file() and _table(_read_toml(candidate)) is not None:
            return candidate
    return None


class _Checker:
    """Validates one table's values, raising ConfigError with the file and key named."""

    def __init__(self, path: Path, known_codes: Sequence[str]) -> None:
        self.where = f"{_display(path)}: [{TABLE}]"
        self.known = tuple(known_codes)

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where} {message}")

    def strings(self, name: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(f"{name} must be a list of strings, got {_show(value)}")
        return tuple(value)

    def codes(self, name: str, value: Any) -> tuple[str, ...]:
        found: list[str] = []
        for raw in self.strings(name, value):
            code = raw.strip().upper()
            if not code:
                raise self.fail(f"{name} has an empty rule code")
            code = all_prefix(code)
            if not any(known.startswith(code) for known in self.known):
                hint = difflib.get_close_matches(code, self.known, n=1, cutoff=0.7)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise self.fail(f"{name} has {raw!r}, which matches no rule code{suffix}")
            if code not in found:
                found.append(code)
        return tuple(found)

    def boolean(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{name} must be true or false, got {_show(value)}")
        return value

    def patterns(self, name: str, value: Any) -> tuple[str, ...]:
        patterns = self.strings(name, value)
        for pattern in patterns:
            self.pattern(name, pattern)
        return patterns

    def pattern(self, name: str, pattern: str) -> None:
        if not pattern.strip():
            raise self.fail(f"{name} has an empty pattern")
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except ValueError as exc:
            raise self.fail(f"{name} has an invalid pattern {pattern!r}: {exc}") from None

    def per_file_ignores(self, value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
        name = "'per-file-ignores'"
        if not isinstance(value, dict):
            raise self.fail(f"{name} must be a table of glob = [codes], got {_show(value)}")
        entries = []
        for glob, codes in value.items():
            self.pattern(name, glob[1:] if glob.startswith("!") else glob)
            entries.append((glob, self.codes(f"{name} entry {glob!r}", codes)))
        return tuple(entries)


def load_config(path: Path, known_codes: Sequence[str]) -> Config:
    """The configuration in ``path``'s ``[tool.torchfix-mod]`` table, validated against
    ``known_codes`` (the codes of every rule). A valid TOML file without the table gives the
    defaults, with ``path`` and ``root`` set."""
    path = Path(os.path.abspath(path))
    table = _table(_read_toml(path))
    base = Config(path=path, root=path.parent)
    if table is None:
        return base
    check = _Checker(path, known_codes)
    if not isinstance(table, dict):
        raise ConfigError(f"{_display(path)}: [{TABLE}] must be a table, got {_show(table)}")
    for key in table:
        if key not in KEYS:
            hint = difflib.get_close_matches(key, KEYS, n=1)
            suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise check.fail(f"unknown key {key!r}{suffix}")
    values: dict[str, Any] = {}
    for key in _CODE_LIST_KEYS:
        if key in table:
            values[key.replace("-", "_")] = check.codes(f"'{key}'", table[key])
    for key in _BOOL_KEYS:
        if key in table:
            values[key.replace("-", "_")] = check.boolean(f"'{key}'", table[key])
    for key in _PATTERN_KEYS:
        if key in table:
            values[key.replace("-", "_")] = check.patterns(f"'{key}'", table[key])
    if "per-file-ignores" in table:
        values["per_file_ignores"] = check.per_file_ignores(table["per-file-ignores"])
    return Config(path=path, root=path.parent, **values)


def resolve(
    paths: Sequence[Path],
    known_codes: Sequence[str],
    config_path: Path | None = None,
    isolated: bool = False,
) -> Config:
    """The configuration of a run over ``paths``: ``Config()`` when ``isolated``; the file
    ``config_path`` when given (a missing file is an error); else the nearest discovered one."""
    if isolated:
        return Config()
    if config_path is not None:
        return load_config(config_path, known_codes)
    found = find_config(paths)
    return Config() if found is None else load_config(found, known_codes)


# -- rule selection ------------------------------------------------------------------------------


def _longest_match(code: str, patterns: Sequence[str]) -> int:
    """Length of the longest pattern ``code`` starts with, or -1 when none does."""
    return max((len(p) for p in patterns if code.startswith(p)), default=-1)


def all_prefix(code: str) -> str:
    """``ALL`` selects every rule, as in Ruff: it is the empty prefix, which every code starts
    with and which is less specific than any other."""
    return "" if code == "ALL" else code


def effective_codes(
    config: Config,
    cli_select: Sequence[str],
    cli_ignore: Sequence[str],
    cli_extend_select: Sequence[str],
    all_codes: Sequence[str],
    default_codes: Sequence[str] | None = None,
) -> list[str]:
    """The enabled rule codes, in ``all_codes`` order (precedence: see the module docstring).

    An empty ``cli_select`` means ``--select`` was not given; a configuration's
    ``select = []`` selects nothing but what ``extend-select`` adds. Without any select, the
    rules in ``default_codes`` (all when None) are on; the others run only when selected.
    """
    defaults = set(all_codes if default_codes is None else default_codes)
    select: Sequence[str] | None = cli_select if cli_select else config.select
    selecting = [*(select or ()), *config.extend_select, *cli_extend_select]
    ignoring = [*config.ignore, *cli_ignore]
    enabled = []
    for code in all_codes:
        on = _longest_match(code, selecting)
        if select is None and code in defaults:
            on = max(on, 0)  # every default rule, as the least specific pattern
        if on >= 0 and on > _longest_match(code, ignoring):
            enabled.append(code)
    return enabled
