"""TFM301: a plain tensor attribute set in ``__init__`` becomes a registered buffer."""

from __future__ import annotations

import ast

from torchfix_mod.codemods._shared._attributes import SelfAssignment
from torchfix_mod.codemods.attributes._tensor_attributes import TensorAttributeRule, TensorExpressions
from torchfix_mod.rule import Fix, FixCase, KeepCase

HEADER = "import math\nimport torch\nimport torch.nn as nn\n\n"
# a read that moves the tensor where it is used, or reads it back to Python or metadata
MOVES = frozenset({"to", "type_as", "cuda"})
READ_BACK = frozenset({"tolist", "item", "numpy", "device", "dtype", "shape", "size", "dim", "numel"})


RESET = "\n    def _reset(self, n):\n        self.mask = torch.zeros(n)\n"


def _init(*lines: str, extra: str = "") -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n{body}{extra}"


class RegisterBufferRule(TensorAttributeRule):
    """
    ## What it does
    Finds tensors stored as plain attributes in `__init__` of an nn.Module
    (`self.mask = torch.tril(torch.ones(n, n))`, or a local tensor built and
    then stored, as in positional encodings) and registers them as buffers.

    ## Why is this bad?
    A plain tensor attribute is invisible to PyTorch: it stays behind on
    `.to(device)`, `.cuda()` and `.double()` ("Expected all tensors to be on the
    same device"), and it is not in `buffers()`.

    ## Example
    ```python
    self.mask = torch.tril(torch.ones(n, n))
    ```

    ## Use instead
    ```python
    self.register_buffer("mask", torch.tril(torch.ones(n, n)), persistent=False)
    ```

    ## Fix safety
    Safe. The assignment itself becomes the `register_buffer` call. The buffer
    is non-persistent, so `state_dict()` keys do not change and checkpoints
    saved before the fix still load with `strict=True`; `--buffer-persistent`
    writes `persistent=True` instead (old checkpoints then miss the key).

    A buffer also follows dtype casts (`.half()`, `.to(torch.bfloat16)`): a
    constant such as `torch.tensor(-1e9)` then overflows in float16. That is what
    registering buffers is for, but review such constants.

    ## Known problems
    Left alone: tensors kept plain on purpose, where every read in the class
    moves the tensor where it is used (`.to(x.device)`, `.type_as(x)`,
    `.cuda()`) or reads it back (`.tolist()`, `.item()`, `.device`): a buffer
    would also follow the module's dtype casts (`.double()`, `.half()`), which
    such code does not expect. Values not provably tensors (`torch.device`, dtypes,
    `torch.Size`, `torch.Generator()`, anything computed by unknown code);
    tensors created with `requires_grad=True` (they want `nn.Parameter`); names
    the class or its bases already define (class attributes, properties,
    methods, attributes of `nn.Module`), since `register_buffer` raises
    `KeyError` on them; names that code running earlier in construction may
    already have set (a helper `__init__` calls first, a function handed `self`,
    a subclass's `__init__` before its `super().__init__()`; reported, not fixed,
    as is a store after `self` went to code the file does not hold);
    attributes stored elsewhere with a non-tensor value or
    wrapped in `nn.Parameter`; classes whose bases are not `nn.Module` or
    nn.Modules of the same file; assignments outside `__init__` or before
    `super().__init__()`.
    """

    code = "TFM301"
    name = "tensor-attribute-buffer"
    summary = "Plain tensor attribute does not follow .to(device); register it as a buffer"

    fixes = (
        FixCase(
            _init("self.mask = torch.tril(torch.ones(n, n))  # causal"),
            _init('self.register_buffer("mask", torch.tril(torch.ones(n, n)), persistent=False)  # causal'),
        ),
        FixCase(
            _init(
                "pe = torch.zeros(n, 8)",
                "position = torch.arange(0, n).unsqueeze(1).float()",
                "div_term = torch.exp(torch.arange(0, 8, 2).float() * (-math.log(10000.0) / 8))",
                "pe[:, 0::2] = torch.sin(position * div_term)",
                "pe[:, 1::2] = torch.cos(position * div_term)",
                "self.pe = pe.unsqueeze(0)",
            ),
            _init(
                "pe = torch.zeros(n, 8)",
                "position = torch.arange(0, n).unsqueeze(1).float()",
                "div_term = torch.exp(torch.arange(0, 8, 2).float() * (-math.log(10000.0) / 8))",
                "pe[:, 0::2] = torch.sin(position * div_term)",
                "pe[:, 1::2] = torch.cos(position * div_term)",
                'self.register_buffer("pe", pe.unsqueeze(0), persistent=False)',
            ),
        ),
        FixCase(
            _init("self.bias = torch.tril(torch.ones(n, n)).view(1, 1, n, n)"),
            _init('self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n), persistent=False)'),
        ),
        FixCase(
            # the helper runs after the buffer exists: its store updates the buffer
            _init("self.mask = torch.ones(n)", "self._reset(n)", extra=RESET),
            _init('self.register_buffer("mask", torch.ones(n), persistent=False)', "self._reset(n)", extra=RESET),
        ),
        FixCase(
            # a submodule called first is handed its arguments, not the instance
            _init("self.act = nn.ReLU()", "self.act(torch.zeros(n))", "self.mask = torch.ones(n)"),
            _init("self.act = nn.ReLU()", "self.act(torch.zeros(n))", 'self.register_buffer("mask", torch.ones(n), persistent=False)'),
        ),
        FixCase(
            _init("self.scale = torch.tensor([7.0]) * 2"),
            _init('self.register_buffer("scale", torch.tensor([7.0]) * 2, persistent=True)'),
            options={"buffer_persistent": True},
        ),
    )
    keeps = (
        # kept plain on purpose: every read moves it where it is used (a buffer would also
        # follow the module's dtype casts, which this code does not want)
        KeepCase(_init("self.basis = torch.randn(n, n)",
                       extra="\n    def forward(self, x):\n        return x @ self.basis.to(x.device)\n")),
        KeepCase(_init("self.steps = torch.arange(n)",
                       extra="\n    def forward(self, x):\n        return x[:, : len(self.steps.tolist())]\n")),
        # already set by code that runs first: register_buffer would raise KeyError
        KeepCase(_init("self._reset(n)", "self.mask = torch.ones(n)", extra=RESET), reported=True),
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n"
            "def init_state(module, n):\n    module.mask = torch.zeros(n)\n\n"
            "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
            "        init_state(self, n)\n        self.mask = torch.ones(n)\n",
            reported=True,
        ),
        KeepCase(
            _init("self.mask = torch.ones(n)")
            + "\n\nclass Child(Net):\n    def __init__(self, n):\n"
            "        self.mask = torch.zeros(n)\n        super().__init__(n)\n",
            reported=True,
        ),
        KeepCase(
            "import torch\nimport torch.nn as nn\nfrom helpers import setup\n\n"
            "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
            "        setup(self)\n        self.mask = torch.ones(n)\n",
            reported=True,
        ),
        # tuples, not tensors
        KeepCase(_init("self.grid = torch.meshgrid(torch.arange(n), torch.arange(n), indexing='ij')")),
        # made trainable afterwards: it wants to be an nn.Parameter
        KeepCase(_init("alpha = torch.zeros(1)", "alpha.requires_grad = True", "self.alpha = alpha")),
        KeepCase(_init(
            "self.device = torch.device('cpu')",
            "self.dtype = torch.float32",
            "self.shape = torch.Size([n])",
            "self.gen = torch.Generator()",
            "self.w = torch.randn(n, n, requires_grad=True)",
        )),
        KeepCase(_init("self.mask = torch.ones(n)", extra="\n    mask = None\n")),
        KeepCase(_init("self.mask = torch.ones(n)", extra="\n    def reset(self):\n        self.mask = 0\n")),
        KeepCase(_init("self.w = torch.ones(n)", "self.w = nn.Parameter(self.w)")),
        KeepCase(_init("self.training = torch.ones(n)")),
        KeepCase(
            HEADER + "class Net(nn.Module):\n    def __init__(self, n):\n"
            "        self.mask = torch.ones(n)\n"
            "        super().__init__()\n"
            "    def forward(self, x):\n"
            "        self.cache = torch.zeros(3)\n",
            reported=True,
        ),
        KeepCase(HEADER + "class Net(nn.Linear):\n    def __init__(self, n):\n        super().__init__(n, n)\n        self.mask = torch.ones(n)\n"),
        KeepCase(HEADER + "class Plain:\n    def __init__(self, n):\n        self.mask = torch.ones(n)\n"),
    )

    def wants(self, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        return tensors.is_tensor(site.value)

    def message(self, site: SelfAssignment) -> str:
        return (
            f"`{site.self_arg}.{site.attr}` is a plain tensor attribute: it does not follow "
            ".to(device)/.cuda()/.double(); register it with register_buffer"
        )

    def deliberately_plain(self, site: SelfAssignment) -> bool:
        model = self.model
        reads = [
            use for use in model.attributes.get(site.attr, ())
            if use is not site.target and isinstance(use.ctx, ast.Load)
            and isinstance(use.value, ast.Name) and model.enclosing_class(use) in model.class_family(site.cls)
        ]
        return bool(reads) and all(self._moved_or_read_back(use) for use in reads)

    def _moved_or_read_back(self, use: ast.Attribute) -> bool:
        parent = self.model.parent(use)
        if not isinstance(parent, ast.Attribute) or parent.value is not use:
            return False
        if parent.attr in READ_BACK:
            return True
        call = self.model.parent(parent)
        return parent.attr in MOVES and isinstance(call, ast.Call) and call.func is parent and bool(call.args or call.keywords or parent.attr == "cuda")

    def refuses_use(self, use: ast.Attribute) -> bool:
        return self.gets_requires_grad(use)  # made trainable later: it wants to be a Parameter

    def other_store_ok(self, value: ast.expr, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        return tensors.is_tensor(value) or self.is_same_attribute_chain(value, site)

    def state_keys(self, site: SelfAssignment) -> tuple[str, ...]:
        return (site.attr,) if self.options.buffer_persistent else ()

    def fix_for(self, site: SelfAssignment) -> Fix:
        persistent = "True" if self.options.buffer_persistent else "False"
        return Fix([self.edit(site.assign, "Assign", _register, site.self_arg, site.attr, persistent)])


def _register(assign, self_arg: str, attr: str, persistent: str):
    """``self.attr = value`` -> ``self.register_buffer("attr", value, persistent=...)``."""
    import libcst as cst

    call = cst.Call(
        func=cst.Attribute(cst.Name(self_arg), cst.Name("register_buffer")),
        args=[
            cst.Arg(cst.SimpleString(f'"{attr}"')),
            cst.Arg(assign.value),
            cst.Arg(cst.Name(persistent), keyword=cst.Name("persistent"), equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
            )),
        ],
    )
    return cst.Expr(call, semicolon=assign.semicolon)
