"""Shared machinery of the deprecated-API rules (TFM601-TFM604).

A rule lists its APIs in ``torchfix_mod.deprecations``. This module finds every reference to
them through LibCST's qualified names (``import torch as t; t.qr``, ``from torch import qr``,
``import torch.nn as nn; nn.UpsamplingNearest2d``), reports calls, other references and
``from ... import`` lines, and applies the few argument rewrites the table names. Fixes are
built when the whole file has been seen, so the names a fix may add are checked against every
name of the file.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Sequence
from typing import ClassVar

import libcst as cst
from libcst.metadata import ImportAssignment

from torchfix_mod.analysis import dotted_name
from torchfix_mod.deprecations import AUTOCAST_GLOBALS, AUTOCAST_PARAMETERS, Deprecation, docs_table
from torchfix_mod.legacy_rule import Fix, ImportNeed, Rule
from torchfix_mod.suppress import is_suppressed, noqa_codes
from torchfix_mod.screen import qualified_references

NO_SPACE = cst.SimpleWhitespace("")
SPACE = cst.SimpleWhitespace(" ")
# names of version checks: is_torch_version, __version__, TORCH_VERSION, _TORCH_GREATER_EQUAL_2_2
VERSION_NAME = re.compile(r"version|torch_(?:greater|less|ge|gt|le|lt)(?:_|$)", re.IGNORECASE)
# exceptions a fallback for an older PyTorch catches when the new API is missing
AVAILABILITY_ERRORS = frozenset(
    {"ImportError", "ModuleNotFoundError", "AttributeError", "TypeError", "NameError", "Exception", "BaseException"}
)


# -- docs -----------------------------------------------------------------------


def documented(cls):
    """Appends the rule's table of APIs (from the data) to its documentation."""
    cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\n## APIs\n{docs_table(cls.code)}\n"
    return cls


# -- arguments ------------------------------------------------------------------


def keyword(name: str, value: cst.BaseExpression, comma=cst.MaybeSentinel.DEFAULT) -> cst.Arg:
    return cst.Arg(value=value, keyword=cst.Name(name), equal=cst.AssignEqual(NO_SPACE, NO_SPACE), comma=comma)


def as_keyword(arg: cst.Arg, name: str) -> cst.Arg:
    if arg.keyword is not None:
        return arg
    return arg.with_changes(keyword=cst.Name(name), equal=cst.AssignEqual(NO_SPACE, NO_SPACE))


def as_positional(arg: cst.Arg) -> cst.Arg:
    return arg.with_changes(keyword=None, equal=cst.MaybeSentinel.DEFAULT)


def bind(call: cst.Call, params: Sequence[str], keyword_only: Sequence[str] = ()) -> dict[str, int] | str:
    """Parameter -> index in ``call.args``, as Python would bind the call against
    ``(params..., *, keyword_only...)``; a reason when the call cannot be bound statically."""
    bound: dict[str, int] = {}
    position = 0
    for index, arg in enumerate(call.args):
        if arg.star:
            return "it passes `*args`/`**kwargs`"
        if arg.keyword is None:
            if position >= len(params):
                return "it passes more positional arguments than the function takes"
            name = params[position]
            position += 1
        else:
            name = arg.keyword.value
            if name not in params and name not in keyword_only:
                return f"it passes an unknown argument `{name}`"
        if name in bound:
            return f"it passes `{name}` twice"
        bound[name] = index
    return bound


def bool_literal(expr: cst.BaseExpression) -> bool | None:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value == "True"
    return None


def int_literal(expr: cst.BaseExpression) -> int | None:
    """The value of ``3`` or ``-3`` (no parentheses), else None."""
    if isinstance(expr, cst.Integer) and not expr.lpar:
        return int(expr.value, 0)
    if (
        isinstance(expr, cst.UnaryOperation)
        and isinstance(expr.operator, cst.Minus)
        and isinstance(expr.expression, cst.Integer)
        and not expr.lpar
        and not expr.expression.lpar
    ):
        return -int(expr.expression.value, 0)
    return None


def number(value: int, as_float: bool) -> cst.BaseExpression:
    text = f"{abs(value)}.0" if as_float else str(abs(value))
    literal = cst.Float(text) if as_float else cst.Integer(text)
    return literal if value >= 0 else cst.UnaryOperation(cst.Minus(), literal)


def with_commas(args: list[cst.Arg], original: Sequence[cst.Arg]) -> list[cst.Arg]:
    """Separators after rewriting: each argument but the last has a comma, the last keeps the
    call's original trailing comma (or none)."""
    trailing = original[-1].comma if original else cst.MaybeSentinel.DEFAULT
    result = []
    for index, arg in enumerate(args):
        if index == len(args) - 1:
            result.append(arg.with_changes(comma=trailing))
        elif not isinstance(arg.comma, cst.Comma):
            result.append(arg.with_changes(comma=cst.Comma(whitespace_after=SPACE)))
        else:
            result.append(arg)
    return result


def leading_comma(call: cst.Call) -> cst.Comma:
    """The comma after an argument inserted first: on its own line when the call puts its
    first argument on a new line."""
    if isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        return cst.Comma(whitespace_after=call.whitespace_before_args)
    return cst.Comma(whitespace_after=SPACE)


def is_store(facts, node: cst.CSTNode) -> bool:
    """``node`` is assigned or deleted rather than read."""
    parent = facts.parent(node)
    if isinstance(parent, (cst.AssignTarget, cst.Del)):
        return True
    if isinstance(parent, (cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor)) and parent.target is node:
        return True
    return isinstance(parent, cst.AsName)


def catches_missing_api(handler: cst.ExceptHandler) -> bool:
    """``except:``, ``except ImportError:``, ``except (AttributeError, TypeError) as e:`` ..."""
    if handler.type is None:
        return True
    types = handler.type.elements if isinstance(handler.type, cst.Tuple) else [handler.type]
    for element in types:
        value = element.value if isinstance(element, cst.Element) else element
        name = dotted_name(value)
        if name is not None and name.rpartition(".")[2] in AVAILABILITY_ERRORS:
            return True
    return False


def catches_import_error(handler: cst.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elements if isinstance(handler.type, cst.Tuple) else [handler.type]
    names = {dotted_name(e.value if isinstance(e, cst.Element) else e) for e in types}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def tests_version(test: cst.BaseExpression) -> bool:
    """A condition that checks the PyTorch version or the presence of an API:
    ``is_torch_version("<", "2.2")``, ``torch.__version__ >= ...``, ``hasattr(torch, "func")``."""
    for node in _walk(test):
        if isinstance(node, cst.Name) and (VERSION_NAME.search(node.value) or node.value in ("hasattr", "getattr")):
            return True
    return False


def _walk(node: cst.CSTNode):
    yield node
    for child in node.children:
        yield from _walk(child)


Rewrite = Callable[[cst.Call, cst.BaseExpression], cst.BaseExpression]


class Plan:
    """A fix being built: a rewrite of the call (``edit``) or of the reference itself."""

    def __init__(self, edit: Rewrite, unsafe: bool = False) -> None:
        self.edit = edit
        self.unsafe = unsafe


def _imports(module: cst.Module) -> list[cst.Import | cst.ImportFrom]:
    import libcst.matchers as m

    return list(m.findall(module, m.Import() | m.ImportFrom()))


# -- the rule base ----------------------------------------------------------------


class DeprecatedApiRule(Rule):
    """Reports references to the APIs of ``table`` and fixes the calls a rewrite covers."""

    table: ClassVar[dict[str, Deprecation]] = {}
    # uses of a name bound by `from ... import` are reported where they are used; False when
    # the rule fixes the import line itself (TFM603) and the uses need no change
    report_name_uses: ClassVar[bool] = True
    state: ClassVar[str] = "is deprecated"

    def __init__(self, facts, options) -> None:
        super().__init__(facts, options)
        self._in_import = 0
        self._references: list[tuple[cst.Name | cst.Attribute, Deprecation]] = []
        self._imports: list[tuple[cst.ImportFrom, list[tuple[cst.ImportAlias, Deprecation]]]] = []
        self._reference_fix: dict[cst.CSTNode, tuple[Fix | None, cst.CSTNode]] = {}
        self._bindings: dict[str, str] | None = None

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        found = qualified_references(tree)
        return any(name in found for name in cls.table)

    # -- collection ---------------------------------------------------------------

    def visit_Import(self, node: cst.Import) -> None:
        self._in_import += 1

    def leave_Import(self, original_node: cst.Import) -> None:
        self._in_import -= 1

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self._in_import += 1
        module = dotted_name(node.module) if node.module is not None else None
        if node.relative or module is None or isinstance(node.names, cst.ImportStar):
            return
        found = []
        for alias in node.names:
            entry = self.table.get(f"{module}.{dotted_name(alias.name)}")
            if entry is not None:
                found.append((alias, entry))
        if found:
            self._imports.append((node, found))

    def leave_ImportFrom(self, original_node: cst.ImportFrom) -> None:
        self._in_import -= 1

    def visit_Name(self, node: cst.Name) -> None:
        if not self._in_import:
            self._collect(node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if not self._in_import:
            self._collect(node)

    def _collect(self, node: cst.Name | cst.Attribute) -> None:
        parent = self.facts.parent(node)
        if isinstance(parent, cst.Attribute) and parent.value is node:
            return  # a part of a longer dotted name
        if isinstance(node, cst.Name):
            if not self.report_name_uses:
                return
            if isinstance(parent, cst.Attribute) and parent.attr is node:
                return
        qnames = self.facts.qualified_names(node)
        if len(qnames) != 1:
            return
        entry = self.table.get(next(iter(qnames)))
        if entry is None:
            return
        if isinstance(node, cst.Name) and self._bound_by_import(node):
            return  # `import torch.nn.utils.weight_norm as wn` binds the module, not the function
        self._references.append((node, entry))

    def _bound_by_import(self, node: cst.Name) -> bool:
        scope = self.facts.scope(node)
        if scope is None or node.value not in scope:
            return False
        return any(isinstance(getattr(a, "node", None), cst.Import) for a in scope[node.value])

    # -- reporting ----------------------------------------------------------------

    def message(self, entry: Deprecation, reason: str = "", imported: bool = False) -> str:
        where = " (imported here)" if imported else ""
        text = f"`{entry.name}`{where} {self.state}; use `{entry.replacement}`"
        if entry.note:
            text += f" ({entry.note})"
        if reason:
            text += f"; not fixed: {reason}"
        return text

    def in_compat_code(self, node: cst.CSTNode) -> bool:
        """``node`` is in code kept for older PyTorch releases, where the old API is the right
        one: an ``except ImportError``/``AttributeError``/... fallback, or a branch of an ``if``
        that tests a version or ``hasattr``."""
        for ancestor in self.facts.ancestors(node):
            if isinstance(ancestor, cst.ExceptHandler) and catches_missing_api(ancestor):
                return True
            if isinstance(ancestor, (cst.If, cst.IfExp)) and tests_version(ancestor.test):
                return True
        return False

    def import_probe(self, statement: cst.ImportFrom) -> bool:
        """``try: from functorch import vmap`` / ``except ImportError: ...``: the import tries
        the old API first on purpose (the new one may be missing)."""
        child = statement
        for ancestor in self.facts.ancestors(statement):
            if isinstance(ancestor, cst.Try) and child is ancestor.body:
                return any(catches_import_error(handler) for handler in ancestor.handlers)
            child = ancestor
        return False

    def leave_Module(self, original_node: cst.Module) -> None:
        self._references = [(n, e) for n, e in self._references if not self.in_compat_code(n)]
        self._imports = [
            (i, a) for i, a in self._imports if not self.in_compat_code(i) and not self.import_probe(i)
        ]
        for node, entry in self._references:
            parent = self.facts.parent(node)
            call = parent if isinstance(parent, cst.Call) and parent.func is node else None
            plan = self.plan(node, call, entry) if entry.rewrite else None
            reason = plan if isinstance(plan, str) else ""
            fix = None
            if isinstance(plan, Plan):
                fix = self._fix(node, call, entry, plan)
                if fix is None:
                    reason = f"`{entry.target}` cannot be named here without shadowing a name"
            if reason and call is None:
                reason = ""  # a reference that is not called: the message says it all
            target = call if call is not None else node
            self.report(target, self.message(entry, reason), fix)
            self._reference_fix[node] = (fix, target)
        for statement, aliases in self._imports:
            self.report_import(statement, aliases)

    def report_import(self, statement: cst.ImportFrom, aliases: list[tuple[cst.ImportAlias, Deprecation]]) -> None:
        """One finding per deprecated name. Its fix drops the import, offered only when every
        use of the name in the file is fixed (each use's fix drops it once unused)."""
        for alias, entry in aliases:
            fix = None
            if alias.asname is None:
                uses = self._uses(statement, alias.name.value)
                fixes = [self._reference_fix.get(use) for use in uses]
                if uses and all(f is not None and f[0] is not None for f in fixes) and not self._suppressed(fixes):
                    module = dotted_name(statement.module)
                    unsafe = any(f[0].unsafe for f in fixes)
                    fix = Fix({}, removals=(ImportNeed(module, alias.name.value),), unsafe=unsafe)
            self.report(alias, self.message(entry, imported=True), fix)

    def _uses(self, statement: cst.ImportFrom, name: str) -> list[cst.CSTNode]:
        scope = self.facts.scope(statement)
        if scope is None or name not in scope:
            return []
        uses = []
        for assignment in scope.assignments[name]:
            if isinstance(assignment, ImportAssignment) and assignment.node is statement:
                uses.extend(access.node for access in assignment.references)
        return uses

    def _suppressed(self, fixes) -> bool:
        """A use's finding silenced with ``# noqa`` is not fixed: its import stays."""
        source = self.facts.memo.get("tfm6-source")
        if source is None:
            source = self.facts.memo["tfm6-source"] = self.facts.module.code
        if "noqa" not in source.lower():
            return False
        codes = noqa_codes(source)
        for _, target in fixes:
            position = self.facts.position(target)
            first, last = position.start.line, position.end.line
            lines = range(first, first + 1) if first == last else range(first, last + 1, last - first)
            if is_suppressed(codes, self.code, lines):
                return True
        return False

    # -- fixes ----------------------------------------------------------------------

    def plan(self, node: cst.Name | cst.Attribute, call: cst.Call | None, entry: Deprecation) -> Plan | str | None:
        """How to fix this reference: a Plan, a reason why not, or None (nothing to say)."""
        rewrite = entry.rewrite
        if rewrite == "rename":
            if is_store(self.facts, node):
                return None
            return Plan(lambda updated, func: func)
        if call is None:
            return self.plan_reference(node, entry)
        method = getattr(self, f"rewrite_{rewrite}")
        return method(call, entry)

    def plan_reference(self, node: cst.CSTNode, entry: Deprecation) -> Plan | str | None:
        return None

    def _fix(self, node, call: cst.Call | None, entry: Deprecation, plan: Plan) -> Fix | None:
        found = self.reference(entry.target, node)
        if found is None:
            return None
        func, imports = found
        removals = self._removals(node, entry)
        if call is not None and entry.rewrite != "rename":
            edits = {call: lambda updated: plan.edit(updated, func)}
        else:
            edits = {node: lambda updated: plan.edit(updated, func)}
        return Fix(edits, imports=imports, removals=removals, unsafe=plan.unsafe)

    def _removals(self, node: cst.CSTNode, entry: Deprecation) -> tuple[ImportNeed, ...]:
        """The import the fix may leave unused: ``from m import name`` for a bare name, or
        ``import m`` for ``m.name`` when the replacement does not live in ``m``."""
        if isinstance(node, cst.Name):
            (qname,) = self.facts.qualified_names(node)
            module, _, name = qname.rpartition(".")
            return (ImportNeed(module, name),) if name == node.value else ()
        root = node
        while isinstance(root, cst.Attribute):
            root = root.value
        if isinstance(root, cst.Name):
            qnames = self.facts.qualified_names(root)
            if qnames == {root.value} and not entry.target.startswith(f"{root.value}."):
                return (ImportNeed(root.value),)
        return ()

    def reference(self, target: str, at: cst.CSTNode) -> tuple[cst.BaseExpression, tuple[ImportNeed, ...]] | None:
        """An expression naming ``target`` at ``at``: the reference's own module spelling
        (``t.qr`` -> ``t.linalg.qr``), else a top-level import of the file, else a new
        ``import torch`` when the name ``torch`` is free."""
        if isinstance(at, cst.Attribute):
            root = at
            while isinstance(root, cst.Attribute):
                root = root.value
            if isinstance(root, cst.Name):
                qnames = self.facts.qualified_names(root)
                if len(qnames) == 1:
                    (prefix,) = qnames
                    if target.startswith(f"{prefix}."):
                        return cst.parse_expression(root.value + target[len(prefix):]), ()
        scope = self.facts.scope(at)
        if scope is None:
            return None
        bindings = self._module_bindings(scope)
        parts = target.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            local = bindings.get(prefix)
            if local is not None and {q.name for q in scope.get_qualified_names_for(local)} == {prefix}:
                return cst.parse_expression(local + target[len(prefix):]), ()
        if target.startswith("torch.") and self._name_free("torch"):
            return cst.parse_expression(target), (ImportNeed("torch"),)
        return None

    def _name_free(self, name: str) -> bool:
        """No scope of the file binds or reads ``name`` and no ``import *`` may bind it: a
        new top-level ``import name`` then means the module everywhere."""
        key = ("tfm6-free", name)
        if key not in self.facts.memo:
            free = not any(isinstance(s, cst.ImportFrom) and isinstance(s.names, cst.ImportStar) for s in self._all_imports())
            if free:
                for scope in self.facts.scopes():
                    if scope is not None and (scope.assignments[name] or scope.accesses[name]):
                        free = False
                        break
            self.facts.memo[key] = free
        return self.facts.memo[key]

    def _all_imports(self):
        return [n for n in self.facts.memo.setdefault("tfm6-imports", _imports(self.facts.module))]

    def _module_bindings(self, scope) -> dict[str, str]:
        """Qualified name -> local name, for the module's unconditional top-level imports."""
        if self._bindings is None:
            top_level = set()
            for stmt in self.facts.module.body:
                if isinstance(stmt, cst.SimpleStatementLine):
                    top_level.update(s for s in stmt.body if isinstance(s, (cst.Import, cst.ImportFrom)))
            module_scope = scope.globals
            bindings: dict[str, str] = {}
            for assignment in module_scope.assignments:
                if "." in assignment.name or getattr(assignment, "node", None) not in top_level:
                    continue
                qnames = {q.name for q in module_scope.get_qualified_names_for(assignment.name)}
                if len(qnames) == 1:
                    bindings.setdefault(next(iter(qnames)), assignment.name)
            self._bindings = bindings
        return self._bindings

    # -- the argument rewrites ------------------------------------------------------

    def rewrite_qr(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call, ("input", "some"), ("out",))
        if isinstance(bound, str):
            return bound
        if bound.get("input") != 0:
            return "the input is not its first argument" if "input" in bound else "it passes no input"
        some = bound.get("some")
        if some is not None and bool_literal(call.args[some].value) is None:
            return "`some` is not the literal True or False"
        complete = some is not None and bool_literal(call.args[some].value) is False

        def edit(updated: cst.Call, func) -> cst.Call:
            args = list(updated.args)
            args[0] = as_positional(args[0])
            if some is not None:  # some=True is the default mode="reduced"
                args[some] = keyword("mode", cst.SimpleString('"complete"'), args[some].comma) if complete else None
            return updated.with_changes(func=func, args=with_commas([a for a in args if a is not None], updated.args))

        return Plan(edit)

    def rewrite_cholesky(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call, ("input", "upper"), ("out",))
        if isinstance(bound, str):
            return bound
        if bound.get("input") != 0:
            return "the input is not its first argument" if "input" in bound else "it passes no input"
        upper = bound.get("upper")
        drop = upper is not None and bool_literal(call.args[upper].value) is False

        def edit(updated: cst.Call, func) -> cst.Call:
            args = list(updated.args)
            args[0] = as_positional(args[0])
            if upper is not None:
                args[upper] = None if drop else as_keyword(args[upper], "upper")
            return updated.with_changes(func=func, args=with_commas([a for a in args if a is not None], updated.args))

        return Plan(edit)

    def rewrite_range(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        keyword_only = ("out", "dtype", "layout", "device", "requires_grad")
        bound = bind(call, ("start", "end", "step"), keyword_only)
        if isinstance(bound, str):
            return bound
        if "start" not in bound or "end" not in bound:
            return "it does not pass both `start` and `end`"
        if "out" in bound:
            return "it passes `out=`"
        values = {name: int_literal(call.args[bound[name]].value) for name in ("start", "end", "step") if name in bound}
        if any(value is None for value in values.values()):
            return "`start`, `end` and `step` are not all integer literals (with floats `range` and `arange` may differ by an element)"
        step = values.get("step", 1)
        if step == 0:
            return "`step` is 0"
        as_float = "dtype" not in bound  # keep torch.range's default floating dtype
        start_at, end_at = bound["start"], bound["end"]
        # range(a, b, s) stops at the last a + k*s <= b (>= b when s < 0); so does arange up
        # to b + 1 (b - 1) with integers, whatever the remainder of (b - a) / s
        start, end = values["start"], values["end"] + (1 if step > 0 else -1)

        def edit(updated: cst.Call, func) -> cst.Call:
            args = list(updated.args)
            if as_float:
                args[start_at] = args[start_at].with_changes(value=number(start, True))
            args[end_at] = args[end_at].with_changes(value=number(end, as_float))
            return updated.with_changes(func=func, args=args)

        return Plan(edit)

    def rewrite_chain_matmul(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        matrices = [i for i, arg in enumerate(call.args) if arg.keyword is None and arg.star != "**"]
        others = [i for i, arg in enumerate(call.args) if i not in matrices]
        if any(call.args[i].star == "**" or call.args[i].keyword.value != "out" for i in others):
            return "it passes arguments other than matrices and `out=`"
        if not matrices:
            return "it passes no matrices"
        if matrices != list(range(len(matrices))):
            return "the matrices are not passed first"
        starred = any(call.args[i].star for i in matrices)
        if not starred and len(matrices) < 2:
            return "`torch.linalg.multi_dot` needs at least two matrices"
        count = len(matrices)

        def edit(updated: cst.Call, func) -> cst.Call:
            args = list(updated.args)
            elements = []
            for index, arg in enumerate(args[:count]):
                comma = arg.comma if index < count - 1 else cst.MaybeSentinel.DEFAULT
                if arg.star:
                    elements.append(cst.StarredElement(arg.value, comma=comma, whitespace_before_value=arg.whitespace_after_star))
                else:
                    elements.append(cst.Element(arg.value, comma=comma))
            matrices_arg = cst.Arg(cst.List(elements), comma=args[count - 1].comma)
            return updated.with_changes(func=func, args=with_commas([matrices_arg, *args[count:]], updated.args))

        # `*matrices` may hold a single matrix: chain_matmul returns a copy, multi_dot raises
        return Plan(edit, unsafe=starred)

    def rewrite_matrix_rank(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call, ("input", "tol", "symmetric"))
        if isinstance(bound, str):
            return bound
        if bound.get("input") != 0:
            return "the input is not its first argument" if "input" in bound else "it passes no input"
        if "tol" in bound:
            return "it passes `tol` (use `atol=tol, rtol=0`)"
        symmetric = bound.get("symmetric")

        def edit(updated: cst.Call, func) -> cst.Call:
            args = list(updated.args)
            args[0] = as_positional(args[0])
            if symmetric is not None:
                args[symmetric] = args[symmetric].with_changes(
                    keyword=cst.Name("hermitian"), equal=cst.AssignEqual(NO_SPACE, NO_SPACE)
                )
            return updated.with_changes(func=func, args=args)

        # the old function is gone: its documented default tolerance is the new one's
        return Plan(edit, unsafe=True)

    def rewrite_upsample(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call, ("size", "scale_factor"))
        if isinstance(bound, str):
            return bound
        bilinear = entry.name.endswith("Bilinear2d")

        def edit(updated: cst.Call, func) -> cst.Call:
            extra = [keyword("mode", cst.SimpleString('"bilinear"' if bilinear else '"nearest"'))]
            if bilinear:
                extra.append(keyword("align_corners", cst.Name("True")))
            return updated.with_changes(func=func, args=with_commas([*updated.args, *extra], updated.args))

        # the same forward; the module is an nn.Upsample (type checks, repr)
        return Plan(edit, unsafe=True)

    def rewrite_pytree(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        params = ("cls", "flatten_fn", "unflatten_fn", "to_str_fn", "maybe_from_str_fn")
        keyword_only = ("serialized_type_name", "to_dumpable_context", "from_dumpable_context", "flatten_with_keys_fn")
        bound = bind(call, params, keyword_only)
        if isinstance(bound, str):
            return bound
        if "to_str_fn" in bound or "maybe_from_str_fn" in bound:
            return "it passes `to_str_fn`/`maybe_from_str_fn`, which the replacement does not take"
        # registers with the C++ pytree too and rejects a type registered twice
        return Plan(lambda updated, func: updated.with_changes(func=func), unsafe=True)

    def rewrite_autocast(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call, AUTOCAST_PARAMETERS)
        if isinstance(bound, str):
            return bound
        device = cst.SimpleString(f'"{entry.device}"')
        # without dtype= / cache_enabled=, torch.amp.autocast reads global settings the old
        # class did not: equal unless the program changes them
        unsafe = not {"dtype", "cache_enabled"} <= set(bound) and not AUTOCAST_GLOBALS.isdisjoint(self.facts.names_used)

        def edit(updated: cst.Call, func) -> cst.Call:
            args = [as_keyword(arg, AUTOCAST_PARAMETERS[i]) if arg.keyword is None else arg for i, arg in enumerate(updated.args)]
            first = cst.Arg(device, comma=leading_comma(updated) if args else cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(func=func, args=[first, *args])

        return Plan(edit, unsafe=unsafe)

    def rewrite_device_first(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        if any(arg.keyword is not None and arg.keyword.value == "device" for arg in call.args):
            return "it passes `device=`"
        device = cst.SimpleString(f'"{entry.device}"')

        def edit(updated: cst.Call, func) -> cst.Call:
            args = list(updated.args)
            first = cst.Arg(device, comma=leading_comma(updated) if args else cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(func=func, args=[first, *args])

        return Plan(edit)

    def rewrite_device_keyword(self, call: cst.Call, entry: Deprecation) -> Plan | str:
        if any(arg.keyword is not None and arg.keyword.value == "device_type" for arg in call.args):
            return "it passes `device_type=`"
        device = keyword("device_type", cst.SimpleString(f'"{entry.device}"'))

        def edit(updated: cst.Call, func) -> cst.Call:
            return updated.with_changes(func=func, args=with_commas([*updated.args, device], updated.args))

        return Plan(edit)
