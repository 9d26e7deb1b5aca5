"""What TFM301, TFM302 and TFM402 share: stores to ``self.<attr>`` in the methods of a class,
and how an attribute node sits in the code around it."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass

from torchfix_mod.semantic import SemanticModel, class_methods, self_name

_DISPLAYS = (ast.List, ast.Tuple, ast.Set)
_OPENING = frozenset("([{")
_CLOSING = frozenset(")]}")


@dataclass
class SelfAssignment:
    cls: ast.ClassDef
    method: ast.FunctionDef | ast.AsyncFunctionDef
    self_arg: str
    assign: ast.Assign
    target: ast.Attribute

    @property
    def attr(self) -> str:
        return self.target.attr

    @property
    def value(self) -> ast.expr:
        return self.assign.value


def self_assignments(model: SemanticModel, cls: ast.ClassDef) -> list[SelfAssignment]:
    """Every ``self.x = value`` (a single target) in a method of ``cls``, not in a function
    nested in it, in source order."""
    key = ("attributes.self_assignments", cls)
    found = model.memo.get(key)
    if found is None:
        found = model.memo[key] = list(_find_self_assignments(model, cls))
    return found


def _find_self_assignments(model: SemanticModel, cls: ast.ClassDef):
    for method in class_methods(cls):
        self_arg = self_name(method)
        if self_arg is None:
            continue
        assigns = sorted(model.nodes(ast.Assign, method), key=lambda n: (n.lineno, n.col_offset))
        for assign in assigns:
            if len(assign.targets) != 1:
                continue
            target = assign.targets[0]
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == self_arg
                and model.enclosing_function(assign) is method
            ):
                yield SelfAssignment(cls, method, self_arg, assign, target)


def is_assign_target(model: SemanticModel, node: ast.AST) -> bool:
    """``node`` is one of the targets of an ``=`` statement (not ``+=``, ``:``, ``for``)."""
    holder = model.parent(node)
    return isinstance(holder, ast.Assign) and any(t is node for t in holder.targets)


def is_display_element(model: SemanticModel, node: ast.AST) -> bool:
    """``node`` is an element of a list, tuple or set display (``self.a, self.b = ...``,
    ``return [self.a]``, ``del self.a, self.b``), where a value cannot be followed. The
    comma-separated indices of a subscript (``x[:, self.idx]``) are not a tuple display."""
    holder = model.parent(node)
    if isinstance(holder, ast.Delete):
        return len(holder.targets) > 1
    if not isinstance(holder, _DISPLAYS) or not any(e is node for e in holder.elts):
        return False
    return not (isinstance(holder, ast.Tuple) and _is_subscript_indices(model, holder))


def is_starred_display_element(model: SemanticModel, node: ast.AST) -> bool:
    """``*node`` as an element of a list, tuple or set display."""
    holder = model.parent(node)
    return isinstance(holder, ast.Starred) and holder.value is node and is_display_element(model, holder)


def _is_subscript_indices(model: SemanticModel, tup: ast.Tuple) -> bool:
    """An unparenthesized tuple as the slice of a subscript (``x[a, b]``, not ``x[(a, b)]``)."""
    holder = model.parent(tup)
    if not (isinstance(holder, ast.Subscript) and holder.slice is tup):
        return False
    return not _parenthesized(model, tup)


def _parenthesized(model: SemanticModel, tup: ast.Tuple) -> bool:
    """The tuple's own parentheses enclose it (``(a), b`` starts and ends with brackets of its
    elements, not its own)."""
    if not tup.elts:
        return True
    first = tup.elts[0]
    if (tup.lineno, tup.col_offset) == (first.lineno, first.col_offset):
        return False
    text = model.text(tup)
    try:
        tokens = [
            t for t in tokenize.generate_tokens(io.StringIO(f"[{text}]").readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER)
        ][1:-1]  # without the brackets added above
    except (tokenize.TokenError, SyntaxError):
        return text.startswith("(")
    if not tokens or tokens[0].string != "(":
        return False
    depth = 0
    for index, token in enumerate(tokens):
        if token.type == tokenize.OP and token.string in _OPENING:
            depth += 1
        elif token.type == tokenize.OP and token.string in _CLOSING:
            depth -= 1
            if depth == 0:
                return index == len(tokens) - 1
    return False
