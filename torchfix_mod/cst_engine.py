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


def _key(edit: Edit, line_offset: int = 0) -> tuple:
    span = edit.span
    return (span.line - line_offset, span.column, span.end_line - line_offset, span.end_column, edit.node_type)


def _statement_groups(module: cst.Module, regions: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]] | None:
    """For each top-level LibCST statement, ``(first line, last line, line of its first
    token)`` from the ``ast`` statements it holds (``a; b`` is one LibCST line holding two);
    None if the two parsers disagree on how many statements there are."""
    groups = []
    k = 0
    for statement in module.body:
        count = len(statement.body) if isinstance(statement, cst.SimpleStatementLine) else 1
        held = regions[k : k + count]
        if len(held) != count:
            return None
        k += count
        groups.append((min(r[0] for r in held), max(r[1] for r in held), held[0][2]))
    return groups if k == len(regions) else None


def _apply_by_statement(module: cst.Module, edits: list[Edit], regions) -> tuple[cst.Module, set[int]] | None:
    """The edits applied to only the top-level statements they fall in: LibCST's positions
    are computed by generating the code of what is measured, so measuring one statement
    instead of a whole long file is most of the cost of a fix. None when an edit does not
    lie inside one top-level statement (the caller then measures the whole module)."""
    groups = _statement_groups(module, regions)
    if groups is None:
        return None
    owner: dict[int, list[Edit]] = defaultdict(list)
    for edit in edits:
        span = edit.span
        found = [i for i, (first, last, _) in enumerate(groups) if first <= span.line and span.end_line <= last]
        if len(found) != 1 or edit.node_type == "Module":
            return None
        owner[found[0]].append(edit)
    body = list(module.body)
    applied: set[int] = set()
    for index, owned in owner.items():
        statement = body[index]
        alone = module.with_changes(body=[statement], header=[], footer=[])
        positions = MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider)
        # the statement's first token is on the same line in both: that fixes the offset
        offset = groups[index][2] - positions[statement].start.line
        by_position: dict[tuple, list[Edit]] = defaultdict(list)
        for edit in owned:
            by_position[_key(edit, offset)].append(edit)
        transformer = _ApplyEdits(by_position, positions)
        changed = statement.visit(transformer)
        if not isinstance(changed, cst.BaseStatement):
            return None  # removed or split: let the whole-module path handle it
        body[index] = changed
        applied |= transformer.applied
    return module.with_changes(body=body), applied


def apply_fixes(
    module: cst.Module, findings: Sequence[Finding], regions: Sequence[tuple[int, int, int]] | None = None
) -> cst.Module:
    """``module`` with every finding's fix applied, then the imports the fixes need.

    ``regions`` gives each top-level ``ast`` statement as ``(first line, last line, line of
    its first token)``; with it, only the statements that hold an edit are measured."""
    edits: list[Edit] = []
    imports: dict[ImportNeed, None] = {}
    removals: dict[ImportNeed, None] = {}
    for finding in findings:
        fix = finding.fix
        edits.extend(fix.edits)
        imports.update(dict.fromkeys(fix.imports))
        removals.update(dict.fromkeys(fix.removals))
    done = _apply_by_statement(module, edits, regions) if regions is not None else None
    if done is not None:
        new_module, applied = done
    else:
        by_position: dict[tuple, list[Edit]] = defaultdict(list)
        for edit in edits:
            by_position[_key(edit)].append(edit)
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        transformer = _ApplyEdits(by_position, positions)
        new_module = module.visit(transformer)
        applied = transformer.applied
    missing = [e for e in edits if id(e) not in applied]
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
