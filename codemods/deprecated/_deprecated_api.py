"""Shared machinery of the deprecated-API rules (TFM601-TFM604).

A rule lists its APIs in ``_deprecations``. This module finds every reference to
them through the file's imports (``import torch as t; t.qr``, ``from torch import qr``,
``import torch.nn as nn; nn.UpsamplingNearest2d``), reports calls, other references and
``from ... import`` lines, and decides the few argument rewrites the table names. Fixes are
decided when the whole file has been seen, so the names a fix may add are checked against
every name of the file. The LibCST changes that write them are in ``_deprecated_edits``.
"""

from __future__ import annotations

import ast
import bisect
import inspect
import io
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from torchfix_mod.suppress import tokenizable
from torchfix_mod.codemods.deprecated._deprecations import AUTOCAST_GLOBALS, AUTOCAST_PARAMETERS, DEPRECATIONS, Deprecation, docs_table
from torchfix_mod.edits import Deferred
from torchfix_mod.rule import Fix, ImportNeed, Rule
from torchfix_mod.semantic import Binding, SemanticModel, dotted
from torchfix_mod.suppress import is_suppressed, noqa_codes

# every qualified name of every rule of the family, and the last part of each
ALL_NAMES = frozenset(name for entry in DEPRECATIONS for name in (entry.name, *entry.aliases))
LAST_PARTS = frozenset(name.rpartition(".")[2] for name in ALL_NAMES)


# -- docs -----------------------------------------------------------------------


def documented(cls):
    """Appends the rule's table of APIs (from the data) to its documentation."""
    cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\n## APIs\n{docs_table(cls.code)}\n"
    return cls


# -- changes ----------------------------------------------------------------------


def Change(name: str) -> Deferred:  # noqa: N802 (reads as the change it names)
    """A change function of ``_deprecated_edits``, imported only when a fix is written."""
    return Deferred("torchfix_mod.codemods.deprecated._deprecated_edits", name)


# -- arguments ------------------------------------------------------------------


def call_arguments(call: ast.Call) -> list[ast.expr | ast.keyword]:
    """The call's arguments in source order, as LibCST lists them: positional values,
    ``*args`` (``ast.Starred``), ``name=value`` and ``**kwargs`` (``ast.keyword``)."""
    return sorted([*call.args, *call.keywords], key=lambda a: (a.lineno, a.col_offset))


def star(arg: ast.expr | ast.keyword) -> str:
    if isinstance(arg, ast.Starred):
        return "*"
    if isinstance(arg, ast.keyword) and arg.arg is None:
        return "**"
    return ""


def keyword_name(arg: ast.expr | ast.keyword) -> str | None:
    return arg.arg if isinstance(arg, ast.keyword) else None


def value(arg: ast.expr | ast.keyword) -> ast.expr:
    return arg.value if isinstance(arg, (ast.keyword, ast.Starred)) else arg


def bind(args: Sequence[ast.expr | ast.keyword], params: Sequence[str], keyword_only: Sequence[str] = ()) -> dict[str, int] | str:
    """Parameter -> index in ``args``, as Python would bind the call against
    ``(params..., *, keyword_only...)``; a reason when the call cannot be bound statically."""
    bound: dict[str, int] = {}
    position = 0
    for index, arg in enumerate(args):
        if star(arg):
            return "it passes `*args`/`**kwargs`"
        name = keyword_name(arg)
        if name is None:
            if position >= len(params):
                return "it passes more positional arguments than the function takes"
            name = params[position]
            position += 1
        elif name not in params and name not in keyword_only:
            return f"it passes an unknown argument `{name}`"
        if name in bound:
            return f"it passes `{name}` twice"
        bound[name] = index
    return bound


def bool_literal(expr: ast.expr) -> bool | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, bool):
        return expr.value
    return None


@dataclass(frozen=True)
class Tokens:
    """The file's tokens but comments and line breaks inside brackets, by start position
    (line, character column)."""

    starts: list[tuple[int, int]]
    types: list[int]
    strings: list[str]

    def index(self, line: int, column: int) -> int:
        """The first token starting at or after the position."""
        return bisect.bisect_left(self.starts, (line, column))


def tokens(model: SemanticModel) -> Tokens | None:
    """None when the tokenizer rejects what the parser took."""
    key = ("tfm6", "tokens")
    if key not in model.memo:
        found: Tokens | None = Tokens([], [], [])
        try:
            for token in tokenize.generate_tokens(io.StringIO(tokenizable(model.source)).readline):
                if token.type not in (tokenize.COMMENT, tokenize.NL):
                    found.starts.append(token.start)
                    found.types.append(token.type)
                    found.strings.append(token.string)
        except (tokenize.TokenError, SyntaxError):
            found = None
        model.memo[key] = found
    return model.memo[key]


def parentheses_before(model: SemanticModel, node: ast.AST) -> int:
    """How many ``(`` come right before ``node`` (comments and line breaks between)."""
    found = tokens(model)
    if found is None:
        return 0
    span = model.span(node)
    index = found.index(span.line, span.column)
    count = 0
    while index - count > 0 and found.strings[index - count - 1] == "(":
        count += 1
    return count


def parenthesized(model: SemanticModel, expr: ast.expr, first_argument: bool = False) -> bool:
    """``expr`` has parentheses of its own; a call's first argument follows the call's ``(``."""
    return parentheses_before(model, expr) > (1 if first_argument else 0)


def int_literal(model: SemanticModel, expr: ast.expr, first_argument: bool = False) -> int | None:
    """The value of ``3`` or ``-3`` (no parentheses), else None."""
    if parenthesized(model, expr, first_argument):
        return None
    if isinstance(expr, ast.Constant) and type(expr.value) is int:
        return expr.value
    if (
        isinstance(expr, ast.UnaryOp)
        and isinstance(expr.op, ast.USub)
        and isinstance(expr.operand, ast.Constant)
        and type(expr.operand.value) is int
        and not parenthesized(model, expr.operand)
    ):
        return -expr.operand.value
    return None


# -- where a reference is -----------------------------------------------------------


def is_store(model: SemanticModel, node: ast.expr) -> bool:
    """``node`` is itself the target of an assignment, ``del``, ``for``, ``with ... as`` (not
    an element of a tuple target)."""
    parent = model.parent(node)
    if isinstance(parent, ast.Assign):
        return node in parent.targets
    if isinstance(parent, ast.Delete):
        return parent.targets == [node]
    if isinstance(parent, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor, ast.comprehension)):
        return parent.target is node
    return isinstance(parent, ast.withitem) and parent.optional_vars is node


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return bool({dotted(e) for e in caught} & {"ImportError", "ModuleNotFoundError"})


def in_compat_code(model: SemanticModel, node: ast.AST) -> bool:
    """``node`` is in code kept for other PyTorch releases (:meth:`SemanticModel.in_version_gate`)."""
    return model.in_version_gate(node)


def import_probe(model: SemanticModel, statement: ast.ImportFrom) -> bool:
    """``try: from functorch import vmap`` / ``except ImportError: ...``: the import tries
    the old API first on purpose (the new one may be missing)."""
    child: ast.AST = statement
    for ancestor in model.ancestors(statement):
        if isinstance(ancestor, ast.Try) and any(child is stmt for stmt in ancestor.body):
            return any(catches_import_error(handler) for handler in ancestor.handlers)
        child = ancestor
    return False


# -- names ------------------------------------------------------------------------


def identifiers(model: SemanticModel) -> set[str]:
    """Every identifier written in the file: names, attributes, keywords, parameters,
    definitions and the parts of imported names."""
    key = ("tfm6", "identifiers")
    found = model.memo.get(key)
    if found is None:
        found = set(model.names_used)
        for node in model.nodes((ast.Attribute, ast.keyword, ast.arg, ast.alias, ast.ImportFrom, ast.Global, ast.Nonlocal)):
            if isinstance(node, ast.Attribute):
                found.add(node.attr)
            elif isinstance(node, (ast.keyword, ast.arg)):
                if node.arg is not None:
                    found.add(node.arg)
            elif isinstance(node, ast.alias):
                found.update(node.name.split("."))
                if node.asname:
                    found.add(node.asname)
            elif isinstance(node, ast.ImportFrom):
                if node.module:
                    found.update(node.module.split("."))
            else:
                found.update(node.names)
        model.memo[key] = found
    return found


def import_bound(model: SemanticModel) -> set[str]:
    """Names some import of the file binds, in any scope."""
    key = ("tfm6", "import-bound")
    found = model.memo.get(key)
    if found is None:
        found = {
            name
            for scope in model.scopes
            for name, bindings in scope.bindings.items()
            if any(b.kind in ("import", "from-import") for b in bindings)
        }
        model.memo[key] = found
    return found


def _ready(model: SemanticModel, binding: Binding) -> tuple[int, int]:
    """Where reads of the binding's own scope start to see it (LibCST counts a binding from
    the end of the statement, or of the part of it, that makes it)."""
    node = binding.node
    if binding.kind in ("import", "from-import"):
        node = binding.statement
    elif binding.kind == "param":
        return (0, 0)
    elif binding.kind == "except":
        node = node.type or node  # the handler's body sees its name
    elif binding.kind == "assign":
        child = node
        for ancestor in model.ancestors(node):
            if isinstance(ancestor, ast.comprehension):
                return (0, 0)  # the target is bound before the element is computed
            if isinstance(ancestor, (ast.For, ast.AsyncFor, ast.withitem)):
                node = child  # the loop body (the `with` body) sees the target
                break
            if isinstance(ancestor, (ast.NamedExpr, ast.stmt)):
                node = ancestor
                break
            child = ancestor
    return (node.end_lineno or 0, node.end_col_offset or 0)


def visible_bindings(model: SemanticModel, name: ast.Name) -> list[Binding]:
    """The bindings a read sees as LibCST's scope analysis resolves it: in the read's own
    scope only those made before it; when there are none, those of the enclosing scope."""
    scope = model.scope(name)
    found = scope.resolve(name.id)
    if not found or found[0].scope is not scope:
        return found
    at = (name.lineno, name.col_offset)
    previous = [b for b in found if _ready(model, b) <= at]
    if previous or scope.parent is None:
        return previous
    return scope.parent.resolve(name.id)


def read_qualified_names(model: SemanticModel, expr: ast.AST) -> set[str]:
    """``model.qualified_names``, with a read name resolved as LibCST resolves an access
    (:func:`visible_bindings`)."""
    if not (isinstance(expr, ast.Name) and isinstance(expr.ctx, (ast.Load, ast.Del))):
        return model.qualified_names(expr)
    if not model.scope(expr).resolve(expr.id):
        return model.qualified_names(expr)  # a builtin or an unbound name
    return {b.target if b.target is not None else b.scope.name + b.name for b in visible_bindings(model, expr)}


def _chain_root(expr: ast.AST) -> ast.AST:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr


def chain_qualified_names(model: SemanticModel, expr: ast.AST) -> set[str]:
    """Qualified names of a name or attribute chain; a bare name is a read."""
    return read_qualified_names(model, expr) if isinstance(expr, ast.Name) else model.qualified_names(expr)


TYPING = ("typing.", "typing_extensions.")
LITERAL = frozenset({"typing.Literal", "typing_extensions.Literal"})


def annotation_strings(model: SemanticModel) -> list[tuple[ast.Constant, frozenset[str]]]:
    """Strings LibCST reads as type annotations (in an annotation, a ``typing`` subscript,
    ``typing.cast``'s type, ``TypeVar``'s bounds), with the names written in each."""
    key = ("tfm6", "annotation-strings")
    found = model.memo.get(key)
    if found is not None:
        return found
    found = []

    def names(text: str, annotation: bool, hint: bool) -> frozenset[str]:
        # the string is read as code in the same context; the strings in it are read too
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return frozenset()
        inner: list = []
        visit(tree, annotation, hint, False, inner)
        written = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        for string, in_annotation, in_hint in inner:
            written |= names(string.value, in_annotation, in_hint)
        return frozenset(written)

    def visit(node: ast.AST, annotation: bool, hint: bool, ignored: bool, strings: list) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str) and (annotation or hint) and not ignored:
                strings.append((node, annotation, hint))
            return
        if isinstance(node, ast.JoinedStr):
            # an f-string is not read as an annotation; its expressions are visited
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    visit(part, annotation, hint, ignored, strings)
            return
        if isinstance(node, ast.Subscript):
            qnames = model.qualified_names(node.value) if isinstance(node.value, ast.Name) else set()
            hint = any(q.startswith(TYPING) for q in qnames)
            ignored = ignored or bool(qnames & LITERAL)
        elif isinstance(node, ast.Call):
            qnames = model.qualified_names(node.func) if dotted(node.func) is not None else set()
            args = call_arguments(node)
            visit(node.func, annotation, False, ignored, strings)
            typed = set()
            if "typing.NewType" in qnames or "typing.TypeVar" in qnames:
                typed = set(range(1, len(args)))
            elif "typing.cast" in qnames:
                typed = {0}
            for index, arg in enumerate(args):
                visit(arg, annotation, index in typed, ignored, strings)
            return
        elif isinstance(node, ast.arg):
            if node.annotation is not None:
                visit(node.annotation, True, hint, ignored, strings)
            return
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            for child in ast.iter_child_nodes(node):
                visit(child, annotation or child is node.returns, hint, ignored, strings)
            return
        elif isinstance(node, ast.AnnAssign):
            for child in ast.iter_child_nodes(node):
                visit(child, annotation or child is node.annotation, hint, ignored, strings)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, annotation, hint, ignored, strings)

    if any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in model.nodes(ast.Constant)):
        strings: list = []
        visit(model.tree, False, False, False, strings)
        found = [(string, names(string.value, annotation, hint)) for string, annotation, hint in strings]
    model.memo[key] = found
    return found


@dataclass(frozen=True)
class Reference:
    node: ast.Name | ast.Attribute
    qname: str


def _through_import(model: SemanticModel, node: ast.Name | ast.Attribute) -> bool:
    """The chain's first name may be bound by an import: its qualified name is not merely
    that of a variable of the module that happens to be called ``torch``."""
    root = _chain_root(node)
    if not isinstance(root, ast.Name):
        return False
    bindings = visible_bindings(model, root) if root is node else model.scope(root).resolve(root.id)
    return any(b.kind in ("import", "from-import") for b in bindings)


def references(model: SemanticModel) -> list[Reference]:
    """Every name or outermost attribute chain of the file whose single qualified name is an
    API of the family, in source order (computed once for the four rules)."""
    key = ("tfm6", "references")
    found = model.memo.get(key)
    if found is not None:
        return found
    imported = import_bound(model)
    candidates: list[ast.Name | ast.Attribute] = []
    for node in model.nodes((ast.Name, ast.Attribute)):
        if isinstance(node, ast.Name):
            if node.id not in imported:
                continue
        elif node.attr not in LAST_PARTS:
            continue
        parent = model.parent(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            continue  # a part of a longer dotted name
        candidates.append(node)
    candidates.sort(key=lambda n: (n.lineno, n.col_offset))
    found = []
    for node in candidates:
        qnames = chain_qualified_names(model, node)
        if len(qnames) != 1:
            continue
        (qname,) = qnames
        if qname not in ALL_NAMES:
            continue
        if isinstance(node, ast.Name) and any(b.kind == "import" for b in model.scope(node).resolve(node.id)):
            continue  # `import torch.nn.utils.weight_norm as wn` binds the module, not the function
        if not _through_import(model, node):
            continue  # `torch = None; torch.lu(x)` names no torch API
        found.append(Reference(node, qname))
    model.memo[key] = found
    return found


def module_bindings(model: SemanticModel) -> dict[str, str]:
    """Qualified name -> local name, for the module's unconditional top-level imports."""
    key = ("tfm6", "module-bindings")
    found = model.memo.get(key)
    if found is None:
        top_level = set(model.top_level_imports())
        found = {}
        for name, bindings in model.module_scope.bindings.items():
            if not any(b.statement in top_level for b in bindings):
                continue
            qnames = {b.target if b.target is not None else name for b in bindings}
            if len(qnames) == 1:
                found.setdefault(next(iter(qnames)), name)
        model.memo[key] = found
    return found


def name_free(model: SemanticModel, name: str) -> bool:
    """No scope of the file binds or reads ``name`` and no ``import *`` may bind it: a new
    top-level ``import name`` then means the module everywhere."""
    if name in model.names_used:
        return False
    return not any(alias.name == "*" for node in model.nodes(ast.ImportFrom) for alias in node.names)


# -- the rule base ----------------------------------------------------------------


@dataclass
class Plan:
    """A fix being built: a change of the call, or of the reference itself (``on_call``
    False), with the arguments the change takes after the replacement's spelling."""

    change: str
    args: tuple = ()
    unsafe: bool = False
    on_call: bool = True


class DeprecatedApiRule(Rule):
    """Reports references to the APIs of ``table`` and fixes the calls a rewrite covers."""

    table: ClassVar[dict[str, Deprecation]] = {}
    respects_version_gates = True
    # uses of a name bound by `from ... import` are reported where they are used; False when
    # the rule fixes the import line itself (TFM603) and the uses need no change
    report_name_uses: ClassVar[bool] = True
    state: ClassVar[str] = "is deprecated"

    def check(self) -> None:
        model = self.model
        found = [
            (ref.node, self.table[ref.qname])
            for ref in references(model)
            if ref.qname in self.table and (self.report_name_uses or isinstance(ref.node, ast.Attribute))
        ]
        found = [(node, entry) for node, entry in found if not in_compat_code(model, node)]
        imports = [
            (statement, aliases)
            for statement, aliases in self._imports()
            if not in_compat_code(model, statement) and not import_probe(model, statement)
        ]
        reference_fix: dict[ast.AST, tuple[Fix | None, ast.AST]] = {}
        for node, entry in found:
            parent = model.parent(node)
            call = parent if isinstance(parent, ast.Call) and parent.func is node else None
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
            note = ""
            if entry.since:
                fix, note = self.needs_release(fix, "torch", entry.since, entry.target)
            self.report(target, self.message(entry, reason) + note, fix)
            reference_fix[node] = (fix, target)
        for statement, aliases in imports:
            self.report_import(statement, aliases, reference_fix)

    def _imports(self) -> list[tuple[ast.ImportFrom, list[tuple[ast.alias, Deprecation]]]]:
        found = []
        for node in sorted(self.model.nodes(ast.ImportFrom), key=lambda n: (n.lineno, n.col_offset)):
            if node.level or node.module is None:
                continue
            aliases = [(alias, self.table.get(f"{node.module}.{alias.name}")) for alias in node.names if alias.name != "*"]
            aliases = [(alias, entry) for alias, entry in aliases if entry is not None]
            if aliases:
                found.append((node, aliases))
        return found

    # -- reporting ----------------------------------------------------------------

    def message(self, entry: Deprecation, reason: str = "", imported: bool = False) -> str:
        where = " (imported here)" if imported else ""
        text = f"`{entry.name}`{where} {self.state}; use `{entry.replacement}`"
        if entry.note:
            text += f" ({entry.note})"
        if reason:
            text += f"; not fixed: {reason}"
        return text

    def report_import(self, statement: ast.ImportFrom, aliases: list[tuple[ast.alias, Deprecation]], reference_fix) -> None:
        """One finding per deprecated name. Its fix drops the import, offered only when every
        use of the name in the file is fixed (each use's fix drops it once unused)."""
        for alias, entry in aliases:
            fix = None
            if alias.asname is None:
                uses = self._uses(statement, alias.name)
                fixes = [reference_fix.get(use) for use in uses]
                if uses and all(f is not None and f[0] is not None for f in fixes) and not self._suppressed(fixes):
                    unsafe = any(f[0].unsafe for f in fixes)
                    fix = Fix([], removals=(ImportNeed(statement.module, alias.name),), unsafe=unsafe)
            self.report(alias, self.message(entry, imported=True), fix)

    def _uses(self, statement: ast.ImportFrom, name: str) -> list[ast.AST]:
        """The reads of what ``statement`` binds to ``name`` in its own scope, string
        annotations included."""
        model = self.model
        bindings = [b for b in model.scope(statement).bindings.get(name, ()) if b.statement is statement]
        if not bindings:
            return []
        uses: list[ast.AST] = [
            node
            for node in model.nodes(ast.Name)
            if node.id == name
            and not isinstance(node.ctx, ast.Store)
            and any(b in bindings for b in visible_bindings(model, node))
        ]
        for string, written in annotation_strings(model):
            if name in written and any(b in bindings for b in model.scope(string).resolve(name)):
                uses.append(string)
        uses.sort(key=lambda n: (n.lineno, n.col_offset))
        return uses

    def _suppressed(self, fixes) -> bool:
        """A use's finding silenced with ``# noqa`` is not fixed: its import stays."""
        source = self.model.source
        if "noqa" not in source.lower():
            return False
        codes = noqa_codes(source)
        for _, target in fixes:
            span = self.model.span(target)
            first, last = span.line, span.end_line
            lines = range(first, first + 1) if first == last else range(first, last + 1, last - first)
            if is_suppressed(codes, self.code, lines, self.torchfix_codes()):
                return True
        return False

    # -- fixes ----------------------------------------------------------------------

    def plan(self, node: ast.Name | ast.Attribute, call: ast.Call | None, entry: Deprecation) -> Plan | str | None:
        """How to fix this reference: a Plan, a reason why not, or None (nothing to say)."""
        rewrite = entry.rewrite
        if rewrite == "rename":
            if is_store(self.model, node):
                return None
            return Plan("replace", on_call=False)
        if call is None:
            return self.plan_reference(node, entry)
        method: Callable[[ast.Call, Deprecation], Plan | str] = getattr(self, f"rewrite_{rewrite}")
        return method(call, entry)

    def plan_reference(self, node: ast.AST, entry: Deprecation) -> Plan | str | None:
        return None

    def _fix(self, node: ast.Name | ast.Attribute, call: ast.Call | None, entry: Deprecation, plan: Plan) -> Fix | None:
        found = self.reference(entry.target, node)
        if found is None:
            return None
        func, imports = found
        if call is not None and plan.on_call:
            edit = self.edit(call, "Call", Change(plan.change), func, *plan.args)
        else:
            edit = self.edit(node, type(node).__name__, Change(plan.change), func, *plan.args)
        return Fix([edit], imports=imports, removals=self._removals(node, entry), unsafe=plan.unsafe)

    def _removals(self, node: ast.Name | ast.Attribute, entry: Deprecation) -> tuple[ImportNeed, ...]:
        """The import the fix may leave unused: ``from m import name`` for a bare name, or
        ``import m`` for ``m.name`` when the replacement does not live in ``m``."""
        if isinstance(node, ast.Name):
            (qname,) = read_qualified_names(self.model, node)
            module, _, name = qname.rpartition(".")
            return (ImportNeed(module, name),) if name == node.id else ()
        root = _chain_root(node)
        if isinstance(root, ast.Name):
            if read_qualified_names(self.model, root) == {root.id} and not entry.target.startswith(f"{root.id}."):
                return (ImportNeed(root.id),)
        return ()

    def reference(self, target: str, at: ast.AST) -> tuple[str, tuple[ImportNeed, ...]] | None:
        """The source text naming ``target`` at ``at``: the reference's own module spelling
        (``t.qr`` -> ``t.linalg.qr``), else a top-level import of the file, else a new
        ``import torch`` when the name ``torch`` is free."""
        model = self.model
        if isinstance(at, ast.Attribute):
            root = _chain_root(at)
            if isinstance(root, ast.Name):
                qnames = read_qualified_names(model, root)
                if len(qnames) == 1:
                    (prefix,) = qnames
                    if target.startswith(f"{prefix}."):
                        return root.id + target[len(prefix):], ()
        scope = model.scope(at)
        bindings = module_bindings(model)
        parts = target.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            local = bindings.get(prefix)
            if local is not None:
                seen = {b.target if b.target is not None else b.scope.name + local for b in scope.resolve(local)}
                if seen == {prefix}:
                    return local + target[len(prefix):], ()
        if target.startswith("torch.") and name_free(model, "torch"):
            return target, (ImportNeed("torch"),)
        return None

    # -- the argument rewrites ------------------------------------------------------

    def _input_first(self, bound: dict[str, int]) -> str | None:
        if bound.get("input") != 0:
            return "the input is not its first argument" if "input" in bound else "it passes no input"
        return None

    def rewrite_qr(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        args = call_arguments(call)
        bound = bind(args, ("input", "some"), ("out",))
        if isinstance(bound, str):
            return bound
        reason = self._input_first(bound)
        if reason:
            return reason
        some = bound.get("some")
        if some is not None and bool_literal(value(args[some])) is None:
            return "`some` is not the literal True or False"
        complete = some is not None and bool_literal(value(args[some])) is False
        return Plan("qr", (some, complete))

    def rewrite_cholesky(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        args = call_arguments(call)
        bound = bind(args, ("input", "upper"), ("out",))
        if isinstance(bound, str):
            return bound
        reason = self._input_first(bound)
        if reason:
            return reason
        upper = bound.get("upper")
        drop = upper is not None and bool_literal(value(args[upper])) is False
        return Plan("cholesky", (upper, drop))

    def rewrite_range(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        args = call_arguments(call)
        keyword_only = ("out", "dtype", "layout", "device", "requires_grad")
        bound = bind(args, ("start", "end", "step"), keyword_only)
        if isinstance(bound, str):
            return bound
        if "start" not in bound or "end" not in bound:
            return "it does not pass both `start` and `end`"
        if "out" in bound:
            return "it passes `out=`"
        values = {
            name: int_literal(self.model, value(args[bound[name]]), bound[name] == 0 and keyword_name(args[0]) is None)
            for name in ("start", "end", "step")
            if name in bound
        }
        if any(v is None for v in values.values()):
            return "`start`, `end` and `step` are not all integer literals (with floats `range` and `arange` may differ by an element)"
        step = values.get("step", 1)
        if step == 0:
            return "`step` is 0"
        as_float = "dtype" not in bound  # keep torch.range's default floating dtype
        # range(a, b, s) stops at the last a + k*s <= b (>= b when s < 0); so does arange up
        # to b + 1 (b - 1) with integers, whatever the remainder of (b - a) / s
        start, end = values["start"], values["end"] + (1 if step > 0 else -1)
        return Plan("arange", (bound["start"], bound["end"], start, end, as_float))

    def rewrite_chain_matmul(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        args = call_arguments(call)
        matrices = [i for i, arg in enumerate(args) if keyword_name(arg) is None and star(arg) != "**"]
        others = [i for i, arg in enumerate(args) if i not in matrices]
        if any(star(args[i]) == "**" or keyword_name(args[i]) != "out" for i in others):
            return "it passes arguments other than matrices and `out=`"
        if not matrices:
            return "it passes no matrices"
        if matrices != list(range(len(matrices))):
            return "the matrices are not passed first"
        starred = any(star(args[i]) for i in matrices)
        if not starred and len(matrices) < 2:
            return "`torch.linalg.multi_dot` needs at least two matrices"
        # `*matrices` may hold a single matrix: chain_matmul returns a copy, multi_dot raises
        return Plan("multi_dot", (len(matrices),), unsafe=starred)

    def rewrite_matrix_rank(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call_arguments(call), ("input", "tol", "symmetric"))
        if isinstance(bound, str):
            return bound
        reason = self._input_first(bound)
        if reason:
            return reason
        if "tol" in bound:
            return "it passes `tol` (use `atol=tol, rtol=0`)"
        # the old function is gone: its documented default tolerance is the new one's
        return Plan("matrix_rank", (bound.get("symmetric"),), unsafe=True)

    def rewrite_upsample(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call_arguments(call), ("size", "scale_factor"))
        if isinstance(bound, str):
            return bound
        # the same forward; the module is an nn.Upsample (type checks, repr)
        return Plan("upsample", (entry.name.endswith("Bilinear2d"),), unsafe=True)

    def rewrite_pytree(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        params = ("cls", "flatten_fn", "unflatten_fn", "to_str_fn", "maybe_from_str_fn")
        keyword_only = ("serialized_type_name", "to_dumpable_context", "from_dumpable_context", "flatten_with_keys_fn")
        bound = bind(call_arguments(call), params, keyword_only)
        if isinstance(bound, str):
            return bound
        if "to_str_fn" in bound or "maybe_from_str_fn" in bound:
            return "it passes `to_str_fn`/`maybe_from_str_fn`, which the replacement does not take"
        # registers with the C++ pytree too and rejects a type registered twice
        return Plan("set_func", unsafe=True)

    def rewrite_autocast(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        bound = bind(call_arguments(call), AUTOCAST_PARAMETERS)
        if isinstance(bound, str):
            return bound
        # without dtype= / cache_enabled=, torch.amp.autocast reads global settings the old
        # class did not: equal unless the program changes them
        unsafe = not {"dtype", "cache_enabled"} <= set(bound) and not AUTOCAST_GLOBALS.isdisjoint(identifiers(self.model))
        return Plan("autocast", (entry.device, AUTOCAST_PARAMETERS), unsafe=unsafe)

    def rewrite_device_first(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        if any(kw.arg == "device" for kw in call.keywords):
            return "it passes `device=`"
        return Plan("device_first", (entry.device,))

    def rewrite_device_keyword(self, call: ast.Call, entry: Deprecation) -> Plan | str:
        if any(kw.arg == "device_type" for kw in call.keywords):
            return "it passes `device_type=`"
        return Plan("device_keyword", (entry.device,))
