"""The rule contract: what a codemod in ``codemods/`` declares, reports and fixes.

A rule decides on the file's :class:`~torchfix_mod.semantic.SemanticModel` (Python's ``ast``)
and reports findings. A finding's fix is a list of :class:`Edit` intents: the position of a
node and the LibCST change to make there. The engine parses the file with LibCST only when a
fix is to be written, finds each node by its position and applies the change.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from torchfix_mod.semantic import Span

if TYPE_CHECKING:
    from torchfix_mod.semantic import SemanticModel

RULES_PACKAGE = "torchfix_mod.codemods"


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


@dataclass(frozen=True)
class Edit:
    """A fix intent: change the LibCST node of class ``node_type`` found at ``span``.

    ``change(node, *args)`` receives the node with its children already updated and returns
    the new node (or ``libcst.RemoveFromParent()``); it is the only place a rule touches
    LibCST, and it decides nothing."""

    span: Span
    node_type: str
    change: Callable[..., Any]
    args: tuple = ()


@dataclass
class Fix:
    """The edits of one finding, applied together or not at all."""

    edits: tuple[Edit, ...] | list[Edit]
    imports: tuple[ImportNeed, ...] = ()
    unsafe: bool = False
    removals: tuple[ImportNeed, ...] = ()  # imports to drop if the fix leaves them unused


@dataclass
class Finding:
    code: str
    span: Span
    message: str
    fix: Fix | None
    # state_dict keys the fix adds, as patterns relative to the module ("blocks.*", "mask");
    # old checkpoints lack them (the migration report lists them)
    state_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleOptions:
    """Settings a rule may read; the engine passes the same object to every rule."""

    buffer_persistent: bool = False
    # (package, lowest version) the checked project declares (pyproject.toml, setup.cfg,
    # requirements*.txt): fixes to an API introduced later become unsafe
    requires: tuple[tuple[str, str], ...] = ()


class Rule:
    """Base class of every codemod: what it declares (code, name, summary, fix safety,
    examples) and how it reports.

    Subclasses live one per file in a family package of ``codemods/``; :meth:`check` reads
    ``self.model`` and calls :meth:`report`, with a :class:`Fix` built from :meth:`edit` intents
    when the fix is proven right.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    applicability: ClassVar[Applicability] = Applicability.SAFE
    default_enabled: ClassVar[bool] = True  # False: runs only when selected (noisy rules)
    # an API migration: code kept for other PyTorch releases (a version or `hasattr` test, an
    # `except ImportError/AttributeError` fallback) uses the old API on purpose, and is left alone
    respects_version_gates: ClassVar[bool] = False
    fixes: ClassVar[Sequence[FixCase]] = ()
    keeps: ClassVar[Sequence[KeepCase]] = ()

    @classmethod
    def torchfix_codes(cls) -> tuple[str, ...]:
        """The TorchFix codes of the same check (named in the summary, "(TorchFix TOR101/TOR103)"):
        a TorchFix user's ``# noqa: TOR101`` silences this rule too."""
        return tuple(re.findall(r"\bTOR\d{3}\b", cls.summary))

    @classmethod
    def docs(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    def __init__(self, model: SemanticModel, options: RuleOptions) -> None:
        self.model = model
        self.options = options
        self.findings: list[Finding] = []

    def check(self) -> None:
        raise NotImplementedError

    def report(
        self, node: ast.AST | Span, message: str, fix: Fix | None = None, state_keys: Sequence[str] = ()
    ) -> None:
        if self.respects_version_gates and not isinstance(node, Span) and self.model.in_version_gate(node):
            return
        span = node if isinstance(node, Span) else self.model.span(node)
        self.findings.append(Finding(self.code, span, message, fix, tuple(state_keys)))

    def needs_release(self, fix: Fix | None, package: str, version: str, api: str) -> tuple[Fix | None, str]:
        """``fix`` made unsafe, and the reason to add to the message, when the project declares a
        ``package`` floor below the ``version`` that introduced ``api``."""
        from torchfix_mod.requirements import below

        floor = below(self.options.requires, package, version)
        if fix is None or floor is None:
            return fix, ""
        fix.unsafe = True
        return fix, f" (unsafe fix: the project allows {package} {floor}, and `{api}` needs {package} {version})"

    def edit(self, node: ast.AST | Span, node_type: str, change: Callable[..., Any], *args: Any) -> Edit:
        """An intent to change the LibCST ``node_type`` node at ``node``'s position."""
        span = node if isinstance(node, Span) else self.model.span(node)
        return Edit(span, node_type, change, args)


def load_rules() -> list[type[Rule]]:
    """Every rule class defined in the rules package and its family sub-packages, sorted by
    code; modules whose name starts with ``_`` hold shared analysis and are not searched."""
    package = importlib.import_module(RULES_PACKAGE)
    found: dict[str, type[Rule]] = {}
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{RULES_PACKAGE}."):
        if info.name.rpartition(".")[2].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Rule)
                and obj.__module__ == module.__name__
                and getattr(obj, "code", None)
            ):
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
