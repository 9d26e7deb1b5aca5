"""Shared analysis for the rules: which classes are nn.Modules, which calls build
modules or tensors, how a file spells ``torch.nn``, and how a container attribute is used."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping

import libcst as cst
import libcst.matchers as m
from libcst.metadata import (
    Assignment,
    CodeRange,
    MetadataWrapper,
    PositionProvider,
    QualifiedName,
    Scope,
    ScopeProvider,
)

from torchfix_mod.project import ProjectClass, ProjectIndex, is_torch_module_class
from torchfix_mod.legacy_rule import ImportNeed

TORCH_MODULE_BASE = "torch.nn.Module"

# Tensor factories: a call to one of these builds a new tensor from scratch.
TENSOR_FACTORIES = frozenset(
    {
        "zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm",
        "arange", "range", "linspace", "logspace", "eye", "tensor", "as_tensor",
        "asarray", "from_numpy", "zeros_like", "ones_like", "empty_like", "full_like",
        "rand_like", "randn_like", "randint_like", "scalar_tensor", "empty_strided",
        "tril_indices", "triu_indices", "Tensor", "FloatTensor", "DoubleTensor",
        "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor", "ShortTensor",
        "ByteTensor", "CharTensor", "BoolTensor", "polar", "complex", "hann_window",
        "hamming_window", "blackman_window", "bartlett_window", "kaiser_window",
    }
)
# torch functions that return a tensor when given one.
TENSOR_FUNCTIONS = frozenset(
    {
        "tril", "triu", "cat", "concat", "concatenate", "stack", "hstack", "vstack",
        "outer", "matmul", "mm", "bmm", "einsum", "exp", "log", "log2", "log10", "sin",
        "cos", "tan", "sqrt", "rsqrt", "pow", "abs", "neg", "sigmoid", "tanh",
        "flip", "roll", "cumsum", "cumprod", "clamp", "clip", "diag", "diag_embed",
        "ger", "kron", "cartesian_prod", "repeat_interleave", "sign",
        "floor", "ceil", "round", "reciprocal", "transpose", "reshape", "unsqueeze",
        "squeeze", "flatten", "masked_fill", "logical_not", "logical_and",
        "logical_or", "maximum", "minimum", "div", "mul", "add", "sub", "exp2",
        "atan2", "fmod", "remainder", "erf", "argsort", "gather", "t",
        "permute", "tile", "broadcast_to", "clone", "detach",
    }
)
# Tensor methods that return a tensor.
TENSOR_METHODS = frozenset(
    {
        "unsqueeze", "squeeze", "view", "reshape", "expand", "expand_as", "repeat",
        "permute", "transpose", "t", "flatten", "contiguous", "clone", "detach",
        "float", "double", "half", "bfloat16", "long", "int", "short", "bool", "byte",
        "to", "type_as", "view_as", "reshape_as", "exp", "log", "sqrt", "sin", "cos",
        "abs", "neg", "pow", "sum", "mean", "cumsum", "cumprod", "tril", "triu",
        "fill_", "zero_", "uniform_", "normal_", "masked_fill", "masked_fill_",
        "fill_diagonal_", "flip", "roll", "div", "mul", "add", "sub", "matmul",
        "clamp", "clamp_", "sigmoid", "tanh", "softmax", "log_softmax", "bool",
        "triu_", "tril_", "index_select", "narrow", "select", "diag", "outer",
        "T", "mT", "mH", "H", "cpu", "cuda",
    }
)
SAFE_BINARY_OPS = (
    cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo,
    cst.Power, cst.MatrixMultiply, cst.BitAnd, cst.BitOr, cst.BitXor,
)


def dotted_name(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


_FIELDS: dict[type, tuple[str, ...]] = {}


def parent_map(root: cst.CSTNode) -> dict[cst.CSTNode, cst.CSTNode]:
    """Child -> parent for every node under ``root``: what ``ParentNodeProvider`` gives, read
    from the nodes' dataclass fields instead of a LibCST traversal (ten times faster)."""
    parents: dict[cst.CSTNode, cst.CSTNode] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        names = _FIELDS.get(node.__class__)
        if names is None:
            names = _FIELDS[node.__class__] = tuple(f.name for f in dataclasses.fields(node))
        for name in names:
            value = getattr(node, name)
            if isinstance(value, cst.CSTNode):
                parents[value] = node
                stack.append(value)
            elif value.__class__ is tuple or value.__class__ is list:
                for item in value:
                    if isinstance(item, cst.CSTNode):
                        parents[item] = node
                        stack.append(item)
    return parents


class FileFacts(cst.BatchableCSTVisitor):
    """Facts about one parsed file, collected in the same traversal as the rules.

    It runs first in the batch, so when a rule visits a class the facts about
    that class (and every class before it) are already known.
    """

    # Metadata is computed on first use, not before the traversal: scope analysis and
    # positions cost many times the parse, and most files that reach LibCST need them for
    # a few nodes or not at all (see ``attach``).
    METADATA_DEPENDENCIES = ()

    def __init__(self, project: ProjectIndex | None = None, module: str | None = None, is_package: bool = False) -> None:
        super().__init__()
        self._wrapper: MetadataWrapper | None = None
        self._resolved: dict[type, Mapping] = {}
        self._parents: dict[cst.CSTNode, cst.CSTNode] | None = None
        self.project = project  # classes of the run's other files
        self.module_name = module
        self.is_package = is_package
        self.module_classes: dict[cst.ClassDef, bool] = {}
        self.attributes: dict[str, list[cst.Attribute]] = defaultdict(list)
        self.names_used: set[str] = set()
        self.module: cst.Module | None = None
        self.memo: dict[object, object] = {}  # per-file results shared between rules
        self.called: set[str] = set()  # last name of every called function or method
        self._in_import = 0

    # -- collection --------------------------------------------------------
    def visit_Module(self, node: cst.Module) -> None:
        self.module = node

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.module_classes[node] = any(self._is_module_base(arg.value) for arg in node.bases)

    def visit_Import(self, node: cst.Import) -> None:
        self._in_import += 1

    def leave_Import(self, original_node: cst.Import) -> None:
        self._in_import -= 1

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self._in_import += 1

    def leave_ImportFrom(self, original_node: cst.ImportFrom) -> None:
        self._in_import -= 1

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if not self._in_import:  # `import os.path` names a module, not an attribute `path`
            self.attributes[node.attr.value].append(node)

    def visit_Name(self, node: cst.Name) -> None:
        self.names_used.add(node.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute):
            self.called.add(func.attr.value)
        elif isinstance(func, cst.Name):
            self.called.add(func.value)

    # -- metadata access ----------------------------------------------------
    def attach(self, module: cst.Module) -> MetadataWrapper:
        """Bind to the parsed module (before the traversal); metadata is resolved lazily on it."""
        self._wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        return self._wrapper

    def _metadata(self, provider: type) -> Mapping:
        found = self._resolved.get(provider)
        if found is None:
            if self._wrapper is None:
                raise RuntimeError("FileFacts.attach() was not called")
            found = self._resolved[provider] = self._wrapper.resolve(provider)
        return found

    def qualified_name_set(self, node: cst.CSTNode) -> Collection[QualifiedName]:
        # what QualifiedNameProvider gives (it asks each node's scope, lazily), without its
        # traversal of the whole module to set up the lazy values
        scope = self.scope(node)
        return scope.get_qualified_names_for(node) if scope is not None else set()

    def qualified_names(self, node: cst.CSTNode) -> set[str]:
        return {q.name for q in self.qualified_name_set(node)}

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        if self._parents is None:
            if self._wrapper is None:
                raise RuntimeError("FileFacts.attach() was not called")
            self._parents = parent_map(self._wrapper.module)
        return self._parents.get(node)

    def scope(self, node: cst.CSTNode) -> Scope | None:
        return self._metadata(ScopeProvider).get(node)

    def scopes(self) -> set[Scope]:
        """Every scope of the file."""
        return {scope for scope in self._metadata(ScopeProvider).values() if scope is not None}

    def position(self, node: cst.CSTNode) -> CodeRange:
        return self._metadata(PositionProvider)[node]

    def start(self, node: cst.CSTNode) -> tuple[int, int]:
        pos = self.position(node).start
        return (pos.line, pos.column)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        parent = self.parent(node)
        while parent is not None:
            yield parent
            parent = self.parent(parent)

    def enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        for anc in self.ancestors(node):
            if isinstance(anc, (cst.FunctionDef, cst.Lambda)):
                return anc if isinstance(anc, cst.FunctionDef) else None
        return None

    # -- classes ------------------------------------------------------------
    def local_classes(self, name_node: cst.CSTNode) -> list[cst.ClassDef] | None:
        """ClassDefs a Name may refer to, or None if any binding is not a class."""
        if not isinstance(name_node, cst.Name):
            return None
        scope = self.scope(name_node)
        if scope is None or name_node.value not in scope:
            return None
        found = []
        for assignment in scope[name_node.value]:
            if not isinstance(assignment, Assignment) or not isinstance(assignment.node, cst.ClassDef):
                return None
            found.append(assignment.node)
        return found or None

    def is_module_class_expr(self, expr: cst.BaseExpression) -> bool:
        return self._is_module_base(expr)

    def project_class(self, qname: str) -> ProjectClass | None:
        """A class of another file of the run, by the qualified name LibCST gives it here."""
        if self.project is None:
            return None
        return self.project.lookup(qname, self.module_name, self.is_package)

    def _is_module_class_name(self, qname: str, base_ok: bool = True) -> bool:
        if is_torch_module_class(qname):
            return base_ok or qname != TORCH_MODULE_BASE
        found = self.project_class(qname)
        return found is not None and found.module_subclass

    def _is_module_base(self, expr: cst.BaseExpression) -> bool:
        qnames = self.qualified_names(expr)
        if qnames and all(self._is_module_class_name(q) for q in qnames):
            return True
        classes = self.local_classes(expr)
        return bool(classes) and all(self.module_classes.get(c, False) for c in classes)

    def is_module_class(self, node: cst.ClassDef) -> bool:
        return self.module_classes.get(node, False)

    def class_family(self, cls: cst.ClassDef) -> list[cst.ClassDef]:
        """``cls``, its bases defined in this file, and the classes of this file derived from it."""
        family = [cls]
        for base in self.base_classes(cls):
            if isinstance(base, cst.ClassDef) and base not in family:
                family.extend(c for c in self.class_family_up(base) if c not in family)
        for other in self.module_classes:
            if other is not cls and cls in self.class_family_up(other):
                family.append(other)
        return family

    def class_family_up(self, cls: cst.ClassDef) -> list[cst.ClassDef]:
        chain = [cls]
        for base in self.base_classes(cls):
            if isinstance(base, cst.ClassDef) and base not in chain:
                chain.extend(self.class_family_up(base))
        return chain

    def customizes_attribute_access(self, cls: cst.ClassDef) -> bool:
        """The class family overrides attribute access or reaches into ``__dict__``: an
        attribute may then be read or written behind the analysis' back."""
        hooks = {"__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__getstate__", "__setstate__"}
        for member in self.class_family(cls):
            if any(method.name.value in hooks for method in class_methods(member)):
                return True
            if m.findall(member, m.Attribute(attr=m.Name("__dict__"))):
                return True
            for base in self.base_classes(member):
                if isinstance(base, str):
                    found = self.project_class(base)
                    if found is not None and found.customizes_access:
                        return True
        return False

    def base_classes(self, node: cst.ClassDef) -> list[cst.ClassDef | str]:
        """Each base as a local ClassDef, or as its qualified name when not local."""
        result: list[cst.ClassDef | str] = []
        for arg in node.bases:
            classes = self.local_classes(arg.value)
            if classes and len(classes) == 1:
                result.append(classes[0])
            else:
                qnames = self.qualified_names(arg.value)
                result.append(next(iter(qnames)) if len(qnames) == 1 else "?")
        return result

    def is_module_construction(self, expr: cst.BaseExpression) -> bool:
        """A call that certainly builds a new nn.Module instance."""
        if not isinstance(expr, cst.Call):
            return False
        qnames = self.qualified_names(expr.func)
        if qnames and all(self._is_module_class_name(q, base_ok=False) for q in qnames):
            return True
        classes = self.local_classes(expr.func)
        return bool(classes) and all(self.module_classes.get(c, False) for c in classes)

    # -- torch spelling -----------------------------------------------------
    def torch_qualified(self, node: cst.CSTNode) -> str | None:
        """The single ``torch...`` qualified name of an expression, if it has one."""
        qnames = self.qualified_names(node)
        if len(qnames) == 1:
            (q,) = qnames
            if q == "torch" or q.startswith("torch."):
                return q
        return None

    def nn_reference(self, attr: str, at: cst.CSTNode) -> tuple[cst.BaseExpression, ImportNeed | None] | None:
        """An expression naming ``torch.nn.<attr>`` at ``at``, reusing the file's imports.

        Prefers ``from torch.nn import <attr>``, then an ``nn`` alias, then ``torch``;
        adds an import only when no binding is usable and the new name shadows nothing.
        """
        scope = self.scope(at)
        module_scope = scope.globals if scope is not None else None
        if module_scope is None:
            return None
        target = f"torch.nn.{attr}"
        by_target: dict[str, str] = {}
        top_level = set(_top_level_imports(self.module))
        for assignment in module_scope.assignments:
            name = assignment.name
            # an import under `if TYPE_CHECKING:` or in a try block may not run
            if "." in name or assignment.node not in top_level:
                continue
            qnames = {q.name for q in module_scope.get_qualified_names_for(name)}
            if len(qnames) == 1:
                by_target.setdefault(next(iter(qnames)), name)

        def visible(name: str, expected: str) -> bool:
            return {q.name for q in scope.get_qualified_names_for(name)} == {expected}

        for qname, build in (
            (target, lambda n: cst.Name(n)),
            ("torch.nn", lambda n: cst.Attribute(cst.Name(n), cst.Name(attr))),
            ("torch", lambda n: cst.parse_expression(f"{n}.nn.{attr}")),
        ):
            name = by_target.get(qname)
            if name and visible(name, qname):
                return build(name), None
        # `import torch.nn` binds `torch` with the qualified name torch.nn
        for assignment in module_scope.assignments:
            if assignment.name == "torch.nn" and assignment.node in top_level and visible("torch", "torch"):
                return cst.parse_expression(f"torch.nn.{attr}"), None
        imports_torch_nn = any(
            isinstance(stmt, cst.ImportFrom) and dotted_name(stmt.module) == "torch.nn"
            for stmt in _top_level_imports(self.module)
        )
        if imports_torch_nn and attr not in self.names_used:
            return cst.Name(attr), ImportNeed("torch.nn", attr)
        if "torch" not in self.names_used:
            return cst.parse_expression(f"torch.nn.{attr}"), ImportNeed("torch")
        return None


def _top_level_imports(module: cst.Module | None) -> Iterable[cst.BaseSmallStatement]:
    if module is None:
        return
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)):
                    yield small


# -- methods ---------------------------------------------------------------

def self_name(func: cst.FunctionDef) -> str | None:
    """The name of the instance parameter of a plain method."""
    for deco in func.decorators:
        if m.matches(deco.decorator, m.Name("staticmethod") | m.Name("classmethod")):
            return None
    params = func.params.posonly_params or func.params.params
    return params[0].name.value if params else None


def class_methods(cls: cst.ClassDef) -> Iterator[cst.FunctionDef]:
    if isinstance(cls.body, cst.IndentedBlock):
        for stmt in cls.body.body:
            if isinstance(stmt, cst.FunctionDef):
                yield stmt


def is_self_attr(node: cst.CSTNode, self_arg: str, attr: str | None = None) -> bool:
    return (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == self_arg
        and (attr is None or node.attr.value == attr)
    )


def is_super_init_call(facts: FileFacts, stmt: cst.CSTNode, self_arg: str) -> bool:
    """``super().__init__(...)``, ``super(Cls, self).__init__(...)``, or ``Base.__init__(self, ...)``
    where ``Base`` is ``nn.Module`` or an nn.Module class (a mixin's ``__init__`` does not count)."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1):
        return False
    expr = stmt.body[0]
    if not (isinstance(expr, cst.Expr) and isinstance(expr.value, cst.Call)):
        return False
    func = expr.value.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "__init__"):
        return False
    receiver = func.value
    if m.matches(receiver, m.Call(func=m.Name("super"))):
        return True
    args = expr.value.args
    return bool(args) and m.matches(args[0].value, m.Name(self_arg)) and facts.is_module_class_expr(receiver)


def statements_after_super_init(facts: FileFacts, func: cst.FunctionDef) -> set[cst.CSTNode] | None:
    """Top-level statements of ``__init__`` that run after the base ``__init__``, or None."""
    self_arg = self_name(func)
    if self_arg is None or not isinstance(func.body, cst.IndentedBlock):
        return None
    body = list(func.body.body)
    for index, stmt in enumerate(body):
        if is_super_init_call(facts, stmt, self_arg):
            return set(body[index + 1 :])
    return None


def top_statement(facts: FileFacts, node: cst.CSTNode, func: cst.FunctionDef) -> cst.CSTNode | None:
    """The statement directly in ``func``'s body that contains ``node``."""
    previous = node
    for anc in facts.ancestors(node):
        if isinstance(anc, cst.IndentedBlock) and facts.parent(anc) is func:
            return previous
        previous = anc
    return None


# -- tensors ----------------------------------------------------------------

def call_keyword(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def requires_grad_true(call: cst.Call) -> bool:
    arg = call_keyword(call, "requires_grad")
    return arg is not None and not m.matches(arg.value, m.Name("False"))


class TensorExpressions:
    """Decides whether an expression certainly evaluates to a torch tensor.

    ``local_tensors`` holds local names already known to be bound only to tensors.
    """

    def __init__(self, facts: FileFacts, local_tensors: set[str] | None = None) -> None:
        self.facts = facts
        self.local_tensors = local_tensors or set()

    def is_tensor(self, expr: cst.BaseExpression) -> bool:
        facts = self.facts
        if isinstance(expr, cst.Name):
            return expr.value in self.local_tensors
        if isinstance(expr, cst.Call):
            if any(arg.star for arg in expr.args):
                return False
            # a method called on a call's result (`torch.tril(a).view(...)`) is not a torch function
            qname = facts.torch_qualified(expr.func) if dotted_name(expr.func) is not None else None
            if qname is not None and qname.count(".") == 1:
                fname = qname.split(".")[1]
                if fname in TENSOR_FACTORIES:
                    return not requires_grad_true(expr)
                if fname in TENSOR_FUNCTIONS:
                    return not requires_grad_true(expr) and any(
                        self.is_tensor(arg.value) for arg in expr.args if arg.keyword is None
                    )
                return False
            func = expr.func
            if isinstance(func, cst.Attribute) and qname is None and func.attr.value in TENSOR_METHODS:
                return self.is_tensor(func.value)
            return False
        if isinstance(expr, cst.Attribute):
            return expr.attr.value in {"T", "mT", "mH", "H"} and self.is_tensor(expr.value)
        if isinstance(expr, cst.BinaryOperation):
            if not isinstance(expr.operator, SAFE_BINARY_OPS):
                return False
            return self.is_tensor(expr.left) or self.is_tensor(expr.right)
        if isinstance(expr, cst.UnaryOperation):
            return isinstance(expr.operator, (cst.Minus, cst.Plus, cst.BitInvert)) and self.is_tensor(expr.expression)
        if isinstance(expr, cst.Subscript):
            return self.is_tensor(expr.value)
        return False


def is_number(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, (cst.Integer, cst.Float, cst.Imaginary)):
        return True
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
        return is_number(expr.expression)
    return False


# -- containers of modules ----------------------------------------------------

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


class ContainerUses:
    """Checks every use of attribute ``attr`` in the file against what
    ``nn.ModuleList`` (``kind="list"``) or ``nn.ModuleDict`` (``kind="dict"``) supports.

    ``owned`` is the one assignment that creates the container; any other store
    to the attribute blocks the conversion.
    """

    def __init__(
        self, facts: FileFacts, kind: str, owned: cst.Attribute, module_value, methods=None, holds_modules: bool = True
    ) -> None:
        self.facts = facts
        self.kind = kind
        # modules handed to other code may get registered there; parameters are just used
        self.holds_modules = holds_modules
        self.methods = methods or (LIST_METHODS if kind == "list" else DICT_METHODS)
        self.owned = owned
        self.module_value = module_value  # (expr) -> bool
        self.reason = ""
        self.dict_keys: list[cst.BaseExpression] = []

    def check(self, attr: str) -> str:
        self.dict_keys = []
        verdict = Verdict.OK
        for node in self.facts.attributes.get(attr, ()):
            result = self._use(node)
            if result in (Verdict.ELSEWHERE, Verdict.NOT_MODULES):
                return result
            if result == Verdict.UNSUPPORTED:
                verdict = result
        return verdict

    def _fail(self, reason: str) -> str:
        self.reason = self.reason or reason
        return Verdict.UNSUPPORTED

    def _use(self, node: cst.Attribute) -> str:
        facts, is_list = self.facts, self.kind == "list"
        parent = facts.parent(node)
        if node is self.owned:
            return Verdict.OK
        if isinstance(parent, cst.AssignTarget) or (
            isinstance(parent, (cst.AnnAssign, cst.AugAssign)) and parent.target is node and not isinstance(parent, cst.AugAssign)
        ):
            return self._fail("it is assigned more than once")
        if isinstance(parent, cst.Subscript) and parent.value is node:
            return self._subscript_use(parent)
        if isinstance(parent, cst.Attribute) and parent.value is node:
            method = parent.attr.value
            call = facts.parent(parent)
            allowed = self.methods
            if not (isinstance(call, cst.Call) and call.func is parent):
                return self._fail(f"its attribute `{method}` is used")
            if method not in allowed:
                return self._fail(f"`.{method}()` is not available on the nn container")
            if method in {"append", "insert"} and not (call.args and self.module_value(call.args[-1].value)):
                return Verdict.NOT_MODULES
            if method == "pop" and len(call.args) != 1:
                return self._fail("`.pop()` is called without exactly one key, which nn containers require")
            if method == "insert" and not (
                len(call.args) == 2 and isinstance(call.args[0].value, cst.Integer) and not call.args[0].keyword
            ):
                return self._fail("`.insert()` with an index nn.ModuleList may reject (only non-negative literals are safe)")
            if method == "extend" and not (len(call.args) == 1 and self.modules_iterable(call.args[0].value)):
                return Verdict.NOT_MODULES
            if method in {"values", "items"} and self._spread(call):
                return Verdict.ELSEWHERE
            return Verdict.OK
        if isinstance(parent, cst.AugAssign) and parent.target is node:
            if is_list and isinstance(parent.operator, cst.AddAssign):
                return Verdict.OK if self.modules_iterable(parent.value) else Verdict.NOT_MODULES
            return self._fail("it is updated with an augmented assignment")
        if isinstance(parent, (cst.For, cst.CompFor)) and parent.iter is node:
            return Verdict.OK
        if isinstance(parent, cst.Arg):
            call = facts.parent(parent)
            if not parent.star and parent.keyword is None and isinstance(call, cst.Call) and self._is_iterating_builtin(call):
                return Verdict.OK
            if not self.holds_modules:
                return self._fail("it is passed to other code that may need a Python container")
            self.reason = "it is passed to other code"
            return Verdict.ELSEWHERE
        if isinstance(parent, cst.ComparisonTarget) and isinstance(parent.operator, (cst.In, cst.NotIn)):
            return Verdict.OK
        if isinstance(parent, (cst.If, cst.While, cst.IfExp)) and parent.test is node:
            return Verdict.OK
        if isinstance(parent, (cst.UnaryOperation, cst.BooleanOperation)):
            return Verdict.OK
        if is_list and isinstance(parent, cst.BinaryOperation) and parent.left is node and isinstance(parent.operator, cst.Add):
            if self.modules_iterable(parent.right):
                return Verdict.OK
            return self._fail("it is concatenated with values not known to be nn.Modules")
        if isinstance(parent, cst.Expr):
            return Verdict.OK
        if isinstance(parent, (cst.Return, cst.Assign, cst.Element, cst.DictElement, cst.Yield, cst.Lambda, cst.StarredElement)):
            self.reason = "it is handed to other code"
            return Verdict.ELSEWHERE
        return self._fail("it is used in a way the nn container does not support")

    def _is_iterating_builtin(self, call: cst.Call) -> bool:
        func = call.func
        return (
            isinstance(func, cst.Name)
            and func.value in ITERATING_BUILTINS
            and self.facts.qualified_names(func) == {f"builtins.{func.value}"}
        )

    def _spread(self, expr: cst.CSTNode) -> bool:
        """``*expr`` handed to a call (``nn.Sequential(*self.layers[1:])``) registers the modules there."""
        parent = self.facts.parent(expr)
        if isinstance(parent, cst.Arg) and parent.star:
            self.reason = "its modules are handed to other code"
            return True
        return False

    def _subscript_use(self, sub: cst.Subscript) -> str:
        facts = self.facts
        holder = facts.parent(sub)
        if self._spread(sub):
            return Verdict.ELSEWHERE
        # an element handed to other code or stored under another name gets registered there too
        if isinstance(holder, (cst.Arg, cst.Element, cst.DictElement)) and (self.holds_modules or not isinstance(holder, cst.Arg)):
            call = facts.parent(holder)
            if not (isinstance(holder, cst.Arg) and isinstance(call, cst.Call) and self._is_iterating_builtin(call)):
                self.reason = "an element is handed to other code"
                return Verdict.ELSEWHERE
        if isinstance(holder, cst.Assign) and holder.value is sub:
            self.reason = "an element is stored under another name"
            return Verdict.ELSEWHERE
        sliced = any(isinstance(element.slice, cst.Slice) for element in sub.slice)
        if isinstance(holder, cst.BinaryOperation) and sliced:
            return self._fail("a part of it is combined with other values")
        stored = isinstance(holder, cst.AssignTarget)
        if isinstance(holder, cst.AugAssign) and holder.target is sub:
            return Verdict.OK  # updates the element, not the container
        if self.kind == "dict":
            if len(sub.slice) != 1 or not isinstance(sub.slice[0].slice, cst.Index):
                return self._fail("it is sliced")
            if stored:
                self.dict_keys.append(sub.slice[0].slice.value)
        if stored:
            assign = facts.parent(holder)
            if not (isinstance(assign, cst.Assign) and len(assign.targets) == 1 and self.module_value(assign.value)):
                return Verdict.NOT_MODULES
        return Verdict.OK

    def modules_iterable(self, expr: cst.BaseExpression) -> bool:
        if isinstance(expr, (cst.List, cst.Tuple)):
            return all(
                isinstance(el, cst.Element) and self.module_value(el.value) for el in expr.elements
            )
        if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
            return self.module_value(expr.elt)
        return False


def all_references(scope: Scope, name: str) -> list:
    """Every access of a local, including those from nested functions and comprehensions."""
    return [access for assignment in scope.assignments[name] for access in assignment.references]


def module_valued_local(facts: FileFacts, expr: cst.BaseExpression, is_element=None) -> bool:
    """``expr`` is a local name bound only to module constructions and used
    nowhere else but as the receiver of attribute reads (``layer.weight``)."""
    if not isinstance(expr, cst.Name):
        return False
    scope = facts.scope(expr)
    if scope is None or expr.value not in scope or isinstance(scope, type(scope.globals)):
        return False
    assignments = list(scope.assignments[expr.value])
    if not assignments:
        return False
    for assignment in assignments:
        if not isinstance(assignment, Assignment):
            return False
        target = assignment.node
        holder = facts.parent(target)
        if not (
            isinstance(holder, cst.AssignTarget)
            and isinstance(facts.parent(holder), cst.Assign)
            and len(facts.parent(holder).targets) == 1
            and (is_element or facts.is_module_construction)(facts.parent(holder).value)
        ):
            return False
    home = facts.enclosing_function(expr)
    for access in all_references(scope, expr.value):
        node = access.node
        if node is expr:
            continue
        if facts.enclosing_function(node) is not home:
            return False  # used from a nested function or lambda: out of sight
        parent = facts.parent(node)
        if isinstance(parent, cst.Attribute) and parent.value is node:
            continue
        return False
    return True
