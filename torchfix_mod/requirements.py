"""The lowest torch (and torchvision, torchaudio) release a project says it supports.

A fix that moves code to an API introduced in a later release breaks the project on the older
releases it still allows. ``declared_floors`` reads the requirements of the project that holds
a path: ``[project].dependencies`` of ``pyproject.toml``, ``[options] install_requires`` of
``setup.cfg`` and every ``requirements*.txt``, in the nearest directory (walking up from the
path) that has any of them. Requirement strings are parsed with ``packaging``; the floor of a
package is the lowest version its ``>=``, ``>``, ``~=`` or ``==`` clauses admit, over every
file that names it. A package named without a lower bound has no floor.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover (Python 3.10)
    import tomli as tomllib  # type: ignore[no-redef]

PACKAGES = ("torch", "torchvision", "torchaudio")
MARKERS = ("pyproject.toml", "setup.cfg")


def declared_floors(start: Path) -> tuple[tuple[str, str], ...]:
    """``(package, lowest version)`` for each of PACKAGES the project of ``start`` bounds below."""
    directory = start if start.is_dir() else start.parent
    for folder in (directory, *directory.parents):
        requirement_files = sorted(folder.glob("requirements*.txt"))
        if any((folder / name).is_file() for name in MARKERS) or requirement_files:
            return _floors(_requirements(folder, requirement_files))
        if (folder / ".git").exists():
            break
    return ()


def _requirements(folder: Path, requirement_files: list[Path]) -> Iterable[str]:
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
        dependencies = data.get("project", {}).get("dependencies", [])
        if isinstance(dependencies, list):
            yield from (d for d in dependencies if isinstance(d, str))
    setup_cfg = folder / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(setup_cfg, encoding="utf-8")
            yield from parser.get("options", "install_requires", fallback="").splitlines()
        except (configparser.Error, UnicodeDecodeError):
            pass
    for path in requirement_files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith(("#", "-")):
                yield line


def _floors(lines: Iterable[str]) -> tuple[tuple[str, str], ...]:
    floors: dict[str, Version] = {}
    for line in lines:
        try:
            requirement = Requirement(line.strip())
        except InvalidRequirement:
            continue
        name = requirement.name.lower().replace("_", "-")
        if name not in PACKAGES:
            continue
        for spec in requirement.specifier:
            if spec.operator not in (">=", ">", "~=", "=="):
                continue
            try:
                version = Version(spec.version.rstrip(".*"))
            except InvalidVersion:
                continue
            if name not in floors or version < floors[name]:
                floors[name] = version
    return tuple(sorted((name, str(version)) for name, version in floors.items()))


def below(floors: tuple[tuple[str, str], ...], package: str, needed: str) -> str | None:
    """The declared floor of ``package`` when it is below ``needed`` (None: no floor, or high enough)."""
    for name, floor in floors:
        if name == package and Version(floor) < Version(needed):
            return floor
    return None
