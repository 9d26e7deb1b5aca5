"""TFM802: in-place changes through ``.data`` -> the ``nn.init`` function or ``torch.no_grad()``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.training._loops import under_no_grad
from torchfix_mod.codemods.torchfix._api import module_spellings, visible_as
from torchfix_mod.edits import Deferred, replace_expression
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import dotted

# Tensor method -> the nn.init function that does the same under torch.no_grad(), with the
# method's positional parameters in the same order (nn.init.normal_(t, mean, std) calls
# t.normal_(mean, std); uniform_(t, a, b) calls t.uniform_(a, b); constant_(t, v) t.fill_(v))
INIT_WORDS = frozenset({"init", "initialize", "initialise", "initialization", "initialisation"})
INIT_FOR = {"fill_": "constant_", "zero_": "zeros_", "normal_": "normal_", "uniform_": "uniform_"}
MAX_POSITIONAL = {"fill_": 1, "zero_": 0, "normal_": 2, "uniform_": 2}
KEYWORDS = {"fill_": set(), "zero_": set(), "normal_": {"mean", "std"}, "uniform_": set()}
PARAMETER_ITERATORS = {"parameters": 0, "named_parameters": 1}  # index of the parameter in each item
MODULE_PARAMETERS = frozenset({"weight", "bias"})
REPARAMETRIZATIONS = frozenset({"weight_norm", "spectral_norm", "register_parametrization", "orthogonal"})
# packages whose model classes initialise weights with torch.nn.init patched (transformers'
# PreTrainedModel: guard_torch_init_functions, no_init_weights)
INIT_PATCHING_PACKAGES = frozenset({"transformers"})
MODULE_CONTAINERS = frozenset({"torch.nn.ModuleList", "torch.nn.Sequential", "torch.nn.modules.container.ModuleList", "torch.nn.modules.container.Sequential"})
# values with no module's weight: literals, arithmetic, comprehensions, strings, lambdas
NOT_MODULES = (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp, ast.BinOp, ast.JoinedStr, ast.Lambda, ast.Compare)
# methods only an nn.Module has (a tensor has none of them): called on an object, they show
# what it is
MODULE_METHODS = frozenset({
    "parameters", "named_parameters", "modules", "named_modules", "children", "named_children",
    "apply", "zero_grad", "state_dict", "load_state_dict", "register_buffer", "register_parameter",
    "register_forward_hook", "register_forward_pre_hook", "eval", "train",
})


def _change(name: str) -> Deferred:
    return Deferred("torchfix_mod.codemods.training._training_edits", name)


class DataMutationRule(Rule):
    """
    ## What it does
    Finds in-place changes made to a parameter through its `.data`:
    `w.data.fill_(v)`, `.zero_()`, `.normal_(mean, std)`, `.uniform_(a, b)`,
    `.copy_(t)`, and `w.data = t`, where `w` is known to be a parameter: a
    module's `weight` or `bias`, an attribute the class sets to an
    `nn.Parameter`, or the loop variable of `for p in model.parameters()` /
    `for name, p in model.named_parameters()`.

    ## Why is this bad?
    `.data` is a second tensor on the same memory that autograd does not track.
    A change made through it does not advance the parameter's version counter,
    so a graph that saved the parameter for `backward()` computes its gradient
    from values that are no longer there, silently. The documented ways to
    change a parameter's values are the `nn.init` functions and `copy_` under
    `torch.no_grad()`: the same values, and autograd knows. Under a `weight` or
    `bias` that the class itself stores as something else (a buffer, a plain
    tensor), or that belongs to a loss, there is no parameter and nothing is
    reported.

    ## Example
    ```python
    def init_weights(m):
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0.0, 0.02)
            m.bias.data.fill_(0.01)
    ```

    ## Use instead
    ```python
    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.constant_(m.bias, 0.01)
    ```

    ## Fix safety
    Safe where the change happens while the module is built: in `__init__`,
    `reset_parameters`, a function or method named as an initialiser (`init`,
    `initialize` as a word of its name: `_init_weights`, `weights_init`), or a
    function the file passes to `Module.apply`; and only when that function
    neither calls `backward()` nor is called from `forward` (nor nested in one
    that does). There no graph holds the parameter yet. Each `nn.init` function calls the same tensor method under
    `torch.no_grad()` (`constant_` calls `fill_`, `normal_(t, mean, std)` calls
    `t.normal_(mean, std)`), so the values are identical, random draws
    included: the same generator, the same number of draws. `w.data.copy_(t)`
    becomes `w.copy_(t)` in a `with torch.no_grad():` block.

    The fix is written only for a call that is a statement of its own (the
    `nn.init` function returns the parameter, not its `.data`), with plain
    arguments (no `generator=`, no `*args`), and where `torch` or `torch.nn` is
    imported at the top of the file.

    ## Known problems
    Reported without a fix: the same changes in `forward` or in code that calls
    `backward()` (a training step). In a helper that `forward` calls, whether
    a graph holds the parameter at that moment depends on the order of the
    calls; such changes are never fixed and not reported. There a graph may hold the parameter, which
    is when the change gives wrong gradients; after the fix `backward()` would
    raise "a variable needed for gradient computation has been modified by an
    inplace operation", and a rewrite must not make running code raise. There
    `w.data = t` is reported too (it can change the tensor's shape, dtype or
    device and has no one-call equivalent).

    Left alone: changes anywhere else, such as a deploy-time fusion of batch
    norm into a convolution or an EMA update, where no graph holds the
    parameter; `.data` of anything not known to be a parameter (a
    `PackedSequence`'s `.data` is a plain tensor field); and reads of `.data`.
    A `weight` or `bias` is a parameter only where the program shows its owner
    is a module (built from a module class, a `.modules()`/`.children()` loop
    variable, an `.apply` target, an `isinstance` test, module methods called
    on it, the arguments at every call site of the function). In a file that
    wraps layers in `weight_norm`, `spectral_norm` or parametrizations, a layer
    reached that way may have a computed `weight` (recomputed on every
    forward, not a parameter): it counts only under an `isinstance` test for a
    class the file does not wrap.

    Reported without a fix in files that build models on transformers' model
    classes: transformers constructs and initialises every module of such a
    model with the `torch.nn.init` functions replaced (they skip weights loaded
    from a checkpoint, or do nothing under `no_init_weights`), so
    `nn.init.normal_` would not always write what `.data.normal_` writes there.
    """

    code = "TFM802"
    name = "data-mutation"
    summary = "In-place change through .data is invisible to autograd; use nn.init or torch.no_grad()"

    fixes = (
        FixCase(  # two loops over parameters reusing one name; a copy already under no_grad
            "import torch\nimport torch.nn as nn\n\n\nclass AE(nn.Module):\n"
            "    def reset_parameters(self, table):\n"
            "        for p in self.enc.parameters():\n            p.data.uniform_(-0.1, 0.1)\n"
            "        for p in self.dec.parameters():\n            p.data.zero_()\n"
            "        with torch.no_grad():\n            self.dec.weight.data.copy_(table)\n",
            "import torch\nimport torch.nn as nn\n\n\nclass AE(nn.Module):\n"
            "    def reset_parameters(self, table):\n"
            "        for p in self.enc.parameters():\n            nn.init.uniform_(p, -0.1, 0.1)\n"
            "        for p in self.dec.parameters():\n            nn.init.zeros_(p)\n"
            "        with torch.no_grad():\n            self.dec.weight.copy_(table)\n",
        ),
        FixCase(
            "import torch.nn as nn\n\n\n"
            "def init_weights(m):\n"
            "    if isinstance(m, nn.Linear):\n"
            "        m.weight.data.normal_(0.0, 0.02)  # DCGAN\n"
            "        m.bias.data.fill_(0.01)\n",
            "import torch.nn as nn\n\n\n"
            "def init_weights(m):\n"
            "    if isinstance(m, nn.Linear):\n"
            "        nn.init.normal_(m.weight, 0.0, 0.02)  # DCGAN\n"
            "        nn.init.constant_(m.bias, 0.01)\n",
        ),
        FixCase(
            "import torch\nfrom torch import nn\n\n\n"
            "class Net(nn.Module):\n"
            "    def __init__(self, table):\n"
            "        super().__init__()\n"
            "        self.emb = nn.Embedding(10, 4)\n"
            "        self.scale = nn.Parameter(torch.empty(4))\n"
            "        self.emb.weight.data.copy_(table)\n"
            "        self.scale.data.uniform_(-1, 1)\n"
            "        for p in self.emb.parameters():\n"
            "            p.data.zero_()\n",
            "import torch\nfrom torch import nn\n\n\n"
            "class Net(nn.Module):\n"
            "    def __init__(self, table):\n"
            "        super().__init__()\n"
            "        self.emb = nn.Embedding(10, 4)\n"
            "        self.scale = nn.Parameter(torch.empty(4))\n"
            "        with torch.no_grad():\n"
            "            self.emb.weight.copy_(table)\n"
            "        nn.init.uniform_(self.scale, -1, 1)\n"
            "        for p in self.emb.parameters():\n"
            "            nn.init.zeros_(p)\n",
        ),
        FixCase(
            "import torch\n\n\n"
            "class Block(torch.nn.Module):\n"
            "    def reset_parameters(self):\n"
            "        for name, p in self.named_parameters():\n"
            "            p.data.normal_(std=0.02)\n\n"
            "    def build(self):\n"
            "        self.apply(fill)\n\n\n"
            "def fill(m):\n"
            "    m.bias.data.zero_()\n",
            "import torch\n\n\n"
            "class Block(torch.nn.Module):\n"
            "    def reset_parameters(self):\n"
            "        for name, p in self.named_parameters():\n"
            "            torch.nn.init.normal_(p, std=0.02)\n\n"
            "    def build(self):\n"
            "        self.apply(fill)\n\n\n"
            "def fill(m):\n"
            "    torch.nn.init.zeros_(m.bias)\n",
        ),
        FixCase(  # either test of an `or` shows a module class
            "import torch\n\n\ndef init_weights(m):\n"
            "    if isinstance(m, torch.nn.BatchNorm1d) or isinstance(m, torch.nn.BatchNorm2d):\n"
            "        m.weight.data.fill_(1.0)\n",
            "import torch\n\n\ndef init_weights(m):\n"
            "    if isinstance(m, torch.nn.BatchNorm1d) or isinstance(m, torch.nn.BatchNorm2d):\n"
            "        torch.nn.init.constant_(m.weight, 1.0)\n",
        ),
    )
    keeps = (
        # a training step: a graph may hold the weight, the fix could make backward() raise
        KeepCase(
            "import torch.nn as nn\n\n\n"
            "def step(model, loss, opt):\n"
            "    loss.backward()\n"
            "    opt.step()\n"
            "    model.zero_grad()\n"
            "    model.fc.weight.data.fill_(0.0)\n",
            reported=True,
        ),
        KeepCase(
            "import torch.nn as nn\n\n\n"
            "class Net(nn.Module):\n"
            "    def forward(self, x):\n"
            "        self.fc.weight.data.normal_(0, 1)\n"
            "        return self.fc(x)\n",
            reported=True,
        ),
        # `.data = t` has no one-call equivalent: reported where a graph may hold the weight
        KeepCase(
            "import torch.nn as nn\n\n\ndef train_step(model, x, w):\n"
            "    model.train()\n    model(x).sum().backward()\n    model.fc.weight.data = w\n",
            reported=True,
        ),
        KeepCase("import torch.nn as nn\n\n\ndef init_weights(m, w):\n    m.weight.data = w\n"),
        # a deploy-time fusion: no graph holds the weights
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n\nclass ConvBN(nn.Module):\n"
            "    @torch.no_grad()\n    def fuse(self):\n"
            "        w, b = self.fused()\n        self.conv.weight.data.copy_(w)\n        self.conv.bias.data = b\n"
        ),
        # not known to be a parameter: a PackedSequence's .data, a batch object
        KeepCase("def init_state(packed):\n    packed.data.zero_()\n"),
        KeepCase("def init_buffers(batch):\n    batch.data.fill_(0)\n"),
        # reads of .data, and a result that is used
        KeepCase("import torch.nn as nn\n\n\ndef init_weights(m):\n    w = m.weight.data.clone()\n    return w\n"),
        # a result used while building: no graph yet, and no one-call equivalent
        KeepCase("import torch.nn as nn\n\n\ndef init_weights(m):\n    w = m.weight.data.normal_(0, 1)\n    return w\n"),
        # a name that only looks like initialisation, run from forward: never fixed
        KeepCase(
            "import torch.nn as nn\n\n\nclass VQ(nn.Module):\n"
            "    def reinit_dead_codes(self, x):\n        self.proj.weight.data.copy_(x)\n\n"
            "    def make_finite(self):\n        self.proj.bias.data.zero_()\n\n"
            "    def forward(self, x):\n        y = self.proj(x)\n        self.reinit_dead_codes(x)\n"
            "        self.make_finite()\n        return y\n",
        ),
        # an init-named function that trains: reported, not fixed
        KeepCase(
            "import torch.nn as nn\n\n\ndef train_with_noise_init(model, x):\n"
            "    model.train()\n    loss = model(x).sum()\n    model.fc.weight.data.normal_(0, 0.01)\n    loss.backward()\n",
            reported=True,
        ),
        # weight and bias that are not parameters: a loss's weight, a registered buffer
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n\ndef train(model, x, y, w):\n"
            "    criterion = nn.CrossEntropyLoss(weight=torch.ones(3))\n"
            "    criterion(model(x), y).backward()\n    criterion.weight.data.copy_(w)\n"
        ),
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n\nclass Norm(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.register_buffer('weight', torch.ones(3))\n\n"
            "    def forward(self, x):\n        self.weight.data.fill_(1.0)\n        return x * self.weight\n"
        ),
        # an EMA update under no_grad in forward: autograd switched off on purpose
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n\nclass Codebook(nn.Module):\n"
            "    def forward(self, x, avg):\n        with torch.no_grad():\n            self.embed.weight.data.copy_(avg)\n"
            "        return self.embed(x)\n"
        ),
        # one-line `else:` body: reported, the copy cannot take a block of its own there
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n\ndef init_weights(m, t):\n"
            "    if t is None:\n        pass\n    else: m.weight.data.copy_(t)\n\n\ndef build(net, t):\n    net.apply(lambda m: init_weights(m, t))\n",
            reported=True,
        ),
        # arguments the nn.init function does not take the same way
        KeepCase(
            "import torch.nn as nn\n\n\ndef init_weights(m, g):\n    if isinstance(m, nn.Linear):\n        m.weight.data.normal_(0, 1, generator=g)\n",
            reported=True,
        ),
        # no torch spelling at the top of the file
        KeepCase("def init_weights(m):\n    m.weight.data.zero_()\n\n\ndef build(net):\n    net.apply(init_weights)\n", reported=True),
        # the file wraps layers in weight_norm: a layer reached through .apply may have a computed
        # weight (recomputed from weight_g and weight_v on each forward), not a parameter
        KeepCase(
            "import torch.nn as nn\nfrom torch.nn.utils import weight_norm\n\n\n"
            "def init_weights(m):\n    if isinstance(m, nn.Conv1d):\n        m.weight.data.normal_(0.0, 0.01)\n\n\n"
            "def build(c):\n    net = nn.Sequential(weight_norm(nn.Conv1d(c, c, 3)))\n    net.apply(init_weights)\n    return net\n"
        ),
        # transformers runs _init_weights with torch.nn.init replaced (loaded weights are skipped):
        # nn.init would not always write what .data.normal_ writes; reported, no fix
        KeepCase(
            "import torch.nn as nn\nfrom transformers import PreTrainedModel\n\n\n"
            "class Model(PreTrainedModel):\n    def _init_weights(self, module):\n"
            "        if isinstance(module, nn.Linear):\n            module.weight.data.normal_(mean=0.0, std=0.02)\n",
            reported=True,
        ),
        # nothing shows the object is a module: its weight may be anything
        KeepCase("import torch\n\n\ndef init_table(store, values):\n    store.weight.data.copy_(values)\n"),
    )

    def check(self) -> None:
        self._following: set[str] = set()  # names whose module evidence is being followed (call sites)
        model = self.model
        for call in model.nodes(ast.Call):
            func = call.func
            if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "data"):
                continue
            method = func.attr
            if method not in INIT_FOR and method != "copy_":
                continue
            tensor = func.value.value
            if not self._is_parameter(tensor):
                continue
            context = self._context(call)
            if context is None:
                continue
            statement = self.model.parent(call)
            if context == "build" and not (isinstance(statement, ast.Expr) and statement.value is call):
                continue  # `w.data.uniform_(-1, 1).renorm_(...)` while building: no graph, no one-call equivalent
            shown = dotted(tensor) or self.model.text(tensor)
            message = (
                f"`{shown}.data.{method}(...)` changes the parameter where autograd cannot see it "
                f"(its version counter does not move); "
                + (f"use `nn.init.{INIT_FOR[method]}({shown}{'' if method == 'zero_' else ', ...'})`" if method in INIT_FOR else f"use `{shown}.copy_(...)` under `torch.no_grad()`")
            )
            fix = self._fix(call, method) if context == "build" else None
            if fix is not None and method in INIT_FOR and self._patched_init(call):
                fix = None
            self.report(call, message, fix)
        for assign in model.nodes(ast.Assign):
            for target in assign.targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "data"
                    and self._is_parameter(target.value)
                    and self._context(assign) == "training"
                ):
                    shown = dotted(target.value) or self.model.text(target.value)
                    self.report(
                        assign,
                        f"`{shown}.data = ...` swaps the parameter's tensor where autograd cannot see it; "
                        f"change its values with `{shown}.copy_(...)` under `torch.no_grad()`",
                    )

    # -- what the tensor is -----------------------------------------------------------------

    def _is_parameter(self, tensor: ast.expr) -> bool:
        if isinstance(tensor, ast.Attribute):
            on_self = isinstance(tensor.value, ast.Name) and tensor.value.id == "self"
            if on_self and self._self_stores(tensor) is not None:
                return self._self_parameter(tensor)  # the class says what it is
            if tensor.attr in MODULE_PARAMETERS:
                if self._a_loss(tensor.value) or not self._a_module(tensor.value):
                    return False
                # where the file reparametrizes weights (weight_norm, spectral_norm, ...), a layer
                # reached through .apply, .modules() or an argument may hold a computed `weight`,
                # recomputed from weight_g/weight_v on every forward: not a parameter
                wrapped = self._reparametrized_classes()
                if not wrapped or self._built_here(tensor.value):
                    return True
                tested = self._isinstance_classes(tensor.value)
                return "*" not in wrapped and bool(tested) and not tested & wrapped
            return False
        if isinstance(tensor, ast.Name):
            return self._parameter_loop_variable(tensor)
        return False

    def _reparametrized_classes(self) -> frozenset[str]:
        """The qualified classes of the layers the file wraps so that their ``weight`` is
        computed (``weight_norm``, ``spectral_norm``, ``register_parametrization``,
        ``torch.nn.utils.parametrizations``): from the construction wrapped, or from what the
        class stores under the ``self.<name>`` wrapped; "*" when the wrapped layer is not known."""
        memo = self.model.memo.get("tfm802.reparametrized")
        if memo is None:
            found: set[str] = set()
            for call in self.model.nodes(ast.Call):
                text = dotted(call.func) or ""
                qname = self.model.torch_qualified(call.func) or ""
                if not (text.rsplit(".", 1)[-1] in REPARAMETRIZATIONS or qname.startswith("torch.nn.utils.parametrizations.")):
                    continue
                wrapped = call.args[0] if call.args else None
                values = [wrapped]
                if isinstance(wrapped, ast.Attribute) and isinstance(wrapped.value, ast.Name) and wrapped.value.id == "self":
                    values = [v for v in (self._self_stores(wrapped) or [None]) if v is not wrapped and v is not call]
                for value in values or [None]:
                    value_q = self.model.torch_qualified(value.func) if isinstance(value, ast.Call) else None
                    if value is call:
                        continue
                    found.add(value_q if value_q and self._builds_module(value) else "*")
            memo = frozenset(found)
            self.model.memo["tfm802.reparametrized"] = memo
        return memo

    def _isinstance_classes(self, owner: ast.expr) -> set[str]:
        """The torch classes an ``if isinstance(<owner>, ...)`` around the change tests for
        (all of them known), or an empty set."""
        classes = self._tested_classes(owner)
        qnames = {self.model.torch_qualified(c) for c in classes or ()}
        return set() if not classes or None in qnames else qnames

    def _built_here(self, owner: ast.expr) -> bool:
        """``self.<name>`` that the class only ever sets to a module it constructs (so no
        wrapper stands between it and its parameters)."""
        if not (isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.value.id == "self"):
            return False
        values = self._self_stores(owner)
        return bool(values) and all(v is not None and self._builds_module(v) for v in values)

    def _patched_init(self, node: ast.AST) -> str | None:
        """Why ``nn.init`` may not do here what the tensor method does: the file builds models on
        transformers' model classes, whose loading constructs every module of the model with the
        ``torch.nn.init`` functions replaced (they do nothing under ``no_init_weights``, or
        skip weights loaded from a checkpoint), while ``.data.normal_`` always writes. Any
        module class of such a file may be built that way."""
        memo = self.model.memo.get("tfm802.patched_init")
        if memo is None:
            memo = ""
            for cls in self.model.nodes(ast.ClassDef):
                for base in self.model.base_classes(cls):
                    if isinstance(base, str) and base.startswith("."):
                        base = self.model.absolute(base) or base  # `from ...modeling_utils import`
                    if isinstance(base, str) and base.split(".", 1)[0] in INIT_PATCHING_PACKAGES:
                        memo = f"`{base}` builds its modules with `torch.nn.init` replaced"
                        break
                if memo:
                    break
            self.model.memo["tfm802.patched_init"] = memo
        return memo or None

    def _self_stores(self, attribute: ast.Attribute) -> list[ast.expr | None] | None:
        """What the class stores under ``self.<name>`` (None for a ``register_buffer`` of that
        name), or None when it stores nothing there."""
        cls = next((n for n in self._ancestors(attribute) if isinstance(n, ast.ClassDef)), None)
        if cls is None:
            return None
        values: list[ast.expr | None] = []
        for node in ast.walk(cls):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(
                    isinstance(t, ast.Attribute) and t.attr == attribute.attr and isinstance(t.value, ast.Name) and t.value.id == "self"
                    for t in targets
                ):
                    values.append(node.value)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("register_buffer", "register_parameter")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == attribute.attr
            ):
                values.append(None if node.func.attr == "register_buffer" else node)
        return values or None

    def _self_parameter(self, attribute: ast.Attribute) -> bool:
        """``self.<name>`` where the class stores nothing but ``nn.Parameter(...)`` under it."""
        values = self._self_stores(attribute) or []
        return bool(values) and all(
            isinstance(v, ast.Call)
            and (
                self.model.torch_qualified(v.func) == "torch.nn.Parameter"
                or (isinstance(v.func, ast.Attribute) and v.func.attr == "register_parameter")
            )
            for v in values
        )

    def _a_module(self, owner: ast.expr) -> bool:
        """The program shows ``owner`` is an nn.Module (so its ``weight`` and ``bias`` are, unless
        stored as something else, parameters): what it is built from or iterated out of, an
        ``isinstance`` test around the change, a function the file hands to ``.apply``, or
        module methods called on it. A ``weight`` of an object nothing shows is left alone."""
        text = dotted(owner)
        if text is None:
            if isinstance(owner, ast.Subscript):  # self.layers[0], model.blocks[i]
                return self._a_module(owner.value) and self._container_of_modules(owner.value)
            return False
        if text == "self":
            cls = self.model.enclosing_class(owner)
            return cls is not None and self.model.is_module_class(cls)
        if self._module_methods_called(owner, text) or self._isinstance_around(owner, text):
            return True
        if isinstance(owner, ast.Attribute):
            root = owner
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "self" and isinstance(owner.value, ast.Name):
                values = self._self_stores(owner)
                if values is not None:
                    return self._module_values(values)
                cls = self.model.enclosing_class(owner)  # a submodule a base class sets
                return cls is not None and self.model.is_module_class(cls)
            return self._a_module(owner.value)  # an attribute with a weight of a module: a submodule
        if isinstance(owner, ast.Name):
            bindings = self.model.scope(owner).resolve(owner.id)
            if not bindings or owner.id in self._following:
                return False
            self._following.add(owner.id)
            try:
                return all(self._binds_module(binding.node) for binding in bindings)
            finally:
                self._following.discard(owner.id)
        return False

    def _module_values(self, values: list[ast.expr | None]) -> bool:
        """What the class stores under ``self.<name>`` can be a module with that ``weight``: at
        least one store builds a module or is a value the file cannot see (a factory's result,
        a layer of a class from elsewhere), and none is something else with a ``weight`` (a
        registered buffer, a loss) or without one (a tensor, a number, a literal). ``None``
        stores do not count: ``None.weight`` would raise before the change runs."""
        seen = False
        for value in values:
            if value is None:
                return False  # register_buffer(name, ...)
            if isinstance(value, ast.Constant) and value.value is None:
                continue
            if self._builds_module(value):
                seen = True
                continue
            if isinstance(value, NOT_MODULES) or self._a_loss_value(value):
                return False
            if isinstance(value, ast.Call) and (self.model.torch_qualified(value.func) or "").startswith("torch."):
                return False  # a torch function that is not a module class: a tensor, a Parameter
            seen = True
        return seen

    def _a_loss_value(self, value: ast.expr) -> bool:
        return isinstance(value, ast.Call) and (self.model.torch_qualified(value.func) or "").endswith("Loss")

    def _builds_module(self, value: ast.expr) -> bool:
        return self.model.is_module_construction(value) and not (self.model.torch_qualified(value.func) or "").endswith("Loss")

    def _binds_module(self, node: ast.AST) -> bool:
        """A binding whose value is a module: an assignment of a module construction, the
        variable of a loop over ``.modules()`` / ``.children()``, or the parameter of a
        function the file hands to ``.apply(...)``."""
        parent = self.model.parent(node)
        if isinstance(parent, ast.Assign) and node in parent.targets:
            return self._builds_module(parent.value)
        if isinstance(parent, ast.Tuple) and len(parent.elts) == 2 and parent.elts[1] is node:
            loop = self.model.parent(parent)
            if isinstance(loop, ast.For) and loop.target is parent:
                return self._iterates(loop.iter, ("named_modules", "named_children"))
        if isinstance(parent, ast.For) and parent.target is node:
            iterable = parent.iter
            if isinstance(iterable, (ast.List, ast.Tuple)):  # for layer in [self.fc1, self.fc2]
                return bool(iterable.elts) and all(self._a_module(e) for e in iterable.elts)
            if isinstance(iterable, ast.Attribute) and dotted(iterable) is not None and dotted(iterable).startswith("self."):
                return self._container_of_modules(iterable)  # for lin in self.lins
            return self._iterates(iterable, ("modules", "children"))
        if isinstance(node, ast.arg):
            function = self.model.parent(parent)
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return False
            positional = [*function.args.posonlyargs, *function.args.args]
            if positional and positional[0] is node and self._applied(function.name):
                return True
            if any(a is node for a in positional):
                return self._called_with_modules(function, next(i for i, a in enumerate(positional) if a is node))
        return False

    def _called_with_modules(self, function: ast.FunctionDef | ast.AsyncFunctionDef, index: int) -> bool:
        """Every call of the function in the file (at least one) passes a module at ``index``
        (``init_layer(self.fc)``); a method called through ``self.`` skips ``self``."""
        is_method = self.model.enclosing_class(function) is not None and self.model.parent(function) is self.model.enclosing_class(function)
        found = False
        for call in self.model.nodes(ast.Call):
            func = call.func
            if isinstance(func, ast.Name) and func.id == function.name and not is_method:
                position = index
            elif is_method and isinstance(func, ast.Attribute) and func.attr == function.name and dotted(func.value) == "self":
                position = index - 1
            elif isinstance(func, ast.Name | ast.Attribute) and (getattr(func, "id", None) or getattr(func, "attr", None)) == function.name:
                return False  # called another way: what it receives is not known
            else:
                continue
            if position < 0 or position >= len(call.args) or any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
                return False
            if not self._a_module(call.args[position]):
                return False
            found = True
        return found

    @staticmethod
    def _iterates(call: ast.expr, methods: tuple[str, ...]) -> bool:
        return isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in methods

    def _applied(self, name: str) -> bool:
        """The file hands the function ``name`` to ``.apply``: by name, as ``partial(name, ...)``
        or as ``lambda m: name(m, ...)`` (``apply`` calls it with each module)."""
        for call in self.model.nodes(ast.Call):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "apply" and len(call.args) == 1:
                arg = call.args[0]
                if isinstance(arg, ast.Lambda) and len(arg.args.args) == 1 and isinstance(arg.body, ast.Call):
                    first = arg.body.args[0] if arg.body.args else None
                    if isinstance(first, ast.Name) and first.id == arg.args.args[0].arg:
                        arg = arg.body.func
                elif isinstance(arg, ast.Call) and self.model.qualified_name(arg.func) == "functools.partial" and arg.args:
                    arg = arg.args[0]
                if (isinstance(arg, ast.Name) and arg.id == name) or (isinstance(arg, ast.Attribute) and arg.attr == name):
                    return True
        return False

    def _module_methods_called(self, owner: ast.expr, text: str) -> bool:
        """``<owner>.parameters()``, ``.modules()``, ``.apply(...)`` ... somewhere the same
        spelling means the same object: the enclosing function (the class, for ``self.x``)."""
        region = self.model.enclosing_class(owner) if text.startswith("self.") else self.model.enclosing_function(owner)
        for call in self.model.nodes(ast.Call, region if region is not None else self.model.tree):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr in MODULE_METHODS and dotted(func.value) == text:
                return True
        return False

    def _isinstance_around(self, owner: ast.expr, text: str) -> bool:
        """An ``if isinstance(<owner>, <module class>)`` (or a tuple of them) whose body the
        change is in."""
        classes = self._tested_classes(owner)
        return bool(classes) and all(self.model.is_module_class_expr(c) for c in classes)

    def _tested_classes(self, owner: ast.expr) -> list[ast.expr] | None:
        """The classes the innermost ``if isinstance(<owner>, C)`` (or a tuple of them, alone or
        as part of an ``and``) whose body holds ``owner`` tests for; None without one."""
        text = dotted(owner)
        child: ast.AST = owner
        for ancestor in self._ancestors(owner):
            inside = isinstance(ancestor, ast.If) and any(child is stmt for stmt in ancestor.body)
            child = ancestor
            if not inside:
                continue
            test_node = ancestor.test
            if isinstance(test_node, ast.BoolOp) and isinstance(test_node.op, ast.Or):
                # `isinstance(m, A) or isinstance(m, B)`: in the body, m is one of them
                parts = [self._isinstance_of(part, text) for part in test_node.values]
                if all(part is not None for part in parts):
                    return [c for part in parts for c in part]
                continue
            conjuncts = test_node.values if isinstance(test_node, ast.BoolOp) else [test_node]
            for test in conjuncts:  # what holds in the body: the test, or each part of an `and`
                classes = self._isinstance_of(test, text)
                if classes is not None:
                    return classes
        return None

    @staticmethod
    def _isinstance_of(test: ast.expr, text: str | None) -> list[ast.expr] | None:
        """The classes of ``isinstance(<text>, C)`` / ``isinstance(<text>, (A, B))``."""
        if (
            isinstance(test, ast.Call)
            and isinstance(test.func, ast.Name)
            and test.func.id == "isinstance"
            and len(test.args) == 2
            and dotted(test.args[0]) == text
        ):
            return test.args[1].elts if isinstance(test.args[1], ast.Tuple) else [test.args[1]]
        return None

    def _container_of_modules(self, owner: ast.expr) -> bool:
        """``self.<name>`` is only ever a module container (``nn.ModuleList``, ``nn.Sequential``):
        its items are modules."""
        values = self._self_stores(owner) if isinstance(owner, ast.Attribute) else None
        return bool(values) and all(
            v is not None and (self.model.torch_qualified(v.func) if isinstance(v, ast.Call) else None) in MODULE_CONTAINERS
            for v in values
        )

    def _a_loss(self, owner: ast.expr) -> bool:
        """``owner`` is only ever a torch loss (whose ``weight`` is a buffer)."""
        if not isinstance(owner, ast.Name):
            return False
        bindings = self.model.scope(owner).resolve(owner.id)
        values = []
        for binding in bindings:
            parent = self.model.parent(binding.node)
            if not isinstance(parent, ast.Assign):
                return False
            values.append(parent.value)
        return bool(values) and all(
            isinstance(v, ast.Call) and (self.model.torch_qualified(v.func) or "").endswith("Loss") for v in values
        )

    def _parameter_loop_variable(self, name: ast.Name) -> bool:
        """A name bound only as the parameter of ``for p in x.parameters()`` or
        ``for n, p in x.named_parameters()``, and used inside that loop."""
        bindings = self.model.scope(name).resolve(name.id)
        if not bindings:
            return False
        loops = [self._loop_binding(binding.node) for binding in bindings]
        if any(loop is None for loop in loops):
            return False
        ancestors = {id(node) for node in self._ancestors(name)}
        return any(id(loop) in ancestors for loop in loops)

    def _loop_binding(self, node: ast.AST) -> ast.For | None:
        parent = self.model.parent(node)
        index = None
        if isinstance(parent, ast.Tuple) and len(parent.elts) == 2:
            index = next(i for i, e in enumerate(parent.elts) if e is node)
            node, parent = parent, self.model.parent(parent)
        if not (isinstance(parent, ast.For) and parent.target is node):
            return None
        call = parent.iter
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and not call.args):
            return None
        wanted = PARAMETER_ITERATORS.get(call.func.attr)
        if wanted is None or (index is None) != (wanted == 0) or (index is not None and index != wanted):
            return None
        return parent

    def _ancestors(self, node: ast.AST):
        parent = self.model.parent(node)
        while parent is not None:
            yield parent
            parent = self.model.parent(parent)

    # -- the fix ----------------------------------------------------------------------------

    def _fix(self, call: ast.Call, method: str) -> Fix | None:
        statement = self.model.parent(call)
        if not (isinstance(statement, ast.Expr) and statement.value is call):
            return None  # the result is used: nn.init returns the parameter, not its .data
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            return None
        if method == "copy_":
            if len(call.args) != 1 or call.keywords:
                return None
            if under_no_grad(self.model, call):  # already without autograd: only `.data` goes
                tensor = call.func.value
                return Fix([self.edit(tensor, "Attribute", replace_expression, self.model.text(tensor.value))])
            if not self.model.alone_on_its_line(statement):
                return None
            spelling = self._spell(call, "no_grad")
            if spelling is None:
                return None
            return Fix([self.edit(statement, "SimpleStatementLine", _change("no_grad_copy"), spelling)])
        if len(call.args) > MAX_POSITIONAL[method] or any(k.arg not in KEYWORDS[method] for k in call.keywords):
            return None
        spelling = self._spell(call, "nn.init." + INIT_FOR[method])
        if spelling is None:
            return None
        return Fix([self.edit(call, "Call", _change("init_call"), spelling)])

    def _spell(self, at: ast.AST, path: str) -> str | None:
        """``torch.<path>`` as the file can spell it at ``at`` through a top-level import of
        ``torch.nn.init``, ``torch.nn`` or ``torch``."""
        spellings = module_spellings(self.model)
        parts = f"torch.{path}".split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            local = spellings.get(module)
            if local is None:
                continue
            root = local.split(".")[0]
            if visible_as(self.model, at, root, root if "." in local else module):
                return ".".join([local, *parts[cut:]])
        return None

    def _context(self, node: ast.AST) -> str | None:
        """"build" while the module is built (no graph can hold its parameters: the fix is
        safe), "training" in ``forward`` or in code that calls ``backward()`` (a graph may hold
        them: the change is the bug, reported), None elsewhere (a deploy-time fusion, an EMA
        update: left alone)."""
        if self._while_building(node):
            return "build"
        if under_no_grad(self.model, node):
            return None  # the author switched autograd off here on purpose (an EMA update)
        function = self.model.enclosing_function(node)
        if function is not None:
            if function.name == "forward" or self._calls_backward(function):
                return "training"
            return None  # a helper (of forward or not): whether a graph holds the parameter then is not known
        # module level: a script's training loop
        for ancestor in self._ancestors(node):
            if isinstance(ancestor, (ast.For, ast.AsyncFor, ast.While)) and self._calls_backward(ancestor):
                return "training"
        return None

    def _while_building(self, node: ast.AST) -> bool:
        """In ``__init__``, ``reset_parameters``, a function whose name says it initialises, or a
        function the file hands to ``.apply(...)``: no graph holds the parameters yet."""
        function = self.model.enclosing_function(node)
        if function is None:
            return False
        outer = function
        while outer is not None:  # neither it nor a function around it trains
            if outer.name == "forward" or self._calls_backward(outer):
                return False
            outer = self.model.enclosing_function(outer)
        name = function.name
        if self._called_from_forward(name):
            return False
        words = name.lower().strip("_").split("_")
        if name in ("__init__", "reset_parameters") or INIT_WORDS & set(words) or name.lower().lstrip("_").startswith("init"):
            return True
        return self._applied(name)

    def _calls_backward(self, root: ast.AST) -> bool:
        return any(
            isinstance(call.func, ast.Attribute) and call.func.attr == "backward" for call in self.model.nodes(ast.Call, root)
        )

    def _called_from_forward(self, name: str) -> bool:
        for function in self.model.nodes(ast.FunctionDef):
            if function.name == "forward":
                for call in self.model.nodes(ast.Call, function):
                    func = call.func
                    if (isinstance(func, ast.Name) and func.id == name) or (isinstance(func, ast.Attribute) and func.attr == name):
                        return True
        return False

