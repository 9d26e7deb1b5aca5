"""TFM401: an nn.Module subclass whose ``__init__`` never calls ``super().__init__()``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.attributes._tensor_attributes import TENSOR_METHODS
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import TORCH_MODULE_BASE, SemanticModel, class_methods, self_name

# what only an nn.Module (not a tensor, a function or a transform) is asked for
MODULE_ONLY_METHODS = frozenset({
    "parameters", "named_parameters", "buffers", "named_buffers", "children", "named_children", "modules",
    "named_modules", "state_dict", "load_state_dict", "train", "eval", "apply", "zero_grad",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "reset_parameters",
})

HEADER = "import torch.nn as nn\n\n"
MIXIN = (
    HEADER + "class Flags(nn.Module):\n    def __init__(self):\n        self.verbose = False\n\n"
    "class Trunk(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
    "        self.fc = nn.Linear(width, width)\n\n"
    "class Model(Flags, Trunk):\n    def __init__(self, width):\n"
    "        Trunk.__init__(self, width)\n        Flags.__init__(self)\n"
)


def calls_an_init(model: SemanticModel, method: ast.AST) -> bool:
    """Any ``X.__init__(...)`` call: ``super().__init__()``, ``Base.__init__(self)``, ...
    (``super(Cls).__init__()``, an unbound super object's own ``__init__``, does not count)."""
    return any(
        isinstance(call.func, ast.Attribute) and call.func.attr == "__init__" and unbound_super(model, call.func.value) is None
        for call in model.nodes(ast.Call, method)
    )


def unbound_super(model: SemanticModel, node: ast.AST) -> ast.Call | None:
    """``super(Cls)``: the builtin called with one argument, which makes a super object bound
    to nothing (its ``__init__`` never reaches the base class)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not model.scope(node.func).resolve("super")
        and len(node.args) == 1
        and not isinstance(node.args[0], ast.Starred)
        and not node.keywords
    ):
        return node
    return None


def required_params(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters after ``self`` that have no default."""
    args = func.args
    positional = len(args.posonlyargs) + len(args.args)
    without_default = positional - len(args.defaults)  # defaults belong to the last parameters
    return max(without_default - 1, 0) + sum(1 for d in args.kw_defaults if d is None)


def always_raises(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The body, past its docstring, is a single ``raise``."""
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def body_on_header_line(model: SemanticModel, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The body follows the colon on the same logical line (``def f(self): x = 1``), so it has
    no indented block to insert a statement into."""
    first = func.body[0]
    column = model.span(first).column
    line = model.line(first.lineno)
    if line[:column].strip():
        return True
    if first.lineno > func.lineno:  # a backslash after the colon joins the next line to the header
        previous = model.line(first.lineno - 1).rstrip()
        return previous.endswith("\\") and not previous.lstrip().startswith("#")
    return False


class MissingSuperInitRule(Rule):
    """
    ## What it does
    Finds nn.Module subclasses whose `__init__` never calls the base
    `__init__` (`super().__init__()`, `super(Cls, self).__init__()`,
    `nn.Module.__init__(self)`, `Base.__init__(self, ...)`), and inserts
    `super().__init__()` as its first statement (after the docstring).

    ## Why is this bad?
    `nn.Module.__init__` creates the registries of parameters, buffers and
    submodules. Without it, assigning a layer raises "cannot assign module
    before Module.__init__() call", and calling the module fails.

    ## Example
    ```python
    class LR(nn.Module):
        def __init__(self, d):
            self.linear = nn.Linear(d, 1)
    ```

    ## Use instead
    ```python
    class LR(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.linear = nn.Linear(d, 1)
    ```

    ## Fix safety
    Safe, and offered only when the base is `nn.Module` itself, or an nn.Module
    class of the same file whose `__init__` needs no arguments, and the class is
    not combined with other bases anywhere in the file or the run (as a mixin,
    `super()` in it reaches the next class of the combined class's MRO).
    Otherwise reported without a fix (another torch layer such as `nn.Linear`,
    a base from another file, several bases, a mixin): the `__init__` the call
    would reach may need arguments, and the fix would raise TypeError at
    construction.

    `super(Cls).__init__()` with one argument makes a super object bound to
    nothing: its `__init__` is the super object's own, and nn.Module's never
    runs. It is reported, and fixed to `super(Cls, self).__init__()` under the
    same conditions.

    ## Known problems
    Left alone: classes that call an `__init__` anywhere in their methods
    (for instance from a helper called by `__init__`), and one-line
    `__init__` bodies (reported without a fix).
    """

    code = "TFM401"
    name = "missing-super-init"
    summary = "nn.Module subclass __init__ never calls super().__init__()"

    fixes = (
        FixCase(
            HEADER + "class LR(nn.Module):\n"
            "    def __init__(self, input_size, output_size):\n"
            '        """Linear regression."""\n'
            "        # the layer\n"
            "        self.linear = nn.Linear(input_size, output_size)\n",
            HEADER + "class LR(nn.Module):\n"
            "    def __init__(self, input_size, output_size):\n"
            '        """Linear regression."""\n'
            "        super().__init__()\n"
            "        # the layer\n"
            "        self.linear = nn.Linear(input_size, output_size)\n",
        ),
        FixCase(
            HEADER + "class LR(nn.Module):\n    def __init__(self, d):\n        super(LR).__init__()\n"
            "        self.linear = nn.Linear(d, 1)\n",
            HEADER + "class LR(nn.Module):\n    def __init__(self, d):\n        super(LR, self).__init__()\n"
            "        self.linear = nn.Linear(d, 1)\n",
        ),
        # the base defines no `__init__` (only static helpers): the call reaches nn.Module's
        FixCase(
            HEADER + "class Beamformer(nn.Module):\n    @staticmethod\n    def apply(v, x):\n        return v * x\n\n"
            "class GEVD(Beamformer):\n    def __init__(self, mu=1.0):\n        self.mu = mu\n",
            HEADER + "class Beamformer(nn.Module):\n    @staticmethod\n    def apply(v, x):\n        return v * x\n\n"
            "class GEVD(Beamformer):\n    def __init__(self, mu=1.0):\n        super().__init__()\n        self.mu = mu\n",
        ),
        FixCase(
            HEADER + "class Base(nn.Module):\n    def __init__(self, scale=1.0):\n        super().__init__()\n\n"
            "class Child(Base):\n    def __init__(self):\n        self.fc = nn.Linear(2, 2)\n",
            HEADER + "class Base(nn.Module):\n    def __init__(self, scale=1.0):\n        super().__init__()\n\n"
            "class Child(Base):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 2)\n",
        ),
    )
    keeps = (
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self):\n        super(A, self).__init__()\n"),
        # the unbound super object's arguments were meant for a base that takes none
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self, d):\n        super(A).__init__(d)\n", reported=True),
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self):\n        nn.Module.__init__(self)\n"),
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self, x):\n        if x:\n            super().__init__()\n"),
        KeepCase(
            HEADER + "class A(nn.Module):\n    def __init__(self):\n        self._setup()\n"
            "    def _setup(self):\n        super().__init__()\n"
        ),
        KeepCase(HEADER + "class A(nn.Module):\n    pass\n"),
        # a layer handed in and stored before the base `__init__`, which may read it (PyG's ARGA)
        KeepCase(
            HEADER + "class Base(nn.Module):\n    def __init__(self, encoder):\n        super().__init__()\n"
            "        self.encoder = encoder\n        self.reset()\n    def reset(self):\n        pass\n\n"
            "class ARGA(Base):\n    def __init__(self, encoder, discriminator):\n"
            "        self.discriminator = discriminator\n        super().__init__(encoder)\n"
            "    def reset(self):\n        self.discriminator.reset_parameters()\n"
            "    def critic(self, z):\n        return self.discriminator(z)\n",
            reported=True,
        ),
        # a number stored first is fine: only layers, parameters and buffers need the registries
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self, n):\n        self.n = n\n        super().__init__()\n"),
        # a class disabled on purpose: its `__init__` only raises
        # the base's own initialiser runs Module.__init__ (torch.ao's quantized convolutions)
        KeepCase(
            HEADER + "class _ConvNd(nn.Module):\n    def _init(self, c):\n        super().__init__()\n"
            "        self.c = c\n\n"
            "class Conv1d(_ConvNd):\n    def __init__(self, c):\n        super()._init(c)\n"
        ),
        # an initialiser of a base class the file does not show
        KeepCase(
            HEADER + "from elsewhere import Base\n\n\nclass Head(Base, nn.Module):\n"
            "    def __init__(self, c):\n        self.setup(c)\n"
        ),
        KeepCase(HEADER + "class Old(nn.Module):\n    def __init__(self, *args):\n        raise RuntimeError('use New')\n"),
        KeepCase("class Plain:\n    def __init__(self):\n        self.x = 1\n"),
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self): self.x = 1\n", reported=True),
        # `nn.Linear.__init__` needs its sizes: `super().__init__()` would raise TypeError
        KeepCase(HEADER + "class Wide(nn.Linear):\n    def __init__(self):\n        self.extra = 1\n", reported=True),
        # used as a mixin: `super()` in it reaches `Trunk.__init__`, which needs `width`
        KeepCase(MIXIN, reported=True),
        # a callable handed in and stored before the base `__init__`, applied to images (a
        # torchvision `Compose` is no nn.Module): nothing says it is a layer (flair's
        # IdentityImageEmbeddings)
        KeepCase(
            HEADER + "class Base(nn.Module):\n    def __init__(self):\n        super().__init__()\n\n"
            "class Images(Base):\n    def __init__(self, transforms):\n        self.transforms = transforms\n"
            "        super().__init__()\n\n    def embed(self, image):\n        return self.transforms(image.load())\n"
        ),
    )

    def check(self) -> None:
        model = self.model
        for node, is_module in model.module_classes.items():
            if is_module:
                self.check_class(node)

    def check_class(self, node: ast.ClassDef) -> None:
        init = next((f for f in class_methods(node) if f.name == "__init__"), None)
        if init is None or self_name(init) is None:
            return
        if any(calls_an_init(self.model, method) for method in class_methods(node)):
            self.check_late_init(node, init)
            return
        if always_raises(init):
            return  # a disabled class (`raise RuntimeError("use X instead")`): no instance is ever made
        if self._delegates_init(node, init):
            return  # `super()._init(...)`: a base's method that may call `__init__` itself
        unbound = [
            (call, sup)
            for call in self.model.nodes(ast.Call, init)
            if isinstance(call.func, ast.Attribute) and call.func.attr == "__init__"
            and (sup := unbound_super(self.model, call.func.value)) is not None
        ]
        if unbound:
            self.check_unbound(node, init, unbound)
            return
        message = (
            "`__init__` never calls `super().__init__()`: assigning layers raises "
            "'cannot assign module before Module.__init__() call' and the module cannot be called"
        )
        if body_on_header_line(self.model, init):
            self.report(init, message)
            return
        if self._combined_with_other_bases(node):
            self.report(init, f"{message} (not fixed: the class is combined with other bases, so `super().__init__()` "
                        "would call the next class of that MRO, which may need arguments)")
            return
        if not self._base_init_takes_nothing(node):
            self.report(init, f"{message} (not fixed: the base `__init__` may need arguments the fix cannot know)")
            return
        edit = self.edit(init, "FunctionDef", _insert_super_init)
        self.report(init, message, Fix([edit]))

    def _delegates_init(self, node: ast.ClassDef, init) -> bool:
        """``__init__`` calls a base class's method (``super()._init(...)``, or ``self.setup()``
        defined in a base) that calls an ``__init__``, or one the file cannot see (a base from
        elsewhere): whether the module gets initialised is then not known to be missing.
        torch's ``torch.nn.Module`` methods never initialise it."""
        self_arg = self_name(init)
        own = {m.name for m in class_methods(node)}
        bases = [c for c in self.model.class_family_up(node) if c is not node]
        unknown_base = any(
            not isinstance(b, ast.ClassDef) and not (isinstance(b, str) and b.startswith("torch."))
            for c in [node, *bases] for b in self.model.base_classes(c)
        )
        for call in self.model.nodes(ast.Call, init):
            func = call.func
            if not isinstance(func, ast.Attribute) or func.attr == "__init__":
                continue
            receiver = func.value
            through_super = isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super"
            through_self = isinstance(receiver, ast.Name) and receiver.id == self_arg and func.attr not in own
            if not (through_super or through_self):
                continue
            found = [m for c in bases for m in class_methods(c) if m.name == func.attr]
            if any(calls_an_init(self.model, m) for m in found):
                return True
            if not found and unknown_base:
                return True
        return False

    def check_late_init(self, node: ast.ClassDef, init) -> None:
        """A layer stored on ``self`` before the base ``__init__`` runs: nn.Module's
        ``__setattr__`` raises 'cannot assign module before Module.__init__() call'. Reported
        without a fix: the base ``__init__`` may call methods that read the attribute (a
        ``reset_parameters`` override), which is often why it was stored first."""
        model = self.model
        self_arg = self_name(init)
        first_init = next(
            (index for index, stmt in enumerate(init.body)
             if any(isinstance(c.func, ast.Attribute) and c.func.attr == "__init__" for c in model.nodes(ast.Call, stmt))),
            None,
        )
        if first_init is None:
            return
        params = {a.arg for a in init.args.posonlyargs + init.args.args + init.args.kwonlyargs}
        for stmt in init.body[:first_init]:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
                continue
            target = stmt.targets[0]
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_arg):
                continue
            value = stmt.value
            layer = model.is_module_construction(value) or (
                isinstance(value, ast.Name) and value.id in params and self._called_as_module(node, target.attr)
            )
            if layer:
                self.report(stmt, (
                    f"`{self_arg}.{target.attr}` holds a layer stored before the base `__init__` runs: "
                    "nn.Module raises 'cannot assign module before Module.__init__() call' (not fixed: the base "
                    "`__init__` may read it, so the call cannot simply move up)"
                ))

    def _called_as_module(self, cls: ast.ClassDef, attr: str) -> bool:
        """``self.<attr>`` is used as a layer somewhere in the class family: called on tensors,
        or asked for what only modules have (``self.<attr>.parameters()``,
        ``.reset_parameters()``)."""
        for node in self.model.attributes.get(attr, ()):
            holder = self.model.parent(node)
            if (isinstance(node.value, ast.Name) and isinstance(holder, ast.Attribute) and holder.value is node
                    and holder.attr in MODULE_ONLY_METHODS
                    and self.model.enclosing_class(node) in self.model.class_family(cls)):
                return True
        for member in self.model.class_family(cls):
            for call in self.model.nodes(ast.Call, member):
                func = call.func
                if not (isinstance(func, ast.Attribute) and func.attr == attr and isinstance(func.value, ast.Name)):
                    continue
                method = self.model.enclosing_function(call)
                if method is not None and self_name(method) == func.value.id and self._on_tensors(call):
                    return True  # `self.<attr>(...)`, not some other object's method of that name
        return False

    def _on_tensors(self, call: ast.Call) -> bool:
        """The call is handed a tensor made by torch (``f(torch.randn_like(z))``, ``f(z.detach())``)
        or its result goes straight to torch (``torch.sigmoid(f(z))``): a layer's call, not a
        transform of images or text, which any callable may be."""
        model = self.model
        holder = model.parent(call)
        if isinstance(holder, ast.Call) and call in holder.args and model.torch_qualified(holder.func):
            return True
        for arg in call.args:
            if isinstance(arg, ast.Call) and (
                model.torch_qualified(arg.func)
                or (isinstance(arg.func, ast.Attribute) and arg.func.attr in TENSOR_METHODS and model.torch_qualified(arg.func) is None
                    and not isinstance(arg.func.value, ast.Constant))
            ):
                return True
        return False

    def check_unbound(self, node: ast.ClassDef, init, unbound) -> None:
        """``super(Cls).__init__()``: one argument makes an unbound super object, so
        nn.Module's ``__init__`` never runs on the instance. The fix binds it,
        ``super(Cls, self).__init__()``, when the call reaches an ``__init__`` that takes
        what it is given."""
        message = (
            "`super({name}).__init__()` with one argument is an unbound super object: nn.Module.__init__ "
            "never runs, and assigning layers raises 'cannot assign module before Module.__init__() call'"
        )
        self_arg = self_name(init)
        for call, sup in unbound:
            text = message.format(name=self.model.text(sup.args[0]))
            names_cls = isinstance(sup.args[0], ast.Name) and sup.args[0].id == node.name
            if not names_cls or call.args or call.keywords or self_arg is None:
                self.report(call, f"{text} (not fixed: it names another class or passes arguments)")
            elif self._combined_with_other_bases(node):
                self.report(call, f"{text} (not fixed: the class is combined with other bases)")
            elif not self._base_init_takes_nothing(node):
                self.report(call, f"{text} (not fixed: the base `__init__` may need arguments)")
            else:
                self.report(call, text, Fix([self.edit(sup, "Call", _bind_super, self_arg)]))

    def _combined_with_other_bases(self, cls: ast.ClassDef) -> bool:
        """``cls``, or a class derived from it, is one of several bases of a class of this file
        or of the run: ``super()`` in ``cls`` then reaches whatever follows it in that class's
        MRO, not ``cls``'s own base."""
        model = self.model
        for other in model.module_classes:
            if len(other.bases) < 2:
                continue
            for base in model.base_classes(other):
                if isinstance(base, ast.ClassDef) and cls in model.class_family_up(base):
                    return True
        if model.module_name and cls in model.tree.body:
            found = model.project_class(f"{model.module_name}.{cls.name}")
            if found is not None and found.mixed:
                return True
        return False

    def _base_init_takes_nothing(self, cls: ast.ClassDef) -> bool:
        model = self.model
        bases = model.base_classes(cls)
        if len(bases) != 1:
            return False
        base = bases[0]
        if base == TORCH_MODULE_BASE:
            return True
        if not isinstance(base, ast.ClassDef):
            return False
        for member in model.class_family_up(base):
            init = next((f for f in class_methods(member) if f.name == "__init__"), None)
            if init is not None:
                return required_params(init) == 0
        # no class on the way defines `__init__`: the call reaches nn.Module's when every class
        # of the chain has one base and the last of them is nn.Module itself
        current = base
        while isinstance(current, ast.ClassDef):
            bases = model.base_classes(current)
            if len(bases) != 1:
                return False
            current = bases[0]
        return current == TORCH_MODULE_BASE


def _bind_super(call, self_arg: str):
    """``super(Cls)`` -> ``super(Cls, self)``."""
    import libcst as cst

    args = list(call.args)
    first = args[0].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[first, cst.Arg(cst.Name(self_arg))])


def _insert_super_init(func):
    """``super().__init__()`` as the first statement of the function's block, after its docstring."""
    import libcst as cst
    import libcst.matchers as m

    block = func.body
    body = list(block.body)
    index = 0
    if body and m.matches(body[0], m.SimpleStatementLine(body=[m.Expr(value=m.SimpleString() | m.ConcatenatedString())])):
        index = 1  # after the docstring
    call = cst.SimpleStatementLine(body=[cst.Expr(cst.parse_expression("super().__init__()"))])
    body.insert(index, call)
    return func.with_changes(body=block.with_changes(body=body))
