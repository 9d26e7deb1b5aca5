"""A cheap pre-check on the ``ast`` tree: each rule says whether a file could hold
one of its findings, so files that cannot skip LibCST's metadata (most of the cost).

A screen must be a superset of what its rule reports: a test runs every example
with screens on and off and requires identical results.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator

BUILTIN_NAMES = frozenset(dir(builtins))


def methods(tree: ast.AST) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """Every method with an instance parameter in a class that has a base, with that parameter's name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.bases:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    params = item.args.posonlyargs or item.args.args
                    if params:
                        yield item, params[0].arg


def self_stores(func: ast.AST, self_name: str) -> Iterator[ast.expr]:
    """Values of ``self.x = value`` anywhere in ``func``."""
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_name:
                yield node.value


def called_names(func: ast.AST) -> Iterator[str]:
    """The last name of every called function or method in ``func``."""
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                yield node.func.attr
            elif isinstance(node.func, ast.Name):
                yield node.func.id


def names_from(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> original name for every ``from <module> import name [as alias]``."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == module and not node.level:
            for alias in node.names:
                found[alias.asname or alias.name] = alias.name
    return found


class TensorScreen:
    """Name-based over-approximation of ``analysis.TensorExpressions`` on the ast."""

    def __init__(self, tree: ast.Module, factories: frozenset, functions: frozenset, methods: frozenset) -> None:
        imported = names_from(tree, "torch")
        self.factory_names = {local for local, name in imported.items() if name in factories}
        self.function_names = {local for local, name in imported.items() if name in functions}
        self.factories, self.functions, self.methods = factories, functions, methods

    def may_be_tensor(self, expr: ast.AST, tainted: set[str]) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in tainted
        if isinstance(expr, ast.Call):
            func = expr.func
            args = [*expr.args, *(k.value for k in expr.keywords)]
            if isinstance(func, ast.Attribute):
                if func.attr in self.factories:
                    return True
                if func.attr in self.functions and any(self.may_be_tensor(a, tainted) for a in args):
                    return True
                return func.attr in self.methods and self.may_be_tensor(func.value, tainted)
            if isinstance(func, ast.Name):
                return func.id in self.factory_names or (
                    func.id in self.function_names and any(self.may_be_tensor(a, tainted) for a in args)
                )
            return False
        if isinstance(expr, ast.Attribute):
            return self.may_be_tensor(expr.value, tainted)
        if isinstance(expr, ast.BinOp):
            return self.may_be_tensor(expr.left, tainted) or self.may_be_tensor(expr.right, tainted)
        if isinstance(expr, ast.UnaryOp):
            return self.may_be_tensor(expr.operand, tainted)
        if isinstance(expr, ast.Subscript):
            return self.may_be_tensor(expr.value, tainted)
        if isinstance(expr, ast.Starred):
            return self.may_be_tensor(expr.value, tainted)
        return False

    def tainted_locals(self, func: ast.AST) -> set[str]:
        """Local names that may be bound to a tensor somewhere in ``func`` (to a fixed point)."""
        assigns = [
            (node.targets[0].id, node.value)
            for node in ast.walk(func)
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ]
        tainted: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, value in assigns:
                if name not in tainted and self.may_be_tensor(value, tainted):
                    tainted.add(name)
                    changed = True
        return tainted


def bound_names(tree: ast.Module) -> set[str]:
    """Every name the file binds anywhere (imports, defs, classes, stores)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def may_build_module(expr: ast.AST, call_bound: set[str], shadowed: set[str]) -> bool:
    """Could ``expr`` be a module construction (a call that is not to a builtin) or a local bound to one?"""
    if isinstance(expr, ast.Name):
        return expr.id in call_bound
    if not isinstance(expr, ast.Call):
        return False
    func = expr.func
    return not (isinstance(func, ast.Name) and func.id in BUILTIN_NAMES and func.id not in shadowed)
