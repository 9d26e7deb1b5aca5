"""TFM402: ``module.forward(x)`` called directly -> ``module(x)``, so hooks run."""

from __future__ import annotations

import ast

import libcst as cst
import libcst.matchers as m

from torchfix_mod.analysis import all_references
from torchfix_mod.containers import self_assignments
from torchfix_mod.legacy_rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.screen import constructor_names, may_build_module, nodes

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

    ## Known problems
    Only calls inside `forward` are rewritten: a hook may call `.forward` to
    skip hooks on purpose. Never touched: `super().forward(...)`, `Base.forward(self, ...)`,
    `self.forward(...)`, and `.forward` on objects not known to be modules
    (function arguments, attributes assigned anything but a module).
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
            "        return self.inner.forward(x) + model.forward(x)\n"
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

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        # `<receiver>.forward(...)` inside a function named forward, where the receiver may be a
        # module as `_is_module` decides it: a construction, `x.attr` with some store of a
        # construction to an attribute of that name, or a local assigned a construction or
        # bound by a `for` loop (not `super()`)
        constructors = constructor_names(tree)
        built_attributes = None
        for func in nodes(tree, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if func.name != "forward":
                continue
            calls = [c for c in nodes(func, ast.Call) if isinstance(c.func, ast.Attribute) and c.func.attr == "forward"]
            if not calls:
                continue
            if built_attributes is None:
                built_attributes = {
                    target.attr
                    for node in nodes(tree, (ast.Assign, ast.AnnAssign))
                    if node.value is not None and may_build_module(node.value, set(), constructors)
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(target, ast.Attribute)
                }
            locals_ = {
                name.id for loop in nodes(func, (ast.For, ast.AsyncFor)) for name in nodes(loop.target, ast.Name)
            } | {
                node.targets[0].id
                for node in nodes(func, ast.Assign)
                if isinstance(node.targets[0], ast.Name) and may_build_module(node.value, set(), constructors)
            }
            for call in calls:
                receiver = call.func.value
                if isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name):
                    if receiver.attr in built_attributes:
                        return True
                elif isinstance(receiver, ast.Name):
                    if receiver.id in locals_:
                        return True
                elif may_build_module(receiver, set(), constructors):
                    return True
        return False

    def __init__(self, facts, options) -> None:
        super().__init__(facts, options)
        self.classes: list[cst.ClassDef] = []
        self.calls: list[cst.Call] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node)

    def visit_Call(self, node: cst.Call) -> None:
        if m.matches(node.func, m.Attribute(attr=m.Name("forward"))):
            self.calls.append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        for call in self.calls:
            receiver = call.func.value
            method = self.facts.enclosing_function(call)
            # only inside `forward`: a hook that calls `.forward` skips hooks on purpose
            # (calling the module there would run the hook again, forever)
            if method is None or method.name.value != "forward":
                continue
            if self._is_module(receiver, call):
                fix = Fix({call: lambda updated: updated.with_changes(func=updated.func.value)})
                self.report(
                    call,
                    "calling `.forward()` directly skips the module's forward/backward hooks and pre-hooks; "
                    "call the module instead",
                    fix,
                )

    # -- evidence ---------------------------------------------------------------
    def _is_module(self, receiver: cst.BaseExpression, at: cst.CSTNode) -> bool:
        facts = self.facts
        if facts.is_module_construction(receiver):
            return True
        cls = self._enclosing_class(at)
        method = facts.enclosing_function(at)
        if isinstance(receiver, cst.Attribute) and isinstance(receiver.value, cst.Name) and cls is not None:
            stores = self._stores(cls, receiver.attr.value, receiver.value.value)
            return bool(stores) and all(facts.is_module_construction(v) for v in stores)
        if isinstance(receiver, cst.Name) and method is not None:
            return self._local_is_module(receiver, cls)
        return False

    def _enclosing_class(self, node: cst.CSTNode) -> cst.ClassDef | None:
        for anc in self.facts.ancestors(node):
            if isinstance(anc, cst.ClassDef):
                return anc if self.facts.is_module_class(anc) else None
        return None

    def _stores(self, cls: cst.ClassDef, attr: str, self_arg: str) -> list[cst.BaseExpression]:
        """Values stored to ``self.<attr>`` across the class family; [] if any store is hidden."""
        values = []
        for member in self.facts.class_family(cls):
            values += [site.value for site in self_assignments(self.facts, member) if site.attr == attr]
        for use in self.facts.attributes.get(attr, ()):
            holder = self.facts.parent(use)
            if isinstance(holder, (cst.Element, cst.AugAssign, cst.AnnAssign)) and getattr(holder, "target", use) is use:
                return []
        if self.facts.customizes_attribute_access(cls) or "setattr" in self.facts.called:
            return []
        return values

    def _local_is_module(self, name: cst.Name, cls: cst.ClassDef | None) -> bool:
        """A local bound only to module constructions, or a loop over a ModuleList/Sequential attribute."""
        facts = self.facts
        scope = facts.scope(name)
        if scope is None or scope is scope.globals or name.value not in scope:
            return False
        assignments = list(scope.assignments[name.value])
        if not assignments:
            return False
        for assignment in assignments:
            target = assignment.node
            holder = facts.parent(target)
            if isinstance(holder, cst.AssignTarget):
                assign = facts.parent(holder)
                if len(assign.targets) == 1 and facts.is_module_construction(assign.value):
                    continue
                return False
            if isinstance(holder, cst.For) and holder.target is target and cls is not None:
                iterated = holder.iter
                if isinstance(iterated, cst.Attribute) and isinstance(iterated.value, cst.Name):
                    stores = self._stores(cls, iterated.attr.value, iterated.value.value)
                    if stores and all(self._is_module_sequence(v) for v in stores):
                        continue
            return False
        return bool(all_references(scope, name.value))

    def _is_module_sequence(self, value: cst.BaseExpression) -> bool:
        return isinstance(value, cst.Call) and bool(self.facts.qualified_names(value.func)) and (
            self.facts.qualified_names(value.func) <= CONTAINERS
        )
