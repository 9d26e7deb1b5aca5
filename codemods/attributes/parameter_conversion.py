"""TFM303: ``nn.Parameter(t).to(device)`` stored on a module: the conversion goes inside."""

from __future__ import annotations

import ast

from torchfix_mod.codemods._shared._attributes import self_assignments
from torchfix_mod.project import PARAMETER_CLASSES
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule

HEADER = "import torch\nimport torch.nn as nn\n\n"
# Tensor methods that return a copy when they convert (device or dtype), and the tensor
# itself when there is nothing to convert
CONVERSIONS = frozenset({"to", "cuda", "cpu", "double", "float", "half", "bfloat16", "type", "type_as"})


def _init(*lines: str) -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class Net(nn.Module):\n    def __init__(self, n, device):\n        super().__init__()\n{body}"


class ParameterConversionRule(Rule):
    """
    ## What it does
    Finds `nn.Parameter(t)` followed by a conversion (`.to(device)`, `.cuda()`,
    `.double()`, `.half()`, ...) and stored as an attribute of an nn.Module,
    and moves the conversion inside: `nn.Parameter(t.to(device))`.

    ## Why is this bad?
    A conversion that copies returns a plain tensor computed from the
    parameter, not a parameter: the attribute is then missing from
    `parameters()` (the optimizer never updates it) and from `state_dict()`.
    When there is nothing to convert (`.to("cpu")` on the CPU), the same
    parameter comes back, which hides the bug until the code runs on a GPU or
    in another dtype.

    ## Example
    ```python
    self.w = nn.Parameter(torch.randn(n, n)).to(device)
    ```

    ## Use instead
    ```python
    self.w = nn.Parameter(torch.randn(n, n).to(device))
    ```

    ## Fix safety
    Safe: the parameter holds the converted values either way; after the fix
    it is a registered leaf parameter on every device, as it already was
    whenever the conversion did not copy. `requires_grad=` stays on the
    parameter. It joins `state_dict()`: a checkpoint saved where the
    conversion copied lacks its key (the migration report lists it).

    ## Known problems
    Left alone: conversions with `*args`/`**kwargs`, a Parameter built with
    its data passed by keyword, and values that are not stored on `self`.
    Conversions that cannot copy are left alone too: `.to(w.device)` of a
    Parameter made from `w`, and `.type(torch.FloatTensor)`, `.float()`,
    `.to(torch.float32)` or `.cpu()` of CPU float32 data (a default-dtype
    factory, in a file that never changes the default dtype or device), which
    return the Parameter itself.
    """

    code = "TFM303"
    name = "parameter-conversion"
    summary = "nn.Parameter(t).to(...) stores a plain tensor when the conversion copies; convert inside"

    fixes = (
        FixCase(
            _init("self.w = nn.Parameter(torch.randn(n, n)).to(device)  # weights"),
            _init("self.w = nn.Parameter(torch.randn(n, n).to(device))  # weights"),
        ),
        FixCase(
            _init("self.scale = nn.Parameter(torch.ones(n) * 2, requires_grad=False).double().to(device)"),
            _init("self.scale = nn.Parameter((torch.ones(n) * 2).double().to(device), requires_grad=False)"),
        ),
        FixCase(
            "import torch\nfrom torch.nn import Module, Parameter\n\n"
            "class Net(Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.bias = Parameter(torch.zeros(3)).cuda()\n",
            "import torch\nfrom torch.nn import Module, Parameter\n\n"
            "class Net(Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.bias = Parameter(torch.zeros(3).cuda())\n",
        ),
        FixCase(
            # the data is float64: `.type(torch.FloatTensor)` copies
            "import torch\nimport torch.nn as nn\n\ndtype = torch.FloatTensor\n\n"
            "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
            "        self.w = nn.Parameter(torch.empty(n, 2, dtype=torch.float64)).type(dtype)\n",
            "import torch\nimport torch.nn as nn\n\ndtype = torch.FloatTensor\n\n"
            "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
            "        self.w = nn.Parameter(torch.empty(n, 2, dtype=torch.float64).type(dtype))\n",
        ),
    )
    keeps = (
        KeepCase(_init("self.w = nn.Parameter(torch.randn(n, n).to(device))")),
        KeepCase(_init("w = nn.Parameter(torch.randn(n, n)).to(device)", "self.out = w.sum()")),
        KeepCase(_init("self.w = nn.Parameter(torch.randn(n, n)).to(*device)"), reported=True),
        KeepCase(_init("self.w = nn.Parameter(data=torch.randn(n, n)).to(device)"), reported=True),
        KeepCase(HEADER + "class Plain:\n    def __init__(self):\n        self.w = nn.Parameter(torch.ones(2)).double()\n"),
        # converted to the type its CPU float32 data already has: `.type()` returns the Parameter itself
        KeepCase("import torch\nimport torch.nn as nn\n\ndtype = torch.FloatTensor\n\n"
                 "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
                 "        self.w = nn.Parameter(torch.empty(n, 2).uniform_(-1, 1)).type(dtype)\n"
                 "        self.b = nn.Parameter(0.1 * torch.ones([2])).float()\n"),
        # moved to the device its own data is on: `.to()` returns the Parameter itself
        KeepCase(_init("self.weight = nn.Parameter(torch.ones(n))", "self._w = nn.Parameter(self.weight.clone()).to(self.weight.device)")),
    )

    def check(self) -> None:
        model = self.model
        for cls, is_module in model.module_classes.items():
            if not is_module:
                continue
            for site in self_assignments(model, cls):
                chain = self._conversion_chain(site.value)
                if chain is None:
                    continue
                parameter, links = chain
                if _moves_to_its_own_device(model, parameter, links):
                    continue  # `.to(w.device)` of a Parameter made from `w`: it never copies
                if _converts_to_what_it_is(model, parameter, links):
                    continue  # `.type(torch.FloatTensor)` of CPU float32 data: the same Parameter comes back
                message = (
                    f"`{site.self_arg}.{site.attr}` is a conversion of an nn.Parameter: when it copies (another device "
                    "or dtype) it is a plain tensor, missing from parameters() and state_dict(); convert inside"
                )
                positional = [a for a in parameter.args if not isinstance(a, ast.Starred)]
                starred = any(isinstance(a, ast.Starred) for a in parameter.args) or any(k.arg is None for k in parameter.keywords)
                link_starred = any(
                    isinstance(a, ast.Starred) for link in links for a in link.args
                ) or any(k.arg is None for link in links for k in link.keywords)
                if not positional or starred or link_starred:
                    self.report(site.assign, f"{message} (not fixed: its arguments are not all visible)")
                    continue
                fix = Fix([self.edit(site.value, "Call", _convert_inside, len(links))])
                self.report(site.assign, message, fix, (site.attr,))  # the parameter joins state_dict()

    def _conversion_chain(self, value: ast.expr) -> tuple[ast.Call, list[ast.Call]] | None:
        """``nn.Parameter(...).a(...).b(...)`` with every link a conversion: the Parameter
        call and the links, innermost first."""
        links: list[ast.Call] = []
        node = value
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CONVERSIONS:
            links.append(node)
            node = node.func.value
        if not links or not isinstance(node, ast.Call):
            return None
        if not self.model.qualified_names(node.func) or not self.model.qualified_names(node.func) <= PARAMETER_CLASSES:
            return None
        return node, list(reversed(links))


def _moves_to_its_own_device(model, parameter: ast.Call, links: list[ast.Call]) -> bool:
    """Every link is ``.to(<x>.device)`` where ``<x>`` is what the Parameter is made from
    (``nn.Parameter(self.weight.clone()).to(self.weight.device)``): the tensor is already there."""
    if not parameter.args:
        return False
    source = {ast.dump(n) for n in ast.walk(parameter.args[0]) if isinstance(n, (ast.Name, ast.Attribute))}
    for link in links:
        if not (link.func.attr == "to" and len(link.args) == 1 and not link.keywords):
            return False
        target = link.args[0]
        if not (isinstance(target, ast.Attribute) and target.attr == "device" and ast.dump(target.value) in source):
            return False
    return True


# factories whose result, without dtype=/device=/out=, is a CPU tensor of the default dtype
_DEFAULT_FLOAT_FACTORIES = frozenset(
    {"zeros", "ones", "empty", "rand", "randn", "eye", "linspace", "logspace", "Tensor", "FloatTensor"}
)
# in-place methods and methods that keep a tensor's dtype and device
_KEEPING_METHODS = frozenset(
    {"uniform_", "normal_", "fill_", "zero_", "clone", "detach", "contiguous", "view", "reshape",
     "unsqueeze", "squeeze", "t", "transpose", "permute", "flatten", "exponential_", "cauchy_"}
)
_FLOAT32 = frozenset({"torch.float32", "torch.float"})
_DEFAULT_SETTERS = frozenset({"set_default_dtype", "set_default_device", "set_default_tensor_type"})


def _converts_to_what_it_is(model, parameter: ast.Call, links: list[ast.Call]) -> bool:
    """The Parameter's data is a CPU float32 tensor (a factory of the default dtype, in a file
    that never changes the default dtype, device or tensor type) and every link converts to
    exactly that (``.type(torch.FloatTensor)``, also through a module-level name bound once,
    ``.float()``, ``.to(torch.float32)``, ``.cpu()``): each returns the Parameter itself."""
    if not parameter.args or model.called & _DEFAULT_SETTERS:
        return False
    if not _default_float_cpu(model, parameter.args[0]):
        return False
    for link in links:
        name = link.func.attr
        if link.keywords:
            return False
        if name in ("float", "cpu") and not link.args:
            continue
        if name in ("type", "to") and len(link.args) == 1:
            target = _module_constant(model, link.args[0])
            if name == "type" and model.qualified_names(target) == {"torch.FloatTensor"}:
                continue
            if isinstance(target, ast.Constant) and name == "type" and target.value == "torch.FloatTensor":
                continue
            if name == "to" and model.qualified_names(target) and model.qualified_names(target) <= _FLOAT32:
                continue
        return False
    return True


def _default_float_cpu(model, data: ast.AST) -> bool:
    if isinstance(data, ast.BinOp) and isinstance(data.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        sides = (data.left, data.right)
        numbers = [s for s in sides if isinstance(s, ast.Constant) and type(s.value) in (int, float)]
        return len(numbers) == 1 and all(_default_float_cpu(model, s) for s in sides if s not in numbers)
    if not isinstance(data, ast.Call) or any(isinstance(a, ast.Starred) for a in data.args):
        return False
    if isinstance(data.func, ast.Attribute) and model.torch_qualified(data.func) is None:
        return data.func.attr in _KEEPING_METHODS and _default_float_cpu(model, data.func.value)
    qname = model.torch_qualified(data.func)
    if qname is None or qname.count(".") != 1 or qname.split(".")[1] not in _DEFAULT_FLOAT_FACTORIES:
        return False
    if any(k.arg in (None, "dtype", "device", "out") for k in data.keywords):
        return False
    # `torch.Tensor(data)` copies the data's values as float32; `torch.Tensor(n, m)` allocates
    return qname.split(".")[1] not in ("Tensor", "FloatTensor") or all(
        isinstance(a, (ast.Constant, ast.Name, ast.Attribute, ast.BinOp)) for a in data.args
    )


def _module_constant(model, expr: ast.AST) -> ast.AST:
    """What a name bound once, at module level, by a plain assignment holds (``dtype =
    torch.FloatTensor``); the expression itself otherwise."""
    if not isinstance(expr, ast.Name):
        return expr
    found = model.scope(expr).resolve(expr.id)
    if len(found) != 1 or found[0].scope is not model.module_scope or found[0].kind != "assign":
        return expr
    holder = model.parent(found[0].node)
    if isinstance(holder, ast.Assign) and len(holder.targets) == 1 and holder.targets[0] is found[0].node:
        return holder.value
    return expr


def _convert_inside(value, count: int):
    """``Parameter(t, ...).a(x).b(y)`` -> ``Parameter(t.a(x).b(y), ...)`` (``count`` links)."""
    import libcst as cst

    links = []
    node = value
    for _ in range(count):
        links.append(node)
        node = node.func.value
    parameter = node
    data = parameter.args[0]
    inner = data.value
    spans_lines = "\n" in cst.Module([]).code_for_node(inner)
    atomic = isinstance(inner, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
    if (not atomic or spans_lines) and not inner.lpar:
        inner = inner.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    for link in reversed(links):  # innermost first
        inner = link.with_changes(func=link.func.with_changes(value=inner))
    return parameter.with_changes(args=[data.with_changes(value=inner), *parameter.args[1:]])
