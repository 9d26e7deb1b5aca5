"""TFM301: a plain tensor attribute set in ``__init__`` becomes a registered buffer."""

from __future__ import annotations

import ast
import re

from torchfix_mod.codemods._shared._attributes import SelfAssignment
from torchfix_mod.codemods._shared._tensor_factories import TENSOR_FACTORIES
from torchfix_mod.codemods.containers._containers import only_param
from torchfix_mod.codemods.attributes._tensor_attributes import (
    TensorAttributeRule,
    TENSOR_METHODS,
    TensorExpressions,
    has_star_args,
    requires_grad_true,
)
from torchfix_mod.semantic import class_methods, self_name
from torchfix_mod.torch_facts import MODULE_ATTRIBUTES
from torchfix_mod.rule import Fix, FixCase, KeepCase

HEADER = "import math\nimport torch\nimport torch.nn as nn\n\n"
# a read that moves the tensor where it is used, or reads it back to Python or metadata
MOVES = frozenset({"to", "type_as", "cuda"})
READ_BACK = frozenset({"tolist", "item", "numpy", "device", "dtype", "shape", "size", "dim", "numel"})


RESET = "\n    def _reset(self, n):\n        self.mask = torch.zeros(n)\n"
# a helper function of the file that builds the tensor (the last binding of `mask` reaches the return)
SUBSEQUENT = (
    "def subsequent_mask(n):\n"
    "    mask = [[float(j > i) for j in range(n)] for i in range(n)]\n"
    "    mask = torch.tensor(mask)\n"
    "    return mask.unsqueeze(0)\n\n\n"
)
# a helper of the file that moves what it is given to its input's device
WITH_BOUNDARY = (
    "def with_boundary(x, ids):\n"
    "    return torch.cat([ids.to(x.device).expand(x.shape[0], -1), x], dim=1)\n\n\n"
)


ADD_BIAS = "\n    def forward(self, x):\n        return x + self.bias\n"


def _init(*lines: str, extra: str = "") -> str:
    """A module whose ``__init__`` runs ``lines``; unless ``extra`` brings a ``forward``, one
    that adds every attribute the lines store to its input (where a plain tensor would meet a
    moved input)."""
    body = "".join(f"        {line}\n" for line in lines)
    if "def forward" not in extra:
        names = dict.fromkeys(re.findall(r'self\.(\w+) =|register_buffer\("(\w+)"', body))
        attrs = [a or b for a, b in names if (a or b) != "register_buffer"]
        extra += "\n    def forward(self, x):\n        return x" + "".join(f" + self.{a}.sum()" for a in attrs) + "\n"
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

    ## What it reports
    Only tensors the module's computation meets: some read in `forward` (or a
    method `forward` calls) combines the tensor with another one without moving
    it first. Left alone, as true but harmless: tensors only tested in an `if`,
    compared with numbers, indexed to one element (a CPU scalar mixes with
    tensors on any device), read only by code outside `forward` (a sampler, a
    `collate_fn` running on the CPU), stored again while the module computes (a
    cache of the inputs, a copy moved and stored back), placeholders for a name
    that another path registers as a buffer, and classes that place their
    tensors themselves (a `device` argument or attribute, a default device set
    in the file).

    Tensors count wherever the file shows they are tensors: torch factories and
    functions, tensor methods, `getattr(torch, "hann_window")(n)`, and functions
    of the file whose every return is a tensor. A call that hands the tensor to
    a function or method of the file is followed into the parameter that
    receives it (a helper that moves it with `.to(x.device)` does not combine
    it); code imported from elsewhere may place it itself and does not count.
    Also left alone: tensors combined in that code with values that are on the
    CPU whatever the module's device (a factory without `device=`,
    `torch.from_numpy`, a copy made with `.cpu()` or `.numpy()`, a name the code
    hands to `pack_padded_sequence` as its lengths, or a local computed from one
    of them) before a move, and tensors whose device the code compares before
    using them.

    What follows dtype casts: a buffer follows `.half()`/`.double()` when it is
    a floating-point tensor; integer and bool tensors keep their dtype and only
    follow device moves.

    Reported without a fix: tensors set by a method `__init__` calls
    (`self.init_states(x)`), a recurrent state that forward reads before it
    stores it again (the first call meets the tensor `__init__` made), a factory
    named by an argument (`getattr(torch, window)(n)`: a caller may name
    anything), a tensor stored elsewhere too (a helper may make it
    again on a device of its own choosing), read by code outside the class,
    with a private (mangled) name, or combined with another plain tensor
    attribute (registering one alone would part them on `.to(device)`).

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
            # a submodule called first is handed its arguments, not the instance
            _init("self.act = nn.ReLU()", "self.act(torch.zeros(n))", "self.mask = torch.ones(n)"),
            _init("self.act = nn.ReLU()", "self.act(torch.zeros(n))", 'self.register_buffer("mask", torch.ones(n), persistent=False)'),
        ),
        FixCase(
            _init("self.scale = torch.tensor([7.0]) * 2"),
            _init('self.register_buffer("scale", torch.tensor([7.0]) * 2, persistent=True)'),
            options={"buffer_persistent": True},
        ),
        FixCase(
            _init("self.mask = subsequent_mask(n)").replace("class Net", SUBSEQUENT + "class Net"),
            _init('self.register_buffer("mask", subsequent_mask(n), persistent=False)').replace("class Net", SUBSEQUENT + "class Net"),
        ),
        # learnable in one branch, a constant in the other (External-Attention's AFT_FULL): the
        # constant is what does not follow the module
        FixCase(
            _init("if n > 1:", "    self.bias = torch.zeros(n)", "else:", "    self.bias = nn.Parameter(torch.ones(n))", extra=ADD_BIAS),
            _init("if n > 1:", '    self.register_buffer("bias", torch.zeros(n), persistent=False)', "else:",
                  "    self.bias = nn.Parameter(torch.ones(n))", extra=ADD_BIAS),
        ),
        FixCase(
            _init("if n > 1:", "    self.bias = nn.Parameter(torch.ones(n))", "else:", "    self.bias = torch.zeros(n)", extra=ADD_BIAS),
            _init("if n > 1:", "    self.bias = nn.Parameter(torch.ones(n))", "else:",
                  '    self.register_buffer("bias", torch.zeros(n), persistent=False)', extra=ADD_BIAS),
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
        # stored again by a helper, which may put it on a device of its own choosing
        KeepCase(_init("self.mask = torch.ones(n)", "self._reset(n)", extra=RESET), reported=True),
        # never meets the module's computation: only tested, or used by code outside forward
        KeepCase(_init("self.arch = torch.ones(n)", extra="\n    def forward(self, x):\n        return x if self.arch[0] == 1 else -x\n")),
        KeepCase(_init("self.offset = torch.arange(n)", extra="\n    def forward(self, x):\n        return x\n"
                       "    def sample(self, walks):\n        return walks + self.offset\n")),
        # the class places its tensors on a device it is given
        KeepCase(HEADER + "class Net(nn.Module):\n    def __init__(self, n, device='cpu'):\n        super().__init__()\n"
                 "        self.window = torch.ones(n)\n        self.device = device\n"
                 "    def forward(self, x):\n        return torch.ones(3, device=self.device) * x * self.window\n", reported=True),
        # an index tensor: a CPU index selects from tensors on any device (fairseq's suppressed tokens)
        KeepCase(_init("self.suppress = torch.tensor([0, 3])", extra="\n    def forward(self, x):\n        x[:, self.suppress] = -1.0\n        return x\n")),
        # iterated for Python control flow (pytorch-tabnet's continuous-feature mask)
        KeepCase(_init("self.is_cont = torch.ones(n, dtype=torch.bool)", extra="\n    def forward(self, x):\n"
                       "        cols = [x[:, i] if c else -x[:, i] for i, c in enumerate(self.is_cont)]\n"
                       "        return torch.stack(cols, 1)\n")),
        # a scalar picked out of the tensor mixes with tensors on any device
        KeepCase(_init("self.schedule = torch.linspace(0, 1, n)", extra="\n    def forward(self, x, epoch):\n        return x / self.schedule[epoch]\n")),
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n"
            "def init_state(module, n):\n    module.mask = torch.zeros(n)\n\n"
            "class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
            "        init_state(self, n)\n        self.mask = torch.ones(n)\n"
            "    def forward(self, x):\n        return x * self.mask\n",
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
            "        setup(self)\n        self.mask = torch.ones(n)\n"
            "    def forward(self, x):\n        return x * self.mask\n",
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
            "        self.cache = torch.zeros(3)\n"
            "        return x * self.mask\n",
            reported=True,
        ),
        # the window is chosen by name: a tensor by default, but a caller may name anything
        KeepCase(HEADER + "class Loss(nn.Module):\n    def __init__(self, n, window='hann_window'):\n        super().__init__()\n"
                 "        self.window = getattr(torch, window)(n)\n"
                 "    def forward(self, x):\n        return torch.stft(x, 8, window=self.window, return_complex=True).abs().mean()\n",
                 reported=True),
        # a recurrent state set by a helper of __init__ and read before forward stores it again
        KeepCase(HEADER + "class Cell(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
                 "        self.gate = nn.Linear(n, n)\n        self.init_states(n)\n\n"
                 "    def init_states(self, n):\n        self.c_prev = torch.zeros(1, n)\n\n"
                 "    def forward(self, x):\n        c = torch.sigmoid(self.gate(x)) * self.c_prev + x\n"
                 "        self.c_prev = c.detach().mean(0, keepdim=True)\n        return c\n",
                 reported=True),
        # a cache stored in forward before it is read: it follows the inputs
        KeepCase(_init("self.last = torch.zeros(1, n)", extra="\n    def forward(self, x):\n"
                       "        self.last = x.detach().mean(0, keepdim=True)\n        return x + self.last\n")),
        # its only use hands it to a helper of the file that moves it to the input's device
        KeepCase(_init("self.bos = torch.tensor([[1, 2]])", extra="\n    def forward(self, ids):\n"
                       "        return with_boundary(ids, self.bos)\n").replace("class Net", WITH_BOUNDARY + "class Net")),
        # handed to code the file does not show, which places it itself
        KeepCase(_init("self.bos = torch.tensor([[1, 2]])", extra="\n    def forward(self, ids):\n"
                       "        return add_boundary(ids, self.bos)\n").replace("import math\n", "import math\nfrom boundaries import add_boundary\n")),
        # combined with tensors made on the CPU, then moved: kept on the CPU on purpose
        KeepCase(_init("self.betas = torch.linspace(0.1, 0.2, n)", extra="\n    def forward(self, x):\n"
                       "        prev = torch.cat((torch.ones(1), self.betas[:-1]))\n"
                       "        return x * prev.to(x.device)\n")),
        # offset by a local made on the CPU (dgl's DeepWalk index lists), then moved
        KeepCase(_init("self.idx = torch.LongTensor([0, 1, 1])", extra="\n    def forward(self, x):\n"
                       "        offset = torch.arange(2) * 3\n        idx = (offset.unsqueeze(1) + self.idx.unsqueeze(0)).view(-1)\n"
                       "        return x[idx.to(x.device)]\n")),
        # combined with a copy the code brings to the CPU (detections scaled on the host)
        KeepCase(_init("self.scale = torch.tensor([8., 8., 16., 16.])", "self.proj = nn.Linear(n, 4)",
                       extra="\n    def forward(self, x):\n        boxes = self.proj(x).detach().cpu()\n"
                       "        return boxes * self.scale\n")),
        # compared with lengths the code requires on the CPU (pack_padded_sequence raises on others)
        KeepCase(_init("self.steps = torch.arange(100)", "self.rnn = nn.GRU(n, n, batch_first=True)",
                       extra="\n    def forward(self, x, lengths):\n"
                       "        mask = (self.steps[None, : x.shape[1]] < lengths[:, None]).to(x.device)\n"
                       "        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)\n"
                       "        _, h = self.rnn(packed)\n        return h[-1] * mask.sum(1, keepdim=True)\n")),
        # the code compares its device before it uses it
        KeepCase(_init("self.cached = torch.empty(1)", extra="\n    def forward(self, x):\n"
                       "        if x.device != self.cached.device or not torch.equal(x, self.cached):\n"
                       "            self.cached = x\n        return x * 2\n")),
        # moved where it is used whenever a device is given
        KeepCase(_init("self.freqs = torch.randn(n)", extra="\n    def forward(self, x, device=None):\n"
                       "        freqs = self.freqs.to(device) if device is not None else self.freqs\n"
                       "        return x * freqs\n")),
        KeepCase(HEADER + "class Net(nn.Linear):\n    def __init__(self, n):\n        super().__init__(n, n)\n        self.mask = torch.ones(n)\n"),
        KeepCase(HEADER + "class Plain:\n    def __init__(self, n):\n        self.mask = torch.ones(n)\n"),
        # a parameter in a branch that may run too (not the other side of the same `if`)
        KeepCase(_init("self.bias = torch.zeros(n)", "if n > 1:", "    self.bias = nn.Parameter(torch.ones(n))")),
        KeepCase(_init("if n > 1:", "    self.bias = torch.zeros(n)", "if n > 2:", "    self.bias = nn.Parameter(torch.ones(n))")),
        # the caller's tensor, declared `Tensor`, combined with the input (botorch's AppendFeatures):
        # reported; not fixed, the caller may keep it on the CPU on purpose or hand in a parameter
        KeepCase(
            HEADER + "from abc import ABC\nfrom torch import Tensor\n\n\nclass Transform(ABC):\n"
            "    def forward(self, x):\n        return self.transform(x)\n\n"
            "class Append(Transform, nn.Module):\n    def __init__(self, features: Tensor):\n        super().__init__()\n"
            "        self.features = features\n\n    def transform(self, x):\n"
            "        return torch.cat([x, self.features.expand(x.shape[0], -1)], dim=-1)\n",
            reported=True,
        ),
        # declared only maybe a tensor, or not declared: nothing says what the caller hands in
        KeepCase(
            HEADER + "from typing import Optional\nfrom torch import Tensor\n\n\n"
            "class Append(nn.Module):\n    def __init__(self, features: Optional[Tensor], other):\n        super().__init__()\n"
            "        self.features = features\n        self.other = other\n\n    def forward(self, x):\n"
            "        return x + self.features + self.other\n"
        ),
        KeepCase(
            HEADER + "from torch import Tensor\n\n\nclass Append(nn.Module):\n    def __init__(self, *features: Tensor):\n"
            "        super().__init__()\n        self.features = features\n\n    def forward(self, x):\n"
            "        return torch.cat([x, *self.features], dim=-1)\n"
        ),
    )

    def wants(self, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        return tensors.is_tensor(site.value) or self._factory_by_argument(site) is not None or self._handed_in_tensor(site)

    def _handed_in_tensor(self, site: SelfAssignment) -> bool:
        """``self.x = x`` in ``__init__``, ``x`` a parameter annotated ``Tensor`` (not
        ``Optional``) and never rebound: the caller's tensor (botorch's AppendFeatures)."""
        value = site.value
        if site.method.name != "__init__" or not isinstance(value, ast.Name):
            return False
        found = only_param(self.model, value)
        if found is None:
            return False
        arg, args = found
        if arg is args.vararg or arg is args.kwarg:
            return False  # `*w: Tensor` is a tuple of them
        annotation = arg.annotation
        defaults = dict(zip([*args.posonlyargs, *args.args][::-1], args.defaults[::-1])) | dict(zip(args.kwonlyargs, args.kw_defaults))
        if defaults.get(arg) is not None:
            return False  # `w: Tensor = None` is Optional in all but name
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            return annotation.value in ("Tensor", "torch.Tensor")
        return annotation is not None and self.model.qualified_names(annotation) == {"torch.Tensor"}

    def _factory_by_argument(self, site: SelfAssignment) -> str | None:
        """``getattr(torch, window)(n)`` where ``window`` is a parameter of the method whose
        default names a tensor factory (``"hann_window"``): a tensor by default, but a caller
        may name anything. The parameter's name, or None."""
        value = site.value
        if not isinstance(value, ast.Call) or has_star_args(value) or requires_grad_true(value):
            return None
        getter = value.func
        if not (isinstance(getter, ast.Call) and isinstance(getter.func, ast.Name) and getter.func.id == "getattr"):
            return None
        if self.model.scope(getter.func).resolve("getattr") or len(getter.args) != 2 or getter.keywords:
            return None
        owner, name = getter.args
        if self.model.torch_qualified(owner) != "torch" or not isinstance(name, ast.Name):
            return None
        args = site.method.args
        positional = [*args.posonlyargs, *args.args]
        defaults = dict(zip([a.arg for a in positional][len(positional) - len(args.defaults):], args.defaults))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
        default = defaults.get(name.id)
        bindings = self.model.scope(name).resolve(name.id)
        if len(bindings) != 1 or bindings[0].kind != "param":
            return None  # rebound in the method: the default is not what reaches here
        if isinstance(default, ast.Constant) and isinstance(default.value, str) and default.value in TENSOR_FACTORIES:
            return name.id
        return None

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
        model = self.model
        parent = model.parent(use)
        if isinstance(parent, ast.Call) and use in parent.args and (
            any(k.arg == "device" for k in parent.keywords)
            or (isinstance(parent.func, ast.Attribute) and parent.func.attr == "new_tensor")
        ):
            return True  # `torch.as_tensor(self.w, device=x.device)`, `x.new_tensor(self.w)`
        # a shape-only view first, then moved: `self.w.expand(n, -1).to(x)`
        node = use
        while (isinstance(parent, ast.Attribute) and parent.value is node and parent.attr in SHAPE_VIEWS
               and isinstance(model.parent(parent), ast.Call) and model.parent(parent).func is parent):
            node = model.parent(parent)
            parent = model.parent(node)
        if node is not use and isinstance(parent, ast.Attribute) and parent.value is node and parent.attr in MOVES:
            call = model.parent(parent)
            return isinstance(call, ast.Call) and call.func is parent and bool(call.args or call.keywords or parent.attr == "cuda")
        parent = model.parent(use)
        if not isinstance(parent, ast.Attribute) or parent.value is not use:
            return False
        if parent.attr in READ_BACK:
            return True
        call = self.model.parent(parent)
        return parent.attr in MOVES and isinstance(call, ast.Call) and call.func is parent and bool(call.args or call.keywords or parent.attr == "cuda")

    def evidence(self, site: SelfAssignment) -> tuple[bool, str | None]:
        """A plain tensor is a defect only where the module's computation meets it: some read in
        ``forward`` (or a method ``forward`` calls) combines it with another tensor without
        moving it first. A tensor only compared with numbers, tested in an ``if``, indexed to
        one element, or read by code outside ``forward`` (a sampler, a ``collate_fn``) is left
        alone. A fix is offered only where nothing says the code places the tensor itself: it
        is stored once, read by the class alone, and the class makes no tensors on a device of
        its own choosing (a ``device`` argument or attribute, ``torch.set_default_device``)."""
        model = self.model
        family = model.class_family(site.cls)
        methods: dict[str, list] = {}
        for member in family:
            for method in class_methods(member):
                methods.setdefault(method.name, []).append(method)
        reachable = _reachable(model, site.cls, methods)
        if not reachable:
            return False, None  # no forward: not used as a layer
        if _registered_by_name(model, family, site.attr):
            return False, None  # a placeholder where another path registers the buffer itself
        uses = [use for use in model.attributes.get(site.attr, ()) if use is not site.target]
        remade = [use for use in uses if not isinstance(use.ctx, ast.Load) and model.enclosing_function(use) in reachable]
        meeting_reads = [
            (use, node) for use in uses
            if isinstance(use.ctx, ast.Load) and isinstance(use.value, ast.Name) and model.enclosing_function(use) in reachable
            and (node := _combines(model, use, 0)) is not None
        ]
        if remade:
            # made again as the module computes (a cache, a moved copy): from then on it follows
            # its inputs. It still meets them unmoved when a read comes first, in the method
            # that stores it again (the first call reads what __init__ made): a recurrent state
            # `c = f * self.c_prev; self.c_prev = c.detach()`. A copy moved and stored back
            # (`self.pe = self.pe.to(x.device)`) is never read unmoved.
            if any(self._moved_copy(store, site) for store in remade):
                return False, None
            meeting_reads = [
                (use, node) for use, node in meeting_reads
                if all(
                    model.enclosing_function(store) is model.enclosing_function(use) and _before(use, store)
                    for store in remade
                )
            ]
        meeting = [node for _, node in meeting_reads]
        if not meeting:
            return False, None
        if any(self._device_compared(use) for use in uses):
            return False, None  # the code checks where the tensor is before it uses it
        if any(self._meets_cpu_made(use) for use, _ in meeting_reads):
            # combined with tensors made on the CPU (`torch.cat((torch.ones(1), beta))`): kept on
            # the CPU on purpose; as a buffer it would meet them on another device and raise
            return False, None
        if self._places_tensors_itself(family):
            # a `device` argument or attribute: the class decides where its tensors live, and
            # `.to()` moves none of them; reported, but a buffer alone would not make it follow
            return True, "the class places its tensors on a device it keeps itself"
        return True, self._unproven(site, family, meeting)

    def _device_compared(self, use: ast.Attribute) -> bool:
        parent = self.model.parent(use)
        return (
            isinstance(parent, ast.Attribute) and parent.value is use and parent.attr == "device"
            and isinstance(self.model.parent(parent), ast.Compare)
        )

    def _meets_cpu_made(self, use: ast.Attribute) -> bool:
        """In the function that reads it, the value (or a local computed from it) meets, in an
        operation, a value that is on the CPU whatever the module's device: a tensor made there
        (a torch factory called without ``device=``, ``torch.from_numpy``), a copy brought there
        (``.cpu()``, ``.numpy()``), a name the code itself requires there (handed as the lengths
        of ``pack_padded_sequence``), or a local computed from one of them
        (``offset = torch.arange(b) * n``, ``boxes = self.proj(x).cpu()``). The tensor is kept
        on the CPU to meet it."""
        model = self.model
        function = model.enclosing_function(use)
        if function is None:
            return False
        derived: set[str] = set()
        cpu_made: set[str] = self._required_on_cpu(function)
        for stmt in sorted(model.nodes(ast.Assign, function), key=lambda n: (n.lineno, n.col_offset)):
            if model.enclosing_function(stmt) is not function:
                continue
            targets = {t.id for t in stmt.targets if isinstance(t, ast.Name)}
            names = [n for n in model.nodes(ast.Name, stmt.value) if isinstance(n.ctx, ast.Load)]
            if any(n is use for n in ast.walk(stmt.value)) or any(n.id in derived for n in names):
                derived |= targets
            elif not _moved_at_top(stmt.value) and (
                any(self._cpu_made(c) for c in model.nodes(ast.Call, stmt.value)) or any(n.id in cpu_made for n in names)
            ):
                cpu_made |= targets
        reads: list[ast.AST] = [use]
        reads += [n for n in model.nodes(ast.Name, function) if isinstance(n.ctx, ast.Load) and n.id in derived]
        for read in reads:
            inside = {id(n) for n in ast.walk(read)}
            for around in model.ancestors(read):
                if isinstance(around, ast.stmt):
                    break
                inside.add(id(around))  # what the read itself goes through is not its partner
                if not isinstance(around, (ast.BinOp, ast.Compare, ast.Call)):
                    continue
                for node in ast.walk(around):
                    if id(node) in inside:
                        continue
                    if (isinstance(node, ast.Call) and self._cpu_made(node)) or (
                        isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in cpu_made
                    ):
                        return True
        return False

    def _required_on_cpu(self, function) -> set[str]:
        """Names ``function`` hands, as they are, where torch requires a CPU tensor: the
        lengths of ``pack_padded_sequence`` (a CUDA tensor there raises). The caller keeps
        them on the CPU, whatever the module's device."""
        model = self.model
        found: set[str] = set()
        for call in model.nodes(ast.Call, function):
            if model.qualified_names(call.func) != {"torch.nn.utils.rnn.pack_padded_sequence"}:
                continue
            lengths = [k.value for k in call.keywords if k.arg == "lengths"]
            if len(call.args) > 1 and not isinstance(call.args[0], ast.Starred):
                lengths.append(call.args[1])
            found.update(arg.id for arg in lengths if isinstance(arg, ast.Name))
        return found

    def _cpu_made(self, call: ast.Call) -> bool:
        """A CPU tensor (or array) not moved on the spot: a torch factory called without
        ``device=``, or a copy brought to the CPU (``t.cpu()``, ``t.numpy()``)."""
        if self._cpu_factory(call):
            return True
        func = call.func
        return (
            isinstance(func, ast.Attribute) and func.attr in ("cpu", "numpy") and self.model.torch_qualified(func) is None
            and not (call.args and func.attr == "cpu") and self._stays_put(call)
        )

    def _cpu_factory(self, call: ast.Call) -> bool:
        """A torch factory called without ``device=`` whose result is not moved on the spot."""
        model = self.model
        if isinstance(call.func, ast.Call):
            return False
        qname = model.torch_qualified(call.func)
        if qname is None or qname.count(".") != 1:
            return False
        factory = qname.split(".")[1]
        if factory not in TENSOR_FACTORIES or factory.endswith("_like") or has_star_args(call):
            return False
        if any(k.arg in ("device", None) for k in call.keywords):
            return False
        return self._stays_put(call)

    def _stays_put(self, call: ast.Call) -> bool:
        """No method of the chain on ``call``'s result moves it
        (``torch.zeros(n).unsqueeze(0).to(device)``, ``t.cpu().cuda()``) or reads it back to
        Python (``t.cpu().item()``, ``.tolist()``, ``.shape``: numbers mix with any device)."""
        model = self.model
        node: ast.AST = call
        while True:
            holder = model.parent(node)
            if isinstance(holder, ast.Attribute) and holder.value is node:
                if holder.attr in MOVES or holder.attr in READ_BACK - {"numpy"}:
                    return False
                after = model.parent(holder)
                node = after if isinstance(after, ast.Call) and after.func is holder else holder
                continue
            return True

    def _moved_copy(self, store: ast.Attribute, site: SelfAssignment) -> bool:
        holder = self.model.parent(store)
        value = getattr(holder, "value", None)
        return value is not None and any(
            isinstance(node, ast.Attribute) and node.attr == site.attr for node in ast.walk(value)
        ) and any(
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MOVES
            for node in ast.walk(value)
        )

    def _places_tensors_itself(self, family) -> bool:
        model = self.model
        if "set_default_device" in model.called:
            return True
        for member in family:
            for method in class_methods(member):
                params = method.args.posonlyargs + method.args.args + method.args.kwonlyargs
                if any(param.arg == "device" for param in params):
                    return True
            for node in model.nodes(ast.Attribute, member):
                if node.attr == "device" and isinstance(node.ctx, ast.Store):
                    return True
        return False

    def _unproven(self, site: SelfAssignment, family, meeting: list[ast.AST]) -> str | None:
        model = self.model
        attr = site.attr
        chooser = self._factory_by_argument(site)
        if chooser is not None:
            return f"the factory is named by the argument `{chooser}`, which a caller may set to something that is not a tensor"
        if attr.startswith("__") and not attr.endswith("__"):
            return "a private name, which Python mangles"
        if self._handed_in_tensor(site):
            return "the tensor is the caller's, who may keep it where it is on purpose or hand in a parameter"
        for use in model.attributes.get(attr, ()):
            if use is site.target:
                continue
            if not isinstance(use.ctx, ast.Load) and model.enclosing_function(use) is not site.method:
                return "the attribute is stored elsewhere too, where the code may choose its device"
            if model.enclosing_class(use) not in family:
                return "code outside the class reads it, and may combine it with tensors it keeps on the CPU"
        for node in meeting:
            for other in self._attributes_feeding(node):
                if other.attr != attr and isinstance(other.value, ast.Name) and self._plain_elsewhere(other.attr, family):
                    return (f"it meets `{other.attr}`, also a plain tensor where it is set: registering one of them "
                            "alone would part them on .to(device)")
        return None

    def _attributes_feeding(self, node: ast.AST) -> list[ast.Attribute]:
        """The attribute reads in ``node``, and in what the locals it reads were assigned in its
        function (``f_mat = self.f_central.repeat(...)``; one step back)."""
        model = self.model
        found = list(model.nodes(ast.Attribute, node))
        names = {n.id for n in model.nodes(ast.Name, node) if isinstance(n.ctx, ast.Load)}
        function = model.enclosing_function(node)
        if not names or function is None:
            return found
        found.extend(self._assigned_to(function, names))
        # a parameter of a method: what its callers in the class pass (one call step back)
        positional = [a.arg for a in function.args.posonlyargs + function.args.args][1:]
        wanted = {i: name for i, name in enumerate(positional) if name in names}
        cls = model.enclosing_class(function)
        if wanted and cls is not None:
            for call in model.nodes(ast.Call, cls):
                func = call.func
                if isinstance(func, ast.Attribute) and func.attr == function.name and isinstance(func.value, ast.Name):
                    for index in wanted:
                        if index < len(call.args):
                            arg = call.args[index]
                            found.extend(model.nodes(ast.Attribute, arg))
                            caller = model.enclosing_function(call)
                            arg_names = {n.id for n in model.nodes(ast.Name, arg) if isinstance(n.ctx, ast.Load)}
                            if caller is not None and arg_names:
                                found.extend(self._assigned_to(caller, arg_names))
        return found

    def _assigned_to(self, function, names: set[str]) -> list[ast.Attribute]:
        found = []
        for assign in self.model.nodes(ast.Assign, function):
            if any(isinstance(t, ast.Name) and t.id in names for t in assign.targets):
                found.extend(self.model.nodes(ast.Attribute, assign.value))
        return found

    def _plain_elsewhere(self, attr: str, family) -> bool:
        """``self.<attr>`` is stored, somewhere in the class, a value computed by tensor code
        (not a parameter, a layer or a number)."""
        model = self.model
        for use in model.attributes.get(attr, ()):
            if isinstance(use.ctx, ast.Store) and model.enclosing_class(use) in family:
                holder = model.parent(use)
                value = getattr(holder, "value", None)
                method = model.enclosing_function(use)
                if isinstance(value, ast.Call) and requires_grad_true(value):
                    continue  # it wants to be a parameter (TFM302), which follows the module
                if isinstance(value, ast.Subscript) and _whole_slice(value.slice):
                    return True  # a slice of something: a tensor, as far as can be told
                if value is not None and method is not None and TensorExpressions(model, self._local_tensors(method)).is_tensor(value):
                    return True
        return False

    def refuses_use(self, use: ast.Attribute) -> bool:
        return self.gets_requires_grad(use)  # made trainable later: it wants to be a Parameter

    def other_store_ok(self, value: ast.expr, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        return tensors.is_tensor(value) or self.is_same_attribute_chain(value, site)

    def store_verdict(self, value: ast.expr, target: ast.Attribute, site: SelfAssignment, tensors: TensorExpressions) -> str:
        """A tensor (or a copy of the attribute itself) is what a buffer accepts. A value made
        by a tensor method or a torch function whose inputs the analysis cannot follow
        (``self.c = c.detach()``) is reported without a fix; anything else (a number, a list)
        says the attribute is not a tensor attribute."""
        if self.other_store_ok(value, site, TensorExpressions(self.model, self._function_tensors(target))):
            return "ok"
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            qname = self.model.torch_qualified(value.func)
            if (qname is not None and qname.count(".") == 1) or (qname is None and value.func.attr in TENSOR_METHODS - MODULE_ATTRIBUTES):
                return "report"
        return "refuse"

    def _function_tensors(self, node: ast.AST) -> set[str]:
        function = self.model.enclosing_function(node)
        return self._local_tensors(function) if function is not None else set()

    def rebinding_reason(self, site: SelfAssignment) -> str:
        return "the attribute is stored elsewhere too, with a value the analysis cannot follow"

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


# views that only change the shape (the tensor stays where it is)
SHAPE_VIEWS = frozenset({"view", "reshape", "expand", "expand_as", "unsqueeze", "squeeze", "transpose", "permute", "t", "flatten"})
# builtins that read a tensor back to Python (or only look at it)
_PYTHON_READS = frozenset({"len", "int", "float", "bool", "str", "repr", "print", "isinstance", "type", "id", "range", "hasattr"})
# builtins that iterate the tensor: its elements are one-element picks, which meet tensors on any device
_ITERATING = frozenset({"enumerate", "zip", "iter", "list", "tuple", "reversed", "sorted", "set", "any", "all"})


def _reachable(model, cls: ast.ClassDef, methods: dict[str, list]) -> set:
    """What runs when the module computes: ``forward``, methods that call ``self.forward`` or
    ``self(...)`` themselves (a policy's ``sample``, a model's ``generate``), and what they call.
    Empty when the family has no ``forward``."""
    computing = [
        method for group in methods.values() for method in group
        if any(
            (isinstance(c.func, ast.Attribute) and c.func.attr == "forward" and isinstance(c.func.value, ast.Name)
             and c.func.value.id == self_name(method))
            or (isinstance(c.func, ast.Name) and c.func.id == self_name(method))
            for c in model.nodes(ast.Call, method)
        )
    ]
    if "forward" not in methods and "__call__" not in methods and not computing:
        return set()
    return model.methods_reached(cls, computing)


def _moved_at_top(value: ast.AST) -> bool:
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in MOVES


def _moved_same(read: ast.AST, other: ast.AST) -> bool:
    """``other`` is ``read`` moved: ``<read>.to(...)``/``.cuda(...)``/``.type_as(...)``."""
    return (
        isinstance(other, ast.Call) and isinstance(other.func, ast.Attribute) and other.func.attr in MOVES
        and ast.dump(other.func.value) == ast.dump(read)
    )


def _before(first: ast.AST, second: ast.AST) -> bool:
    return (first.lineno, first.col_offset) < (second.lineno, second.col_offset)


def _constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) or (isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant))


def _whole_slice(index: ast.AST) -> bool:
    """An index that keeps a dimension (``[:, :n]``, ``[..., None]``): the result is a tensor
    of more than one element, not a scalar picked out of it."""
    parts = index.elts if isinstance(index, ast.Tuple) else [index]
    return any(isinstance(p, ast.Slice) or (isinstance(p, ast.Constant) and p.value in (None, Ellipsis)) for p in parts)


def _combines(model, expr: ast.AST, depth: int) -> ast.AST | None:
    """Where the value read at ``expr`` meets another tensor in an operation, unmoved (None:
    nowhere)."""
    while True:
        parent = model.parent(expr)
        if isinstance(parent, ast.Tuple) and isinstance(model.parent(parent), ast.Subscript) and model.parent(parent).slice is parent:
            return None  # an index: indices on the CPU index tensors on any device
        if isinstance(parent, ast.Subscript) and parent.slice is expr:
            return None
        if isinstance(parent, ast.Subscript) and parent.value is expr:
            if not _whole_slice(parent.slice):
                return None  # one element: a CPU scalar mixes with tensors on any device
            expr = parent
        elif isinstance(parent, ast.Attribute) and parent.value is expr:
            if parent.attr in MOVES or parent.attr in READ_BACK:
                return None
            call = model.parent(parent)
            if isinstance(call, ast.Call) and call.func is parent:
                if any(not _constant(a) for a in (*call.args, *(k.value for k in call.keywords))):
                    return call
                expr = call
            else:
                expr = parent
        elif isinstance(parent, ast.BinOp):
            other = parent.right if parent.left is expr else parent.left
            if not _constant(other):
                return parent
            expr = parent
        elif isinstance(parent, ast.UnaryOp):
            expr = parent
        elif isinstance(parent, ast.Compare):
            others = [n for n in (parent.left, *parent.comparators) if n is not expr]
            if not all(_constant(n) for n in others):
                return parent
            expr = parent  # `self.mask == 0` is a mask too, unless an `if` only tests it
        elif isinstance(parent, ast.keyword):
            call = model.parent(parent)
            return call if _call_combines(model, call, parent, depth) else None
        elif isinstance(parent, ast.Call):
            return parent if parent.func is not expr and _call_combines(model, parent, expr, depth) else None
        elif isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is expr:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            if depth > 1 or len(targets) != 1 or not isinstance(targets[0], ast.Name):
                return None if isinstance(targets[0], ast.Attribute) else parent  # stored back on self: not used here
            function = model.enclosing_function(parent)
            name = targets[0].id
            for node in model.nodes(ast.Name, function):
                if node.id == name and isinstance(node.ctx, ast.Load) and (node.lineno, node.col_offset) > (parent.lineno, parent.col_offset):
                    found = _combines(model, node, depth + 1)
                    if found is not None:
                        return found
            return None
        elif isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.BoolOp, ast.Assert)) :
            if isinstance(parent, ast.IfExp) and parent.test is not expr:
                other = parent.orelse if parent.body is expr else parent.body
                if _moved_same(expr, other):
                    return None  # `self.f.to(device) if device is not None else self.f`: the code places it
                expr = parent
                continue
            return None
        elif isinstance(parent, (ast.Expr, ast.Delete)):
            return None
        elif isinstance(parent, (ast.For, ast.comprehension)) and parent.iter is expr:
            return None  # iterated: each element is a one-element pick
        else:
            return parent  # returned, handed into a container, a starred argument: it may meet anything


def _call_combines(model, call: ast.Call, argument: ast.AST, depth: int) -> bool:
    """Whether handing the value to ``call`` (as ``argument``: a positional argument or a
    keyword) may combine it with another tensor unmoved. Functions and methods of this file are
    followed into the parameter that receives it (a helper that moves it with
    ``.to(x.device)`` does not combine it); functions imported from outside torch are code the
    file does not show, which may place the tensor itself; torch functions, tensor methods and
    submodules combine it."""
    func = call.func
    if isinstance(func, ast.Name) and func.id in _PYTHON_READS | _ITERATING and model.qualified_names(func) == {f"builtins.{func.id}"}:
        return False
    if _context_method(model, func):
        return False  # `ctx.save_for_backward(t)` keeps the tensor for backward
    callees = _callees(model, call)
    if callees:
        if depth > 2:
            return True
        for definition, skip in callees:
            parameter = _parameter_for(definition, call, argument, skip)
            if parameter is None:
                return True
            names = [node for node in model.nodes(ast.Name, definition) if node.id == parameter and model.enclosing_function(node) is definition]
            # once the helper rebinds the name (`kernel = kernel.to(x)` in one branch, a new
            # kernel in the other) a read may see either: only reads before that are the argument
            rebound = min(((n.lineno, n.col_offset) for n in names if not isinstance(n.ctx, ast.Load)), default=None)
            reads = [
                node for node in names
                if isinstance(node.ctx, ast.Load) and (rebound is None or (node.lineno, node.col_offset) < rebound)
            ]
            if any(_combines(model, read, depth + 1) is not None for read in reads):
                return True
        return False
    qnames = model.qualified_names(func)
    if qnames and not any(q == "torch" or q.startswith(("torch.", "builtins.")) for q in qnames):
        if isinstance(func, ast.Attribute) and not isinstance(func.value, (ast.Name, ast.Attribute)):
            return True
        root = func
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and any(b.kind in ("import", "from-import") for b in model.scope(root).resolve(root.id)):
            return False  # imported code the file does not show: it may move the tensor itself
    return True


def _callees(model, call: ast.Call) -> list[tuple[ast.FunctionDef, int]]:
    """The defs of this file ``call`` runs, each with how many leading parameters the call
    does not fill (``self``, ``ctx``): functions of the file, methods of the calling class
    family called on ``self``, and ``Fn.apply(...)`` of an autograd Function of the file (its
    ``forward``)."""
    func = call.func
    if isinstance(func, ast.Name):
        defs = model.local_functions(func)
        return [(d, 0) for d in defs or () if not d.decorator_list]
    if not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
        return []
    function = model.enclosing_function(call)
    home = model.enclosing_class(call)
    if function is not None and home is not None and func.value.id == self_name(function):
        return [
            (m, 1) for member in model.class_family(home) for m in class_methods(member)
            if m.name == func.attr and not m.decorator_list
        ]
    if func.attr == "apply":
        classes = model.local_classes(func.value) or []
        forwards = [
            m for cls in classes for m in class_methods(cls)
            if m.name == "forward" and any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in m.decorator_list)
        ]
        return [(m, 1) for m in forwards] if len(forwards) == len(classes) else []
    return []


def _parameter_for(definition, call: ast.Call, argument: ast.AST, skip: int) -> str | None:
    """The parameter of ``definition`` that receives ``argument`` of ``call``."""
    args = definition.args
    positional = [a.arg for a in (*args.posonlyargs, *args.args)][skip:]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    if isinstance(argument, ast.keyword):
        names = {a.arg for a in (*args.args, *args.kwonlyargs)}
        return argument.arg if argument.arg in names else None
    for index, arg in enumerate(call.args):
        if arg is argument:
            return positional[index] if index < len(positional) else None
    return None


def _context_method(model, func: ast.AST) -> bool:
    """``ctx.<method>`` on the first parameter of an autograd Function's static ``forward``
    (or ``backward``): torch's context object, which stores and marks tensors."""
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return False
    function = model.enclosing_function(func)
    if function is None or function.name not in ("forward", "backward", "setup_context"):
        return False
    if not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list):
        return False
    params = [*function.args.posonlyargs, *function.args.args]
    return bool(params) and params[0].arg == func.value.id and func.attr in ("save_for_backward", "mark_dirty", "mark_non_differentiable")


def _registered_by_name(model, family, attr: str) -> bool:
    """The class registers ``attr`` itself somewhere (``self.register_buffer("mask", ...)``)."""
    for member in family:
        for call in model.nodes(ast.Call, member):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr in ("register_buffer", "register_parameter") and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant) and first.value == attr:
                    return True
    return False
