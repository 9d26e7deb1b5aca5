"""A cheap pre-check on the ``ast`` tree: each rule says whether a file could hold
one of its findings, so files that cannot skip LibCST's metadata (most of the cost).

A screen must be a superset of what its rule reports: a test runs every example
with screens on and off and requires identical results.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator

from torchfix_mod.project import _dotted, absolute, is_torch_module_class

BUILTIN_NAMES = frozenset(dir(builtins))


def walk(root: ast.AST) -> list[ast.AST]:
    """``ast.walk(root)`` as a list, computed once per node: every rule screens the same tree,
    and walking it again for each of them was most of the screening time."""
    cached = getattr(root, "_tfm_walk", None)
    if cached is None:
        cached = list(ast.walk(root))
        root._tfm_walk = cached
    return cached


def nodes(root: ast.AST, kind: type | tuple[type, ...]) -> list:
    """The nodes of one kind under ``root`` (root included), from the same single walk."""
    key = kind if isinstance(kind, tuple) else (kind,)
    memo = getattr(root, "_tfm_kinds", None)
    if memo is None:
        memo = root._tfm_kinds = {}
    found = memo.get(key)
    if found is None:
        found = memo[key] = [n for n in walk(root) if isinstance(n, key)]
    return found


def _import_targets(tree: ast.Module) -> dict[str, set[str]]:
    """Local name -> the absolute dotted names imports anywhere in the file bind it to."""
    project, module, is_package = getattr(tree, "_tfm_project", (None, None, False))
    targets: dict[str, set[str]] = {}
    for node in nodes(tree, (ast.Import, ast.ImportFrom)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    targets.setdefault(alias.asname, set()).add(alias.name)
                else:
                    top = alias.name.split(".")[0]
                    targets.setdefault(top, set()).add(top)
            continue
        source = "." * node.level + (node.module or "")
        if node.level:
            source = absolute(source, module, is_package) if module is not None else None
        if source is None:
            continue  # a relative import the analysis cannot resolve either
        for alias in node.names:
            if alias.name != "*":
                targets.setdefault(alias.asname or alias.name, set()).add(f"{source}.{alias.name}")
    return targets


def qualified_references(tree: ast.Module) -> frozenset[str]:
    """Every name the file reaches through an import, as a qualified dotted name: ``t.linalg.qr``
    after ``import torch as t`` gives ``torch.linalg.qr`` (and ``torch.linalg``, ``torch``), and
    ``from torch import qr`` gives ``torch.qr`` whether or not it is used. Rules that match
    qualified names can only report on one of these; computed once per tree."""
    memo = getattr(tree, "_tfm_references", None)
    if memo is not None:
        return memo
    targets = _import_targets(tree)
    found: set[str] = set()
    for bound in targets.values():
        found.update(bound)
    for node in nodes(tree, (ast.Attribute, ast.Name)):
        dotted = _dotted(node)
        if dotted is None:
            continue
        head, _, rest = dotted.partition(".")
        for target in targets.get(head, ()):
            found.add(f"{target}.{rest}" if rest else target)
    memo = tree._tfm_references = frozenset(found)
    return memo


def module_class_defs(tree: ast.Module) -> set[ast.ClassDef]:
    """Classes that may be nn.Modules as the rules decide it (``FileFacts``): a base spelled
    through an import of a ``torch.nn`` module class or of a module class of the run's other
    files (``tree._tfm_project``, set by the engine), or a module class of this file."""
    memo = getattr(tree, "_tfm_module_classes", None)
    if memo is not None:
        return memo
    project, module, is_package = getattr(tree, "_tfm_project", (None, None, False))
    targets = _import_targets(tree)

    def external_module(dotted: str) -> bool:
        head, _, rest = dotted.partition(".")
        for target in targets.get(head, ()):
            full = f"{target}.{rest}" if rest else target
            if is_torch_module_class(full):
                return True
            if project is not None:
                found = project.lookup(full, module, is_package)
                if found is not None and found.module_subclass:
                    return True
        return False

    classes = nodes(tree, ast.ClassDef)
    found: set[ast.ClassDef] = set()
    names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls in found:
                continue
            for base in cls.bases:
                dotted = _dotted(base)
                if dotted is not None and (external_module(dotted) or dotted in names):
                    found.add(cls)
                    names.add(cls.name)
                    changed = True
                    break
    tree._tfm_module_classes = found
    return found


def methods(tree: ast.AST) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """Every method with an instance parameter in a class that may be an nn.Module, with that
    parameter's name."""
    module_classes = module_class_defs(tree)
    for node in nodes(tree, ast.ClassDef):
        if node in module_classes:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    params = item.args.posonlyargs or item.args.args
                    if params:
                        yield item, params[0].arg


def self_stores(func: ast.AST, self_name: str) -> Iterator[ast.expr]:
    """Values of ``self.x = value`` anywhere in ``func``."""
    for node in nodes(func, ast.Assign):
        if len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_name:
                yield node.value


def called_names(func: ast.AST) -> Iterator[str]:
    """The last name of every called function or method in ``func``."""
    for node in nodes(func, ast.Call):
        if isinstance(node.func, ast.Attribute):
            yield node.func.attr
        elif isinstance(node.func, ast.Name):
            yield node.func.id


def names_from(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> original name for every ``from <module> import name [as alias]``."""
    found = {}
    for node in nodes(tree, ast.ImportFrom):
        if node.module == module and not node.level:
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
            for node in nodes(func, ast.Assign)
            if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
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
    memo = getattr(tree, "_tfm_bound", None)
    if memo is not None:
        return memo
    names: set[str] = set()
    for node in walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    tree._tfm_bound = names
    return names


def constructor_names(tree: ast.Module) -> set[str]:
    """Names a module construction can be spelled with: the rules recognise a call as one only
    through its qualified name, that is through an import (``nn.Linear``, ``Block`` from another
    file) or a class of the file."""
    memo = getattr(tree, "_tfm_constructors", None)
    if memo is None:
        memo = set()
        for node in nodes(tree, (ast.Import, ast.ImportFrom, ast.ClassDef)):
            if isinstance(node, ast.ClassDef):
                memo.add(node.name)
            else:
                memo.update((a.asname or a.name).split(".")[0] for a in node.names)
        tree._tfm_constructors = memo
    return memo


def _root_name(expr: ast.AST) -> str | None:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def may_build_module(expr: ast.AST, call_bound: set[str], constructors: set[str]) -> bool:
    """Could ``expr`` be a module construction (a call spelled through an import or a class of
    the file) or a local bound to one?"""
    if isinstance(expr, ast.Name):
        return expr.id in call_bound
    if not isinstance(expr, ast.Call):
        return False
    return _root_name(expr.func) in constructors
