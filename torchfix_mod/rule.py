"""The rule contract: what a codemod in ``codemods/`` declares, reports and fixes."""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import libcst as cst
from libcst.metadata import CodeRange

if TYPE_CHECKING:
    from torchfix_mod.analysis import FileFacts


class Applicability(enum.Enum):
    """How far a rule's fix can be trusted (after Ruff's fix applicability)."""

    SAFE = "safe"
    UNSAFE = "unsafe"
    DISPLAY_ONLY = "display-only"


@dataclass(frozen=True)
class FixCase:
    """An example the rule must rewrite from ``before`` to ``after``."""

    before: str
    after: str
    unsafe: bool = False
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class KeepCase:
    """An example the rule must leave unchanged; ``reported`` says whether it still reports."""

    source: str
    reported: bool = False


@dataclass(frozen=True)
class ImportNeed:
    """An import a fix depends on: ``from module import name`` or ``import module``."""

    module: str
    name: str | None = None


NodeEdit = Callable[[cst.CSTNode], cst.CSTNode | cst.RemovalSentinel]


@dataclass
class Fix:
    """Edits keyed by original node; each edit receives the already-updated node."""

    edits: dict[cst.CSTNode, NodeEdit]
    imports: tuple[ImportNeed, ...] = ()
    unsafe: bool = False
    removals: tuple[ImportNeed, ...] = ()  # imports to drop if the fix leaves them unused


@dataclass
class Finding:
    code: str
    position: CodeRange
    message: str
    fix: Fix | None
    # state_dict keys the fix adds, as patterns relative to the module ("blocks.*", "mask");
    # old checkpoints lack them (the migration report lists them)
    state_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleOptions:
    """Settings a rule may read; the engine passes the same object to every rule."""

    buffer_persistent: bool = False


class Rule(cst.BatchableCSTVisitor):
    """Base class of every codemod. Subclasses live one per file in ``codemods/``.

    A rule visits the parsed file (all rules share one traversal), decides on
    evidence and calls :meth:`report` with or without a :class:`Fix`.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    applicability: ClassVar[Applicability] = Applicability.SAFE
    default_enabled: ClassVar[bool] = True  # False: runs only when selected (noisy rules)
    fixes: ClassVar[Sequence[FixCase]] = ()
    keeps: ClassVar[Sequence[KeepCase]] = ()

    METADATA_DEPENDENCIES = ()  # through ``self.facts``, which resolves metadata lazily

    def __init__(self, facts: FileFacts, options: RuleOptions) -> None:
        super().__init__()
        self.facts = facts
        self.options = options
        self.findings: list[Finding] = []

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        """Could this file hold a finding? Must never say no when the rule would report."""
        return True

    def report(
        self, node: cst.CSTNode, message: str, fix: Fix | None = None, state_keys: Sequence[str] = ()
    ) -> None:
        position = self.facts.position(node)
        self.findings.append(Finding(self.code, position, message, fix, tuple(state_keys)))

    @classmethod
    def docs(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")


def load_rules() -> list[type[Rule]]:
    """Every rule class defined in the ``codemods`` package, sorted by code."""
    import codemods

    found: dict[str, type[Rule]] = {}
    for info in pkgutil.iter_modules(codemods.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"codemods.{info.name}")
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Rule) and obj.__module__ == module.__name__:
                if obj.code in found:
                    raise RuntimeError(f"rule code {obj.code} is defined twice")
                found[obj.code] = obj
    return [found[code] for code in sorted(found)]


def select_rules(
    rules: Sequence[type[Rule]], select: Sequence[str] = (), ignore: Sequence[str] = ()
) -> list[type[Rule]]:
    """Filter by code or code prefix, as Ruff's ``--select`` / ``--ignore``."""

    def matches(code: str, patterns: Sequence[str]) -> bool:
        return any(code.startswith(p) for p in patterns)

    chosen = [r for r in rules if not select or matches(r.code, select)]
    return [r for r in chosen if not matches(r.code, ignore)]
