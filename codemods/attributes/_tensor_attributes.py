"""What TFM301 and TFM302 share: which expressions certainly are tensors, tensors stored as
attributes in ``__init__`` of an nn.Module, and whether such an attribute may be turned into
a buffer or a parameter."""

from __future__ import annotations

import ast

from torchfix_mod.codemods._shared._attributes import (
    SelfAssignment,
    is_assign_target,
    is_display_element,
    is_starred_display_element,
    self_assignments,
)
from torchfix_mod.codemods._shared._tensor_factories import TENSOR_FACTORIES
from torchfix_mod.rule import Fix, ImportNeed, Rule
from torchfix_mod.semantic import (
    TORCH_MODULE_BASE,
    SemanticModel,
    class_methods,
    dotted,
    is_super_init_call,
    keyword,
    self_name,
    statements_after_super_init,
    top_statement,
)
from torchfix_mod.project import NEUTRAL_BASES, PARAMETER_CLASSES
from torchfix_mod.torch_facts import MODULE_ATTRIBUTES

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
TRANSPOSE_ATTRIBUTES = frozenset({"T", "mT", "mH", "H"})
# builtins that may be handed the instance without setting anything on it
_READ_ONLY_BUILTINS = frozenset(
    {"super", "isinstance", "hasattr", "getattr", "type", "id", "repr", "str", "print", "format", "hash", "callable", "dir"}
)
SAFE_BINARY_OPS = (
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
    ast.Pow, ast.MatMult, ast.BitAnd, ast.BitOr, ast.BitXor,
)
SAFE_UNARY_OPS = (ast.USub, ast.UAdd, ast.Invert)


def is_constant(expr: ast.AST | None, value: object) -> bool:
    """``expr`` is the literal ``None``, ``True`` or ``False`` (``0`` is not ``False``)."""
    return isinstance(expr, ast.Constant) and expr.value is value


def has_star_args(call: ast.Call) -> bool:
    return any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)


def requires_grad_true(call: ast.Call) -> bool:
    found = keyword(call, "requires_grad")
    return found is not None and not is_constant(found.value, False)


def identifiers(model: SemanticModel) -> set[str]:
    """Every identifier written in the file: names, attribute names, keyword names, the parts of
    imported names. A name added by a fix must be none of them."""
    key = "tensor_attributes.identifiers"
    found = model.memo.get(key)
    if found is None:
        found = set(model.names_used) | set(model.attributes)
        found.update(node.arg for node in model.nodes(ast.keyword) if node.arg)
        for alias in model.nodes(ast.alias):
            if alias.name != "*":
                found.update(alias.name.split("."))
            if alias.asname:
                found.add(alias.asname)
        for node in model.nodes(ast.ImportFrom):
            if node.module:
                found.update(node.module.split("."))
        for node in model.nodes((ast.Global, ast.Nonlocal)):
            found.update(node.names)
        for node in model.nodes(ast.MatchClass):
            found.update(node.kwd_attrs)
        model.memo[key] = found
    return found


def nn_reference(model: SemanticModel, attr: str, at: ast.AST) -> tuple[str, ImportNeed | None] | None:
    """Source text naming ``torch.nn.<attr>`` at ``at``, reusing the file's imports, and the
    import it needs; None when no spelling is safe.

    Prefers ``from torch.nn import <attr>``, then an ``nn`` alias, then ``torch``: among the
    names of one target, the one bound first. ``import torch.nn`` binds ``torch`` like ``import
    torch`` does, so after ``import torch.nn`` and ``import torch as th`` it is ``torch.nn.<attr>``.
    Adds an import only when no binding is usable and the new name shadows nothing."""
    scope = model.scope(at)
    module_scope = model.module_scope
    top_level = set(model.top_level_imports())

    def qualified(found) -> set[str]:
        return {b.target if b.target is not None else b.scope.name + b.name for b in found}

    def visible(name: str, expected: str) -> bool:
        found = scope.resolve(name)
        return bool(found) and qualified(found) == {expected}

    by_target: dict[str, str] = {}
    for name, found in module_scope.bindings.items():
        # an import under `if TYPE_CHECKING:` or in a try block may not run
        if any(b.statement in top_level for b in found):
            qnames = qualified(found)
            if len(qnames) == 1:
                by_target.setdefault(next(iter(qnames)), name)
    for qname, spelling in (
        (f"torch.nn.{attr}", "{}"),
        ("torch.nn", f"{{}}.{attr}"),
        ("torch", f"{{}}.nn.{attr}"),
    ):
        name = by_target.get(qname)
        if name and visible(name, qname):
            return spelling.format(name), None
    for binding in module_scope.bindings.get("torch", []):
        # `import torch.nn` bound `torch` even when another name of torch came first
        alias = binding.node
        if (
            binding.kind == "import"
            and binding.statement in top_level
            and isinstance(alias, ast.alias)
            and alias.asname is None
            and (alias.name == "torch.nn" or alias.name.startswith("torch.nn."))
            and visible("torch", "torch")
        ):
            return f"torch.nn.{attr}", None
    names = identifiers(model)
    imports_torch_nn = any(
        isinstance(stmt, ast.ImportFrom) and stmt.module == "torch.nn" for stmt in model.top_level_imports()
    )
    if imports_torch_nn and attr not in names:
        return attr, ImportNeed("torch.nn", attr)
    if "torch" not in names:
        return f"torch.nn.{attr}", ImportNeed("torch")
    return None


# torch functions that return a tensor made from a sequence of tensors, whatever they are given
SEQUENCE_FUNCTIONS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack"})


def local_tensors(model: SemanticModel, func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Local names of ``func`` bound only to tensor expressions (to a fixed point)."""
    key = ("tensor_attributes.local_tensors", func)
    found = model.memo.get(key)
    if found is None:
        model.memo[key] = set()  # a helper that calls itself proves nothing
        found = model.memo[key] = _find_local_tensors(model, func)
    return found


def _find_local_tensors(model: SemanticModel, func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    scope = model.inner_scope(func)
    if scope is None:
        return set()
    values: dict[str, list[ast.expr]] = {}
    excluded: set[str] = set()
    for name, bindings in scope.bindings.items():
        for binding in bindings:
            node = binding.node
            holder = model.parent(node) if isinstance(node, ast.Name) else None
            if isinstance(holder, ast.Assign) and len(holder.targets) == 1 and holder.targets[0] is node:
                values.setdefault(name, []).append(holder.value)
            else:
                excluded.add(name)
    for name, bindings in scope.bindings.items():
        if any(gets_requires_grad(model, access) for binding in bindings for access in binding.accesses):
            excluded.add(name)
    known: set[str] = set()
    changed = True
    while changed:
        changed = False
        checker = TensorExpressions(model, known)
        for name, exprs in values.items():
            if name not in known and name not in excluded and all(checker.is_tensor(v) for v in exprs):
                known.add(name)
                changed = True
    return known


def gets_requires_grad(model: SemanticModel, node: ast.AST) -> bool:
    """``t.requires_grad = True`` / ``t.requires_grad_()``: the tensor wants to be a Parameter."""
    parent = model.parent(node)
    return (
        isinstance(parent, ast.Attribute)
        and parent.value is node
        and parent.attr in {"requires_grad", "requires_grad_"}
        and not (parent.attr == "requires_grad" and not is_assign_target(model, parent))
    )


def returns_tensor(model: SemanticModel, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Every ``return`` of a function of this file hands back a tensor (and it has one, and
    is no generator or coroutine)."""
    key = ("tensor_attributes.returns_tensor", func)
    found = model.memo.get(key)
    if found is None:
        model.memo[key] = False  # recursion: not proven
        found = model.memo[key] = _returns_tensor(model, func)
    return found


def _returns_tensor(model: SemanticModel, func) -> bool:
    if isinstance(func, ast.AsyncFunctionDef) or func.decorator_list:
        return False
    returns = []
    for node in model.nodes((ast.Return, ast.Yield, ast.YieldFrom), func):
        inner = next((a for a in model.ancestors(node) if isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))), None)
        if inner is not func:
            continue
        if not isinstance(node, ast.Return):
            return False
        returns.append(node)
    if not returns or _falls_off_the_end(func.body):
        return False
    checker = TensorExpressions(model, local_tensors(model, func))
    return all(r.value is not None and checker.is_tensor(r.value) for r in returns)


def _falls_off_the_end(body: list[ast.stmt]) -> bool:
    """The function may end without a ``return`` (then it returns None): its last statement
    is not a return or a raise."""
    last = body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return False
    if isinstance(last, ast.If):
        return _falls_off_the_end(last.body) or not last.orelse or _falls_off_the_end(last.orelse)
    return True


class TensorExpressions:
    """Decides whether an expression certainly evaluates to a torch tensor.

    ``local_tensors`` holds local names already known to be bound only to tensors; a name bound
    otherwise too counts when the binding that reaches its read is a tensor (the last one before
    it at the top level of the function, with no loop around the read rebinding it). A call of a
    function of this file counts when every return of the function is a tensor.
    """

    def __init__(self, model: SemanticModel, local_tensors: set[str] | None = None) -> None:
        self.model = model
        self.local_tensors = local_tensors or set()

    def is_tensor(self, expr: ast.AST) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in self.local_tensors or self._reaching_tensor(expr)
        if isinstance(expr, ast.Call):
            if has_star_args(expr):
                return False
            # a method called on a call's result (`torch.tril(a).view(...)`) is not a torch function
            qname = self.model.torch_qualified(expr.func) if dotted(expr.func) is not None else None
            if qname is not None and qname.count(".") == 1:
                fname = qname.split(".")[1]
                if fname in TENSOR_FACTORIES:
                    return not requires_grad_true(expr)
                if fname in SEQUENCE_FUNCTIONS:
                    return not requires_grad_true(expr) and bool(expr.args)
                if fname in TENSOR_FUNCTIONS:
                    return not requires_grad_true(expr) and any(self.is_tensor(arg) for arg in expr.args)
                return False
            func = expr.func
            if self.named_factory(func) is not None:
                return not requires_grad_true(expr)
            if isinstance(func, ast.Attribute) and qname is None and func.attr in TENSOR_METHODS:
                return self.is_tensor(func.value)
            if isinstance(func, ast.Name):
                defs = self.model.local_functions(func)
                return bool(defs) and all(returns_tensor(self.model, d) for d in defs)
            return False
        if isinstance(expr, ast.Attribute):
            return expr.attr in TRANSPOSE_ATTRIBUTES and self.is_tensor(expr.value)
        if isinstance(expr, ast.BinOp):
            if not isinstance(expr.op, SAFE_BINARY_OPS):
                return False
            return self.is_tensor(expr.left) or self.is_tensor(expr.right)
        if isinstance(expr, ast.UnaryOp):
            return isinstance(expr.op, SAFE_UNARY_OPS) and self.is_tensor(expr.operand)
        if isinstance(expr, ast.Subscript):
            return self.is_tensor(expr.value)
        return False

    def named_factory(self, func: ast.AST) -> str | None:
        """``getattr(torch, "hann_window")``: the tensor factory named by a string literal."""
        if not (isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "getattr"):
            return None
        if self.model.scope(func.func).resolve("getattr") or len(func.args) != 2 or func.keywords:
            return None  # a getattr of the file's own, or a default value
        owner, name = func.args
        if self.model.torch_qualified(owner) != "torch" or not isinstance(name, ast.Constant):
            return None
        return name.value if isinstance(name.value, str) and name.value in TENSOR_FACTORIES else None

    def _reaching_tensor(self, use: ast.Name) -> bool:
        """The one binding of ``use``'s name that reaches it binds a tensor."""
        model = self.model
        if not isinstance(use.ctx, ast.Load):
            return False
        function = model.enclosing_function(use)
        scope = model.inner_scope(function) if function is not None else None
        if scope is None or model.scope(use) is not scope:
            return False
        bindings = scope.bindings.get(use.id, [])
        position = (use.lineno, use.col_offset)
        earlier = [b for b in bindings if isinstance(b.node, ast.Name) and (b.node.lineno, b.node.col_offset) < position]
        if not earlier or len(earlier) != len([b for b in bindings if (getattr(b.node, "lineno", 0), getattr(b.node, "col_offset", 0)) < position]):
            return False
        last = max(earlier, key=lambda b: (b.node.lineno, b.node.col_offset))
        holder = model.parent(last.node)
        if not (isinstance(holder, ast.Assign) and len(holder.targets) == 1 and holder.targets[0] is last.node):
            return False
        if model.parent(holder) is not function or any(a is holder for a in model.ancestors(use)):
            return False  # in a branch or a loop, or the read is in its own value
        if any(gets_requires_grad(model, access) for b in bindings for access in b.accesses):
            return False
        for loop in model.ancestors(use):
            if loop is function:
                break
            if isinstance(loop, (ast.For, ast.While, ast.AsyncFor)) and any(
                any(a is loop for a in model.ancestors(b.node)) for b in bindings if isinstance(b.node, ast.AST)
            ):
                return False  # a later iteration may read another binding
        return self.is_tensor(holder.value)


def class_body_names(cls: ast.ClassDef) -> set[str]:
    """Names defined in the class body: class attributes, methods, properties."""
    names: set[str] = set()
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
            continue
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            targets = [stmt.target]
        else:
            continue
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


class TensorAttributeRule(Rule):
    """Driver: the first store of each attribute in ``__init__`` that the subclass
    ``wants`` is fixed when it runs after ``nn.Module.__init__``, the name is free on
    the class family, and every other store to the attribute stays acceptable."""

    def wants(self, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        raise NotImplementedError

    def message(self, site: SelfAssignment) -> str:
        raise NotImplementedError

    def fix_for(self, site: SelfAssignment) -> Fix | None:
        raise NotImplementedError

    def other_store_ok(self, value: ast.expr, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        raise NotImplementedError

    def refuses_use(self, use: ast.Attribute) -> bool:
        return False

    def deliberately_plain(self, site: SelfAssignment) -> bool:
        """Every read of the attribute in the class's methods moves it where it is used
        (``.to(x.device)``, ``.type_as(x)``, ``.cuda()``) or reads it back (``.tolist()``,
        ``.item()``, ``.device``): the tensor is kept plain on purpose. False when nothing
        reads it in the class."""
        return False

    def evidence(self, site: SelfAssignment) -> tuple[bool, str | None]:
        """Whether the finding is worth a report, and why a fix would not be proven right
        (None: nothing speaks against it)."""
        return True, None

    def state_keys(self, site: SelfAssignment) -> tuple[str, ...]:
        """The state_dict keys the fix adds (a parameter is always saved)."""
        return (site.attr,)

    def check(self) -> None:
        for cls, is_module in self.model.module_classes.items():
            if not is_module:
                continue
            init = next((f for f in class_methods(cls) if f.name == "__init__"), None)
            if init is not None:
                self.check_init(cls, init)

    # -- analysis -------------------------------------------------------------
    def check_init(self, cls: ast.ClassDef, init: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        model = self.model
        sites = [site for site in self_assignments(model, cls) if site.method is init]
        helpers = self._helpers_of_init(cls, init)
        if not sites and not helpers:
            return
        after = statements_after_super_init(model, init) or set()
        stored_in_init = {site.attr for site in sites}
        seen: dict[str, list[ast.Attribute]] = {}
        for method, call in [(init, None), *helpers]:
            tensors = TensorExpressions(model, self._local_tensors(method))
            for site in self_assignments(model, cls):
                if site.method is not method:
                    continue
                # only the first store can register the name, or one in the other branch of the
                # `if` that holds the first (`if learnable: Parameter(...)` / `else: tensor`)
                earlier = seen.setdefault(site.attr, [])
                first = all(model.exclusive_branches(target, site.target) for target in earlier)
                earlier.append(site.target)
                if not first:
                    continue
                if call is not None and site.attr in stored_in_init:
                    continue
                if self.wants(site, tensors):
                    self._check_site(cls, init, site, tensors, after, call)

    def _helpers_of_init(self, cls: ast.ClassDef, init) -> list[tuple[ast.FunctionDef, ast.Call]]:
        """Methods of the class that ``__init__`` calls on ``self`` as a statement of its own
        (``self.init_states(x)``), each with the call: what they store is set at construction
        too. Only a method no other class of the family overrides, and called nowhere else."""
        model = self.model
        receiver = self_name(init)
        family = model.class_family(cls)
        found = []
        for stmt in init.body:
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
                continue
            func = stmt.value.func
            if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == receiver):
                continue
            defs = [m for member in family for m in class_methods(member) if m.name == func.attr]
            if len(defs) != 1 or model.enclosing_class(defs[0]) is not cls or defs[0].decorator_list or defs[0] is init:
                continue
            calls = [node for node in model.attributes.get(func.attr, ()) if node is not func]
            if calls or any(m is defs[0] for m, _ in found):
                continue  # reached another way too (called again, handed out)
            found.append((defs[0], stmt.value))
        return found

    def _check_site(self, cls, init, site: SelfAssignment, tensors: TensorExpressions, after, call) -> None:
        model = self.model
        message = self.message(site)
        wanted, unproven = self.evidence(site)
        if not wanted:
            return
        anchor = site.assign if call is None else call
        if top_statement(model, anchor, init) not in after:
            self.report(site.assign, f"{message} (not fixed: assigned before nn.Module.__init__ runs)")
            return
        taken = self._names_taken(cls, set())
        if model.customizes_attribute_access(cls) or "setattr" in model.called:
            taken = None  # attributes may be reached or set out of the analysis' sight
        if taken is None or site.attr in taken or site.attr in MODULE_ATTRIBUTES:
            return
        stores = self._other_stores_verdict(site, tensors)
        if stores == "refuse":
            return
        if self.deliberately_plain(site):
            return
        if stores == "report":
            self.report(site.assign, f"{message} (not fixed: {self.rebinding_reason(site)})")
            return
        if call is not None:
            self.report(site.assign, f"{message} (not fixed: set in `{site.method.name}`, a method `__init__` calls)")
            return
        earlier = self._set_earlier(cls, init, site)
        if earlier is not None:
            # registering a name that already holds a plain attribute raises KeyError
            self.report(site.assign, f"{message} (not fixed: {earlier})")
            return
        if unproven is not None:
            self.report(site.assign, f"{message} (not fixed: {unproven})")
            return
        self.report(site.assign, message, self.fix_for(site), self.state_keys(site))

    def rebinding_reason(self, site: SelfAssignment) -> str:
        return "the attribute is stored again elsewhere with a value the analysis cannot follow"

    def _set_earlier(self, cls: ast.ClassDef, init, site: SelfAssignment) -> str | None:
        """Why ``site.attr`` may already hold a plain attribute when ``site`` runs (then
        ``register_buffer``/``register_parameter`` raises ``KeyError``), or None.

        What runs first is followed through the code of ``__init__`` before the store, the
        methods it calls on ``self`` (any override in the class family: a subclass's runs),
        methods reached through ``super()`` or a base named explicitly, functions of this file
        that ``self`` is handed to, transitively, and each subclass's ``__init__`` up to its
        own ``super().__init__()``. ``self`` handed to code the file does not hold stops the
        analysis: that code may set anything."""
        model = self.model
        family = model.class_family(cls)
        methods: dict[str, list] = {}
        for member in family:
            for method in class_methods(member):
                methods.setdefault(method.name, []).append(method)
        top = top_statement(model, site.assign, init)
        first: list[tuple[ast.AST, frozenset[str], tuple | None]] = []  # (code, self names, stop at)
        for stmt in init.body:
            if stmt is top:
                first.append((stmt, frozenset({site.self_arg}), (site.assign.lineno, site.assign.col_offset)))
                break
            first.append((stmt, frozenset({site.self_arg}), None))
        for member in family:
            if member is cls or cls not in model.class_family_up(member):
                continue  # not a subclass
            sub_init = next((m for m in class_methods(member) if m.name == "__init__"), None)
            sub_self = self_name(sub_init) if sub_init is not None else None
            if sub_self is None:
                continue
            for stmt in sub_init.body:
                if is_super_init_call(model, stmt, sub_self):
                    break
                first.append((stmt, frozenset({sub_self}), None))
        seen: set[ast.AST] = set()
        work = list(first)
        while work:
            code, selves, stop = work.pop()
            def before(node: ast.AST) -> bool:
                return stop is None or (node.lineno, node.col_offset) < stop
            for node in model.nodes(ast.Attribute, code):
                if node.attr == site.attr and not isinstance(node.ctx, ast.Load) and node is not site.target and before(node):
                    if model.exclusive_branches(node, site.target):
                        continue  # the other branch of the same `if`: never both
                    where = model.enclosing_function(node)
                    name = f"`{where.name}`" if where is not None else "the code before it"
                    return f"`{site.self_arg}.{site.attr}` may already be set when this line runs (in {name})"
            for call in model.nodes(ast.Call, code):
                if not before(call):
                    continue
                targets = self._callees(call, selves, methods, family)
                if targets is None:
                    return f"`{site.self_arg}` is handed to code this file does not show before this line runs"
                for func, receiver in targets:
                    if func not in seen:
                        seen.add(func)
                        work.append((func, frozenset({receiver}), None))
        return None

    def _above(self, call: ast.Call, receiver: ast.expr, on_super: bool) -> set[ast.ClassDef]:
        model = self.model
        if on_super:
            home = model.enclosing_class(call)
            if home is None:
                return set()
            return set(model.class_family_up(home)) - {home}
        return {c for named in model.local_classes(receiver) or () for c in model.class_family_up(named)}

    def _callees(self, call: ast.Call, selves: frozenset[str], methods: dict[str, list], family) -> list | None:
        """The functions of this file a call may run with the instance, each with the name the
        instance has inside it; None when the instance goes to code the file does not hold."""
        model = self.model
        func = call.func
        found = []
        hands_self = any(
            isinstance(arg, ast.Name) and arg.id in selves
            or isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name) and arg.value.id in selves
            for arg in [*call.args, *(k.value for k in call.keywords)]
        )
        if isinstance(func, ast.Attribute):
            receiver = func.value
            on_self = isinstance(receiver, ast.Name) and receiver.id in selves
            on_super = isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super"
            on_base = hands_self and bool(model.local_classes(receiver)) and all(c in family for c in model.local_classes(receiver) or ())
            if on_self or on_super or on_base:
                overrides = methods.get(func.attr, [])
                if on_super or on_base:
                    # only the bases above the class the call is in (or the one named)
                    above = self._above(call, receiver, on_super)
                    overrides = [m for m in overrides if model.enclosing_class(m) in above]
                for method in overrides:
                    inner = self_name(method)
                    if inner is not None:
                        found.append((method, inner))
                if overrides:
                    return found
                if func.attr in ("apply", "__setattr__"):
                    return None  # runs a function on the instance, or sets what it is told
                if func.attr in MODULE_ATTRIBUTES:
                    # nn.Module's own methods set nothing of ours (bases outside the file
                    # are judged by `_names_taken`)
                    return found if not hands_self else None
                if on_self:
                    # not a method of the family (whose bases are all in view): an attribute
                    # holding a submodule or a function, called with the arguments only
                    return found if not hands_self else None
                return None
        if not hands_self:
            return found
        if isinstance(func, ast.Name) and func.id in _READ_ONLY_BUILTINS and not model.scope(func).resolve(func.id):
            return found
        defs = model.local_functions(func) if isinstance(func, ast.Name) else None
        if not defs:
            return None
        for definition in defs:
            params = [*definition.args.posonlyargs, *definition.args.args]
            for index, arg in enumerate(call.args):
                if isinstance(arg, ast.Name) and arg.id in selves and index < len(params):
                    found.append((definition, params[index].arg))
                elif isinstance(arg, ast.Starred):
                    return None
            for kw in call.keywords:
                if isinstance(kw.value, ast.Name) and kw.value.id in selves:
                    if kw.arg is None:
                        return None
                    found.append((definition, kw.arg))
        return found

    def _local_tensors(self, init: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
        """Local names of ``init`` bound only to tensor expressions (the same for TFM301 and TFM302)."""
        return local_tensors(self.model, init)

    def _names_taken(self, cls: ast.ClassDef, visiting: set[ast.ClassDef]) -> set[str] | None:
        """Attribute names the class, its bases or its subclasses in this file define
        (register_buffer raises KeyError on them, or bypasses a property's setter),
        or None when a base is unknown."""
        model = self.model
        visiting = visiting | {cls}
        taken = set().union(*(class_body_names(member) for member in model.class_family(cls)))
        for base in model.base_classes(cls):
            if base == TORCH_MODULE_BASE or base in NEUTRAL_BASES:
                continue  # `ABC`, `Generic[T]`: no instance attributes of their own
            if not isinstance(base, ast.ClassDef) or base in visiting:
                return None  # unknown, or a cycle only a NameError at run time could make
            inherited = self._names_taken(base, visiting)
            if inherited is None:
                return None
            taken |= inherited
            taken |= {site.attr for site in self_assignments(model, base)}
        return taken

    def _other_stores_verdict(self, site: SelfAssignment, tensors: TensorExpressions) -> str:
        """``"ok"`` when every other store to the attribute in the file is one the fixed
        attribute accepts, ``"report"`` when some store is one the subclass reports without a
        fix (``store_verdict``), ``"refuse"`` when one says the attribute is not what the rule
        is about."""
        model = self.model
        verdict = "ok"
        for use in model.attributes.get(site.attr, ()):
            if use is site.target:
                continue
            if is_display_element(model, use) or is_starred_display_element(model, use):
                return "refuse"  # `self.x, self.y = ...`: the value is not visible
            if self.refuses_use(use):
                return "refuse"
            holder = model.parent(use)
            if is_assign_target(model, use):
                value = holder.value
            elif isinstance(holder, ast.AnnAssign) and holder.target is use:
                value = holder.value
            else:
                continue
            if value is None or is_constant(value, None):
                continue
            if self._parameter_instead(value, use, site):
                continue
            found = self.store_verdict(value, use, site, tensors)
            if found == "refuse":
                return "refuse"
            if found == "report":
                verdict = "report"
        return verdict

    def store_verdict(self, value: ast.expr, target: ast.Attribute, site: SelfAssignment, tensors: TensorExpressions) -> str:
        return "ok" if self.other_store_ok(value, site, tensors) else "refuse"

    def _parameter_instead(self, value: ast.expr, target: ast.Attribute, site: SelfAssignment) -> bool:
        """``if learnable: self.w = nn.Parameter(t)`` / ``else: self.w = t``: the other branch of
        the same ``if`` in the same method makes the attribute a parameter on the instances that
        take it; the fixed store never runs on those."""
        model = self.model
        if model.enclosing_function(target) is not site.method or not model.exclusive_branches(site.target, target):
            return False
        return isinstance(value, ast.Call) and bool(model.qualified_names(value.func)) and model.qualified_names(value.func) <= PARAMETER_CLASSES

    def gets_requires_grad(self, node: ast.AST) -> bool:
        return gets_requires_grad(self.model, node)

    @staticmethod
    def is_same_attribute_chain(value: ast.expr, site: SelfAssignment) -> bool:
        """``self.x = self.x.to(device)`` and the like keep a tensor a tensor."""
        node = value
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr not in TENSOR_METHODS:
                return False
            node = node.func.value
        return node is not value and isinstance(node, ast.Attribute) and node.attr == site.attr
