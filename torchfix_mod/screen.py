"""A cheap pre-check on the ``ast`` tree: each rule says whether a file could hold
one of its findings, so files that cannot skip LibCST's metadata (most of the cost).

A screen must be a superset of what its rule reports: a test runs every example
with screens on and off and requires identical results.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator

from torchfix_mod.project import PARAMETER_CLASSES, _dotted, absolute, is_torch_module_class
from torchfix_mod.syntax import nodes

BUILTIN_NAMES = frozenset(dir(builtins))


def _import_targets(tree: ast.Module) -> dict[str, set[str]]:
    """Local name -> the absolute dotted names imports anywhere in the file bind it to."""
    memo = tree.__dict__.get("_tfm_targets")
    if memo is not None:
        return memo
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
    tree._tfm_targets = targets
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
        if dotted is not None:
            found.update(_through_imports(targets, dotted))
    memo = tree._tfm_references = frozenset(found)
    return memo


def resolved(tree: ast.Module, expr: ast.AST) -> set[str]:
    """The qualified names a name or attribute chain may have through the file's imports (any
    import of its root name, wherever it is): a superset of what LibCST's QualifiedNameProvider
    can resolve it to an imported name with. Empty when no import binds the root."""
    spelled = _dotted(expr)
    return set() if spelled is None else _through_imports(_import_targets(tree), spelled)


def _through_imports(targets: dict[str, set[str]], dotted: str) -> set[str]:
    """``dotted`` with its root name replaced by each qualified name an import binds it to."""
    head, _, rest = dotted.partition(".")
    return {f"{target}.{rest}" if rest else target for target in targets.get(head, ())}


def calls_to(tree: ast.Module, targets: frozenset[str] | set[str]) -> Iterator[ast.Call]:
    """Calls whose function may resolve to one of ``targets``."""
    for call in nodes(tree, ast.Call):
        if not resolved(tree, call.func).isdisjoint(targets):
            yield call


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
        for full in _through_imports(targets, dotted):
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



def constructor_names(tree: ast.Module) -> "Constructors":
    """What a module (or parameter) construction can be spelled with, as the rules decide it
    (``FileFacts.is_module_construction``): a call of a ``torch.nn`` module class, of a class of
    the run's other files that may be an nn.Module (``tree._tfm_project``), or of a class of
    this file that may be one. Computed once per tree."""
    memo = tree.__dict__.get("_tfm_constructors")
    if memo is None:
        memo = tree._tfm_constructors = Constructors(tree)
    return memo


class Constructors:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.local = {cls.name for cls in module_class_defs(tree)}
        self.project, self.module, self.is_package = getattr(tree, "_tfm_project", (None, None, False))
        self._seen: dict[str, bool] = {}

    def builds(self, func: ast.AST) -> bool:
        spelled = _dotted(func)
        if spelled is None:
            return False
        found = self._seen.get(spelled)
        if found is None:
            found = self._seen[spelled] = self._builds(func, spelled)
        return found

    def _builds(self, func: ast.AST, spelled: str) -> bool:
        if isinstance(func, ast.Name) and func.id in self.local:
            return True
        # through an import, or spelled as LibCST would name it without one
        for target in (*resolved(self.tree, func), spelled):
            if target in PARAMETER_CLASSES or (is_torch_module_class(target) and target != "torch.nn.Module"):
                return True
            if self.project is not None:
                found = self.project.lookup(target, self.module, self.is_package)
                if found is not None and found.module_subclass:
                    return True
        return False


def may_build_module(expr: ast.AST, call_bound: set[str], constructors: Constructors) -> bool:
    """Could ``expr`` be a module (or parameter) construction, or a local bound to one?"""
    if isinstance(expr, ast.Name):
        return expr.id in call_bound
    return isinstance(expr, ast.Call) and constructors.builds(expr.func)
