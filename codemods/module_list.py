"""TFM101: a Python list or tuple of layers on an nn.Module becomes an ``nn.ModuleList``."""

from __future__ import annotations

import ast

import libcst as cst

from torchfix_mod.analysis import ContainerUses, all_references
from torchfix_mod.containers import ContainerRule, SelfAssignment, wrap_call
from torchfix_mod.legacy_rule import FixCase, KeepCase
from torchfix_mod.screen import constructor_names, may_build_module, methods, nodes

HEADER = "import torch\nimport torch.nn as nn\n\n"


def _case(body: str) -> str:
    return HEADER + body


class ModuleListRule(ContainerRule):
    """
    ## What it does
    Finds nn.Modules kept in a Python list or tuple attribute of an nn.Module:
    a list literal, a list comprehension, an empty list filled with
    `append`/`extend`/`+=`, or a local list assigned to the attribute.

    ## Why is this bad?
    PyTorch only registers submodules assigned directly or held in its own
    containers. Layers in a Python list are missing from `parameters()` (the
    optimizer never trains them), `state_dict()` (they are never saved),
    `.to(device)`, `.train()`/`.eval()` and `apply()`.

    ## Example
    ```python
    self.layers = []
    for _ in range(n):
        self.layers.append(nn.Linear(d, d))
    ```

    ## Use instead
    ```python
    self.layers = nn.ModuleList()
    for _ in range(n):
        self.layers.append(nn.Linear(d, d))
    ```

    ## Fix safety
    Safe. The fix is only offered when every element is a module construction
    (a `torch.nn` class or an nn.Module class of the files being checked) and every use of
    the attribute in the file works on `nn.ModuleList` too.

    ## Known problems
    Left alone: elements that are not module constructions (`None`, tensors,
    modules passed in from outside, such as a frozen teacher, and existing
    attributes like `[self.a, self.b]`, which are registered already); lists
    handed to other code (`nn.Sequential(*self.layers)`, `isinstance(self.layers,
    list)`, an element stored as another attribute); files that register
    modules by name (`add_module`, `setattr`); classes with `__getattr__`,
    `__setattr__` or `__dict__` access. Reported without a fix: lists that use
    what `nn.ModuleList` lacks (`sort`, `remove`, `index`, `count`, `reverse`,
    `clear`, `copy`, `pop()` without an index, `insert` at a computed or
    negative index, `other + self.layers`, `==`), lists assigned more than once,
    and lists assigned before `nn.Module.__init__` runs.
    """

    code = "TFM101"
    name = "module-list"
    summary = "Python list of nn.Modules is not registered; use nn.ModuleList"
    kind = "list"
    container = "ModuleList"

    fixes = (
        FixCase(
            _case(
                "class Decoder(nn.Module):\n"
                "    def __init__(self, n):\n"
                "        super().__init__()\n"
                "        self.dec_layers = []\n"
                "        for i in range(n):\n"
                "            self.dec_layers.append(nn.Linear(4, 4))\n"
            ),
            _case(
                "class Decoder(nn.Module):\n"
                "    def __init__(self, n):\n"
                "        super().__init__()\n"
                "        self.dec_layers = nn.ModuleList()\n"
                "        for i in range(n):\n"
                "            self.dec_layers.append(nn.Linear(4, 4))\n"
            ),
        ),
        FixCase(
            "from torch import nn\n\nclass Block(nn.Module):\n    pass\n\n"
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super(Net, self).__init__()\n"
            "        self.blocks = [Block() for _ in range(3)]  # keep me\n",
            "from torch import nn\n\nclass Block(nn.Module):\n    pass\n\n"
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super(Net, self).__init__()\n"
            "        self.blocks = nn.ModuleList([Block() for _ in range(3)])  # keep me\n",
        ),
        FixCase(
            "import torch\n\nclass Net(torch.nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.heads = torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)\n",
            "import torch\n\nclass Net(torch.nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.heads = torch.nn.ModuleList((torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)))\n",
        ),
        FixCase(
            "from torch.nn import Module, Linear\n\nclass Net(Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        layers = []\n"
            "        for _ in range(2):\n"
            "            layer = Linear(2, 2)\n"
            "            layers.append(layer)\n"
            "        self.layers = layers\n",
            "from torch.nn import ModuleList, Module, Linear\n\nclass Net(Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        layers = []\n"
            "        for _ in range(2):\n"
            "            layer = Linear(2, 2)\n"
            "            layers.append(layer)\n"
            "        self.layers = ModuleList(layers)\n",
        ),
        FixCase(
            _case(
                "class Net(nn.Module):\n"
                "    def __init__(self):\n"
                "        super().__init__()\n"
                "        self.layers = [nn.Linear(2, 2)]\n"
                "        self.layers += [nn.ReLU()]\n"
                "        self.layers.extend([nn.Linear(2, 2), nn.Tanh()])\n"
                "    def forward(self, x):\n"
                "        for i, layer in enumerate(self.layers):\n"
                "            x = layer(x)\n"
                "        return self.layers[-1](x) if len(self.layers) else x\n"
            ),
            _case(
                "class Net(nn.Module):\n"
                "    def __init__(self):\n"
                "        super().__init__()\n"
                "        self.layers = nn.ModuleList([nn.Linear(2, 2)])\n"
                "        self.layers += [nn.ReLU()]\n"
                "        self.layers.extend([nn.Linear(2, 2), nn.Tanh()])\n"
                "    def forward(self, x):\n"
                "        for i, layer in enumerate(self.layers):\n"
                "            x = layer(x)\n"
                "        return self.layers[-1](x) if len(self.layers) else x\n"
            ),
        ),
    )
    keeps = (
        # registered by name already: converting would add a second set of state_dict keys
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.layers = [nn.Linear(2, 2) for _ in range(3)]\n"
            "        for i, layer in enumerate(self.layers):\n"
            "            self.add_module('layer%d' % i, layer)\n"
        )),
        # nn.ModuleList.pop needs an index
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.layers = [nn.Linear(2, 2), nn.ReLU()]\n"
            "        self.layers.pop()\n"
        ), reported=True),
        # a teacher passed in from outside is deliberately not registered
        KeepCase(_case(
            "class Distiller(nn.Module):\n"
            "    def __init__(self, teacher):\n"
            "        super().__init__()\n"
            "        self.teachers = [teacher]\n"
        )),
        # already registered under their own names
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.a = nn.Linear(2, 2)\n"
            "        self.b = nn.Linear(2, 2)\n"
            "        self.both = [self.a, self.b]\n"
        )),
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.items = [nn.Linear(2, 2), None]\n"
            "        self.sizes = [1, 2, 3]\n"
            "        self.masks = [torch.zeros(2)]\n"
        )),
        # registered through nn.Sequential: converting would name them twice
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.layers = [nn.Linear(2, 2), nn.ReLU()]\n"
            "        self.seq = nn.Sequential(*self.layers)\n"
        )),
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.layers = [nn.Linear(2, 2), nn.ReLU()]\n"
            "    def forward(self, x):\n"
            "        self.layers.reverse()\n"
            "        return x\n"
        ), reported=True),
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.layers = [nn.Linear(2, 2)]\n"
            "        assert isinstance(self.layers, list)\n"
        )),
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.layers = [nn.Linear(2, 2)]\n"
            "        everything = [nn.ReLU()] + self.layers\n"
        ), reported=True),
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        self.layers = [nn.Linear(2, 2)]\n"
            "        super().__init__()\n"
        ), reported=True),
        # not an nn.Module: a dataset keeping transforms
        KeepCase(_case(
            "class Data(torch.utils.data.Dataset):\n"
            "    def __init__(self):\n"
            "        self.layers = [nn.Linear(2, 2)]\n"
        )),
        KeepCase(
            "class nn:\n    Module = object\n    Linear = list\n\n"
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        self.layers = [nn.Linear()]\n"
        ),
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        layers = [nn.Linear(2, 2)]\n"
            "        self.layers = layers\n"
            "        self.head = nn.Sequential(*layers)\n"
        ), reported=True),
    )

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        # elements are constructions, or locals bound to them; an empty list is filled with them
        # through the same attribute; a local list assigned to the attribute is checked by the rule
        constructors = constructor_names(tree)
        for method, self_arg in methods(tree):
            stores = [
                (node.targets[0].id, node.value)
                for node in nodes(method, ast.Assign)
                if isinstance(node.targets[0], ast.Name)
            ]
            call_bound = {name for name, value in stores if may_build_module(value, set(), constructors)}

            def builds(expr: ast.AST) -> bool:
                return may_build_module(expr, call_bound, constructors)

            def iterable_builds(expr: ast.AST) -> bool:
                if isinstance(expr, (ast.List, ast.Tuple)):
                    return any(builds(e) for e in expr.elts)
                return isinstance(expr, (ast.ListComp, ast.GeneratorExp)) and builds(expr.elt)

            # local lists that get a construction: in the literal, by append/insert/extend or +=
            local_filled = {
                node.func.value.id
                for node in nodes(method, ast.Call)
                if isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and (
                    (node.func.attr in {"append", "insert"} and any(builds(a) for a in node.args))
                    or (node.func.attr == "extend" and any(iterable_builds(a) for a in node.args))
                )
            } | {
                node.target.id
                for node in nodes(method, ast.AugAssign)
                if isinstance(node.target, ast.Name) and iterable_builds(node.value)
            }
            list_bound = {
                name
                for name, value in stores
                if isinstance(value, (ast.List, ast.ListComp)) and (name in local_filled or iterable_builds(value))
            }

            filled: set[str] = set()  # attributes filled with constructions
            for node in nodes(method, ast.Call):
                func = node.func
                if not (isinstance(func, ast.Attribute) and node.args and isinstance(func.value, ast.Attribute)):
                    continue
                receiver = func.value
                if not (isinstance(receiver.value, ast.Name) and receiver.value.id == self_arg):
                    continue
                if (func.attr in {"append", "insert"} and builds(node.args[-1])) or (
                    func.attr == "extend" and iterable_builds(node.args[0])
                ):
                    filled.add(receiver.attr)
            for node in nodes(method, ast.AugAssign):
                target = node.target
                if isinstance(target, ast.Attribute) and iterable_builds(node.value):
                    filled.add(target.attr)
            for node in nodes(method, ast.Assign):
                value = node.value
                for target in node.targets:
                    if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_arg):
                        continue
                    if isinstance(value, ast.ListComp) and builds(value.elt):
                        return True
                    if isinstance(value, ast.Name) and value.id in list_bound:
                        return True
                    if isinstance(value, (ast.List, ast.Tuple)) and (
                        (not value.elts and target.attr in filled) or any(builds(e) for e in value.elts)
                    ):
                        return True
        return False

    def check(self, site: SelfAssignment) -> None:
        value = site.value
        uses = self.uses(site)
        message = (
            f"`{site.self_arg}.{site.attr}` keeps {self.noun} in a Python {'tuple' if isinstance(value, cst.Tuple) else 'list'}: "
            f"PyTorch does not register them (missing from parameters(), state_dict(), .to()); use nn.{self.container}"
        )
        if isinstance(value, (cst.List, cst.Tuple)) and value.elements:
            if not uses.modules_iterable(value):
                return
            self.conclude(site, uses, message, wrap_call)
        elif isinstance(value, cst.ListComp):
            if not self.is_element(value.elt):
                return
            self.conclude(site, uses, message, wrap_call)
        elif isinstance(value, cst.List):
            if not self._filled_with_modules(site, uses):
                return
            self.conclude(site, uses, message, lambda func, _value: wrap_call(func, None))
        elif isinstance(value, cst.Name):
            verdict = self._local_list(site, value)
            if verdict is None:
                return
            if verdict:
                self.conclude(site, uses, message, wrap_call)
            else:
                self.report(site.assign, f"{message} (not fixed: the local list `{value.value}` is used elsewhere)")

    def _filled_with_modules(self, site: SelfAssignment, uses: ContainerUses) -> bool:
        """``self.x = []`` followed in the same method by appends of modules."""
        start = self.facts.start(site.assign)
        for use in self.facts.attributes.get(site.attr, ()):
            if use is site.target or self.facts.enclosing_function(use) is not site.method:
                continue
            if not (isinstance(use.value, cst.Name) and use.value.value == site.self_arg):
                continue
            if self.facts.start(use) <= start:
                continue
            parent = self.facts.parent(use)
            call = self.facts.parent(parent)
            if isinstance(parent, cst.Attribute) and isinstance(call, cst.Call) and call.args:
                added = call.args[-1].value
                if parent.attr.value in {"append", "insert"} and self.module_value(added):
                    return True
                if parent.attr.value == "extend" and uses.modules_iterable(added):
                    return True
            if isinstance(parent, cst.AugAssign) and parent.target is use and uses.modules_iterable(parent.value):
                return True
        return False

    def _local_list(self, site: SelfAssignment, name: cst.Name) -> bool | None:
        """``layers = []; layers.append(Block()); self.x = layers``.

        None: not a list of modules. False: a list of modules the fix cannot take
        (used after or besides being filled). True: convertible.
        """
        facts = self.facts
        scope = facts.scope(name)
        if scope is None or scope is scope.globals or name.value not in scope:
            return None
        uses = self.uses(site)
        has_module = False
        for assignment in scope.assignments[name.value]:
            holder = facts.parent(assignment.node)
            if isinstance(holder, cst.AssignTarget):
                assign = facts.parent(holder)
                if len(assign.targets) != 1 or not isinstance(assign.value, (cst.List, cst.ListComp)):
                    return None
                if isinstance(assign.value, cst.ListComp):
                    if not self.is_element(assign.value.elt):
                        return None
                    has_module = True
                elif not uses.modules_iterable(assign.value):
                    return None
                has_module = has_module or bool(getattr(assign.value, "elements", ()))
            elif isinstance(holder, cst.AugAssign) and isinstance(holder.operator, cst.AddAssign):
                if not uses.modules_iterable(holder.value):
                    return None
                has_module = True
            else:
                return None
        if len([a for a in scope.assignments[name.value] if isinstance(facts.parent(a.node), cst.AssignTarget)]) != 1:
            return None
        end = facts.start(site.assign)
        fine = True
        for access in all_references(scope, name.value):
            node = access.node
            if node is name:
                continue
            if facts.enclosing_function(node) is not site.method:
                return None  # filled from a nested function: what it adds is out of sight
            parent = facts.parent(node)
            call = facts.parent(parent) if isinstance(parent, cst.Attribute) else None
            if (
                isinstance(parent, cst.Attribute)
                and parent.value is node
                and parent.attr.value in {"append", "extend"}
                and isinstance(call, cst.Call)
                and call.func is parent
                and facts.start(node) < end
            ):
                if not (
                    uses.modules_iterable(call.args[0].value)
                    if parent.attr.value == "extend"
                    else self.module_value(call.args[0].value)
                ):
                    return None
                has_module = True
                continue
            fine = False
        if not has_module:
            return None
        return fine

