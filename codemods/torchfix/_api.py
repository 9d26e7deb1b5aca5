"""Helpers shared by the API rules (TFM7xx), on the semantic model: call arguments, literals,
references to a module's names at a given place, and the identifiers and strings a file spells.

The LibCST side of their fixes is in :mod:`._api_edits`; :func:`change` hands a rule one of its
functions without importing LibCST until a fix is written.
"""

from __future__ import annotations

import ast
import io
import tokenize
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from torchfix_mod.edits import Deferred
from torchfix_mod.rule import ImportNeed
from torchfix_mod.semantic import BUILTIN_NAMES, Span, dotted

if TYPE_CHECKING:
    from torchfix_mod.semantic import Scope, SemanticModel

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def change(name: str) -> Callable[..., Any]:
    """The change function ``name`` of :mod:`._api_edits`, imported when it first runs."""
    return Deferred("torchfix_mod.codemods.torchfix._api_edits", name)


def in_source_order(found: Iterable[ast.AST]) -> list:
    """Nodes in the order of a pre-order traversal (an outer node before one that starts with it)."""
    return sorted(found, key=lambda n: (n.lineno, n.col_offset, -(n.end_lineno or 0), -(n.end_col_offset or 0)))


# -- call arguments -------------------------------------------------------------
# An argument is an ``ast.keyword`` when passed by keyword, else the positional expression.


def keyword_arg(call: ast.Call, name: str) -> ast.keyword | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


def positional_args(call: ast.Call) -> list[ast.expr]:
    """The plain positional arguments, in order (``*args`` excluded)."""
    return [arg for arg in call.args if not isinstance(arg, ast.Starred)]


def has_star_args(call: ast.Call) -> bool:
    return any(isinstance(arg, ast.Starred) for arg in call.args)


def has_star_kwargs(call: ast.Call) -> bool:
    return any(kw.arg is None for kw in call.keywords)


def argument(call: ast.Call, name: str, position: int | None) -> ast.keyword | ast.expr | None:
    """The argument bound to parameter ``name``: by keyword, or the ``position``-th plain
    positional argument when no ``*args`` comes before it."""
    found = keyword_arg(call, name)
    if found is not None or position is None:
        return found
    index = 0
    for arg in call.args:  # positional arguments keep their order among themselves
        if isinstance(arg, ast.Starred):
            return None  # the position of what follows is unknown
        if index == position:
            return arg
        index += 1
    return None


def value_of(arg: ast.keyword | ast.expr) -> ast.expr:
    return arg.value if isinstance(arg, ast.keyword) else arg


def bool_literal(expr: ast.AST) -> bool | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, bool):
        return expr.value
    return None


def is_one(model: SemanticModel, expr: ast.AST) -> bool:
    """The literal ``1`` or a float literal whose value is exactly one (``1.0``, ``1.``), as
    written (``0x1`` and ``True`` are not)."""
    if not isinstance(expr, ast.Constant):
        return False
    if type(expr.value) is int:
        return source_of(model, expr) == "1"
    if type(expr.value) is float:
        try:
            return float(source_of(model, expr).replace("_", "")) == 1.0
        except ValueError:
            return False
    return False


def is_zero(model: SemanticModel, expr: ast.AST) -> bool:
    return isinstance(expr, ast.Constant) and type(expr.value) is int and source_of(model, expr) in ("0", "00")


# -- names ------------------------------------------------------------------------


def qualified(model: SemanticModel, node: ast.AST, targets: Iterable[str]) -> str | None:
    """The target a name or attribute chain refers to, if it refers to one of ``targets``
    only (every binding that may reach it, through the file's imports and aliases)."""
    if dotted(node) is None:
        return None
    qnames = model.qualified_names(node)
    if len(qnames) == 1:
        (qname,) = qnames
        if qname in targets:
            return qname
    return None


def calls_to(model: SemanticModel, targets: Collection[str]) -> list[tuple[ast.Call, str]]:
    """The calls whose function refers to one of ``targets`` only (as :func:`qualified`
    decides), each with that target, in source order. The calls of a file are resolved once
    for all the rules."""
    index = model.memo.get("api.calls")
    if index is None:
        index = {}
        for call in model.nodes(ast.Call):
            if dotted(call.func) is not None:
                qnames = model.qualified_names(call.func)
                if len(qnames) == 1:
                    index.setdefault(next(iter(qnames)), []).append(call)
        model.memo["api.calls"] = index
    found = {call: qname for qname, calls in index.items() if qname in targets for call in calls}
    return [(call, found[call]) for call in in_source_order(found)]


def _full_name(node: ast.AST) -> str | None:
    """The dotted name of a chain, looking through calls and subscripts (``a.b().c[0]`` is
    ``a.b.c``); an unnamed root reads ``None``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_full_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _full_name(node.func)
    if isinstance(node, ast.Subscript):
        return _full_name(node.value)
    return None


def imported_from(model: SemanticModel, node: ast.AST) -> bool:
    """Every binding of the name ``node`` starts with (through attributes, calls and
    subscripts: ``helpers.make().opt``) is an import."""
    root = node
    while isinstance(root, ast.Attribute):
        root = root.value
    name = _full_name(root)
    if name is None:
        return False
    found = model.scope(root).resolve(name.split(".")[0])
    return bool(found) and all(b.kind in ("import", "from-import") for b in found)


def top_level_imports(model: SemanticModel) -> list[ast.Import | ast.ImportFrom]:
    """Imports in the module body itself (not under ``if``/``try``/a function): they always run."""
    return [stmt for stmt in model.tree.body if isinstance(stmt, (ast.Import, ast.ImportFrom))]


def imports_package(model: SemanticModel, package: str) -> bool:
    """The module imports ``package`` (or a submodule of it) unconditionally at its top."""
    for stmt in top_level_imports(model):
        if isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                continue
            names = [stmt.module] if stmt.module is not None else []
        else:
            names = [alias.name for alias in stmt.names]
        for name in names:
            if name == package or name.startswith(package + "."):
                return True
    return False


def _name_qualified(scope: Scope, name: str) -> set[str]:
    """The qualified names the plain name ``name`` has when read in ``scope``."""
    found = scope.resolve(name)
    if not found:
        return {f"builtins.{name}"} if name in BUILTIN_NAMES else set()
    return {b.target if b.target is not None else b.scope.name + name for b in found}


def visible_as(model: SemanticModel, at: ast.AST, name: str, qname: str) -> bool:
    """At ``at``, ``name`` refers to ``qname`` and to nothing else."""
    return _name_qualified(model.scope(at), name) == {qname}


def module_spellings(model: SemanticModel) -> dict[str, str]:
    """Qualified name -> the module-level name that refers to it and nothing else, for names an
    unconditional top-level import binds; the first such name in the file wins. ``import a.b``
    also offers ``a.b`` itself (reachable as an attribute of ``a``)."""
    memo = model.memo.get("api.module_spellings")
    if memo is not None:
        return memo
    top = set(top_level_imports(model))
    module_scope = model.module_scope
    ordered = sorted(
        (b for bindings in module_scope.bindings.values() for b in bindings),
        key=lambda b: (b.node.lineno, b.node.col_offset),
    )
    # name -> (bound by a top-level import, its qualified names), names in binding order
    names: dict[str, tuple[bool, set[str]]] = {}

    def record(name: str, qname: str, top_level: bool) -> None:
        seen, qnames = names.get(name, (False, set()))
        names[name] = (seen or top_level, qnames | {qname})

    for binding in ordered:
        top_level = binding.kind in ("import", "from-import") and binding.statement in top
        alias = binding.node
        if binding.kind == "import" and isinstance(alias, ast.alias) and alias.asname is None and "." in alias.name:
            parts = alias.name.split(".")
            for end in range(len(parts), 1, -1):
                dotted_name = ".".join(parts[:end])
                record(dotted_name, dotted_name, top_level)
        record(binding.name, binding.target if binding.target is not None else binding.name, top_level)
    spellings: dict[str, str] = {}
    for name, (top_level, qnames) in names.items():
        if top_level and len(qnames) == 1:
            spellings.setdefault(next(iter(qnames)), name)
    model.memo["api.module_spellings"] = spellings
    return spellings


def reference(
    model: SemanticModel,
    at: ast.AST,
    modules: Iterable[str],
    name: str,
    hint: ast.AST | None = None,
    package: str | None = None,
) -> tuple[str | int, ImportNeed | None] | None:
    """How to spell ``<module>.<name>`` at ``at`` for one of ``modules`` (the first is where a
    new import would take it from), and the import that needs; None when no spelling is safe.
    The spelling is source text, or an int: the number of ``.value`` steps from ``hint`` to the
    prefix of it to which ``.name`` is added.

    In order: a prefix of ``hint`` (the dotted expression the code already uses, such as a
    call's function) that refers to one of the modules; a module-level import of ``name``
    itself; a module-level binding of one of the modules; else ``from <module> import name``
    is added, but only when ``name`` is spelled nowhere in the file and the file imports
    ``package`` unconditionally at its top (a new top-level import must not turn an
    optional dependency into a required one).
    """
    modules = list(modules)
    if hint is not None:
        prefix, depth = hint, 0
        while isinstance(prefix, ast.Attribute):
            prefix, depth = prefix.value, depth + 1
            qnames = model.qualified_names(prefix) if dotted(prefix) is not None else set()
            if len(qnames) == 1 and qnames & set(modules):
                return depth, None
    bound = module_spellings(model)
    for module in modules:
        local = bound.get(f"{module}.{name}")
        if local is not None and "." not in local and visible_as(model, at, local, f"{module}.{name}"):
            return local, None
    for module in modules:
        local = bound.get(module)
        if local is None:
            continue
        root = local.split(".")[0]
        if "." in local:
            # `import a.b` binds `a`; `a.b` is then reachable as an attribute
            if not visible_as(model, at, root, root):
                continue
        elif not visible_as(model, at, local, module):
            continue
        return f"{local}.{name}", None
    if package is not None and name not in identifiers(model) and imports_package(model, package):
        return name, ImportNeed(modules[0], name)
    return None


# -- what the source spells ----------------------------------------------------------

_TYPE_PARAMS = tuple(getattr(ast, kind) for kind in ("TypeVar", "ParamSpec", "TypeVarTuple") if hasattr(ast, kind))
_NAMED = (
    ast.Name, ast.Attribute, ast.keyword, ast.arg, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.alias,
    ast.ImportFrom, ast.Global, ast.Nonlocal, ast.ExceptHandler, ast.MatchAs, ast.MatchStar, ast.MatchMapping,
    ast.MatchClass, *_TYPE_PARAMS,
)


def _spelled_names(node: ast.AST) -> Iterator[str]:
    """The identifiers ``node`` itself spells: every place LibCST writes a ``Name`` (an
    attribute, a keyword, a parameter, each part of an imported module's dotted name, ...)."""
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, (ast.keyword, ast.arg)):
        if node.arg:
            yield node.arg
    elif isinstance(node, (*_FUNCTIONS, ast.ClassDef, *_TYPE_PARAMS)):
        yield node.name
    elif isinstance(node, ast.alias):
        if node.name != "*":
            yield from node.name.split(".")
        if node.asname:
            yield node.asname
    elif isinstance(node, ast.ImportFrom):
        if node.module:
            yield from node.module.split(".")
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        yield from node.names
    elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
        if node.name:
            yield node.name
    elif isinstance(node, ast.MatchMapping):
        if node.rest:
            yield node.rest
    elif isinstance(node, ast.MatchClass):
        yield from node.kwd_attrs


def identifiers(model: SemanticModel) -> set[str]:
    """Every identifier the file spells anywhere: read or bound names, attributes, keywords,
    parameters, the parts of imported module names. A new import of one of these could clash."""
    memo = model.memo.get("api.identifiers")
    if memo is None:
        memo = {name for node in model.nodes(_NAMED) for name in _spelled_names(node)}
        model.memo["api.identifiers"] = memo
    return memo


def _literals(text: str) -> Iterator[object]:
    """The values of the plain (not formatted) string literals in the source of a string
    expression, one per literal of an implicit concatenation."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(f"({text})").readline):
            if tok.type == tokenize.STRING:
                try:
                    yield ast.literal_eval(tok.string)
                except (ValueError, SyntaxError):
                    continue  # an f-string, which counts as no literal
    except (tokenize.TokenError, SyntaxError):
        return


def has_string(model: SemanticModel, root: ast.AST, text: str) -> bool:
    """Some plain string literal under ``root`` is exactly ``text`` (each part of an implicit
    concatenation counts on its own; the text of f-strings does not)."""
    for node in model.nodes(ast.Constant, root):
        if not (isinstance(node.value, str) and text in node.value):
            continue
        holder = model.parent(node)
        if isinstance(holder, ast.JoinedStr):
            # a literal part of an f-string: literal only if a plain string was concatenated
            outer = model.parent(holder)
            if isinstance(outer, ast.FormattedValue) and outer.format_spec is holder:
                continue  # a format spec
            if any(value == text for value in _literals(source_of(model, holder))):
                return True
            continue
        source = source_of(model, node)
        values = list(_literals(source)) if source else []
        if values and "".join(v for v in values if isinstance(v, str)) == node.value:
            if text in values:
                return True
        elif node.value == text:
            return True
    return False


def mentioned_around(model: SemanticModel, node: ast.AST, name: str, calls: Iterable[str] = ()) -> bool:
    """``name`` appears in the function around ``node`` (in the module, at top level): as a
    name, parameter, attribute, keyword argument or string. The keyword of a call to one of
    ``calls`` does not count: ``f(x, weights_only=True)`` next to ``f(y)`` is no sign that
    ``f(y)`` leaves the argument out on purpose; a parameter or variable of that name is."""
    home = model.enclosing_function(node) or model.tree
    targets = set(calls)
    for found in model.nodes(_NAMED, home):
        if name not in _spelled_names(found):
            continue
        if isinstance(found, ast.keyword):
            call = model.parent(found)
            if isinstance(call, ast.Call) and qualified(model, call.func, targets) is not None:
                continue
        return True
    return has_string(model, home, name)


# -- source text --------------------------------------------------------------------


def _line_starts(model: SemanticModel) -> list[int]:
    starts = model.memo.get("api.line_starts")
    if starts is None:
        starts = [0]
        for text in model.raw_lines():
            starts.append(starts[-1] + len(text))
        model.memo["api.line_starts"] = starts
    return starts


def offsets(model: SemanticModel, node: ast.AST) -> tuple[int, int]:
    """Where ``node`` starts and ends, as indices in the source."""
    span, starts = model.span(node), _line_starts(model)
    return starts[span.line - 1] + span.column, starts[span.end_line - 1] + span.end_column


def source_of(model: SemanticModel, node: ast.AST) -> str:
    """The source text of ``node`` (what ``model.text`` gives, without splitting the whole
    source again on each call)."""
    start, end = offsets(model, node)
    return model.source[start:end]


def span_between(model: SemanticModel, start: int, end: int) -> Span:
    """The span from one source index to another."""
    starts = _line_starts(model)
    line, end_line = bisect_right(starts, start), bisect_right(starts, end)
    return Span(line, start - starts[line - 1], end_line, end - starts[end_line - 1])


def code_chars(text: str) -> Iterator[tuple[int, str]]:
    """The index and character of everything but whitespace in ``text``, source between two
    tokens (parentheses, operators, commas); a comment is given as its ``#`` alone."""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "#":
            yield i, char
            newline = text.find("\n", i)
            i = len(text) if newline == -1 else newline
            continue
        if not char.isspace() and char != "\\":
            yield i, char
        i += 1


def comment_at_operator(model: SemanticModel, binop: ast.BinOp) -> bool:
    """A comment around the operator of ``binop``: after the left operand's closing
    parentheses or before the right operand's opening ones (where LibCST keeps it with the
    operator, which a rewrite drops)."""
    source = model.source
    marks = [char for _, char in code_chars(source[offsets(model, binop.left)[1] : offsets(model, binop.right)[0]])]
    op = next((i for i, mark in enumerate(marks) if mark not in "()#"), None)
    if op is None:
        return False
    before, after = marks[:op], marks[op + 1 :]
    closing = max((i for i, mark in enumerate(before) if mark == ")"), default=-1)
    opening = next((i for i, mark in enumerate(after) if mark == "("), len(after))
    return "#" in before[closing + 1 :] or "#" in after[:opening]
