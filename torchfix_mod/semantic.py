"""The semantic model of one file, built on Python's ``ast``: scopes, bindings and accesses,
qualified names through the file's imports, nn.Module classes, and positions.

Every rule decides on this model; LibCST is only used later, to write a fix. The scope rules
follow Python's (and LibCST's ``ScopeProvider``): a class body is not visible from functions
nested in it, a comprehension has a scope of its own whose first iterable is evaluated outside
it, ``global``/``nonlocal`` move a binding to the scope that owns the name. Resolution is not
flow-sensitive: a name resolves to every binding of it in the scope that owns it.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from torchfix_mod.project import ProjectClass, absolute, is_torch_module_class
from torchfix_mod.syntax import _CHILD_FIELDS, SHARED_NODE_TYPES, TreeIndex, child_fields, dotted, generic_origin, walk
from torchfix_mod.torch_facts import MODULE_ATTRIBUTES

TORCH_MODULE_BASE = "torch.nn.Module"
BUILTIN_NAMES = frozenset(dir(builtins))
ACCESS_HOOKS = frozenset(
    {"__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__getstate__", "__setstate__"}
)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_AST = ast.AST
_SHARED = SHARED_NODE_TYPES
_LINE_ENDS = re.compile(r"(\r\n|\r|\n)")


@dataclass(frozen=True, order=True)
class Span:
    """A source range: 1-based lines, 0-based columns counted in characters (as LibCST's
    ``PositionProvider``, so a fix finds its node by position)."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(eq=False)
class Binding:
    """One place that binds a name in a scope (as LibCST's ``Assignment``)."""

    name: str
    node: ast.AST  # ast.Name (store), ast.arg, ast.alias, a def/class, ast.ExceptHandler, a match pattern
    scope: Scope
    kind: str  # "import", "from-import", "def", "class", "param", "assign", "except", "match"
    target: str | None = None  # imports: the dotted name bound ("torch.nn" for `import torch.nn as nn`)
    statement: ast.stmt | None = None  # imports: the statement
    accesses: list[ast.Name] = field(default_factory=list)


@dataclass(eq=False)
class Scope:
    kind: str  # "module", "class", "function", "lambda", "comprehension"
    node: ast.AST
    parent: Scope | None
    name: str = ""  # the qualified prefix of names defined here ("f.<locals>", "A")
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    accesses: dict[str, list[ast.Name]] = field(default_factory=dict)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)

    @property
    def globals(self) -> Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def __contains__(self, name: str) -> bool:
        return bool(self.resolve(name))

    def __getitem__(self, name: str) -> list[Binding]:
        return self.resolve(name)

    def resolve(self, name: str) -> list[Binding]:
        """The bindings a read of ``name`` in this scope may see (empty: a builtin or unbound)."""
        owner = self.owner(name)
        return owner.bindings.get(name, []) if owner is not None else []

    def owner(self, name: str) -> Scope | None:
        """The scope that owns ``name`` as seen from here."""
        scope: Scope | None = self
        first = True
        while scope is not None:
            if name in scope.declared_global:
                return self.globals
            if name in scope.declared_nonlocal:
                scope = scope.parent
                first = False
                continue
            if scope.kind == "class" and not first:
                scope = scope.parent  # a class body is invisible to the functions nested in it
                continue
            if name in scope.bindings:
                return scope
            scope = scope.parent
            first = False
        return None


class _Binder(ast.NodeVisitor):
    """One walk that builds the scopes, records bindings and accesses, and the parent map."""

    def __init__(self, model: SemanticModel) -> None:
        self.model = model
        self.scope: Scope = model.module_scope
        self.pending: list[tuple[Scope, ast.Name]] = []

    # NodeVisitor.visit looks the handler up by name on every node; here once per node class.
    # The table holds plain functions, not bound methods: a binder must not refer to itself,
    # or it and the model it points to would outlive the file until the collector found them.
    _handlers: dict[type, object] = {}

    def visit(self, node: ast.AST) -> None:
        handler = self._handlers.get(node.__class__)
        if handler is None:
            handler = self._handler(node.__class__)
        handler(self, node)

    # -- helpers -------------------------------------------------------------
    def bind(self, name: str, node: ast.AST, kind: str, target: str | None = None, statement=None) -> None:
        scope = self.scope
        if name in scope.declared_global:
            scope = scope.globals
        elif name in scope.declared_nonlocal:
            outer = scope.parent
            while outer is not None and (outer.kind == "class" or name not in outer.bindings):
                outer = outer.parent
            scope = outer or scope
        scope.bindings.setdefault(name, []).append(Binding(name, node, scope, kind, target, statement))
        self.model._binding_scope[node] = scope

    def enter(self, kind: str, node: ast.AST, name: str) -> Scope:
        prefix = self.scope.name
        if kind == "class":
            qualified = f"{prefix}{name}."
        elif kind == "function":
            qualified = f"{prefix}{name}.<locals>."
        else:
            qualified = prefix
        scope = Scope(kind, node, self.scope, qualified)
        self.model.scopes.append(scope)
        self.model._scope_of_node[node] = scope
        return scope

    def visit_all(self, items) -> None:
        for item in items:
            if item is not None:
                self.visit(item)

    def generic_visit(self, node: ast.AST) -> None:
        # A node's scope is that of its nearest ancestor the walk recorded (``SemanticModel.
        # scope``): it is recorded only where the scope changes (the parts of a def, lambda,
        # class or comprehension evaluated inside it, and those evaluated outside it below a
        # part that is inside), and on names, which are asked most.
        handlers = self._handlers
        for name in _CHILD_FIELDS.get(node.__class__) or child_fields(node.__class__):
            value = getattr(node, name, None)
            if value.__class__ is list:
                for item in value:
                    if isinstance(item, _AST) and item.__class__ not in _SHARED:
                        handler = handlers.get(item.__class__)
                        if handler is None:
                            handler = self._handler(item.__class__)
                        handler(self, item)
            elif isinstance(value, _AST) and value.__class__ not in _SHARED:
                handler = handlers.get(value.__class__)
                if handler is None:
                    handler = self._handler(value.__class__)
                handler(self, value)

    @classmethod
    def _handler(cls, node_class: type):
        handler = cls._handlers[node_class] = getattr(cls, f"visit_{node_class.__name__}", cls.generic_visit)
        return handler

    def _visit_in_scope(self, node: ast.AST) -> None:
        """Visit a part evaluated in the current scope whose parent is evaluated elsewhere."""
        self.model._scope_at[node] = self.scope
        self.visit(node)

    def _record(self, node: ast.AST) -> None:
        self.model._scope_at[node] = self.scope

    # -- names ---------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        self.model._scope_at[node] = self.scope
        if isinstance(node.ctx, ast.Store):
            self.bind(node.id, node, "assign")
        else:
            self.scope.accesses.setdefault(node.id, []).append(node)
            self.pending.append((self.scope, node))

    def visit_Constant(self, node: ast.Constant) -> None:
        pass

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.declared_global.update(node.names)
        self.generic_visit(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.declared_nonlocal.update(node.names)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.bind(alias.asname, alias, "import", alias.name, node)
            else:
                top = alias.name.split(".")[0]
                self.bind(top, alias, "import", top, node)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                continue
            joined = f"{source}.{alias.name}" if not source.endswith(".") else f"{source}{alias.name}"
            self.bind(alias.asname or alias.name, alias, "from-import", joined, node)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bind(node.name, node, "except")
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bind(node.name, node, "match")
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bind(node.name, node, "match")
        self.generic_visit(node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bind(node.rest, node, "match")
        self.generic_visit(node)

    # -- scopes --------------------------------------------------------------
    def _arguments_outside(self, args: ast.arguments) -> None:
        """Defaults and annotations are evaluated where the function is defined."""
        for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            self._visit_in_scope(default)  # under `arguments`, which is inside
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self._visit_in_scope(arg.annotation)

    def _params_inside(self, args: ast.arguments) -> None:
        self.model._scope_at[args] = self.scope
        for arg in [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]:
            if arg is not None:
                self.model._scope_at[arg] = self.scope
                self.bind(arg.arg, arg, "param")

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._record(node)
        self.visit_all(node.decorator_list)
        self._arguments_outside(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self.bind(node.name, node, "def")
        outer, self.scope = self.scope, self.enter("function", node, node.name)
        self._params_inside(node.args)
        for statement in node.body:
            self._visit_in_scope(statement)
        self.scope = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._record(node)
        self._arguments_outside(node.args)
        outer, self.scope = self.scope, self.enter("lambda", node, "<lambda>")
        self._params_inside(node.args)
        self._visit_in_scope(node.body)
        self.scope = outer

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._record(node)
        self.visit_all(node.decorator_list)
        self.visit_all(node.bases)
        self.visit_all(node.keywords)
        outer, self.scope = self.scope, self.enter("class", node, node.name)
        for statement in node.body:
            self._visit_in_scope(statement)
        self.scope = outer
        self.bind(node.name, node, "class")

    def _comprehension(self, node, parts) -> None:
        self._record(node)
        generators = node.generators
        # the first iterable is evaluated in the enclosing scope
        self._visit_in_scope(generators[0].iter)  # under its generator, which is inside
        outer, self.scope = self.scope, self.enter("comprehension", node, "<comprehension>")
        for index, gen in enumerate(generators):
            self.model._scope_at[gen] = self.scope
            self.visit(gen.target)
            if index:
                self.visit(gen.iter)
            self.visit_all(gen.ifs)
        for part in parts:
            self._visit_in_scope(part)
        self.scope = outer

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._record(node)
        self.visit(node.value)
        # the target binds in the nearest enclosing non-comprehension scope
        scope, outer = self.scope, self.scope
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        self.scope = scope
        self.model._scope_at[node.target] = scope
        self.bind(node.target.id, node.target, "assign")
        self.scope = outer

    def finish(self) -> None:
        for scope, name in self.pending:
            for binding in scope.resolve(name.id):
                binding.accesses.append(name)


class SemanticModel:
    """What the rules know about one file. Built once per file, from one ``ast`` parse."""

    def __init__(
        self,
        tree: ast.Module,
        source: str,
        project=None,
        module: str | None = None,
        is_package: bool = False,
    ) -> None:
        self.tree = tree
        self.source = source
        # lines as the tokenizer counts them (a lone \r ends one too), without their line ends
        self.lines = _LINE_ENDS.split(source)[::2]
        self.project = project  # classes of the run's other files (ProjectIndex)
        self.module_name = module
        self.is_package = is_package
        self.index = TreeIndex(tree)
        self.parents: dict[ast.AST, ast.AST] = self.index.parents
        self.scopes: list[Scope] = []
        self.module_scope = Scope("module", tree, None, "")
        self.scopes.append(self.module_scope)
        self._scope_at: dict[ast.AST, Scope] = {}
        self._scope_of_node: dict[ast.AST, Scope] = {tree: self.module_scope}
        self._binding_scope: dict[ast.AST, Scope] = {}
        self.memo: dict[object, object] = {}  # per-file results shared between rules
        self._qnames: dict[ast.AST, frozenset[str]] = {}
        binder = _Binder(self)
        binder.generic_visit(tree)
        binder.finish()
        self._module_classes: dict[ast.ClassDef, bool] | None = None
        self._attributes: dict[str, list[ast.Attribute]] | None = None
        self._names_used: set[str] | None = None
        self._called: set[str] | None = None
        self._raw_lines: list[str] | None = None

    def release(self) -> None:
        """Drop what links the model's parts to each other (bindings and their scopes, results
        the rules kept): with no cycle left, the tree is freed as soon as it is dropped, not at
        the collector's next pass."""
        for scope in self.scopes:
            scope.bindings.clear()
            scope.accesses.clear()
        self.memo.clear()

    # -- tree navigation -------------------------------------------------------
    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(node)

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        parent = self.parents.get(node)
        while parent is not None:
            yield parent
            parent = self.parents.get(parent)

    def exclusive_branches(self, first: ast.AST, second: ast.AST) -> bool:
        """``first`` and ``second`` lie in the two branches of one ``if``/``else`` (or of one
        conditional expression): one run never reaches both, unless a loop around them does."""
        chain = {id(a): child for child, a in zip((first, *self.ancestors(first)), self.ancestors(first))}
        child = second
        for ancestor in self.ancestors(second):
            if id(ancestor) in chain:
                if not isinstance(ancestor, (ast.If, ast.IfExp)):
                    return False
                mine, theirs = chain[id(ancestor)], child

                def branch(node: ast.AST) -> str | None:
                    if isinstance(ancestor, ast.IfExp):
                        return "body" if node is ancestor.body else "orelse" if node is ancestor.orelse else None
                    return "body" if any(s is node for s in ancestor.body) else "orelse" if any(s is node for s in ancestor.orelse) else None

                sides = {branch(mine), branch(theirs)}
                if sides != {"body", "orelse"}:
                    return False
                return not any(isinstance(a, (ast.For, ast.While, ast.AsyncFor)) for a in self.ancestors(ancestor))
            child = ancestor
        return False

    def nodes(self, kind, root: ast.AST | None = None) -> list:
        """Every node of one kind under ``root`` (the module by default; root included), in
        pre-order, from the file's one index."""
        return self.index.nodes(kind, root)

    def enclosing_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The nearest def around ``node``; None at module level or inside a lambda."""
        for anc in self.ancestors(node):
            if isinstance(anc, ast.Lambda):
                return None
            if isinstance(anc, _FUNCTIONS):
                return anc
        return None

    def enclosing_class(self, node: ast.AST) -> ast.ClassDef | None:
        for anc in self.ancestors(node):
            if isinstance(anc, ast.ClassDef):
                return anc
        return None

    def statement(self, node: ast.AST) -> ast.stmt | None:
        """The innermost statement that contains ``node`` (itself, if it is one)."""
        current: ast.AST | None = node
        while current is not None and not isinstance(current, ast.stmt):
            current = self.parents.get(current)
        return current

    def alone_on_its_line(self, statement: ast.stmt) -> bool:
        """Only indentation before ``statement`` on its first line (not ``else: x``, not
        ``a; b``, not ``def f(): x``) and no statement after it on its last: a line can be put
        before it, or a block around it, without touching another statement."""
        if self.line(statement.lineno)[: self.span(statement).column].strip():
            return False
        parent = self.parents.get(statement)
        for field in ("body", "orelse", "finalbody", "handlers"):
            body = getattr(parent, field, None)
            if isinstance(body, list) and any(s is statement for s in body):
                index = next(i for i, s in enumerate(body) if s is statement)
                return not (index + 1 < len(body) and body[index + 1].lineno == statement.end_lineno)
        return parent is None or isinstance(parent, ast.Module)

    # -- positions --------------------------------------------------------------
    def _column(self, line: int, byte_offset: int) -> int:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if text.isascii():
            return byte_offset
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> Span:
        """Where ``node`` is, in the units LibCST's positions use."""
        line, end_line = node.lineno, node.end_lineno or node.lineno
        return Span(line, self._column(line, node.col_offset), end_line, self._column(end_line, node.end_col_offset or 0))

    def line(self, number: int) -> str:
        """Line ``number`` (1-based) as the tokenizer counts lines (a lone ``\r`` ends one too,
        so this matches ``node.lineno``), without its line ending; "" past the end."""
        if self._raw_lines is None:
            self._split_raw_lines()
        if 0 < number <= len(self._raw_lines):
            return self._raw_lines[number - 1].rstrip("\r\n")
        return ""

    def raw_lines(self) -> list[str]:
        """The lines as the tokenizer counts them, each with its line end."""
        if self._raw_lines is None:
            self._split_raw_lines()
        return self._raw_lines

    def _split_raw_lines(self) -> None:
        # lines as the tokenizer counts them: ended by \r\n, \r or \n, each kept with its end
        parts = _LINE_ENDS.split(self.source)
        self._raw_lines = [parts[i] + (parts[i + 1] if i + 1 < len(parts) else "") for i in range(0, len(parts), 2)]

    def text(self, node: ast.AST) -> str:
        """The source text of ``node`` (what ``ast.get_source_segment`` gives, without splitting
        the whole file again on every call)."""
        if self._raw_lines is None:
            self._split_raw_lines()
        lines = self._raw_lines
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        if last >= len(lines) or node.end_col_offset is None:
            return ""
        start = lines[first].encode("utf-8")
        if first == last:
            return start[node.col_offset : node.end_col_offset].decode("utf-8", "replace")
        end = lines[last].encode("utf-8")
        return "".join(
            [start[node.col_offset :].decode("utf-8", "replace"), *lines[first + 1 : last], end[: node.end_col_offset].decode("utf-8", "replace")]
        )

    # -- scopes and names ----------------------------------------------------
    def scope(self, node: ast.AST) -> Scope:
        """The scope a node is evaluated in (for a def or class: where its name is bound)."""
        found = self._scope_at.get(node)
        if found is not None:
            return found
        for anc in self.ancestors(node):
            found = self._scope_at.get(anc)
            if found is not None:
                return found
        return self.module_scope

    def inner_scope(self, node: ast.AST) -> Scope | None:
        """The scope a def, lambda, class or comprehension opens."""
        return self._scope_of_node.get(node)

    def bindings(self, name: ast.Name) -> list[Binding]:
        """The bindings a name node refers to (for a stored name: those of its scope)."""
        return self.scope(name).resolve(name.id)

    def qualified_names(self, expr: ast.AST) -> frozenset[str]:
        """See :meth:`_qualified_names`; computed once per node, as several rules ask about
        the same calls."""
        found = self._qnames.get(expr)
        if found is None:
            found = self._qnames[expr] = frozenset(self._qualified_names(expr))
        return found

    def _qualified_names(self, expr: ast.AST) -> set[str]:
        """The qualified names a name or attribute chain may refer to, through the file's
        imports: ``nn.Linear`` after ``import torch.nn as nn`` is ``torch.nn.Linear``; a
        builtin is ``builtins.len``; a local class ``A`` is ``A`` (``f.<locals>.A`` inside a
        function). Relative imports keep their dots (``.blocks.Block``). Empty for anything
        that is not a chain of names."""
        parts: list[str] = []
        node = expr
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return set()
        suffix = "".join(f".{p}" for p in reversed(parts))
        found = self.scope(node).resolve(node.id)
        if not found:
            return {f"builtins.{node.id}{suffix}"} if node.id in BUILTIN_NAMES else set()
        names = set()
        for binding in found:
            if binding.target is not None:
                names.add(binding.target + suffix)
            else:
                names.add(binding.scope.name + binding.name + suffix)
        return names

    def qualified_name(self, expr: ast.AST) -> str | None:
        """The single qualified name of an expression, if it has exactly one."""
        names = self.qualified_names(expr)
        return next(iter(names)) if len(names) == 1 else None

    def torch_qualified(self, expr: ast.AST) -> str | None:
        """The single ``torch...`` qualified name of an expression, if it has one."""
        name = self.qualified_name(expr)
        if name is not None and (name == "torch" or name.startswith("torch.")):
            return name
        return None

    def absolute(self, qname: str) -> str | None:
        """A qualified name with its relative-import dots resolved against this file's module."""
        if not qname.startswith("."):
            return qname
        if self.module_name is None:
            return None
        return absolute(qname, self.module_name, self.is_package)

    @property
    def names_used(self) -> set[str]:
        """Every identifier read or written anywhere in the file."""
        if self._names_used is None:
            used = {n.id for n in self.nodes(ast.Name)}
            for scope in self.scopes:
                used.update(scope.bindings)
            self._names_used = used
        return self._names_used

    @property
    def attributes(self) -> dict[str, list[ast.Attribute]]:
        """Every ``x.attr`` node of the file, by attribute name."""
        if self._attributes is None:
            found: dict[str, list[ast.Attribute]] = {}
            for node in self.nodes(ast.Attribute):
                found.setdefault(node.attr, []).append(node)
            for items in found.values():
                items.sort(key=lambda n: (n.lineno, n.col_offset))
            self._attributes = found
        return self._attributes

    @property
    def called(self) -> set[str]:
        """The last name of every called function or method."""
        if self._called is None:
            called = set()
            for call in self.nodes(ast.Call):
                func = call.func
                if isinstance(func, ast.Attribute):
                    called.add(func.attr)
                elif isinstance(func, ast.Name):
                    called.add(func.id)
            self._called = called
        return self._called

    # -- classes ---------------------------------------------------------------
    def project_class(self, qname: str) -> ProjectClass | None:
        """A class of another file of the run, by the qualified name it has here."""
        if self.project is None:
            return None
        return self.project.lookup(qname, self.module_name, self.is_package)

    def local_classes(self, expr: ast.AST) -> list[ast.ClassDef] | None:
        """The ClassDefs a name may refer to, or None if any binding of it is not a class."""
        return self._local_definitions(expr, "class")

    def local_functions(self, expr: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef] | None:
        """The defs a name may refer to, or None if any binding of it is not a def."""
        return self._local_definitions(expr, "def")

    def _local_definitions(self, expr: ast.AST, kind: str) -> list | None:
        if not isinstance(expr, ast.Name):
            return None
        found = self.scope(expr).resolve(expr.id)
        if not found or any(b.kind != kind for b in found):
            return None
        return [b.node for b in found]

    # -- version gates -----------------------------------------------------------
    def tests_version(self, test: ast.expr) -> bool:
        """A condition that checks the PyTorch version or whether an API exists:
        ``is_torch_version("<", "2.2")``, ``torch.__version__ >= ...``, ``hasattr(torch, "func")``,
        ``version.parse(...)``, or a name or function of this file bound to such a check
        (``TORCH_2 = version.parse(torch.__version__) >= ...``; ``def new_torch(): return ...``)."""
        return self._tests_version(test, 0)

    def _tests_version(self, test: ast.AST, depth: int) -> bool:
        if any(_VERSION_NAME.search(name) for name in _identifiers(test)):
            return True
        if any(self._probes_an_api(node) for node in walk(test)):
            return True
        if depth >= 2:
            return False
        for node in walk(test):
            if not isinstance(node, ast.Name):
                continue
            for binding in self.scope(node).resolve(node.id):
                holder = self.parent(binding.node)
                if binding.kind == "assign" and isinstance(holder, (ast.Assign, ast.AnnAssign)) and holder.value is not None:
                    if self._tests_version(holder.value, depth + 1):
                        return True
                elif binding.kind == "def":
                    returns = [r.value for r in self.nodes(ast.Return, binding.node) if r.value is not None]
                    if any(self._tests_version(value, depth + 1) for value in returns):
                        return True
        return False

    def _probes_an_api(self, node: ast.AST) -> bool:
        """``hasattr(torch, "vmap")``, ``getattr(F, "gelu", None)``: whether an imported module
        (or something reached from one) has an API; ``hasattr(model, "register_full_backward_hook")``:
        whether nn.Module has one. ``getattr(outputs, "loss", None)`` on a value of the program
        tests the value, not the installed release."""
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("hasattr", "getattr")
            and len(node.args) >= 2
        ):
            return False
        name = node.args[1]
        if isinstance(name, ast.Constant) and name.value in MODULE_ATTRIBUTES:
            return True
        root = node.args[0]
        while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
            root = root.func if isinstance(root, ast.Call) else root.value
        if not isinstance(root, ast.Name):
            return False
        return any(b.kind in ("import", "from-import") for b in self.scope(root).resolve(root.id))

    def in_version_gate(self, node: ast.AST) -> bool:
        """``node`` is in code kept for other PyTorch releases, where the API it uses is the
        right one there: an ``except ImportError``/``AttributeError``/... fallback, or either
        branch of an ``if`` (or conditional expression) that tests a version or an API's
        presence."""
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, ast.ExceptHandler):
                # `except*` handlers are not looked into
                if isinstance(self.parent(ancestor), ast.Try) and _catches_missing_api(ancestor):
                    return True
            elif isinstance(ancestor, (ast.If, ast.IfExp)) and self.tests_version(ancestor.test):
                return True
        return False

    def _is_module_class_name(self, qname: str, base_ok: bool = True) -> bool:
        if is_torch_module_class(qname):
            return base_ok or qname != TORCH_MODULE_BASE
        found = self.project_class(qname)
        return found is not None and found.module_subclass

    @property
    def module_classes(self) -> dict[ast.ClassDef, bool]:
        """Every class of the file and whether it is an nn.Module subclass, in source order
        (a base must be defined before the class that derives from it, as Python requires)."""
        if self._module_classes is None:
            self._module_classes = {}
            for cls in sorted(self.nodes(ast.ClassDef), key=lambda c: (c.lineno, c.col_offset)):
                self._module_classes[cls] = any(self.is_module_class_expr(generic_origin(base)) for base in cls.bases)
        return self._module_classes

    def is_module_class(self, cls: ast.ClassDef) -> bool:
        return self.module_classes.get(cls, False)

    def is_module_class_expr(self, expr: ast.AST) -> bool:
        """``expr`` (a base class or a called name) names an nn.Module class."""
        qnames = self.qualified_names(expr)
        if qnames and all(self._is_module_class_name(q) for q in qnames):
            return True
        classes = self.local_classes(expr)
        known = self._module_classes or {}
        return bool(classes) and all(known.get(c, False) for c in classes)

    def is_module_construction(self, expr: ast.AST) -> bool:
        """A call that certainly builds a new nn.Module instance."""
        if not isinstance(expr, ast.Call):
            return False
        qnames = self.qualified_names(expr.func)
        if qnames and all(self._is_module_class_name(q, base_ok=False) for q in qnames):
            return True
        classes = self.local_classes(expr.func)
        return bool(classes) and all(self.module_classes.get(c, False) for c in classes)

    def base_classes(self, cls: ast.ClassDef) -> list[ast.ClassDef | str]:
        """Each base as a local ClassDef, or as its qualified name when not local ("?": unknown)."""
        result: list[ast.ClassDef | str] = []
        for base in map(generic_origin, cls.bases):
            classes = self.local_classes(base)
            if classes and len(classes) == 1:
                result.append(classes[0])
            else:
                qnames = self.qualified_names(base)
                result.append(next(iter(qnames)) if len(qnames) == 1 else "?")
        return result

    def class_family_up(self, cls: ast.ClassDef) -> list[ast.ClassDef]:
        """``cls`` and its bases defined in this file, nearest first (depth first, each once:
        bases that name each other in a cycle, which Python rejects, end the walk)."""
        chain: list[ast.ClassDef] = []
        stack = [cls]  # not a recursive closure: that would be a reference cycle holding the model
        while stack:
            current = stack.pop()
            if current in chain:
                continue
            chain.append(current)
            bases = [base for base in self.base_classes(current) if isinstance(base, ast.ClassDef)]
            stack.extend(reversed(bases))
        return chain

    def methods_reached(self, cls: ast.ClassDef, roots: Iterable = ()) -> set:
        """``forward`` and ``__call__`` of the class family (plus ``roots``), and every method of
        the family they call through ``self``, transitively."""
        methods: dict[str, list] = {}
        for member in self.class_family(cls):
            for method in class_methods(member):
                methods.setdefault(method.name, []).append(method)
        stack = [m for name in ("forward", "__call__") for m in methods.get(name, ())] + list(roots)
        seen: set = set()
        while stack:
            method = stack.pop()
            if method in seen:
                continue
            seen.add(method)
            receiver = self_name(method)
            for call in self.nodes(ast.Call, method):
                func = call.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == receiver:
                    stack.extend(methods.get(func.attr, ()))
        return seen

    def class_family(self, cls: ast.ClassDef) -> list[ast.ClassDef]:
        """``cls``, its bases defined in this file, and the classes of this file derived from it."""
        family = list(self.class_family_up(cls))
        for other in self.module_classes:
            if other is not cls and other not in family and cls in self.class_family_up(other):
                family.append(other)
        return family

    def customizes_attribute_access(self, cls: ast.ClassDef) -> bool:
        """The class family overrides attribute access or reaches into ``__dict__``: an
        attribute may then be read or written behind the analysis' back."""
        for member in self.class_family(cls):
            if any(method.name in ACCESS_HOOKS for method in class_methods(member)):
                return True
            if any(node.attr == "__dict__" for node in self.nodes(ast.Attribute, member)):
                return True
            for base in self.base_classes(member):
                if isinstance(base, str):
                    found = self.project_class(base)
                    if found is not None and found.customizes_access:
                        return True
        return False

    # -- imports -----------------------------------------------------------------
    def top_level_imports(self) -> list[ast.stmt]:
        return [stmt for stmt in self.tree.body if isinstance(stmt, (ast.Import, ast.ImportFrom))]


# -- methods -----------------------------------------------------------------------


# names of version checks: is_torch_version, __version__, TORCH_VERSION, _TORCH_GREATER_EQUAL_2_2
_VERSION_NAME = re.compile(r"version|torch_(?:greater|less|ge|gt|le|lt)(?:_|$)", re.IGNORECASE)
# exceptions a fallback for another PyTorch release catches when the API it wants is missing
AVAILABILITY_ERRORS = frozenset(
    {"ImportError", "ModuleNotFoundError", "AttributeError", "TypeError", "NameError", "Exception", "BaseException"}
)


def _identifiers(expr: ast.AST):
    for node in walk(expr):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.keyword) and node.arg is not None:
            yield node.arg
        elif isinstance(node, ast.arg):
            yield node.arg


def _caught(handler: ast.ExceptHandler) -> list[ast.expr]:
    if isinstance(handler.type, ast.Tuple):
        return [e for e in handler.type.elts if not isinstance(e, ast.Starred)]
    return [handler.type]


def _catches_missing_api(handler: ast.ExceptHandler) -> bool:
    """``except:``, ``except ImportError:``, ``except (AttributeError, TypeError) as e:`` ..."""
    if handler.type is None:
        return True
    for element in _caught(handler):
        name = dotted(element)
        if name is not None and name.rpartition(".")[2] in AVAILABILITY_ERRORS:
            return True
    return False


def class_methods(cls: ast.ClassDef) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions defined directly in a class body."""
    for stmt in cls.body:
        if isinstance(stmt, _FUNCTIONS):
            yield stmt


def self_name(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The name of the instance parameter of a plain method."""
    for deco in func.decorator_list:
        if isinstance(deco, ast.Name) and deco.id in ("staticmethod", "classmethod"):
            return None
    params = func.args.posonlyargs or func.args.args
    return params[0].arg if params else None


def is_self_attr(node: ast.AST, self_arg: str, attr: str | None = None) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == self_arg
        and (attr is None or node.attr == attr)
    )


def is_super_init_call(model: SemanticModel, stmt: ast.AST, self_arg: str) -> bool:
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
    return (
        bool(call.args)
        and isinstance(call.args[0], ast.Name)
        and call.args[0].id == self_arg
        and model.is_module_class_expr(receiver)
    )


def statements_after_super_init(model: SemanticModel, func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[ast.stmt] | None:
    """Top-level statements of ``__init__`` that run after the base ``__init__``, or None."""
    self_arg = self_name(func)
    if self_arg is None:
        return None
    for index, stmt in enumerate(func.body):
        if is_super_init_call(model, stmt, self_arg):
            return set(func.body[index + 1 :])
    return None


def top_statement(model: SemanticModel, node: ast.AST, func: ast.AST) -> ast.stmt | None:
    """The statement directly in ``func``'s body that contains ``node``."""
    previous = node
    for anc in model.ancestors(node):
        if anc is func:
            return previous if isinstance(previous, ast.stmt) and previous in getattr(func, "body", ()) else None
        previous = anc
    return None


def keyword(call: ast.Call, name: str) -> ast.keyword | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


def is_number(expr: ast.AST) -> bool:
    if isinstance(expr, ast.Constant):
        return type(expr.value) in (int, float, complex)
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, (ast.USub, ast.UAdd)):
        return is_number(expr.operand)
    return False


__all__ = [
    "Binding", "Scope", "SemanticModel", "Span", "class_methods", "dotted", "is_number", "is_self_attr",
    "is_super_init_call", "keyword", "self_name", "statements_after_super_init", "top_statement", "walk",
]
