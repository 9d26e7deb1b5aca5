"""The LibCST side of the engine, imported only when a file has a fix to write: parsing,
applying the fix intents by position, and the imports they need."""

from __future__ import annotations

import ast
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


def _region(statement: ast.stmt) -> tuple[int, int]:
    """First line (decorators included) and last line of an ``ast`` statement."""
    decorators = getattr(statement, "decorator_list", None) or ()
    first = min([statement.lineno, *(d.lineno for d in decorators)])
    return first, statement.end_lineno or statement.lineno


def _pairs(body: Sequence[cst.BaseStatement], statements: Sequence[ast.stmt]):
    """Each LibCST statement of a body with the ``ast`` statements it holds (``a; b`` is one
    LibCST line holding two); None if the two parsers disagree on how many there are."""
    pairs = []
    k = 0
    for statement in body:
        count = len(statement.body) if isinstance(statement, cst.SimpleStatementLine) else 1
        held = statements[k : k + count]
        if len(held) != count:
            return None
        k += count
        pairs.append((statement, held))
    return pairs if k == len(statements) else None


# the LibCST compound statements whose indented block is the ``body`` of these ``ast`` ones
_BLOCKS: dict[type, tuple[type, ...]] = {
    cst.ClassDef: (ast.ClassDef,),
    cst.FunctionDef: (ast.FunctionDef, ast.AsyncFunctionDef),
    cst.For: (ast.For, ast.AsyncFor),
    cst.While: (ast.While,),
    cst.With: (ast.With, ast.AsyncWith),
    cst.If: (ast.If,),
    cst.Try: (ast.Try,),
    cst.TryStar: (ast.TryStar,),
}


def _inner_body(statement: cst.BaseStatement, held: Sequence[ast.stmt]) -> list[ast.stmt] | None:
    if len(held) != 1 or not isinstance(statement.body, cst.IndentedBlock):
        return None
    kinds = _BLOCKS.get(type(statement))
    return held[0].body if kinds is not None and isinstance(held[0], kinds) else None


def _with_body(statement, body: Sequence[cst.BaseStatement]):
    return statement.with_changes(body=statement.body.with_changes(body=body))


def _apply_in_body(body, statements, edits: list[Edit], enclose) -> tuple[list, set[int]] | None:
    """The edits applied to the statements of one body, each measured as alone as it can be:
    inside the innermost statement that holds all of its edits, with only the statements
    around it on the way out (``enclose`` puts it back in its place, siblings dropped, so its
    columns stay the same and its lines move by a constant). None when an edit does not lie
    inside exactly one statement of the body."""
    pairs = _pairs(body, statements)
    if pairs is None:
        return None
    regions = [(min(_region(s)[0] for s in held), max(_region(s)[1] for s in held)) for _, held in pairs]
    owner: dict[int, list[Edit]] = defaultdict(list)
    for edit in edits:
        span = edit.span
        found = [i for i, (first, last) in enumerate(regions) if first <= span.line and span.end_line <= last]
        if len(found) != 1 or edit.node_type == "Module":
            return None
        owner[found[0]].append(edit)
    new_body = list(body)
    applied: set[int] = set()
    for index, owned in owner.items():
        statement, held = pairs[index]
        inner = _inner_body(statement, held)
        done = None
        if inner is not None:
            done = _apply_in_body(
                statement.body.body,
                inner,
                owned,
                lambda s, statement=statement: enclose(_with_body(statement, [s])),
            )
        if done is not None:
            changed = _with_body(statement, done[0])
            applied |= done[1]
        else:
            positions = MetadataWrapper(enclose(statement), unsafe_skip_copy=True).resolve(PositionProvider)
            # the statement's first token is on the same line in both: that fixes the offset
            offset = held[0].lineno - positions[statement].start.line
            by_position: dict[tuple, list[Edit]] = defaultdict(list)
            for edit in owned:
                by_position[_key(edit, offset)].append(edit)
            transformer = _ApplyEdits(by_position, positions)
            changed = statement.visit(transformer)
            if not isinstance(changed, cst.BaseStatement):
                return None  # removed or split: let the whole-module path handle it
            applied |= transformer.applied
        new_body[index] = changed
    return new_body, applied


def _apply_by_statement(module: cst.Module, edits: list[Edit], tree: ast.Module) -> tuple[cst.Module, set[int]] | None:
    """The edits applied to only the statements they fall in: LibCST's positions are
    computed by generating the code of what is measured, so measuring one method instead
    of a whole long file is most of the cost of a fix. None when an edit does not lie inside
    one top-level statement (the caller then measures the whole module)."""
    done = _apply_in_body(
        module.body, tree.body, edits, lambda s: module.with_changes(body=[s], header=[], footer=[])
    )
    if done is None:
        return None
    return module.with_changes(body=done[0]), done[1]


def apply_fixes(
    module: cst.Module, findings: Sequence[Finding], tree: ast.Module | None = None
) -> cst.Module:
    """``module`` with every finding's fix applied, then the imports the fixes need.

    ``tree``, the ``ast`` parse of the same source, lets only the statements that hold an
    edit be measured."""
    edits: list[Edit] = []
    imports: dict[ImportNeed, None] = {}
    removals: dict[ImportNeed, None] = {}
    shared: set[int] = set()
    for finding in findings:
        fix = finding.fix
        if id(fix) in shared:
            continue  # one fix for several findings (an import and the uses it fixes)
        shared.add(id(fix))
        edits.extend(fix.edits)
        imports.update(dict.fromkeys(fix.imports))
        removals.update(dict.fromkeys(fix.removals))
    done = _apply_by_statement(module, edits, tree) if tree is not None else None
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
