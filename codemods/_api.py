"""Helpers shared by the API rules (TFM7xx): call arguments, references to a module's
names at a given place, literal checks and ast screens."""

from __future__ import annotations

import ast
from collections.abc import Iterable

import libcst as cst
from libcst.metadata import QualifiedNameSource

from torchfix_mod.analysis import FileFacts, dotted_name
from torchfix_mod.legacy_rule import ImportNeed
from torchfix_mod.screen import nodes, qualified_references


# -- call arguments -------------------------------------------------------------


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def positional_args(call: cst.Call) -> list[cst.Arg]:
    """The plain positional arguments, in order (``*args`` excluded)."""
    return [arg for arg in call.args if arg.keyword is None and not arg.star]


def has_star_args(call: cst.Call) -> bool:
    return any(arg.star == "*" for arg in call.args)


def has_star_kwargs(call: cst.Call) -> bool:
    return any(arg.star == "**" for arg in call.args)


def argument(call: cst.Call, name: str, position: int | None) -> cst.Arg | None:
    """The argument bound to parameter ``name``: by keyword, or the ``position``-th plain
    positional argument when no ``*args`` comes before it."""
    found = keyword_arg(call, name)
    if found is not None or position is None:
        return found
    index = 0
    for arg in call.args:
        if arg.star == "*":
            return None  # the position of what follows is unknown
        if arg.keyword is None and not arg.star:
            if index == position:
                return arg
            index += 1
    return None


def _separator(call: cst.Call) -> cst.Comma:
    """The comma to write between two arguments, in the call's own layout."""
    commas = [arg.comma for arg in call.args[:-1] if isinstance(arg.comma, cst.Comma)]
    if commas:
        comma = commas[-1]
        if isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace):  # without its comment
            return comma.with_changes(
                whitespace_after=comma.whitespace_after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
            )
        return comma
    if isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        # one argument per line, the first one on its own line
        return cst.Comma(whitespace_after=call.whitespace_before_args)
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def append_keyword(call: cst.Call, name: str, value: cst.BaseExpression) -> cst.Call:
    """``call`` with ``name=value`` added after its last argument. The existing arguments
    are kept as they are, and a trailing comma or one-argument-per-line layout is followed."""
    new_arg = cst.Arg(
        value=value,
        keyword=cst.Name(name),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    if not call.args:
        return call.with_changes(args=[new_arg])
    args = list(call.args)
    last = args[-1]
    trailing = isinstance(last.comma, cst.Comma)
    # the whitespace before the closing parenthesis: after a trailing comma, or after the argument
    closing = last.comma.whitespace_after if trailing else last.whitespace_after_arg
    separator = _separator(call)
    if isinstance(closing, cst.ParenthesizedWhitespace) and isinstance(separator.whitespace_after, cst.ParenthesizedWhitespace):
        # one argument per line: the old last argument keeps its comment on its own line, the
        # new line gets the arguments' indentation, the closing parenthesis keeps its own
        line = separator.whitespace_after
        own_line = closing.with_changes(indent=line.indent, last_line=line.last_line)
        bare_close = closing.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
        if trailing:
            args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=own_line))
            new_arg = new_arg.with_changes(comma=cst.Comma(whitespace_before=last.comma.whitespace_before, whitespace_after=bare_close))
        else:
            args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=own_line), whitespace_after_arg=cst.SimpleWhitespace(""))
            new_arg = new_arg.with_changes(whitespace_after_arg=bare_close)
    elif trailing:
        # the new argument takes the trailing comma and what follows it
        new_arg = new_arg.with_changes(comma=last.comma)
        args[-1] = last.with_changes(comma=separator)
    else:
        new_arg = new_arg.with_changes(whitespace_after_arg=last.whitespace_after_arg)
        args[-1] = last.with_changes(comma=separator, whitespace_after_arg=cst.SimpleWhitespace(""))
    return call.with_changes(args=[*args, new_arg])


def replace_arg(call: cst.Call, old: cst.Arg, new: cst.Arg) -> cst.Call:
    """``call`` with argument ``old`` (matched by identity, or by position in an updated
    call) replaced by ``new``, which keeps ``old``'s comma and whitespace."""
    args = list(call.args)
    new = new.with_changes(comma=old.comma, whitespace_after_arg=old.whitespace_after_arg)
    for index, arg in enumerate(args):
        if arg is old:
            args[index] = new
            return call.with_changes(args=args)
    raise ValueError("argument not found")


def bool_literal(expr: cst.BaseExpression) -> bool | None:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value == "True"
    return None


def is_one(expr: cst.BaseExpression) -> bool:
    """The literal ``1`` or a float literal whose value is exactly one (``1.0``, ``1.``)."""
    if isinstance(expr, cst.Integer):
        return expr.value == "1"
    if isinstance(expr, cst.Float):
        try:
            return float(expr.value.replace("_", "")) == 1.0
        except ValueError:
            return False
    return False


def is_zero(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Integer) and expr.value in ("0", "00")


# -- names ------------------------------------------------------------------------


def qualified(facts: FileFacts, node: cst.CSTNode, targets: Iterable[str]) -> str | None:
    """The target a name or attribute chain refers to, if it refers to one of ``targets``
    only (every binding that may reach it, as LibCST resolves imports and aliases)."""
    if dotted_name(node) is None:
        return None
    qnames = facts.qualified_names(node)
    if len(qnames) == 1:
        (qname,) = qnames
        if qname in targets:
            return qname
    return None


def imported_from(facts: FileFacts, node: cst.CSTNode) -> bool:
    """Every binding of ``node`` (a Name or the root of an attribute chain) is an import."""
    root = node
    while isinstance(root, cst.Attribute):
        root = root.value
    found = facts.qualified_name_set(root)
    return bool(found) and all(q.source is QualifiedNameSource.IMPORT for q in found)


def top_level_imports(module: cst.Module | None) -> list[cst.Import | cst.ImportFrom]:
    """Imports in the module body itself (not under ``if``/``try``/a function): they always run."""
    found: list[cst.Import | cst.ImportFrom] = []
    if module is None:
        return found
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            found.extend(s for s in stmt.body if isinstance(s, (cst.Import, cst.ImportFrom)))
    return found


def imports_package(facts: FileFacts, package: str) -> bool:
    """The module imports ``package`` (or a submodule of it) unconditionally at its top."""
    for stmt in top_level_imports(facts.module):
        if isinstance(stmt, cst.ImportFrom):
            if stmt.relative:
                continue
            names = [dotted_name(stmt.module)] if stmt.module is not None else []
        else:
            names = [dotted_name(alias.name) for alias in stmt.names]
        for name in names:
            if name and (name == package or name.startswith(package + ".")):
                return True
    return False


def visible_as(facts: FileFacts, at: cst.CSTNode, name: str, qname: str) -> bool:
    """At ``at``, ``name`` refers to ``qname`` and to nothing else."""
    scope = facts.scope(at)
    if scope is None:
        return False
    return {q.name for q in scope.get_qualified_names_for(name)} == {qname}


def reference(
    facts: FileFacts,
    at: cst.CSTNode,
    modules: Iterable[str],
    name: str,
    hint: cst.BaseExpression | None = None,
    package: str | None = None,
) -> tuple[cst.BaseExpression, ImportNeed | None] | None:
    """An expression naming ``<module>.<name>`` at ``at`` for one of ``modules`` (the first
    is where a new import would take it from), or None.

    In order: a prefix of ``hint`` (the dotted expression the code already uses, such as a
    call's function) that refers to one of the modules; a module-level import of ``name``
    itself; a module-level binding of one of the modules; else ``from <module> import name``
    is added, but only when ``name`` is used nowhere in the file and the file imports
    ``package`` unconditionally at its top (a new top-level import must not turn an
    optional dependency into a required one).
    """
    modules = list(modules)
    if hint is not None:
        prefix = hint
        while isinstance(prefix, cst.Attribute):
            prefix = prefix.value
            if dotted_name(prefix) is not None and facts.qualified_names(prefix) & set(modules) and (
                len(facts.qualified_names(prefix)) == 1
            ):
                return cst.Attribute(value=prefix.deep_clone(), attr=cst.Name(name)), None
    scope = facts.scope(at)
    if scope is None:
        return None
    module_scope = scope.globals
    top = set(top_level_imports(facts.module))
    bound: dict[str, str] = {}
    for assignment in module_scope.assignments:
        if getattr(assignment, "node", None) not in top:
            continue
        qnames = {q.name for q in module_scope.get_qualified_names_for(assignment.name)}
        if len(qnames) == 1:
            bound.setdefault(next(iter(qnames)), assignment.name)
    for module in modules:
        local = bound.get(f"{module}.{name}")
        if local is not None and "." not in local and visible_as(facts, at, local, f"{module}.{name}"):
            return cst.Name(local), None
    for module in modules:
        local = bound.get(module)
        if local is None:
            continue
        root = local.split(".")[0]
        if "." in local:
            # `import a.b` binds `a`; `a.b` is then reachable as an attribute
            if not visible_as(facts, at, root, root):
                continue
        elif not visible_as(facts, at, local, module):
            continue
        return cst.parse_expression(f"{local}.{name}"), None
    if package is not None and name not in facts.names_used and imports_package(facts, package):
        return cst.Name(name), ImportNeed(modules[0], name)
    return None


# -- ast screens ------------------------------------------------------------------


def mentions(tree: ast.Module, names: Iterable[str]) -> bool:
    """Some attribute, name or imported name of the file is one of ``names`` (an
    over-approximation of "the file may call or reference one of them")."""
    wanted = set(names)
    for node in nodes(tree, (ast.Attribute, ast.Name, ast.Import, ast.ImportFrom)):
        if isinstance(node, ast.Attribute):
            if node.attr in wanted:
                return True
        elif isinstance(node, ast.Name):
            if node.id in wanted:
                return True
        else:
            for alias in node.names:
                if alias.name.rsplit(".", 1)[-1] in wanted:
                    return True
    return False


def references(tree: ast.Module, qualified_names: Iterable[str]) -> bool:
    """The file reaches one of ``qualified_names`` through its imports (the rules match calls by
    qualified name, so a file that never does cannot hold a finding)."""
    found = qualified_references(tree)
    return any(name in found for name in qualified_names)


def mentioned_around(facts: FileFacts, node: cst.CSTNode, name: str, calls: Iterable[str] = ()) -> bool:
    """``name`` appears in the function around ``node`` (in the module, at top level): as a
    name, parameter, attribute, keyword argument or string. The keyword of a call to one of
    ``calls`` does not count: ``f(x, weights_only=True)`` next to ``f(y)`` is no sign that
    ``f(y)`` leaves the argument out on purpose; a parameter or variable of that name is."""
    import libcst.matchers as m

    home = facts.enclosing_function(node) or facts.module
    if home is None:
        return False
    targets = set(calls)
    for found in m.findall(home, m.Name(name)):
        holder = facts.parent(found)
        if isinstance(holder, cst.Arg) and holder.keyword is found:
            call = facts.parent(holder)
            if isinstance(call, cst.Call) and qualified(facts, call.func, targets) is not None:
                continue
        return True
    return any(s.evaluated_value == name for s in m.findall(home, m.SimpleString()))
