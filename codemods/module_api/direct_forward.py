"""TFM402: ``module.forward(x)`` called directly -> ``module(x)``, so hooks run."""

from __future__ import annotations

import ast

from torchfix_mod.codemods._shared._attributes import is_display_element, self_assignments
from torchfix_mod.codemods.containers._containers import declares_module, only_param
from torchfix_mod.codemods.attributes._tensor_attributes import class_body_names
from torchfix_mod.project import CALL_HOOKS, UNCALLABLE_TORCH_CLASSES, binds_call
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import class_methods, self_name

HEADER = "import torch.nn as nn\n\n"
CONTAINERS = frozenset({"torch.nn.ModuleList", "torch.nn.Sequential"})
HOOK_REGISTRATIONS = frozenset({
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_backward_hook", "register_module_forward_hook",
})
# nn.Module methods that return the module itself
RETURNS_SELF = frozenset({"cuda", "cpu", "to", "float", "double", "half", "bfloat16", "train", "eval", "requires_grad_", "type", "xpu", "to_empty"})


OWN_FORWARD = (
    HEADER + "class Loss(nn.Module):\n    def forward(self, x):\n        return x * 2\n\n"
    "    def evaluate(self, x):\n        loss = self.forward(x)\n        return loss.item()\n"
)


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
    them is the point. Offered only where the module's class is known to keep
    nn.Module's `__call__` (a torch.nn layer, a class of the file or of the
    project none of whose classes binds `__call__`).

    `self.forward(...)` in a method that `forward` never reaches (a
    `sample`, `inference` or `evaluate` method) is reported without a fix:
    `self(...)` would also run the instance's hooks and the `__call__` of its
    class, and a hook registered elsewhere, a subclass in another file or a
    dispatching base may call the method back (endless recursion) or expect
    other arguments. It is reported only when the class and its bases are of
    the file, of torch.nn or of the project, and none binds `__call__`: a base
    from another library may give `__call__` a meaning of its own (gpytorch's
    modules wrap what `forward` returns).

    ## Known problems
    Only calls inside `forward`, and in methods that are only ever called (never
    handed out as a value, as a hook is), are rewritten: a hook may call
    `.forward` to skip hooks on purpose. Reported without a fix: `.forward` on
    an attribute stored only from arguments of `__init__` (if it is not an
    nn.Module, calling it raises), and, in any class (a trainer too), on an
    attribute stored only from an `__init__` argument annotated with an
    nn.Module class (`model: Model`, `Optional[Model]`), or that module moved
    with `.cuda()`/`.to()`: the object may be of a subclass that gives
    `__call__` a meaning of its own. `self.forward(...)` is fixed in a class
    whose bases come from other files of the project only when each of them,
    and what it derives from, is known and none defines `__call__`. Never touched: `super().forward(...)`,
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
    keeps = (
        # a method forward never reaches, running the module's own forward (pixyz's Loss.eval):
        # reported; `self(...)` would run hooks and `__call__`s this file may not show
        KeepCase(OWN_FORWARD, reported=True),
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
        # a trainer (any class) holding a model declared as an nn.Module class, and moving it
        # with `.cuda()`: reported (allennlp's Trainer._batch_loss); the object may be of a
        # subclass with a `__call__` of its own, so not fixed
        KeepCase(
            HEADER + "from typing import Optional\n\n"
            "class Trainer:\n"
            "    def __init__(self, model: Optional[nn.Linear], device=None):\n"
            "        self._model = model\n"
            "        if device is not None:\n"
            "            self._model = self._model.cuda(device)\n"
            "    def _batch_loss(self, batch):\n"
            "        return self._model.forward(**batch).sum()\n"
            "    def train_epoch(self, data):\n"
            "        return [self._batch_loss(b) for b in data]\n",
            reported=True,
        ),
        # declared a module but also given another value, or handed out as a hook: left alone
        KeepCase(
            HEADER + "class Trainer:\n"
            "    def __init__(self, model: nn.Module, fallback):\n"
            "        self._model = model\n"
            "        if fallback:\n"
            "            self._model = fallback\n"
            "    def step(self, x):\n"
            "        return self._model.forward(x)\n"
        ),
        KeepCase(
            HEADER + "class Probe:\n"
            "    def __init__(self, model: nn.Module):\n"
            "        self.model = model\n"
            "        model.register_forward_hook(self.capture)\n"
            "    def capture(self, mod, inp, out):\n"
            "        self.plain = self.model.forward(inp[0])\n"
        ),
        # `self(...)` would not run nn.Module's `__call__` alone, or not once: a base that sets
        # `__call__` from outside its body, under an `if`, through a decorator; nn.ParameterList,
        # which raises when called; a method the base runs from a hook it installs
        KeepCase(
            HEADER + "class Base(nn.Module):\n    pass\n\n\ndef _call(self, batch):\n    return self.forward(**batch)\n\n\n"
            "Base.__call__ = _call\n\n\nclass Model(Base):\n    def forward(self, x, y):\n        return x + y\n"
            "    def predict(self, x, y):\n        return self.forward(x, y).argmax(-1)\n"
        ),
        KeepCase(
            HEADER + "import os\n\n\nclass Base(nn.Module):\n    if os.environ.get('BATCHED'):\n"
            "        def __call__(self, batch):\n            return self.forward(**batch)\n\n"
            "class Model(Base):\n    def forward(self, x, y):\n        return x + y\n"
            "    def predict(self, x, y):\n        return self.forward(x, y).argmax(-1)\n"
        ),
        KeepCase(
            HEADER + "def batched(cls):\n    cls.__call__ = lambda self, batch: cls.forward(self, **batch)\n    return cls\n\n"
            "@batched\nclass Model(nn.Module):\n    def forward(self, x, y):\n        return x + y\n"
            "    def predict(self, x, y):\n        return self.forward(x, y).argmax(-1)\n"
        ),
        KeepCase(
            HEADER + "import torch\n\n\nclass Mix(nn.ParameterList):\n    def forward(self, xs):\n"
            "        return sum(w * x for w, x in zip(self, xs))\n"
            "    def mix_detached(self, xs):\n        return self.forward([x.detach() for x in xs])\n"
        ),
        KeepCase(
            HEADER + "import torch\n\n\nclass Base(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.register_forward_hook(lambda mod, inp, out: self.after_forward(inp, out))\n"
            "    def after_forward(self, inp, out):\n        pass\n\n"
            "class Model(Base):\n    def forward(self, x):\n        return x * 2\n"
            "    def after_forward(self, inp, out):\n        self.extra = self._recompute(inp[0])\n"
            "    def _recompute(self, x):\n        return self.forward(x + 0.01)\n"
        ),
        # layers of a class with a `__call__` of its own, iterated: `layer(x)` would run it
        KeepCase(
            HEADER + "class Gate(nn.Module):\n    def __call__(self, x):\n        return super().__call__(x).clamp(0, 1)\n"
            "    def forward(self, x):\n        return x * 2\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.layers = nn.ModuleList([nn.Linear(2, 2)])\n        self.layers.append(Gate())\n"
            "    def forward(self, x):\n        for layer in self.layers:\n            x = layer.forward(x)\n        return x\n",
            reported=True,
        ),
        # outside a module: a method nothing in the file calls may be a hook; a recorder that
        # installs hooks runs the model without them on purpose
        KeepCase(
            HEADER + "class Probe:\n    def __init__(self, model: nn.Linear):\n        self.model = model\n"
            "    def capture(self, mod, inp, out):\n        return self.model.forward(inp[0])\n"
        ),
        KeepCase(
            HEADER + "class Recorder:\n    def __init__(self, model: nn.Module):\n        self.model = model\n"
            "        self.records = []\n        model.register_forward_hook(self._record)\n"
            "    def _record(self, mod, inp, out):\n        self.records.append(out)\n"
            "    def reference(self, x):\n        return self.model.forward(x)\n"
            "    def run(self, x):\n        return self.model(x), self.reference(x)\n"
        ),
    )

    def check(self) -> None:
        model = self.model
        for attribute in model.attributes.get("forward", ()):
            call = model.parent(attribute)
            if not (isinstance(call, ast.Call) and call.func is attribute):
                continue
            method = model.enclosing_function(call)
            if method is None:
                continue
            message = (
                "calling `.forward()` directly skips the module's forward/backward hooks and pre-hooks; "
                "call the module instead"
            )
            receiver = attribute.value
            if self._declared_module(receiver, method):
                self.report(call, f"{message} (not fixed: `{model.text(receiver)}` is handed in, and its class "
                            "may give `__call__` a meaning of its own)")
                continue
            # a hook that calls `.forward` skips hooks on purpose (calling the module there would
            # run the hook again, forever): only `forward` and methods never handed out as values
            if not (method.name == "forward" or self._plain_method(method)):
                continue
            if self._own_forward(receiver, method):
                # `self(...)` runs the instance's hooks and `__call__`: a hook registered anywhere
                # (another file, a trainer) may call this method back, a subclass of another file
                # may dispatch to it from its `forward` or give `__call__` other arguments; none
                # of that can be ruled out from here
                self.report(call, f"{message} (not fixed: `{receiver.id}(...)` would also run the hooks and `__call__` "
                            "of subclasses and callers this file does not show, which may call this method again)")
            elif self._is_module(receiver, call):
                if self._constructed_plain(receiver, call):
                    self.report(call, message, Fix([self.edit(call, "Call", _call_the_receiver)]))
                else:
                    self.report(call, f"{message} (not fixed: the module's class, or one above it, may give `__call__` "
                                "a meaning of its own)")
            elif method.name == "forward" and self._handed_in(receiver, call) and self._plain_torch_family(self._enclosing_class(call)):
                self.report(call, f"{message} (not fixed: `{model.text(receiver)}` is handed to the constructor, "
                            "and calling it raises if it is not an nn.Module)")

    def _constructed_plain(self, receiver: ast.expr, at: ast.AST) -> bool:
        """Every construction the receiver may hold is of a class known to keep nn.Module's
        ``__call__``; for the variable of a loop over a container of the class, every layer
        put in it (its constructor's arguments and what is appended on ``self``)."""
        model = self.model
        if isinstance(receiver, ast.Call):
            values = [receiver]
        elif isinstance(receiver, ast.Attribute):
            values = self._stores(self._enclosing_class(at), receiver.attr)
        elif isinstance(receiver, ast.Name):
            values = []
            for binding in model.scope(receiver).bindings.get(receiver.id, []):
                holder = model.parent(binding.node)
                if isinstance(holder, (ast.For, ast.AsyncFor)) and holder.target is binding.node:
                    values += self._container_layers(holder.iter, at)
                else:
                    values.append(getattr(holder, "value", None))
        else:
            return False
        return bool(values) and all(isinstance(v, ast.Call) and self._class_keeps_call(v.func) for v in values)

    def _container_layers(self, iterated: ast.expr, at: ast.AST) -> list[ast.expr | None]:
        """The layers put in ``self.<attr>`` (an nn.ModuleList/nn.Sequential): its
        constructors' arguments (list displays and comprehensions opened) and what is appended
        to it on ``self``; a None stands for one the analysis cannot see."""
        model = self.model
        cls = self._enclosing_class(at)
        if cls is None or not isinstance(iterated, ast.Attribute):
            return [None]
        found: list[ast.expr | None] = []
        for store in self._stores(cls, iterated.attr):
            for arg in getattr(store, "args", [None]):
                if isinstance(arg, (ast.List, ast.Tuple)):
                    found += arg.elts
                elif isinstance(arg, (ast.ListComp, ast.GeneratorExp)):
                    found.append(arg.elt)
                else:
                    found.append(arg)
        family = model.class_family(cls)
        for use in model.attributes.get(iterated.attr, ()):
            holder = model.parent(use)
            call = model.parent(holder)
            if not (isinstance(use.value, ast.Name) and model.enclosing_class(use) in family
                    and isinstance(holder, ast.Attribute) and holder.value is use
                    and isinstance(call, ast.Call) and call.func is holder):
                continue
            if holder.attr == "append" and len(call.args) == 1:
                found.append(call.args[0])
            elif holder.attr in ("append", "extend", "insert", "add_module", "register_module", "__setitem__"):
                found.append(None)  # filled another way
        resolved: list[ast.expr | None] = []
        for value in found:
            if isinstance(value, ast.Name):  # `block = Block(); self.blocks.append(block)`
                bound = model.scope(value).resolve(value.id)
                holder = model.parent(bound[0].node) if len(bound) == 1 else None
                value = holder.value if isinstance(holder, ast.Assign) and len(holder.targets) == 1 else None
            resolved.append(value)
        return resolved

    def _class_keeps_call(self, expr: ast.expr) -> bool:
        """``expr`` (a called or annotated class) is known to keep nn.Module's ``__call__``: a
        torch.nn class that can be called, a class of the file whose chain binds no call hook
        and is known, or a class of the project that the index clears."""
        model = self.model
        classes = model.local_classes(expr)
        if classes:
            return all(self._plain_torch_family(c) for c in classes)
        qnames = model.qualified_names(expr)
        if not qnames:
            return False
        for qname in qnames:
            found = model.project_class(qname)
            torch_plain = qname.startswith("torch.nn.") and qname.rsplit(".", 1)[-1] not in UNCALLABLE_TORCH_CLASSES
            if not (torch_plain or (found is not None and found.plain_call)):
                return False
        return True

    def _plain_method(self, method) -> bool:
        """A method of an nn.Module class that is only ever called (never handed out as a value,
        as a hook is), and that ``forward`` cannot reach."""
        cls = self._enclosing_class(method)
        if cls is None or self.model.enclosing_function(method) is not None:
            return False
        return self._only_called(method, cls)

    def _own_forward(self, receiver: ast.expr, method) -> bool:
        """``self.forward(...)`` in a method forward never reaches, of an nn.Module class that
        keeps nn.Module's ``__call__``: calling ``self(...)`` runs the same forward, with hooks."""
        model = self.model
        if method.name == "forward" or not isinstance(receiver, ast.Name) or receiver.id != self_name(method):
            return False
        cls = self._enclosing_class(method)
        if cls is None or not self._plain_method(method):
            return False
        patched = self._patched()
        if any(binds_call(member, self.model.tree) or member.name in patched for member in model.class_family(cls)):
            return False
        # every base is a class of this file or of torch.nn: a base from elsewhere may define a
        # `__call__` of its own (gpytorch's modules wrap what forward returns)
        return self._plain_torch_family(cls, method.name)

    def _patched(self) -> set[str]:
        """Classes whose call hook the file sets from outside them (``X.__call__ = f``)."""
        model = self.model
        key = ("direct_forward", "patched")
        if key not in model.memo:
            model.memo[key] = {
                node.value.id for name in CALL_HOOKS for node in model.attributes.get(name, ())
                if isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name)
            }
        return model.memo[key]

    def _plain_torch_family(self, cls: ast.ClassDef | None, method_name: str | None = None) -> bool:
        """Every base of the class is of this file, of torch.nn (one whose instances can be
        called), or of another file of the project that the index clears: a class built on
        another library's modules (gpytorch kernels, torchmetrics metrics) may hold objects whose
        ``__call__`` means something else than ``forward``. With ``method_name``, a base of
        another file must also neither define a method of that name nor call one on its
        instance: its ``forward`` or a hook it installs may run the method (mmengine's
        ``BaseModel.forward`` dispatches to ``self.loss``)."""
        if cls is None:
            return False
        patched = self._patched()
        for member in self.model.class_family_up(cls):
            if binds_call(member, self.model.tree) or member.name in patched:
                return False
            for base in self.model.base_classes(member):
                if isinstance(base, ast.ClassDef):
                    continue
                if isinstance(base, str) and base.startswith("torch.nn."):
                    if base.rsplit(".", 1)[-1] in UNCALLABLE_TORCH_CLASSES:
                        return False  # nn.ParameterList/ParameterDict raise when called
                    continue
                found = self.model.project_class(base) if isinstance(base, str) and base != "?" else None
                if found is None or not found.plain_call or (method_name is not None and found.knows_name(method_name)):
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

    def _declared_module(self, receiver: ast.expr, method) -> bool:
        """``self.<x>`` of any class, stored only from parameters of ``__init__`` annotated with
        an nn.Module class (``model: Model``, ``Optional[Model]``) and from module methods that
        return the module itself (``self.x = self.x.cuda()``), read in ``forward`` or in a
        method that is only ever called. The object may be of a subclass that overrides
        ``__call__``: reported, never fixed."""
        model = self.model
        cls = model.enclosing_class(method)
        if cls is None or not (isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name)):
            return False
        if receiver.value.id != self_name(method) or model.enclosing_function(method) is not None:
            return False
        if model.is_module_class(cls):
            if not (method.name == "forward" or self._only_called(method, cls)):
                return False
        elif not (self._only_called(method, cls) and any(
            isinstance(model.parent(use), ast.Call) for use in model.attributes.get(method.name, ())
        )):
            return False  # outside a module, `forward` is a name like any other; one call at least
        if model.customizes_attribute_access(cls) or any(
            receiver.attr in class_body_names(member) for member in model.class_family(cls)
        ):
            return False  # a property or `__setattr__` may hand back something else
        if any(
            isinstance(call.func, ast.Attribute) and call.func.attr in HOOK_REGISTRATIONS
            for member in model.class_family(cls) for call in model.nodes(ast.Call, member)
        ):
            return False  # the class installs hooks itself: running the module without them may be the point
        sites = [site for member in model.class_family(cls) for site in self_assignments(model, member) if site.attr == receiver.attr]
        if not sites or self._hidden_store(receiver.attr):
            return False
        declared = False
        for site in sites:
            value = site.value
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in RETURNS_SELF
                    and isinstance(value.func.value, ast.Attribute) and value.func.value.attr == receiver.attr
                    and isinstance(value.func.value.value, ast.Name) and value.func.value.value.id == site.self_arg):
                continue
            if site.method.name != "__init__" or not isinstance(value, ast.Name):
                return False
            found = only_param(model, value)
            if found is None or found[0] in (found[1].vararg, found[1].kwarg) or not declares_module(model, found[0].annotation):
                return False
            annotation = found[0].annotation
            if not self._class_keeps_call(annotation.slice if isinstance(annotation, ast.Subscript) else annotation):
                return False  # gpytorch's kernels: `__call__` means something else, `.forward` is on purpose
            declared = True
        return declared

    def _only_called(self, method, cls: ast.ClassDef, seen: frozenset = frozenset()) -> bool:
        """Every use of the method's name in the file calls it (it is never handed out as a
        hook or a callback), ``forward`` of the class cannot reach it, and each call on the
        instance is made by a method that is itself only ever called (not by a hook, a lambda
        or a function nested in a method)."""
        model = self.model
        if method.name.startswith("__"):
            return False
        family = model.class_family(cls)
        for use in model.attributes.get(method.name, ()):
            holder = model.parent(use)
            if not (isinstance(holder, ast.Call) and holder.func is use):
                return False
            caller = model.enclosing_function(holder)
            if caller is None:
                if model.enclosing_class(holder) in family and any(isinstance(a, ast.Lambda) for a in model.ancestors(holder)):
                    return False  # a lambda of the class: handed out, as a hook is
                continue
            if caller is method or caller in seen:
                continue
            outer = model.enclosing_function(caller)
            if model.enclosing_class(caller) in family and outer is not None:
                return False  # a function nested in a method: handed out, as a hook is
            if (outer is None and model.enclosing_class(caller) in family and isinstance(use.value, ast.Name)
                    and use.value.id == self_name(caller) and caller.name != "forward"
                    and not self._only_called(caller, cls, seen | {method})):
                return False
        return method not in model.methods_reached(cls)

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
        if self._hidden_store(attr) or model.customizes_attribute_access(cls):
            return []
        return values

    def _hidden_store(self, attr: str) -> bool:
        """Some store to ``.<attr>`` is one whose value the analysis does not see."""
        model = self.model
        for use in model.attributes.get(attr, ()):
            holder = model.parent(use)
            if is_display_element(model, use) or (isinstance(holder, (ast.AugAssign, ast.AnnAssign)) and holder.target is use):
                return True
        return "setattr" in model.called

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
