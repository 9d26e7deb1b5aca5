"""Rules that still analyse a LibCST tree: they visit the parsed file (all such rules share one
traversal) and key their edits by LibCST node. New rules decide on the semantic model instead
(:mod:`torchfix_mod.rule`)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from torchfix_mod.rule import (  # noqa: F401  (re-exported for the rules)
    Applicability,
    BaseRule,
    Finding,
    FixCase,
    ImportNeed,
    KeepCase,
    RuleOptions,
)
from torchfix_mod.semantic import Span

if TYPE_CHECKING:
    from torchfix_mod.analysis import FileFacts


NodeEdit = Callable[[cst.CSTNode], cst.CSTNode | cst.RemovalSentinel]


@dataclass
class Fix:
    """Edits keyed by original node; each edit receives the already-updated node."""

    edits: dict[cst.CSTNode, NodeEdit]
    imports: tuple[ImportNeed, ...] = ()
    unsafe: bool = False
    removals: tuple[ImportNeed, ...] = ()  # imports to drop if the fix leaves them unused


class Rule(BaseRule, cst.BatchableCSTVisitor):
    """A rule that visits the LibCST tree (all such rules share one traversal), decides on
    evidence and calls :meth:`report` with or without a :class:`Fix`. ``screen`` lets the
    engine skip the LibCST parse for files it cannot report in."""

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
        pos = self.facts.position(node)
        span = Span(pos.start.line, pos.start.column, pos.end.line, pos.end.column)
        self.findings.append(Finding(self.code, span, message, fix, tuple(state_keys)))
