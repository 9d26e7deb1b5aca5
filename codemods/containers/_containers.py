"""What TFM101-TFM104 share: finding ``self.x = <container>`` in nn.Module methods, checking
every use of the attribute against what ``nn.ModuleList``/``nn.ModuleDict`` (or the parameter
containers) support, and the LibCST changes that wrap the value.

The use check reads each use through its LibCST shape (``Arg``, ``Element``, ``AssignTarget``,
...): the verdicts were settled on those shapes, and an ``ast`` parent alone cannot tell a
call's argument from its function or a subscript's key from its value. :func:`cst_parent`
names the shape.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torchfix_mod.rule import Fix, ImportNeed, Rule
from torchfix_mod.semantic import TORCH_MODULE_BASE, Scope, SemanticModel, class_methods, self_name
from torchfix_mod.torch_facts import NN_MODULE_CLASSES

ITERATING_BUILTINS = frozenset({"len", "enumerate", "zip", "iter", "list", "tuple", "any", "all", "sum"})
# Calls that can register a module under a second name, out of the analysis' sight.
REGISTERING_CALLS = frozenset({"add_module", "register_module", "register_parameter", "setattr"})
LIST_METHODS = frozenset({"append", "extend", "insert", "pop"})
DICT_METHODS = frozenset({"keys", "values", "items", "pop", "clear"})


class Verdict:
    """Outcome of checking how a container attribute is used."""

    OK = "ok"
    NOT_MODULES = "not-modules"  # something else is added: not a container of modules
    UNSUPPORTED = "unsupported"  # a real bug, but the container cannot be converted
    ELSEWHERE = "elsewhere"  # handed to other code: it may be registered there on purpose


# -- source shapes ---------------------------------------------------------------


def start(node: ast.AST) -> tuple[int, int]:
    return (node.lineno, node.col_offset)


@dataclass(frozen=True)
class Arg:
    """One argument of a call as written: ``f(x)``, ``f(k=x)``, ``f(*x)``, ``f(**x)``."""

    value: ast.expr
    keyword: str | None = None
    star: str = ""


def call_args(call: ast.Call) -> list[Arg]:
    """The arguments in source order (``ast`` keeps keywords apart from positionals)."""
    found: list[tuple[tuple[int, int], Arg]] = []
    for arg in call.args:
        if isinstance(arg, ast.Starred):
            found.append((start(arg), Arg(arg.value, None, "*")))
        else:
            found.append((start(arg), Arg(arg)))
    for kw in call.keywords:
        found.append((start(kw), Arg(kw.value, kw.arg, "" if kw.arg is not None else "**")))
    found.sort(key=lambda item: item[0])
    return [arg for _, arg in found]


def _tokens(text: str) -> list[tokenize.TokenInfo] | None:
    try:
        return [
            t for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)
        ]
    except (tokenize.TokenError, SyntaxError):
        return None


def is_parenthesized(model: SemanticModel, node: ast.AST) -> bool:
    """``node``'s own text opens with a parenthesis that closes at its end (``(a, b)``, not
    ``(a), (b)``)."""
    tokens = _tokens(model.text(node))
    if not tokens or tokens[0].string != "(":
        return False
    depth = 0
    for index, token in enumerate(tokens):
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
            if depth == 0:
                return index == len(tokens) - 1
    return False


def is_concatenated(text: str) -> bool:
    """The string literal is written as several adjacent strings (``'a' f'{b}'``)."""
    tokens = _tokens(text)
    if tokens is None:
        return False
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    depth = count = 0
    for token in tokens:
        if token.type == fstring_start:
            count += depth == 0
            depth += 1
        elif token.type == fstring_end:
            depth -= 1
        elif token.type == tokenize.STRING and depth == 0:
            count += 1
    return count > 1


def subscript_elements(model: SemanticModel, sub: ast.Subscript) -> list[ast.expr]:
    """The comma-separated parts of a subscript (``x[a, b:c]`` has two)."""
    index = sub.slice
    if isinstance(index, ast.Tuple) and not is_parenthesized(model, index):
        return list(index.elts)
    return [index]


# ast parents that stand for one LibCST node of the same shape
_SAME_SHAPE: dict[type, str] = {
    ast.AnnAssign: "AnnAssign", ast.AugAssign: "AugAssign", ast.Subscript: "Subscript",
    ast.Attribute: "Attribute", ast.If: "If", ast.While: "While", ast.IfExp: "IfExp",
    ast.UnaryOp: "UnaryOperation", ast.BoolOp: "BooleanOperation", ast.BinOp: "BinaryOperation",
    ast.Expr: "Expr", ast.Return: "Return", ast.Yield: "Yield", ast.Lambda: "Lambda",
}


def cst_parent(model: SemanticModel, node: ast.AST) -> tuple[str, ast.AST | None, Arg | None]:
    """The LibCST class of the node that holds ``node`` (its parent in a LibCST tree), the
    ``ast`` node standing for it, and for an ``Arg`` the argument itself.

    Only the shapes the use checks tell apart are named; anything else is ``"Other"``."""
    parent = model.parent(node)
    if isinstance(parent, ast.Call):
        if node is parent.func:
            return "Call", parent, None
        return "Arg", parent, Arg(node)  # a positional argument (a starred one has a Starred parent)
    if isinstance(parent, ast.Starred):
        holder = model.parent(parent)
        if isinstance(holder, ast.Call) or (isinstance(holder, ast.ClassDef) and parent in holder.bases):
            return "Arg", holder, Arg(node, None, "*")
        if isinstance(holder, (ast.List, ast.Set)) or (
            isinstance(holder, ast.Tuple) and not _subscript_parts(model, holder)
        ):
            return "StarredElement", holder, None
        return "Other", parent, None
    if isinstance(parent, ast.keyword):
        holder = model.parent(parent)
        return "Arg", holder, Arg(node, parent.arg, "" if parent.arg is not None else "**")
    if isinstance(parent, ast.ClassDef):
        if node in parent.bases:
            return "Arg", parent, Arg(node)
        return "Other", parent, None
    if isinstance(parent, (ast.List, ast.Set)):
        return "Element", parent, None
    if isinstance(parent, ast.Tuple):
        if _subscript_parts(model, parent):
            return "Other", parent, None  # x[a, b]: each part is a SubscriptElement
        return "Element", parent, None
    if isinstance(parent, ast.Dict):
        for key, value in zip(parent.keys, parent.values):
            if value is node and key is None:
                return "StarredDictElement", parent, None
        return "DictElement", parent, None
    if isinstance(parent, ast.Assign):
        if any(target is node for target in parent.targets):
            return "AssignTarget", parent, None
        return "Assign", parent, None
    if isinstance(parent, (ast.For, ast.AsyncFor)):
        return "For", parent, None
    if isinstance(parent, ast.comprehension):
        return "CompFor", parent, None
    if isinstance(parent, ast.Compare):
        if node is parent.left:
            return "Comparison", parent, None
        return "ComparisonTarget", parent, None
    kind = _SAME_SHAPE.get(type(parent))
    if kind == "Subscript" and node is not parent.value:
        return "Other", parent, None  # a key or a slice bound
    if kind == "Lambda" and node is not parent.body:
        return "Other", parent, None
    return kind or "Other", parent, None


def _subscript_parts(model: SemanticModel, tup: ast.Tuple) -> bool:
    """``tup`` is the bare ``a, b`` of a subscript ``x[a, b]``."""
    holder = model.parent(tup)
    return isinstance(holder, ast.Subscript) and holder.slice is tup and not is_parenthesized(model, tup)


def is_iterating_builtin(model: SemanticModel, call: ast.AST) -> bool:
    func = getattr(call, "func", None)
    return (
        isinstance(call, ast.Call)
        and isinstance(func, ast.Name)
        and func.id in ITERATING_BUILTINS
        and model.qualified_names(func) == {f"builtins.{func.id}"}
    )


# -- naming torch.nn --------------------------------------------------------------


def spelled_names(model: SemanticModel) -> set[str]:
    """Every identifier the file spells anywhere: names, attribute and keyword names, the
    parts of imported module paths, definitions, parameters (a new import must shadow none)."""
    key = "container_spelled_names"
    found = model.memo.get(key)
    if found is None:
        found = set()
        for node in ast.walk(model.tree):
            if isinstance(node, ast.Name):
                found.add(node.id)
            elif isinstance(node, ast.Attribute):
                found.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, ast.arg):
                found.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg is not None:
                found.add(node.arg)
            elif isinstance(node, ast.alias):
                found.update(node.name.split("."))
                if node.asname:
                    found.add(node.asname)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.update(node.module.split("."))
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                found.update(node.names)
            elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
                found.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                found.add(node.rest)
            elif isinstance(node, ast.MatchClass):
                found.update(node.kwd_attrs)
        found.discard("*")
        model.memo[key] = found
    return found


def _qualified(bindings) -> set[str]:
    return {b.target if b.target is not None else b.scope.name + b.name for b in bindings}


def nn_reference(model: SemanticModel, attr: str, at: ast.AST) -> tuple[str, tuple[str, str | None] | None] | None:
    """Source text naming ``torch.nn.<attr>`` at ``at``, reusing the file's imports, and the
    import it needs as ``(module, name)`` (None: none needed); None when no spelling is safe.

    Prefers ``from torch.nn import <attr>``, then an ``nn`` alias, then ``torch``; adds an
    import only when no binding is usable and the new name shadows nothing. ``import
    torch.utils.data`` binds a usable ``torch`` too, and a name spelled anywhere (an attribute,
    a keyword, a part of an imported module path) is not free for a new import."""
    scope = model.scope(at)
    module_scope = model.module_scope
    top_level = set(model.top_level_imports())
    by_target: dict[str, str] = {}
    for name, found in module_scope.bindings.items():
        if not any(b.statement in top_level for b in found if b.kind in ("import", "from-import")):
            continue  # an import under `if TYPE_CHECKING:` or in a try block may not run
        targets = _qualified(found)
        if len(targets) == 1:
            by_target.setdefault(next(iter(targets)), name)

    def visible(name: str, expected: str) -> bool:
        return _qualified(scope.resolve(name)) == {expected}

    for qname, build in (
        (f"torch.nn.{attr}", lambda n: n),
        ("torch.nn", lambda n: f"{n}.{attr}"),
        ("torch", lambda n: f"{n}.nn.{attr}"),
    ):
        name = by_target.get(qname)
        if name and visible(name, qname):
            return build(name), None
    imports_torch_nn_module = any(
        isinstance(stmt, ast.Import)
        and any(a.asname is None and (a.name == "torch.nn" or a.name.startswith("torch.nn.")) for a in stmt.names)
        for stmt in top_level
    )
    if imports_torch_nn_module and visible("torch", "torch"):
        return f"torch.nn.{attr}", None
    spelled = spelled_names(model)
    imports_from_torch_nn = any(isinstance(stmt, ast.ImportFrom) and stmt.module == "torch.nn" for stmt in top_level)
    if imports_from_torch_nn and attr not in spelled:
        return attr, ("torch.nn", attr)
    if "torch" not in spelled:
        return f"torch.nn.{attr}", ("torch", None)
    return None


# -- locals --------------------------------------------------------------------


def local_references(model: SemanticModel, scope: Scope, name: str) -> list[ast.Name]:
    """Every read of a local bound in ``scope``, from nested functions and comprehensions too.

    A read in the scope itself counts only once some binding of the name is complete before it
    in the source (``x = f(x)`` does not read its own ``x``), as LibCST attributes accesses."""
    bindings = scope.bindings.get(name, [])
    done = [_binding_done(model, b) for b in bindings]
    first = min(done) if done else None
    found: dict[int, ast.Name] = {}
    for binding in bindings:
        for access in binding.accesses:
            if model.scope(access) is scope and (first is None or start(access) < first):
                continue
            found.setdefault(id(access), access)
    return sorted(found.values(), key=start)


def _binding_done(model: SemanticModel, binding) -> tuple[int, int]:
    node = binding.node
    parent = model.parent(node)
    if isinstance(node, ast.arg) or (isinstance(parent, (ast.For, ast.AsyncFor)) and parent.target is node):
        holder = node
    elif isinstance(parent, ast.NamedExpr):
        holder = parent
    else:
        holder = model.statement(node) or node
    return (holder.end_lineno or holder.lineno, holder.end_col_offset or 0)


def element_alias_reads(model: SemanticModel, assign: ast.AST) -> list[ast.Name] | None:
    """``layer = self.layers[i]`` in a function, where ``layer`` has no other binding and every
    read of it calls it (``layer(h)``) or one of its methods (``layer.forward(h)``), the result
    not stored on an object (returning it is as returning ``self.layers[i]``): the reads, or None when the element may be kept
    or handed on under that name."""
    if not (isinstance(assign, ast.Assign) and len(assign.targets) == 1 and isinstance(assign.targets[0], ast.Name)):
        return None
    name = assign.targets[0]
    scope = model.scope(name)
    if scope.kind == "module" or len(scope.bindings.get(name.id, [])) != 1:
        return None
    home = model.enclosing_function(assign)
    reads = local_references(model, scope, name.id)
    for read in reads:
        if model.enclosing_function(read) is not home:
            return None
        parent = model.parent(read)
        if isinstance(parent, ast.Call) and parent.func is read:
            continue
        call = model.parent(parent)
        if not (isinstance(parent, ast.Attribute) and parent.value is read and isinstance(call, ast.Call) and call.func is parent):
            return None
        holder = model.parent(call)
        if isinstance(holder, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and not all(
            isinstance(t, ast.Name) for t in getattr(holder, "targets", [getattr(holder, "target", None)])
        ):
            return None  # a method's result (``layer.cuda()`` is the layer) stored on an object
    return reads


_SEQUENCE_TYPES = frozenset(
    f"{module}.{name}" for module in ("typing", "collections.abc") for name in ("List", "Sequence", "Tuple", "Iterable", "Collection")
) | {"builtins.list", "builtins.tuple", "typing.Optional"}


def _declares_modules(model: SemanticModel, annotation: ast.AST | None, sequence: bool) -> bool:
    """``annotation`` names an nn.Module class (``sequence``: a list, tuple or sequence of them,
    ``Optional[...]`` allowed)."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Subscript):
        qnames = model.qualified_names(annotation.value)
        if not qnames or not qnames <= _SEQUENCE_TYPES:
            return False
        if qnames == {"typing.Optional"}:
            return _declares_modules(model, annotation.slice, sequence)
        if not sequence:
            return False
        parts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        if len(parts) == 2 and isinstance(parts[1], ast.Constant) and parts[1].value is Ellipsis:
            parts = parts[:1]
        return bool(parts) and all(_declares_modules(model, part, False) for part in parts)
    return not sequence and model.is_module_class_expr(annotation)


def declares_module(model: SemanticModel, annotation: ast.AST | None) -> bool:
    """``annotation`` names one nn.Module class (``Optional[...]`` allowed)."""
    return _declares_modules(model, annotation, False)


def only_param(model: SemanticModel, name: ast.Name) -> tuple[ast.arg, ast.arguments] | None:
    """The parameter ``name`` reads, when it is its only binding."""
    bindings = model.scope(name).resolve(name.id)
    if len(bindings) != 1 or bindings[0].kind != "param" or not isinstance(bindings[0].node, ast.arg):
        return None
    arg = bindings[0].node
    func = bindings[0].scope.node
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return None
    return arg, func.args


def declared_modules(model: SemanticModel, expr: ast.AST) -> bool:
    """``expr`` is a parameter declared to hold nn.Modules: ``*layers: nn.Module`` or
    ``layers: List[nn.Module]``."""
    if not isinstance(expr, ast.Name):
        return False
    found = only_param(model, expr)
    if found is None:
        return False
    arg, args = found
    if arg is args.vararg:
        return _declares_modules(model, arg.annotation, False)
    if arg is args.kwarg:
        return False
    return _declares_modules(model, arg.annotation, True)


def _single_binding(model: SemanticModel, name: ast.Name) -> tuple[ast.Name | None, ast.AST | None]:
    """The one place ``name`` is bound as a plain name, and the node around that binding (the
    ``for`` or comprehension it is the variable of, a tuple target, an assignment); (None,
    None) when it is bound more than once or otherwise."""
    bindings = model.scope(name).resolve(name.id)
    if len(bindings) != 1 or not isinstance(bindings[0].node, ast.Name):
        return None, None
    target = bindings[0].node
    return target, model.parent(target)


def declared_module_element(model: SemanticModel, expr: ast.AST) -> bool:
    """``expr`` is the loop variable of ``for layer in layers`` over parameters declared to hold
    nn.Modules, or a name tested with ``isinstance(name, nn.Module)`` around it."""
    if not isinstance(expr, ast.Name):
        return False
    if _isinstance_guarded(model, expr):
        return True
    target, loop = _single_binding(model, expr)
    if target is None:
        return False
    return (
        isinstance(loop, (ast.For, ast.comprehension)) and loop.target is target and declared_modules(model, loop.iter)
    )


def _isinstance_test(model: SemanticModel, test: ast.AST, name: str) -> bool:
    """``isinstance(name, C)`` with C (or every class of a tuple C) an nn.Module class."""
    if not (
        isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance"
        and model.qualified_names(test.func) == {"builtins.isinstance"} and len(test.args) == 2 and not test.keywords
    ):
        return False
    subject, classes = test.args
    if not (isinstance(subject, ast.Name) and subject.id == name):
        return False
    parts = classes.elts if isinstance(classes, ast.Tuple) else [classes]
    return bool(parts) and all(model.is_module_class_expr(part) for part in parts)


def _assigned_between(model: SemanticModel, name: str, after: ast.AST, before: ast.AST, within: ast.AST) -> bool:
    return any(
        isinstance(n.ctx, ast.Store) and n.id == name and start(after) < start(n) < start(before)
        for n in model.nodes(ast.Name, within)
    )


def _isinstance_guarded(model: SemanticModel, name: ast.Name) -> bool:
    """``name`` is read in the body of ``if isinstance(name, nn.Module):``, or after a
    ``if not isinstance(name, nn.Module): raise ...`` of its function, not rebound in between."""
    child: ast.AST = name
    func = model.enclosing_function(name)
    for anc in model.ancestors(name):
        if anc is func:
            break
        if isinstance(anc, ast.If) and any(child is stmt for stmt in anc.body) and _isinstance_test(model, anc.test, name.id):
            return not _assigned_between(model, name.id, anc, name, anc)
        child = anc
    if func is None:
        return False
    statement = model.statement(name)
    for stmt in func.body:
        if start(stmt) >= start(statement):
            break
        if (
            isinstance(stmt, ast.If) and not stmt.orelse
            and isinstance(stmt.test, ast.UnaryOp) and isinstance(stmt.test.op, ast.Not)
            and _isinstance_test(model, stmt.test.operand, name.id)
            and stmt.body and isinstance(stmt.body[-1], ast.Raise)
            and not _assigned_between(model, name.id, stmt, name, func)
        ):
            return True
    return False


def proven_module(model: SemanticModel, expr: ast.AST) -> bool:
    """A call of a function of this file whose every ``return`` gives an nn.Module: a module
    construction, or a name the function has tested with ``isinstance(x, nn.Module)``."""
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name)):
        return False
    functions = model.local_functions(expr.func)
    if not functions or len(functions) != 1:
        return False
    func = functions[0]
    if func.decorator_list or isinstance(func, ast.AsyncFunctionDef) or model.enclosing_class(func) is not None:
        return False
    returns = [r for r in model.nodes(ast.Return, func) if model.enclosing_function(r) is func]
    if not returns or not isinstance(func.body[-1], (ast.Return, ast.Raise)):
        return False  # it may end without a return: None
    if any(model.enclosing_function(n) is func for kind in (ast.Yield, ast.YieldFrom) for n in model.nodes(kind, func)):
        return False
    return all(
        r.value is not None and (model.is_module_construction(r.value) or (
            isinstance(r.value, ast.Name) and _isinstance_guarded(model, r.value)
        ))
        for r in returns
    )


def _property_of(model: SemanticModel, ret: ast.Return) -> bool:
    """``ret`` is the whole body (past a docstring) of a ``@property`` getter."""
    func = model.parent(ret)
    if not isinstance(func, ast.FunctionDef) or len(func.decorator_list) != 1:
        return False
    if model.qualified_names(func.decorator_list[0]) != {"builtins.property"}:
        return False
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return body == [ret]


def registering_calls(model: SemanticModel) -> str:
    """Where the file registers modules by name: "" nowhere, "fresh" only by
    ``add_module``/``register_module`` on a local of a function outside any class bound only to a
    module construction there, "anywhere" otherwise (``self.add_module``, ``setattr``, ...)."""
    key = "container_registering_calls"
    if key in model.memo:
        return model.memo[key]
    found = ""
    if model.called & REGISTERING_CALLS:
        for call in model.nodes(ast.Call):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name not in REGISTERING_CALLS:
                continue
            if not (name in ("add_module", "register_module") and isinstance(func, ast.Attribute) and _fresh_local(model, func.value)):
                found = "anywhere"
                break
            found = "fresh"
    model.memo[key] = found
    return found


def _fresh_local(model: SemanticModel, receiver: ast.AST) -> bool:
    """``receiver`` is a local of a function outside any class whose value there is a module
    construction: the last binding before it, in a block around it, assigns one, and no binding
    in a loop around both can come back to it."""
    if not isinstance(receiver, ast.Name):
        return False
    func = model.enclosing_function(receiver)
    if func is None or model.enclosing_class(func) is not None:
        return False
    scope = model.scope(receiver)
    if model.inner_scope(func) is not scope:
        return False
    bindings = sorted(scope.bindings.get(receiver.id, []), key=lambda b: start(b.node))
    earlier = [b for b in bindings if start(b.node) < start(receiver)]
    if not earlier:
        return False
    node = earlier[-1].node
    holder = model.parent(node)
    if not (isinstance(holder, ast.Assign) and len(holder.targets) == 1 and holder.targets[0] is node
            and model.is_module_construction(holder.value)):
        return False
    around = set(model.ancestors(receiver))
    if model.parent(holder) not in around:
        return False  # assigned in a branch or loop the use may not follow
    loops = [a for a in around if isinstance(a, (ast.For, ast.While, ast.AsyncFor))]
    later = [b for b in bindings if start(b.node) > start(receiver)]
    return not any(set(model.ancestors(b.node)) & set(loops) for b in later)


def module_valued_local(model: SemanticModel, expr: ast.AST, is_element: Callable[[ast.AST], bool]) -> bool:
    """``expr`` is a local name bound only to module constructions and used nowhere else but as
    the receiver of attribute reads (``layer.weight``)."""
    if not isinstance(expr, ast.Name):
        return False
    scope = model.scope(expr)
    if scope.kind == "module":
        return False
    bindings = scope.bindings.get(expr.id, [])
    if not bindings:
        return False
    for binding in bindings:
        node = binding.node
        holder = model.parent(node)
        if not (
            isinstance(node, ast.Name)
            and isinstance(holder, ast.Assign)
            and len(holder.targets) == 1
            and holder.targets[0] is node
            and is_element(holder.value)
        ):
            return False
    home = model.enclosing_function(expr)
    for access in local_references(model, scope, expr.id):
        if access is expr:
            continue
        if model.enclosing_function(access) is not home:
            return False  # used from a nested function or lambda: out of sight
        parent = model.parent(access)
        if isinstance(parent, ast.Attribute) and parent.value is access:
            continue
        return False
    return True


# -- modules registered through another path -----------------------------------------


def _is_nn_container_call(model: SemanticModel, expr: ast.AST) -> bool:
    """``nn.Sequential(...)``, ``nn.ModuleList(...)`` or ``nn.ModuleDict(...)``."""
    if not isinstance(expr, ast.Call):
        return False
    qnames = model.qualified_names(expr.func)
    return bool(qnames) and all(q.startswith("torch.nn.") and q.rsplit(".", 1)[-1] in NN_CONTAINERS for q in qnames)


def _self_receiver(model: SemanticModel, expr: ast.AST) -> bool:
    """``expr`` is the instance parameter of the method of an nn.Module class around it."""
    if not isinstance(expr, ast.Name):
        return False
    func = model.enclosing_function(expr)
    cls = model.enclosing_class(func) if func is not None else None
    if cls is None or not model.module_classes.get(cls, False) or self_name(func) != expr.id:
        return False
    bindings = model.scope(expr).resolve(expr.id)
    return len(bindings) == 1 and bindings[0].kind == "param"


def _kept_container(model: SemanticModel, attr: ast.Attribute) -> bool:
    """``self.y`` where every store to ``y`` in the file is an nn container construction."""
    stores = [
        model.parent(use) for use in model.attributes.get(attr.attr, ())
        if cst_parent(model, use)[0] == "AssignTarget"
    ]
    return bool(stores) and all(
        isinstance(s, ast.Assign) and len(s.targets) == 1 and _is_nn_container_call(model, s.value) for s in stores
    )


def registers_module(model: SemanticModel, expr: ast.AST, depth: int = 0) -> bool:
    """The module ``expr`` evaluates to is registered on the module running the code:
    ``self.x = expr``, ``self.add_module(name, expr)``, ``self.y.append(expr)`` into an nn
    container, or held (as an argument, a list, tuple or dict element) by an nn container
    construction that is itself so registered."""
    if depth > 4:
        return False
    kind, holder, arg = cst_parent(model, expr)
    if kind == "Assign" and len(holder.targets) == 1:
        target = holder.targets[0]
        return isinstance(target, ast.Attribute) and _self_receiver(model, target.value)
    if kind in ("Element", "StarredElement") or (kind == "DictElement" and expr in holder.values):
        return registers_module(model, holder, depth + 1)
    if kind != "Arg" or arg.keyword is not None or arg.star == "**":
        return False
    if _is_nn_container_call(model, holder):
        return registers_module(model, holder, depth + 1)
    func = holder.func
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr in ("add_module", "register_module"):
        return _self_receiver(model, func.value) and len(holder.args) == 2 and holder.args[1] is expr
    return func.attr in ("append", "insert") and _into_kept_container(model, func)


def _into_kept_container(model: SemanticModel, func: ast.Attribute) -> bool:
    """``self.y.<method>`` where every store to ``y`` is an nn container construction."""
    return isinstance(func.value, ast.Attribute) and _self_receiver(model, func.value.value) and _kept_container(model, func.value)


def _name_reads(model: SemanticModel, name: ast.Name) -> list[ast.Name]:
    """Every read of the local or parameter ``name`` names (one binding scope, not the module's)."""
    bindings = model.scope(name).resolve(name.id)
    if not bindings or bindings[0].scope.kind == "module":
        return []
    found = {id(access): access for b in bindings[0].scope.bindings.get(name.id, []) for access in b.accesses}
    return sorted(found.values(), key=start)


def _loop_element(model: SemanticModel, iterated: ast.AST) -> ast.Name | None:
    """The loop variable holding each element of ``iterated``: ``for v in iterated``,
    ``for i, v in enumerate(iterated)`` (comprehensions too)."""
    loop = model.parent(iterated)
    position = None
    if (
        isinstance(loop, ast.Call) and isinstance(loop.func, ast.Name) and loop.func.id == "enumerate"
        and model.qualified_names(loop.func) == {"builtins.enumerate"} and loop.args and loop.args[0] is iterated
    ):
        iterated, loop, position = loop, model.parent(loop), 1
    if not (isinstance(loop, (ast.For, ast.AsyncFor, ast.comprehension)) and loop.iter is iterated):
        return None
    target = loop.target
    if position is not None:
        if not (isinstance(target, ast.Tuple) and len(target.elts) == 2):
            return None
        target = target.elts[position]
    return target if isinstance(target, ast.Name) else None


def elements_registered(model: SemanticModel, collection: ast.AST, depth: int = 0) -> bool:
    """Some of the modules the list, tuple or parameter ``collection`` holds are registered through
    another path too: the collection handed to an nn container construction that is kept
    (``self.body = nn.Sequential(*layers)``), or an element (``layers[0]``, a loop variable over
    it) stored on ``self`` or so handed. Reads of a local name are followed to all its reads."""
    if depth > 3:
        return False
    if isinstance(collection, ast.Name):
        return any(_collection_registered(model, read, depth) for read in _name_reads(model, collection))
    return _collection_registered(model, collection, depth)


def _collection_registered(model: SemanticModel, expr: ast.AST, depth: int) -> bool:
    kind, holder, arg = cst_parent(model, expr)
    if kind == "Arg" and arg.keyword is None and arg.star != "**" and _is_nn_container_call(model, holder):
        return registers_module(model, holder)  # nn.Sequential(*layers), nn.ModuleList(layers)
    if (
        kind == "Arg" and not arg.star and arg.keyword is None and isinstance(holder.func, ast.Attribute)
        and holder.func.attr == "extend" and _into_kept_container(model, holder.func)
    ):
        return True  # self.blocks.extend(layers) into an nn.ModuleList
    if kind == "Arg" and not arg.star and arg.keyword is None and is_iterating_builtin(model, holder):
        if holder.func.id in ("list", "tuple") and len(holder.args) == 1:
            return _collection_registered(model, holder, depth)  # a copy holds the same modules
    if kind == "Assign" and len(holder.targets) == 1 and isinstance(holder.targets[0], ast.Name):
        return elements_registered(model, holder.targets[0], depth + 1)  # a local name for it
    if kind == "Subscript" and holder.value is expr and isinstance(holder.ctx, ast.Load):
        if isinstance(holder.slice, ast.Slice):
            return _collection_registered(model, holder, depth)
        return registers_module(model, holder)
    element = _loop_element(model, expr)
    if element is not None:
        return any(registers_module(model, read) for read in _name_reads(model, element))
    return False


def registered_elsewhere(model: SemanticModel, expr: ast.AST, collection: bool) -> bool:
    """The module ``expr`` (``collection``: the modules it holds), handed in by the caller, is
    registered through another path too: itself, or the collection it is an element of."""
    if collection:
        if isinstance(expr, ast.Call) and len(expr.args) == 1 and is_iterating_builtin(model, expr):
            expr = expr.args[0]  # list(layers)
        return elements_registered(model, expr)
    if not isinstance(expr, ast.Name):
        return False
    if any(registers_module(model, read) for read in _name_reads(model, expr) if read is not expr):
        return True
    target, loop = _single_binding(model, expr)
    if target is None:
        return False
    if isinstance(loop, ast.Tuple):
        loop = model.parent(loop)  # for i, layer in enumerate(layers)
    if isinstance(loop, (ast.For, ast.AsyncFor, ast.comprehension)):
        iterated = loop.iter
        if isinstance(iterated, ast.Call) and is_iterating_builtin(model, iterated) and iterated.args:
            iterated = iterated.args[0] if iterated.func.id in ("enumerate", "list", "tuple") else None
        return isinstance(iterated, ast.Name) and elements_registered(model, iterated)
    return False


# -- sites -----------------------------------------------------------------------


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
    """Every ``self.x = value`` (single target) directly inside a method of ``cls``."""
    key = ("container_self_assignments", cls)
    if key not in model.memo:
        model.memo[key] = list(_find_self_assignments(model, cls))
    return model.memo[key]


def _find_self_assignments(model: SemanticModel, cls: ast.ClassDef) -> Iterator[SelfAssignment]:
    for method in class_methods(cls):
        self_arg = self_name(method)
        if self_arg is None:
            continue
        for assign in sorted(model.nodes(ast.Assign, method), key=start):
            if len(assign.targets) != 1:
                continue
            target = assign.targets[0]
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_arg):
                continue
            if model.enclosing_function(assign) is method:
                yield SelfAssignment(cls, method, self_arg, assign, target)


def _is_super_init(model: SemanticModel, stmt: ast.stmt, self_arg: str) -> bool:
    """``super().__init__(...)``, ``super(Cls, self).__init__(...)``, or ``Base.__init__(self, ...)``
    where ``Base`` is ``nn.Module`` or an nn.Module class (a mixin's ``__init__`` does not count)."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    call = stmt.value
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr == "__init__"):
        return False
    receiver = func.value
    if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super":
        return True
    args = call_args(call)
    return (
        bool(args)
        and isinstance(args[0].value, ast.Name)
        and args[0].value.id == self_arg
        and model.is_module_class_expr(receiver)
    )


def statements_after_super_init(model: SemanticModel, func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt] | None:
    """Top-level statements of ``__init__`` that run after the base ``__init__``, or None."""
    self_arg = self_name(func)
    if self_arg is None:
        return None
    body = func.body
    for index, stmt in enumerate(body):
        if _is_super_init(model, stmt, self_arg) and model.alone_on_its_line(stmt):
            return body[index + 1 :]
    return None


def runs_after_super_init(model: SemanticModel, site: SelfAssignment) -> bool:
    """Registering a submodule needs nn.Module.__init__ to have run first."""
    if site.method.name != "__init__":
        return True
    after = statements_after_super_init(model, site.method)
    if after is None:
        return False
    top: ast.AST = site.assign
    for anc in model.ancestors(site.assign):
        if anc is site.method:
            break
        top = anc
    return any(stmt is top for stmt in after)


# -- uses of the attribute ---------------------------------------------------------


class ContainerUses:
    """Checks every use of attribute ``attr`` in the file against what ``nn.ModuleList``
    (``kind="list"``) or ``nn.ModuleDict`` (``kind="dict"``) supports.

    ``owned`` is the one assignment that creates the container; any other store to the
    attribute blocks the conversion.
    """

    def __init__(
        self, model: SemanticModel, kind: str, owned: ast.Attribute, module_value, methods=None, holds_modules: bool = True
    ) -> None:
        self.model = model
        self.kind = kind
        # modules handed to other code may get registered there; parameters are just used
        self.holds_modules = holds_modules
        self.methods = methods or (LIST_METHODS if kind == "list" else DICT_METHODS)
        self.owned = owned
        self.module_value = module_value  # (expr) -> bool
        self.reason = ""
        self.dict_keys: list[ast.expr] = []
        self._properties: set[str] = set()  # properties whose reads are being checked

    def check(self, attr: str) -> str:
        self.dict_keys = []
        self._properties = set()
        verdict = Verdict.OK
        for node in self.model.attributes.get(attr, ()):
            result = self._use(node)
            if result in (Verdict.ELSEWHERE, Verdict.NOT_MODULES):
                return result
            if result == Verdict.UNSUPPORTED:
                verdict = result
        return verdict

    def _property_reads(self, name: str) -> str:
        """``return self.x`` is the whole getter of the property ``name``: each ``obj.<name>`` of
        the file reads the container itself, so the property's reads count as uses of the
        attribute only when they pass the same checks; otherwise the property hands the list out
        in ways the nn container may not support (``[a] + obj.<name>`` and
        ``obj.<name>.reverse()`` raise on it): the finding stands, without a fix."""
        if name in self._properties:
            return Verdict.OK  # already being checked (a property returning itself)
        self._properties.add(name)
        reason, failed = self.reason, ""
        for node in self.model.attributes.get(name, ()):
            self.reason = ""
            result = self._use(node)
            if result != Verdict.OK and not failed:
                failed = self.reason or "something that may not be an nn.Module is added to it"
        self.reason = reason
        if failed:
            return self._fail(f"{failed}, read through the property `{name}`")
        return Verdict.OK

    def _fail(self, reason: str) -> str:
        self.reason = self.reason or reason
        return Verdict.UNSUPPORTED

    def _use(self, node: ast.Attribute) -> str:
        model, is_list = self.model, self.kind == "list"
        if node is self.owned:
            return Verdict.OK
        kind, parent, arg = cst_parent(model, node)
        if kind == "AssignTarget" or (kind == "AnnAssign" and parent.target is node):
            return self._fail("it is assigned more than once")
        if kind == "Subscript":
            return self._subscript_use(parent)
        if kind == "Attribute":
            method = parent.attr
            call = model.parent(parent)
            if not (isinstance(call, ast.Call) and call.func is parent):
                return self._fail(f"its attribute `{method}` is used")
            if method not in self.methods:
                return self._fail(f"`.{method}()` is not available on the nn container")
            args = call_args(call)
            if method in {"append", "insert"} and not (args and self.module_value(args[-1].value)):
                return Verdict.NOT_MODULES
            if method == "pop" and len(args) != 1:
                return self._fail("`.pop()` is called without exactly one key, which nn containers require")
            if method == "insert" and not (len(args) == 2 and _is_integer(args[0].value) and not args[0].keyword and not args[0].star):
                return self._fail("`.insert()` with an index nn.ModuleList may reject (only non-negative literals are safe)")
            if method == "extend" and not (len(args) == 1 and self.modules_iterable(args[0].value)):
                return Verdict.NOT_MODULES
            if method in {"values", "items"} and self._spread(call):
                return Verdict.ELSEWHERE
            if method == "values":
                handed_kind, handed_to, _ = cst_parent(model, call)
                if handed_kind == "Arg" and not is_iterating_builtin(model, handed_to):
                    # `nn.ParameterList(self.x.values())`: registered by the container it is handed to
                    self.reason = "its values are handed to other code"
                    return Verdict.ELSEWHERE
            return Verdict.OK
        if kind == "AugAssign" and parent.target is node:
            if is_list and isinstance(parent.op, ast.Add):
                return Verdict.OK if self.modules_iterable(parent.value) else Verdict.NOT_MODULES
            return self._fail("it is updated with an augmented assignment")
        if kind in ("For", "CompFor") and parent.iter is node:
            return Verdict.OK
        if kind == "Arg":
            if not arg.star and arg.keyword is None and is_iterating_builtin(model, parent):
                return Verdict.OK
            if not self.holds_modules:
                return self._fail("it is passed to other code that may need a Python container")
            self.reason = "it is passed to other code"
            return Verdict.ELSEWHERE
        if kind == "ComparisonTarget":
            index = next(i for i, c in enumerate(parent.comparators) if c is node)
            if isinstance(parent.ops[index], (ast.In, ast.NotIn)):
                return Verdict.OK
        if kind in ("If", "While", "IfExp") and parent.test is node:
            return Verdict.OK
        if kind in ("UnaryOperation", "BooleanOperation"):
            return Verdict.OK
        if is_list and kind == "BinaryOperation" and parent.left is node and isinstance(parent.op, ast.Add):
            if self.modules_iterable(parent.right):
                return Verdict.OK
            return self._fail("it is concatenated with values not known to be nn.Modules")
        if kind == "Expr":
            return Verdict.OK
        if kind == "Return" and _property_of(model, parent):
            return self._property_reads(model.parent(parent).name)
        if kind in ("Return", "Assign", "Element", "DictElement", "Yield", "Lambda", "StarredElement"):
            self.reason = "it is handed to other code"
            return Verdict.ELSEWHERE
        return self._fail("it is used in a way the nn container does not support")

    def _only_called_by_method(self, call: ast.AST, arg: ast.AST) -> bool:
        """``self._helper(self.layers[0], h)`` where the helper only calls what it is given
        (``layer(h)``): the element is used as a layer there, not kept or registered."""
        model = self.model
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)):
            return False
        if arg not in call.args or any(isinstance(a, ast.Starred) for a in call.args):
            return False
        cls = model.enclosing_class(call)
        if cls is None:
            return False
        methods = [m for member in model.class_family(cls) for m in class_methods(member) if m.name == call.func.attr]
        if len(methods) != 1:
            return False
        method = methods[0]
        if any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in method.decorator_list):
            return False
        params = method.args.posonlyargs + method.args.args
        index = call.args.index(arg) + 1  # past `self`
        if index >= len(params):
            return False
        name = params[index].arg
        reads = [n for n in model.nodes(ast.Name, method) if n.id == name]
        return bool(reads) and all(
            isinstance(n.ctx, ast.Load) and isinstance(model.parent(n), ast.Call) and model.parent(n).func is n for n in reads
        )

    def _passes_through_function(self, call: ast.AST, arg: ast.AST) -> bool:
        """``to_device(self.layers[i])(h)``: the element is handed to a function of this file that
        keeps nothing of it (it only calls it, calls its methods, or returns it, as
        ``def to_device(m): return m.cuda()``), and what the call gives back is only called or
        dropped: the same object is used, as a layer, whatever holds it."""
        model = self.model
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            return False
        if any(isinstance(a, ast.Starred) for a in call.args) or any(kw.arg is None for kw in call.keywords):
            return False
        functions = model.local_functions(call.func)
        if not functions or len(functions) != 1:
            return False
        func = functions[0]
        if func.decorator_list or model.enclosing_class(func) is not None or isinstance(func, ast.AsyncFunctionDef):
            return False
        params = func.args.posonlyargs + func.args.args
        if arg in call.args:
            index = call.args.index(arg)
            if index >= len(params):
                return False
            name = params[index].arg
        else:
            name = next((kw.arg for kw in call.keywords if kw.value is arg), None)
            if name is None or name not in [p.arg for p in params + func.args.kwonlyargs]:
                return False
        scope = model.inner_scope(func)
        if scope is None or len(scope.bindings.get(name, [])) != 1:
            return False  # rebound in the function
        returned = False
        reads = [n for n in model.nodes(ast.Name, func) if n.id == name and isinstance(n.ctx, ast.Load)]
        for read in reads:
            if model.scope(read) is not scope:
                return False  # read from a nested function or comprehension: out of sight
            parent = model.parent(read)
            if isinstance(parent, ast.Call) and parent.func is read:
                continue
            value: ast.AST = read
            if isinstance(parent, ast.Attribute) and parent.value is read:
                method_call = model.parent(parent)
                if not (isinstance(method_call, ast.Call) and method_call.func is parent):
                    return False  # an attribute read: its parameters may be stored elsewhere
                if any(n.id == name for a in method_call.args for n in model.nodes(ast.Name, a)):
                    return False
                value = method_call
            holder = model.parent(value)
            if isinstance(holder, ast.Return):
                returned = True
            elif not isinstance(holder, ast.Expr):
                return False
        if not reads:
            return False
        if returned:
            outer = model.parent(call)
            if not (isinstance(outer, ast.Expr) or (isinstance(outer, ast.Call) and outer.func is call)):
                return False  # what it gives back is kept or handed on
        return True

    def _spread(self, expr: ast.AST) -> bool:
        """``*expr`` handed to a call (``nn.Sequential(*self.layers[1:])``) registers the modules there."""
        kind, _, arg = cst_parent(self.model, expr)
        if kind == "Arg" and arg.star:
            self.reason = "its modules are handed to other code"
            return True
        return False

    def _subscript_use(self, sub: ast.Subscript) -> str:
        model = self.model
        kind, holder, arg = cst_parent(model, sub)
        if self._spread(sub):
            return Verdict.ELSEWHERE
        # an element handed to other code or stored under another name gets registered there too
        if kind in ("Arg", "Element", "DictElement") and (self.holds_modules or kind != "Arg"):
            if not (kind == "Arg" and (
                is_iterating_builtin(model, holder)
                or self._only_called_by_method(holder, sub)
                or self._passes_through_function(holder, sub)
            )):
                self.reason = "an element is handed to other code"
                return Verdict.ELSEWHERE
        if kind == "Assign" and element_alias_reads(model, holder) is None:
            self.reason = "an element is stored under another name"
            return Verdict.ELSEWHERE
        if kind == "Assign":
            return Verdict.OK  # a local name for the element, only run or asked for its methods
        parts = subscript_elements(model, sub)
        sliced = any(isinstance(part, ast.Slice) for part in parts)
        if kind == "BinaryOperation" and sliced:
            return self._fail("a part of it is combined with other values")
        stored = kind == "AssignTarget"
        if kind == "AugAssign" and holder.target is sub:
            return Verdict.OK  # updates the element, not the container
        if self.kind == "dict":
            if len(parts) != 1 or isinstance(parts[0], ast.Slice):
                return self._fail("it is sliced")
            if stored:
                self.dict_keys.append(parts[0])
        if stored:
            if not (len(holder.targets) == 1 and self.module_value(holder.value)):
                return Verdict.NOT_MODULES
        return Verdict.OK

    def modules_iterable(self, expr: ast.AST) -> bool:
        if isinstance(expr, (ast.List, ast.Tuple)):
            return all(not isinstance(el, ast.Starred) and self.module_value(el) for el in expr.elts)
        if isinstance(expr, (ast.ListComp, ast.GeneratorExp)):
            return self.module_value(expr.elt)
        return False


def _is_integer(expr: ast.AST) -> bool:
    return isinstance(expr, ast.Constant) and type(expr.value) is int


# -- what the layers hold ------------------------------------------------------------

# torch.nn classes that hold neither parameters nor buffers however they are built (checked on
# torch 2.13): registering them changes only what .train()/.eval(), hooks and apply() reach.
STATELESS_NN_CLASSES = frozenset(
    {
        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
        "AdaptiveMaxPool3d", "AlphaDropout", "AvgPool1d", "AvgPool2d", "AvgPool3d", "CELU", "ChannelShuffle",
        "CircularPad1d", "CircularPad2d", "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
        "CosineSimilarity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "ELU", "FeatureAlphaDropout", "Flatten",
        "Fold", "FractionalMaxPool2d", "FractionalMaxPool3d", "GELU", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish",
        "Hardtanh", "Identity", "LPPool1d", "LPPool2d", "LPPool3d", "LeakyReLU", "LocalResponseNorm", "LogSigmoid",
        "LogSoftmax", "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "Mish",
        "PairwiseDistance", "PixelShuffle", "PixelUnshuffle", "RReLU", "ReLU", "ReLU6", "ReflectionPad1d",
        "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "SELU",
        "SiLU", "Sigmoid", "Softmax", "Softmax2d", "Softmin", "Softplus", "Softshrink", "Softsign", "Tanh",
        "Tanhshrink", "Threshold", "Unflatten", "Unfold", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d",
        "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
    }
)
# torch.nn containers: they hold what they are given
NN_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
PARAMS, STATELESS, OPAQUE = "params", "stateless", "opaque"


def layer_state(model: SemanticModel, expr: ast.AST, depth: int = 0) -> str:
    """What a module construction holds: ``PARAMS`` when it certainly holds a parameter (a
    torch.nn layer that has weights, or a class of the file that makes one), ``STATELESS`` when
    it certainly holds neither parameters nor buffers, ``OPAQUE`` otherwise (buffers only, or
    what it holds cannot be seen: code of another library builds it)."""
    if not isinstance(expr, ast.Call) or depth > 4:
        return OPAQUE
    qnames = model.qualified_names(expr.func)
    if qnames and all(q.startswith("torch.nn.") for q in qnames):
        short = {q.rsplit(".", 1)[-1] for q in qnames}
        if short <= STATELESS_NN_CLASSES:
            return STATELESS
        if short <= NN_CONTAINERS:
            parts = [a.value for a in call_args(expr)]
            return _combine([_held_state(model, part, depth) for part in parts]) if parts else STATELESS
        if short <= NN_MODULE_CLASSES and not any(name.endswith("Loss") for name in short):
            return PARAMS  # linear, convolution, normalization, embedding, recurrent, attention layers
        return OPAQUE
    classes = model.local_classes(expr.func)
    if classes and len(classes) == 1:
        return class_state(model, classes[0], depth + 1)
    if qnames and all(model.project_class(q) is not None for q in qnames):
        # a class of another file of the run: what it holds is not summarized across files, so
        # it is taken to hold parameters, as a layer class usually does
        return PARAMS
    return OPAQUE


def _held_state(model: SemanticModel, expr: ast.AST, depth: int) -> str:
    if isinstance(expr, (ast.List, ast.Tuple)):
        return _combine([_held_state(model, e, depth) for e in expr.elts]) if expr.elts else STATELESS
    if isinstance(expr, ast.Starred):
        return _held_state(model, expr.value, depth)
    return layer_state(model, expr, depth + 1)


def _combine(states: list[str]) -> str:
    if PARAMS in states:
        return PARAMS
    return OPAQUE if OPAQUE in states else STATELESS


def class_state(model: SemanticModel, cls: ast.ClassDef, depth: int) -> str:
    """``layer_state`` of an instance of a class of this file, from what its methods and those
    of its bases store on ``self``."""
    states = []
    for member in model.class_family_up(cls):
        for base in model.base_classes(member):
            if not isinstance(base, ast.ClassDef) and base != TORCH_MODULE_BASE:
                states.append(layer_state_of_base(base))
        for site in self_assignments(model, member):
            states.append(_stored_state(model, site.value, depth))
        for call in model.nodes(ast.Call, member):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr in ("register_parameter", "register_buffer", "add_module"):
                states.append(PARAMS if func.attr == "register_parameter" else OPAQUE)
    return _combine(states)


def layer_state_of_base(qname: str) -> str:
    short = qname.rsplit(".", 1)[-1]
    if qname.startswith("torch.nn.") and short in STATELESS_NN_CLASSES:
        return STATELESS
    if qname.startswith("torch.nn.") and short in NN_MODULE_CLASSES and not short.endswith("Loss"):
        return PARAMS
    return OPAQUE


def _stored_state(model: SemanticModel, value: ast.AST, depth: int) -> str:
    """What storing ``value`` on ``self`` adds: a number, a string, a name or an argument adds
    nothing a module holds; a call may build a layer or a tensor."""
    if isinstance(value, ast.Call):
        qnames = model.qualified_names(value.func)
        if qnames and all(q in ("torch.nn.Parameter", "torch.nn.parameter.Parameter") for q in qnames):
            return PARAMS
        if model.is_module_construction(value):
            return layer_state(model, value, depth)
        if qnames and all(q.startswith(("builtins.", "math.")) for q in qnames):
            return STATELESS
        return OPAQUE
    if isinstance(value, (ast.List, ast.Tuple)):
        return _combine([_stored_state(model, e, depth) for e in value.elts]) if value.elts else STATELESS
    if isinstance(value, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp)):
        return STATELESS
    return OPAQUE


# -- the rules ---------------------------------------------------------------------


class ContainerRule(Rule):
    """Shared driver: every ``self.x = ...`` in the nn.Module classes of the file, decided on
    every use of the attribute in the file."""

    kind: str  # "list" or "dict"
    container: str  # "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"
    noun: str = "nn.Modules"
    methods: frozenset[str] | None = None  # what the container supports (None: ModuleList/ModuleDict)
    holds_modules: bool = True
    # per checked site: the element constructions seen, those of classes the run cannot see,
    # and whether the second (lenient) pass that accepts the latter is running
    _elements: list | tuple = ()
    _unknown: list | tuple = ()
    _lenient: bool = False
    # why an element accepted as the container's kind still keeps the fix away (first one wins)
    _doubts: list | tuple = ()
    # values the caller hands in that the program shows are modules (second pass only)
    _outside: list | tuple = ()

    def check(self) -> None:
        for cls, is_module in self.model.module_classes.items():
            if is_module:
                for site in self_assignments(self.model, cls):
                    self._elements, self._unknown, self._lenient, self._doubts, self._outside = [], [], False, [], []
                    before = len(self.findings)
                    self.check_site(site)
                    if len(self.findings) == before and self.holds_modules:
                        # again, taking instances of classes defined elsewhere for layers: reported
                        # (never fixed) where the class runs them as layers
                        self._elements, self._unknown, self._lenient, self._doubts, self._outside = [], [], True, [], []
                        self.check_site(site)
                        self._lenient = False

    def check_site(self, site: SelfAssignment) -> None:
        raise NotImplementedError

    def is_element(self, expr: ast.AST) -> bool:
        """A construction of what the container holds (each one seen is kept for the fix's
        decision)."""
        found = self.model.is_module_construction(expr)
        if found:
            self._elements.append(expr)
        elif self._lenient and self._unknown_class_instance(expr):
            self._unknown.append(expr)
            return True
        elif self._lenient and (proven_module(self.model, expr) or declared_module_element(self.model, expr)):
            self.from_outside(expr)
            return True
        return found

    def from_outside(self, expr: ast.AST, collection: bool = False) -> None:
        """``expr`` is a module the program proves or declares, built or chosen by other code
        (``collection``: a list or tuple of such modules)."""
        self._outside.append((expr, collection))
        self._doubts.append("the modules come from the caller: nn.ModuleList raises TypeError on anything that is "
                            "not an nn.Module, and a caller may keep them out of training on purpose")

    def _unknown_class_instance(self, expr: ast.AST) -> bool:
        """A call of a class imported from code the run does not hold (``LayerNormLSTMCell(...)``):
        a CamelCase name bound by an import, not a torch or builtin name."""
        if not isinstance(expr, ast.Call):
            return False
        func = expr.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if not name or not name[:1].isupper() or name.isupper() or "_" in name.strip("_"):
            return False
        qnames = self.model.qualified_names(func)
        if not qnames or any(q.startswith(("torch.", "builtins.", "typing.", "collections.")) for q in qnames):
            return False
        # a class of the run's other files is known: a module (fixed as such) or not one
        model = self.model
        if model.project is not None and any(model.project.holds(q, model.module_name, model.is_package) for q in qnames):
            return False
        return not model.local_classes(func)

    def _run_as_layers(self, site: SelfAssignment, methods: bool = False) -> bool:
        """The class calls the container's elements on values: ``self.x[i](h)``, or a loop over
        ``self.x`` (or a slice of it, or ``zip``/``enumerate`` of it) that calls its loop
        variable. With ``methods``, calling one of an element's methods (``self.x[0].encode(h)``,
        ``obj.encode(h)`` in the loop) counts too."""
        model = self.model

        def runs(call: ast.Call, names: set[str]) -> bool:
            func = call.func
            if isinstance(func, ast.Name) and func.id in names:
                return True
            return methods and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in names

        for use in model.attributes.get(site.attr, ()):
            if use is site.target or not isinstance(use.value, ast.Name):
                continue
            parent = model.parent(use)
            if isinstance(parent, ast.Subscript) and parent.value is use:
                holder = model.parent(parent)
                if isinstance(holder, ast.Call) and holder.func is parent:
                    return True
                if methods and isinstance(holder, ast.Attribute) and holder.value is parent:
                    call = model.parent(holder)
                    if isinstance(call, ast.Call) and call.func is holder:
                        return True
                reads = element_alias_reads(model, holder)
                if reads and any(_runs(model, read) for read in reads):
                    return True
                if isinstance(parent.slice, ast.Slice):
                    use, parent = parent, holder  # a loop over a slice of it
            loop = parent
            if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in ("enumerate", "zip", "reversed"):
                loop = model.parent(parent)
                use = parent
            if isinstance(loop, (ast.For, ast.comprehension)) and loop.iter is use:
                names = {n.id for n in model.nodes(ast.Name, loop.target)}
                body = loop.body if isinstance(loop, ast.For) else [model.parent(loop)]
                for stmt in body:
                    for call in model.nodes(ast.Call, stmt):
                        if runs(call, names):
                            return True
        return False

    def only_opaque_layers(self) -> bool:
        """No layer of the container certainly holds a parameter, and some may hold buffers or
        what the analysis cannot see (a class wrapping another library's transform): registering
        them adds state_dict keys that strict loads of existing checkpoints reject, and lets a
        parent's .half()/.to() cast and move what the code may keep apart on purpose."""
        if not self.holds_modules:
            return False
        states = [layer_state(self.model, e) for e in self._elements]
        return bool(states) and PARAMS not in states and OPAQUE in states

    def module_value(self, expr: ast.AST) -> bool:
        return self.is_element(expr) or module_valued_local(self.model, expr, self.is_element)

    def uses(self, site: SelfAssignment) -> ContainerUses:
        return ContainerUses(self.model, self.kind, site.target, self.module_value, self.methods, self.holds_modules)

    def conclude(self, site: SelfAssignment, uses: ContainerUses, message: str, wrap: str, unsafe: bool = False) -> None:
        """Report the finding, with a fix when every use of the attribute allows one. ``wrap``
        says how the value becomes the container (see :func:`wrap_value`)."""
        model = self.model
        if self._unknown and not self._run_as_layers(site):
            return  # instances of a class defined elsewhere, not run as layers here: no evidence
        if self._outside and not self._run_as_layers(site, methods=True):
            return  # modules handed in and kept, not used here: perhaps kept apart on purpose
        if any(registered_elsewhere(model, expr, collection) for expr, collection in self._outside):
            return  # also registered through another path (self.body = nn.Sequential(*layers)): nothing is lost
        verdict = uses.check(site.attr)
        if verdict in (Verdict.ELSEWHERE, Verdict.NOT_MODULES):
            return  # registered by the code it is handed to, or not a container of modules
        registering = registering_calls(model)
        if registering == "anywhere" or model.customizes_attribute_access(site.cls):
            # modules may be registered by name elsewhere (add_module/setattr), or the
            # attribute reached through __getattr__/__dict__: converting could break either
            return
        if registering == "fresh":
            # only into a container a function of the file builds (`seq = nn.Sequential();
            # seq.add_module(...)`): the finding stands, a wrap could name a module twice
            self._doubts.append("the file registers modules by name into a container it builds, which may hold these")
        if verdict == Verdict.UNSUPPORTED:
            self.report(site.assign, f"{message} (not fixed: {uses.reason})")
            return
        if not runs_after_super_init(model, site):
            self.report(site.assign, f"{message} (not fixed: assigned before nn.Module.__init__ runs)")
            return
        if self._unknown:
            self.report(site.assign, f"{message} (not fixed: their class is defined where the analysis cannot "
                        f"see; nn.{self.container} raises TypeError on anything that is not an nn.Module)")
            return
        if self._doubts:
            self.report(site.assign, f"{message} (not fixed: {self._doubts[0]})")
            return
        if self.only_opaque_layers():
            self.report(site.assign, f"{message} (not fixed: no layer certainly holds a parameter, and registering "
                        "them may add state_dict keys and let .half()/.to() reach what they hold)")
            return
        reference = nn_reference(model, self.container, site.assign)
        if reference is None:
            self.report(site.assign, f"{message} (not fixed: no usable name for torch.nn.{self.container})")
            return
        expr, need = reference
        fix = Fix(
            [self.edit(site.assign, "Assign", wrap_value, expr, wrap)],
            (ImportNeed(*need),) if need else (),
            unsafe=unsafe,
        )
        self.report(site.assign, message, fix, (f"{site.attr}.*",))


def _runs(model: SemanticModel, name: ast.Name) -> bool:
    """``name(h)`` or ``name.forward(h)``: the value is run as a layer."""
    parent = model.parent(name)
    if isinstance(parent, ast.Call) and parent.func is name:
        return True
    call = model.parent(parent)
    return (
        isinstance(parent, ast.Attribute) and parent.attr == "forward"
        and isinstance(call, ast.Call) and call.func is parent
    )


# -- the change (LibCST) -------------------------------------------------------------


def wrap_value(assign, func_code: str, wrap: str):
    """The assignment with its value made the container ``func_code`` names.

    ``wrap``: "call" -> ``func(value)`` (a bare tuple gets the parentheses it needs as an
    argument); "empty" -> ``func()``; "items" -> ``func(value.items())``."""
    import libcst as cst

    func = cst.parse_expression(func_code)
    value = assign.value
    if wrap == "empty":
        new = cst.Call(func=func)
    elif wrap == "items":
        new = cst.Call(func=func, args=[cst.Arg(cst.Call(func=cst.Attribute(value, cst.Name("items"))))])
    else:
        if isinstance(value, cst.Tuple) and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        new = cst.Call(func=func, args=[cst.Arg(value)])
    return assign.with_changes(value=new)
