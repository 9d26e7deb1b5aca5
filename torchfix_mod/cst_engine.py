"""The LibCST side of the engine, imported only when a file has a fix to write: parsing,
applying the fix intents by position, and the imports they need."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from torchfix_mod.engine import SourceError
from torchfix_mod.rule import Edit, Finding, ImportNeed


def parse(source: str) -> cst.Module | SourceError:
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return SourceError(exc.raw_line, exc.raw_column + 1, exc.message)
    except Exception as exc:  # the parser's own limits
        return SourceError(1, 1, f"cannot parse: {type(exc).__name__}: {exc}")


class FixNotApplied(Exception):
    """An edit intent found no node of its type at its position."""


class _ApplyEdits(cst.CSTTransformer):
    def __init__(self, by_position, positions) -> None:
        super().__init__()
        self.by_position = by_position
        self.positions = positions
        self.applied: set[int] = set()

    def on_leave(self, original_node, updated_node):
        pos = self.positions.get(original_node)
        if pos is not None:
            key = (pos.start.line, pos.start.column, pos.end.line, pos.end.column, type(original_node).__name__)
            for edit in self.by_position.get(key, ()):
                self.applied.add(id(edit))
                if isinstance(updated_node, cst.RemovalSentinel):
                    break
                updated_node = edit.change(updated_node, *edit.args)
        return updated_node


def apply_fixes(module: cst.Module, findings: Sequence[Finding]) -> cst.Module:
    """``module`` with every finding's fix applied, then the imports the fixes need."""
    by_position: dict[tuple, list[Edit]] = defaultdict(list)
    imports: dict[ImportNeed, None] = {}
    removals: dict[ImportNeed, None] = {}
    for finding in findings:
        fix = finding.fix
        for edit in fix.edits:
            span = edit.span
            by_position[(span.line, span.column, span.end_line, span.end_column, edit.node_type)].append(edit)
        imports.update(dict.fromkeys(fix.imports))
        removals.update(dict.fromkeys(fix.removals))
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    transformer = _ApplyEdits(by_position, positions)
    new_module = module.visit(transformer)
    missing = [e for edits in by_position.values() for e in edits if id(e) not in transformer.applied]
    if missing:
        edit = missing[0]
        raise FixNotApplied(f"no {edit.node_type} at line {edit.span.line}, column {edit.span.column + 1}")
    if imports or removals:
        from libcst.codemod import CodemodContext  # slow to import; most runs change no import
        from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor

        if removals:
            context = CodemodContext()
            for need in removals:
                RemoveImportsVisitor.remove_unused_import(context, need.module, need.name)
            new_module = RemoveImportsVisitor(context).transform_module(new_module)
        if imports:
            context = CodemodContext()
            for need in imports:
                AddImportsVisitor.add_needed_import(context, need.module, need.name)
            new_module = AddImportsVisitor(context).transform_module(new_module)
    return new_module
