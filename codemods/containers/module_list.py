"""TFM101: a Python list or tuple of layers on an nn.Module becomes an ``nn.ModuleList``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.containers._containers import (
    ContainerRule,
    ContainerUses,
    SelfAssignment,
    call_args,
    declared_modules,
    elements_registered,
    local_references,
    start,
)
from torchfix_mod.rule import FixCase, KeepCase

HEADER = "import torch\nimport torch.nn as nn\n\n"


# a list of layers read through a property (every read of `.blocks` is a read of `_blocks`)
PROPERTY_NET = (
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self._blocks = [nn.Linear(4, 4), nn.Linear(4, 4)]\n"
    "    @property\n"
    "    def blocks(self):\n"
    "        return self._blocks\n"
    "    def forward(self, x):\n"
    "        for b in self.blocks:\n"
    "            x = b(x)\n"
    "        return self.blocks[-1](x)\n"
)


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
    list)`, an element stored as another attribute); layers the class also
    registers another way (`layers` handed in or built locally, and also given to
    `self.body = nn.Sequential(*layers)`, an nn container's `append`/`extend`, or
    stored as `self.first = layers[0]`); files that register
    modules by name (`add_module`, `setattr`); classes with `__getattr__`,
    `__setattr__` or `__dict__` access. Reported without a fix: lists that use
    (themselves or through a `@property` returning them)
    what `nn.ModuleList` lacks (`sort`, `remove`, `index`, `count`, `reverse`,
    `clear`, `copy`, `pop()` without an index, `insert` at a computed or
    negative index, `other + self.layers`, `==`), lists assigned more than once,
    lists assigned before `nn.Module.__init__` runs, modules the caller hands
    in that the program declares or checks are modules (`*layers: nn.Module`,
    `List[nn.Module]`, an `isinstance` test, a function of the file that
    returns only checked modules) and runs or calls methods of (a caller may
    pass plain callables, which `nn.ModuleList` refuses), and lists whose layers
    certainly hold no parameter but may hold buffers or what the analysis cannot
    see (a class of the file wrapping another library's transform): registering
    them trains nothing, adds state_dict keys that a strict load of an existing
    checkpoint rejects, and lets the parent's `.half()`/`.to()` reach them.
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
        # an element handed to a helper method that only calls it (OpenNMT's encoder bridge)
        FixCase(
            _case(
                "class Encoder(nn.Module):\n"
                "    def __init__(self, n):\n"
                "        super().__init__()\n"
                "        self.bridge = [nn.Linear(4, 4) for _ in range(n)]\n"
                "    def _bottle(self, linear, h):\n"
                "        return torch.relu(linear(h))\n"
                "    def forward(self, h):\n"
                "        return self._bottle(self.bridge[0], h)\n"
            ),
            _case(
                "class Encoder(nn.Module):\n"
                "    def __init__(self, n):\n"
                "        super().__init__()\n"
                "        self.bridge = nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])\n"
                "    def _bottle(self, linear, h):\n"
                "        return torch.relu(linear(h))\n"
                "    def forward(self, h):\n"
                "        return self._bottle(self.bridge[0], h)\n"
            ),
        ),
        # an element given a local name that is only run
        FixCase(
            _case(
                "class Net(nn.Module):\n"
                "    def __init__(self, n):\n"
                "        super().__init__()\n"
                "        self.stages = [nn.Linear(4, 4) for _ in range(n)]\n"
                "    def forward(self, h, i=0):\n"
                "        stage = self.stages[i]\n"
                "        return stage.forward(h) + stage(h)\n"
            ),
            _case(
                "class Net(nn.Module):\n"
                "    def __init__(self, n):\n"
                "        super().__init__()\n"
                "        self.stages = nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])\n"
                "    def forward(self, h, i=0):\n"
                "        stage = self.stages[i]\n"
                "        return stage.forward(h) + stage(h)\n"
            ),
        ),
        # read through a property only in ways nn.ModuleList supports too
        FixCase(
            _case(PROPERTY_NET),
            _case(PROPERTY_NET.replace("[nn.Linear(4, 4), nn.Linear(4, 4)]", "nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])")),
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
        # the local list's layers are registered through the kept nn.Sequential: nothing is lost
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        layers = [nn.Linear(2, 2)]\n"
            "        self.layers = layers\n"
            "        self.head = nn.Sequential(*layers)\n"
        )),
        # the nn.Sequential is not kept: the layers stay unregistered
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        layers = [nn.Linear(2, 2)]\n"
            "        self.layers = layers\n"
            "        head = nn.Sequential(*layers)\n"
        ), reported=True),
        # instances of a class imported from elsewhere, run as layers in forward: reported, never
        # wrapped (nn.ModuleList raises TypeError if they are not modules after all)
        KeepCase(
            "import torch.nn as nn\nfrom cells import LayerNormLSTMCell\n\n"
            "class MetaOptimizer(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
            "        self.lstms = []\n        for _ in range(n):\n            self.lstms.append(LayerNormLSTMCell(4, 4))\n"
            "    def forward(self, x):\n        for lstm in self.lstms:\n            x = lstm(x)\n        return x\n",
            reported=True,
        ),
        # the same, never called: no evidence they are layers
        KeepCase(
            "import torch.nn as nn\nfrom schedules import Warmup\n\n"
            "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
            "        self.schedules = [Warmup(i) for i in range(n)]\n"
            "    def forward(self, x):\n        return x * len(self.schedules)\n",
        ),
    )

    keeps += (
        # modules the caller hands in, declared as such and run here: reported, not wrapped (a
        # caller may pass plain callables, which nn.ModuleList refuses)
        KeepCase(
            "from typing import Tuple\nfrom torch import Tensor, nn\n\n"
            "class MultiInput(nn.Module):\n    def __init__(self, *modules: nn.Module) -> None:\n        super().__init__()\n"
            "        self.modules_list = modules\n"
            "    def forward(self, *inputs: Tuple[Tensor]) -> Tensor:\n        x = self.modules_list[0](*inputs)\n"
            "        for module in self.modules_list[1:]:\n            x = module(x)\n        return x\n",
            reported=True,
        ),
        KeepCase(_case(
            "class Shape(nn.Module):\n    def sdf(self, q):\n        return q\n\n"
            "class Difference(Shape):\n    def __init__(self, base: Shape, *subtract: Shape):\n        super().__init__()\n"
            "        self.base = base\n        self.subtract = list(subtract)\n"
            "    def sdf(self, q):\n        d = self.subtract[0].sdf(q)\n        for s in self.subtract[1:]:\n"
            "            d = torch.minimum(d, s.sdf(q))\n        return torch.maximum(self.base.sdf(q), -d)\n"
        ), reported=True),
        # appended after an isinstance test, or from a function of the file that checks it
        KeepCase(_case(
            "def build(spec):\n    layer = spec()\n    if not isinstance(layer, nn.Module):\n        raise ValueError(spec)\n    return layer\n\n"
            "class Merge(nn.Module):\n    def __init__(self, layers):\n        super().__init__()\n        self.layers = []\n"
            "        for layer in layers:\n            if isinstance(layer, nn.Module):\n                self.layers.append(layer)\n"
            "            else:\n                self.layers.append(build(layer))\n"
            "    def forward(self, x):\n        return torch.cat([layer(x) for layer in self.layers], -1)\n"
        ), reported=True),
        # handed in and kept, never used here: nothing shows they should train with this module
        KeepCase(_case(
            "class Holder(nn.Module):\n    def __init__(self, *models: nn.Module):\n        super().__init__()\n"
            "        self.models = list(models)\n    def forward(self, x):\n        return x * len(self.models)\n"
        )),
        # a parameter without a declaration: may be anything callable
        KeepCase(_case(
            "class Chain(nn.Module):\n    def __init__(self, *fns):\n        super().__init__()\n"
            "        self.fns = fns\n    def forward(self, x):\n        for f in self.fns:\n            x = f(x)\n        return x\n"
        )),
        # the local name for an element is stored: it may be registered there
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self, n):\n"
            "        super().__init__()\n"
            "        self.stages = [nn.Linear(4, 4) for _ in range(n)]\n"
            "        first = self.stages[0]\n"
            "        self.head = first\n"
        )),
        # a method result kept on self (`.cuda()` gives the layer back)
        KeepCase(_case(
            "class Net(nn.Module):\n"
            "    def __init__(self, n):\n"
            "        super().__init__()\n"
            "        self.stages = [nn.Linear(4, 4) for _ in range(n)]\n"
            "        first = self.stages[0]\n"
            "        self.head = first.float()\n"
        )),
        # modules handed in and also registered another way: nothing is lost
        KeepCase(_case(
            "class Chain(nn.Module):\n    def __init__(self, *layers: nn.Module):\n        super().__init__()\n"
            "        self.layers = list(layers)\n        self.body = nn.Sequential(*layers)\n"
            "    def forward(self, x):\n        for layer in self.layers:\n            x = layer(x)\n        return x\n"
        )),
        KeepCase(_case(
            "class Chain(nn.Module):\n    def __init__(self, layers: list[nn.Module]):\n        super().__init__()\n"
            "        self.layers = []\n        self.blocks = nn.ModuleList()\n"
            "        for layer in layers:\n            self.layers.append(layer)\n            self.blocks.append(layer)\n"
            "    def forward(self, x):\n        for layer in self.layers:\n            x = layer(x)\n        return x\n"
        )),
        KeepCase(_case(
            "class Chain(nn.Module):\n    def __init__(self, *layers: nn.Module):\n        super().__init__()\n"
            "        self.layers = layers\n        for i, layer in enumerate(layers):\n            if i == 0:\n"
            "                self.first = layer\n"
            "    def forward(self, x):\n        for layer in self.layers:\n            x = layer(x)\n        return x\n"
        )),
        # the nn.Sequential built from them is dropped: still unregistered
        KeepCase(_case(
            "class Chain(nn.Module):\n    def __init__(self, *layers: nn.Module):\n        super().__init__()\n"
            "        self.layers = list(layers)\n        body = nn.Sequential(*layers)\n"
            "    def forward(self, x):\n        for layer in self.layers:\n            x = layer(x)\n        return x\n"
        ), reported=True),
        # read through a property in ways nn.ModuleList does not support: a list on the left of
        # `+`, `.reverse()` from a function of the file; the fix would make them raise
        KeepCase(_case(
            PROPERTY_NET.replace("        super().__init__()\n", "        super().__init__()\n        self.stem = nn.Linear(4, 4)\n")
            .replace("for b in self.blocks:", "for b in [self.stem] + self.blocks:")
        ), reported=True),
        KeepCase(_case(PROPERTY_NET + "\ndef flip(net):\n    net.blocks.reverse()\n"), reported=True),
        # read through a property and handed to other code: not registered on Net, and the
        # other code may need a list
        KeepCase(_case(PROPERTY_NET + "\ndef wrap(net):\n    return nn.Sequential(*net.blocks)\n"), reported=True),
    )

    def check_site(self, site: SelfAssignment) -> None:
        value = site.value
        uses = self.uses(site)
        message = (
            f"`{site.self_arg}.{site.attr}` keeps {self.noun} in a Python {'tuple' if self._is_tuple(value) else 'list'}: "
            f"PyTorch does not register them (missing from parameters(), state_dict(), .to()); use nn.{self.container}"
        )
        if isinstance(value, (ast.List, ast.Tuple)) and value.elts:
            if not uses.modules_iterable(value):
                return
            self.conclude(site, uses, message, "call")
        elif isinstance(value, ast.ListComp):
            if not self.is_element(value.elt):
                return
            self.conclude(site, uses, message, "call")
        elif isinstance(value, ast.List):
            if not self._filled_with_modules(site, uses):
                return
            self.conclude(site, uses, message, "empty")
        elif self._lenient and self.holds_modules and self._handed_in(value):
            # `self.layers = layers` / `list(layers)` of parameters declared to hold modules
            self.from_outside(value, collection=True)
            self.conclude(site, uses, message, "call")
        elif isinstance(value, ast.Name):
            verdict = self._local_list(site, value)
            if verdict is None:
                return
            if verdict:
                self.conclude(site, uses, message, "call")
            else:
                self.report(site.assign, f"{message} (not fixed: the local list `{value.id}` is used elsewhere)")

    def _is_tuple(self, value: ast.expr) -> bool:
        """A tuple literal, ``tuple(...)``, or the ``*args`` tuple itself."""
        if isinstance(value, ast.Tuple):
            return True
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            return self.model.qualified_names(value.func) == {"builtins.tuple"}
        if isinstance(value, ast.Name):
            bindings = self.model.scope(value).resolve(value.id)
            scope_node = bindings[0].scope.node if len(bindings) == 1 else None
            args = getattr(scope_node, "args", None)
            return bool(args) and bindings[0].node is args.vararg
        return False

    def _handed_in(self, value: ast.expr) -> bool:
        """``layers``, ``list(layers)`` or ``tuple(layers)`` of a parameter declared to hold
        nn.Modules (``*layers: nn.Module``, ``layers: List[nn.Module]``)."""
        if (
            isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("list", "tuple")
            and self.model.qualified_names(value.func) == {f"builtins.{value.func.id}"}
            and len(value.args) == 1 and not value.keywords
        ):
            value = value.args[0]
        return declared_modules(self.model, value)

    def _filled_with_modules(self, site: SelfAssignment, uses: ContainerUses) -> bool:
        """``self.x = []`` followed in the same method by appends of modules."""
        model = self.model
        begin = start(site.assign)
        for use in model.attributes.get(site.attr, ()):
            if use is site.target or model.enclosing_function(use) is not site.method:
                continue
            if not (isinstance(use.value, ast.Name) and use.value.id == site.self_arg):
                continue
            if start(use) <= begin:
                continue
            parent = model.parent(use)
            call = model.parent(parent)
            if isinstance(parent, ast.Attribute) and isinstance(call, ast.Call) and call.func is parent:
                args = call_args(call)
                if args:
                    added = args[-1].value
                    if parent.attr in {"append", "insert"} and self.module_value(added):
                        return True
                    if parent.attr == "extend" and uses.modules_iterable(added):
                        return True
            if isinstance(parent, ast.AugAssign) and parent.target is use and uses.modules_iterable(parent.value):
                return True
        return False

    def _local_list(self, site: SelfAssignment, name: ast.Name) -> bool | None:
        """``layers = []; layers.append(Block()); self.x = layers``.

        None: not a list of modules. False: a list of modules the fix cannot take
        (used after or besides being filled). True: convertible.
        """
        model = self.model
        scope = model.scope(name)
        if scope.kind == "module":
            return None
        bindings = scope.bindings.get(name.id, [])
        uses = self.uses(site)
        has_module = False
        assigned = 0
        for binding in bindings:
            node = binding.node
            holder = model.parent(node)
            if isinstance(holder, ast.Assign) and any(t is node for t in holder.targets):
                assigned += 1
                if len(holder.targets) != 1 or not isinstance(holder.value, (ast.List, ast.ListComp)):
                    return None
                if isinstance(holder.value, ast.ListComp):
                    if not self.is_element(holder.value.elt):
                        return None
                    has_module = True
                elif not uses.modules_iterable(holder.value):
                    return None
                has_module = has_module or bool(getattr(holder.value, "elts", ()))
            elif isinstance(holder, ast.AugAssign) and holder.target is node and isinstance(holder.op, ast.Add):
                if not uses.modules_iterable(holder.value):
                    return None
                has_module = True
            else:
                return None
        if assigned != 1:
            return None
        end = start(site.assign)
        fine = True
        for access in local_references(model, scope, name.id):
            if access is name:
                continue
            if model.enclosing_function(access) is not site.method:
                return None  # filled from a nested function: what it adds is out of sight
            parent = model.parent(access)
            call = model.parent(parent) if isinstance(parent, ast.Attribute) else None
            if (
                isinstance(parent, ast.Attribute)
                and parent.value is access
                and parent.attr in {"append", "extend"}
                and isinstance(call, ast.Call)
                and call.func is parent
                and start(access) < end
            ):
                args = call_args(call)
                if not args:
                    return None  # `layers.append()` adds nothing (and fails when run)
                if not (
                    uses.modules_iterable(args[0].value)
                    if parent.attr == "extend"
                    else self.module_value(args[0].value)
                ):
                    return None
                has_module = True
                continue
            fine = False
        if not has_module:
            return None
        if not fine and elements_registered(model, name):
            return None  # also registered through another path (nn.Sequential(*layers) kept on self)
        return fine
