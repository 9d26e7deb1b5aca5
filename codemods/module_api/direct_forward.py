"""TFM402: ``module.forward(x)`` called directly -> ``module(x)``, so hooks run."""

from __future__ import annotations

import ast

from torchfix_mod.codemods._shared._attributes import is_display_element, self_assignments
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import class_methods, self_name

HEADER = "import torch.nn as nn\n\n"
CONTAINERS = frozenset({"torch.nn.ModuleList", "torch.nn.Sequential"})


class DirectForwardRule(Rule):
    """
    ## What it does
    Finds `.forward(...)` called directly on an object known to be an
    nn.Module: a submodule attribute (`self.block.forward(x)`), an element of
    an `nn.ModuleList`/`nn.Sequential` being iterated (`layer.forward(x)`), a
    module just constructed (`Function_C().forward(x)`) or a local bound to
    one, and calls the module instead.

    ## Why is this bad?
    `module(x)` runs `forward` through `nn.Module.__call__`, which also runs
    forward pre-hooks, forward hooks and backward hooks. Calling `.forward`
    skips them: hooks for feature extraction, pruning, quantization or
    profiling silently never fire.

    ## Example
    ```python
    x = self.c.forward(x)
    ```

    ## Use instead
    ```python
    x = self.c(x)
    ```

    ## Fix safety
    Safe: without hooks the two calls run the same code; with hooks, running
    them is the point.

    `self.forward(...)` in a method that `forward` never reaches (a
    `sample`, `inference` or `evaluate` method) becomes `self(...)` when the
    class and its bases are of the file or torch.nn and none defines
    `__call__`: a base from another library may give `__call__` a meaning of its
    own (gpytorch's modules wrap what `forward` returns).

    ## Known problems
    Only calls inside `forward`, and in methods that are only ever called (never
    handed out as a value, as a hook is), are rewritten: a hook may call
    `.forward` to skip hooks on purpose. Reported without a fix: `.forward` on
    an attribute stored only from arguments of `__init__` (if it is not an
    nn.Module, calling it raises). Never touched: `super().forward(...)`,
    `Base.forward(self, ...)`, and `.forward` on other objects not known to be
    modules (function arguments, attributes assigned anything but a module).
    """

    code = "TFM402"
    name = "direct-forward-call"
    summary = "module.forward(x) skips hooks; call the module"

    fixes = (
        FixCase(
            HEADER + "class Function_C(nn.Module):\n    def forward(self, x):\n        return x * 7\n\n"
            "class Function_D(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.c = Function_C()\n"
            "        self.layers = nn.ModuleList([nn.Linear(2, 2)])\n"
            "    def forward(self, x):\n"
            "        x = Function_C().forward(x)\n"
            "        x = self.c.forward(x)  # hooks\n"
            "        for layer in self.layers:\n"
            "            x = layer.forward(x)\n"
            "        head = nn.Linear(2, 2)\n"
            "        return head.forward(x)\n",
            HEADER + "class Function_C(nn.Module):\n    def forward(self, x):\n        return x * 7\n\n"
            "class Function_D(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.c = Function_C()\n"
            "        self.layers = nn.ModuleList([nn.Linear(2, 2)])\n"
            "    def forward(self, x):\n"
            "        x = Function_C()(x)\n"
            "        x = self.c(x)  # hooks\n"
            "        for layer in self.layers:\n"
            "            x = layer(x)\n"
            "        head = nn.Linear(2, 2)\n"
            "        return head(x)\n",
        ),
    )
    fixes = fixes + (
        # a method forward never reaches, running the module's own forward (pixyz's Loss.eval)
        FixCase(
            HEADER + "class Loss(nn.Module):\n    def forward(self, x):\n        return x * 2\n\n"
            "    def evaluate(self, x):\n        loss = self.forward(x)\n        return loss.item()\n",
            HEADER + "class Loss(nn.Module):\n    def forward(self, x):\n        return x * 2\n\n"
            "    def evaluate(self, x):\n        loss = self(x)\n        return loss.item()\n",
        ),
    )
    keeps = (
        KeepCase(
            HEADER + "class Base(nn.Module):\n    def forward(self, x):\n        return x\n\n"
            "class Child(Base):\n"
            "    def forward(self, x):\n"
            "        y = super().forward(x)\n"
            "        z = Base.forward(self, x)\n"
            "        return self.forward(y + z) if False else y\n"
        ),
        KeepCase(
            HEADER + "class Wrapper(nn.Module):\n"
            "    def __init__(self, inner):\n"
            "        super().__init__()\n"
            "        self.inner = inner\n"
            "    def forward(self, x, model):\n"
            "        return self.inner.forward(x) + model.forward(x)\n",
            reported=True,  # `self.inner`, handed in: reported without a fix
        ),
        KeepCase(
            HEADER + "class M(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.enc = nn.Linear(2, 2)\n"
            "        self.enc.register_forward_hook(self._hook)\n"
            "    def _hook(self, mod, inp, out):\n"
            "        self.ref = self.enc.forward(inp[0] * 2)\n"
        ),
    )

    def check(self) -> None:
        model = self.model
        for attribute in model.attributes.get("forward", ()):
            call = model.parent(attribute)
            if not (isinstance(call, ast.Call) and call.func is attribute):
                continue
            method = model.enclosing_function(call)
            # a hook that calls `.forward` skips hooks on purpose (calling the module there would
            # run the hook again, forever): only `forward` and methods never handed out as values
            if method is None or not (method.name == "forward" or self._plain_method(method)):
                continue
            message = (
                "calling `.forward()` directly skips the module's forward/backward hooks and pre-hooks; "
                "call the module instead"
            )
            receiver = attribute.value
            if self._own_forward(receiver, method):
                self.report(call, message, Fix([self.edit(call, "Call", _call_the_receiver)]))
            elif self._is_module(receiver, call):
                self.report(call, message, Fix([self.edit(call, "Call", _call_the_receiver)]))
            elif method.name == "forward" and self._handed_in(receiver, call) and self._plain_torch_family(self._enclosing_class(call)):
                self.report(call, f"{message} (not fixed: `{model.text(receiver)}` is handed to the constructor, "
                            "and calling it raises if it is not an nn.Module)")

    def _plain_method(self, method) -> bool:
        """A method of an nn.Module class that is only ever called (never handed out as a value,
        as a hook is), and that ``forward`` cannot reach."""
        model = self.model
        cls = self._enclosing_class(method)
        if cls is None or method.name.startswith("__") or model.enclosing_function(method) is not None:
            return False
        for use in model.attributes.get(method.name, ()):
            holder = model.parent(use)
            if not (isinstance(holder, ast.Call) and holder.func is use):
                return False  # `register_forward_hook(self.method)`, `partial(self.method)`
        return method not in model.methods_reached(cls)

    def _own_forward(self, receiver: ast.expr, method) -> bool:
        """``self.forward(...)`` in a method forward never reaches, of an nn.Module class that
        keeps nn.Module's ``__call__``: calling ``self(...)`` runs the same forward, with hooks."""
        model = self.model
        if method.name == "forward" or not isinstance(receiver, ast.Name) or receiver.id != self_name(method):
            return False
        cls = self._enclosing_class(method)
        if cls is None or not self._plain_method(method):
            return False
        if any(m.name == "__call__" for member in model.class_family(cls) for m in class_methods(member)):
            return False
        # every base is a class of this file or of torch.nn: a base from elsewhere may define a
        # `__call__` of its own (gpytorch's modules wrap what forward returns)
        return self._plain_torch_family(cls)

    def _plain_torch_family(self, cls: ast.ClassDef | None) -> bool:
        """Every base of the class is of this file or of torch.nn: a class built on another
        library's modules (gpytorch kernels, torchmetrics metrics) may hold objects whose
        ``__call__`` means something else than ``forward``."""
        if cls is None:
            return False
        for member in self.model.class_family_up(cls):
            for base in self.model.base_classes(member):
                if not isinstance(base, ast.ClassDef) and not (isinstance(base, str) and base.startswith("torch.nn.")):
                    return False
        return True

    def _handed_in(self, receiver: ast.expr, at: ast.AST) -> bool:
        """``self.<x>`` of an nn.Module class, stored only from parameters of ``__init__``."""
        model = self.model
        cls = self._enclosing_class(at)
        if cls is None or not (isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name)):
            return False
        sites = [site for member in model.class_family(cls) for site in self_assignments(model, member) if site.attr == receiver.attr]
        if not sites:
            return False
        for site in sites:
            params = {a.arg for a in site.method.args.posonlyargs + site.method.args.args + site.method.args.kwonlyargs}
            if not (site.method.name == "__init__" and isinstance(site.value, ast.Name) and site.value.id in params):
                return False
        return True

    # -- evidence ---------------------------------------------------------------
    def _is_module(self, receiver: ast.expr, at: ast.AST) -> bool:
        model = self.model
        if model.is_module_construction(receiver):
            return True
        cls = self._enclosing_class(at)
        method = model.enclosing_function(at)
        if isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name) and cls is not None:
            stores = self._stores(cls, receiver.attr)
            return bool(stores) and all(model.is_module_construction(v) for v in stores)
        if isinstance(receiver, ast.Name) and method is not None:
            return self._local_is_module(receiver, cls)
        return False

    def _enclosing_class(self, node: ast.AST) -> ast.ClassDef | None:
        cls = self.model.enclosing_class(node)
        return cls if cls is not None and self.model.is_module_class(cls) else None

    def _stores(self, cls: ast.ClassDef, attr: str) -> list[ast.expr]:
        """Values stored to ``self.<attr>`` across the class family; [] if any store is hidden."""
        model = self.model
        values = []
        for member in model.class_family(cls):
            values += [site.value for site in self_assignments(model, member) if site.attr == attr]
        for use in model.attributes.get(attr, ()):
            holder = model.parent(use)
            if is_display_element(model, use) or (isinstance(holder, (ast.AugAssign, ast.AnnAssign)) and holder.target is use):
                return []
        if model.customizes_attribute_access(cls) or "setattr" in model.called:
            return []
        return values

    def _local_is_module(self, name: ast.Name, cls: ast.ClassDef | None) -> bool:
        """A local bound only to module constructions, or a loop over a ModuleList/Sequential attribute."""
        model = self.model
        scope = model.scope(name)
        if scope.kind == "module":
            return False
        # the bindings of the scope the name is read in: a name a comprehension reads from the
        # function around it is not followed
        bindings = scope.bindings.get(name.id, [])
        if not bindings:
            return False
        for binding in bindings:
            target = binding.node
            holder = model.parent(target)
            if isinstance(target, ast.Name) and isinstance(holder, ast.Assign):
                if len(holder.targets) == 1 and model.is_module_construction(holder.value):
                    continue
                return False
            if isinstance(holder, (ast.For, ast.AsyncFor)) and holder.target is target and cls is not None:
                iterated = holder.iter
                if isinstance(iterated, ast.Attribute) and isinstance(iterated.value, ast.Name):
                    stores = self._stores(cls, iterated.attr)
                    if stores and all(self._is_module_sequence(v) for v in stores):
                        continue
            return False
        return any(binding.accesses for binding in bindings)

    def _is_module_sequence(self, value: ast.expr) -> bool:
        if not isinstance(value, ast.Call):
            return False
        qnames = self.model.qualified_names(value.func)
        return bool(qnames) and qnames <= CONTAINERS


def _call_the_receiver(call):
    """``module.forward(x)`` -> ``module(x)``."""
    return call.with_changes(func=call.func.value)
