"""TFM301: a plain tensor attribute set in ``__init__`` becomes a registered buffer."""

from __future__ import annotations

import ast

import libcst as cst

from torchfix_mod.analysis import (
    TENSOR_FACTORIES,
    TENSOR_FUNCTIONS,
    TENSOR_METHODS,
    TORCH_MODULE_BASE,
    TensorExpressions,
    class_methods,
    statements_after_super_init,
    top_statement,
)
from torchfix_mod.containers import SelfAssignment, self_assignments
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule, RuleOptions
from torchfix_mod.screen import TensorScreen, methods, self_stores
from torchfix_mod.torch_facts import MODULE_ATTRIBUTES

HEADER = "import math\nimport torch\nimport torch.nn as nn\n\n"


def _init(*lines: str, extra: str = "") -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n{body}{extra}"


def class_body_names(cls: cst.ClassDef) -> set[str]:
    """Names defined in the class body: class attributes, methods, properties."""
    names: set[str] = set()
    if not isinstance(cls.body, cst.IndentedBlock):
        return names
    for stmt in cls.body.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                targets = []
                if isinstance(small, cst.Assign):
                    targets = [t.target for t in small.targets]
                elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                    targets = [small.target]
                names.update(t.value for t in targets if isinstance(t, cst.Name))
    return names


class RegisterBufferRule(Rule):
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
    Left alone: values not provably tensors (`torch.device`, dtypes,
    `torch.Size`, `torch.Generator()`, anything computed by unknown code);
    tensors created with `requires_grad=True` (they want `nn.Parameter`); names
    the class or its bases already define (class attributes, properties,
    methods, attributes of `nn.Module`), since `register_buffer` raises
    `KeyError` on them; attributes stored elsewhere with a non-tensor value or
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
            _init("self.scale = torch.tensor([7.0]) * 2"),
            _init('self.register_buffer("scale", torch.tensor([7.0]) * 2, persistent=True)'),
            options={"buffer_persistent": True},
        ),
    )
    keeps = (
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

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        tensors = TensorScreen(tree, TENSOR_FACTORIES, TENSOR_FUNCTIONS, TENSOR_METHODS)
        for method, self_arg in methods(tree):
            if method.name == "__init__":
                tainted = tensors.tainted_locals(method)
                if any(tensors.may_be_tensor(value, tainted) for value in self_stores(method, self_arg)):
                    return True
        return False

    def __init__(self, facts, options: RuleOptions) -> None:
        super().__init__(facts, options)
        self.classes: list[cst.ClassDef] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if self.facts.is_module_class(node):
            self.classes.append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        for cls in self.classes:
            init = next((f for f in class_methods(cls) if f.name.value == "__init__"), None)
            if init is not None:
                self.check_init(cls, init)

    # -- analysis -------------------------------------------------------------
    def check_init(self, cls: cst.ClassDef, init: cst.FunctionDef) -> None:
        facts = self.facts
        tensors = TensorExpressions(facts, self._local_tensors(init))
        after = statements_after_super_init(facts, init) or set()
        taken = self._names_taken(cls)
        if facts.customizes_attribute_access(cls) or "setattr" in facts.called:
            taken = None  # attributes may be reached or set out of the analysis' sight
        seen: set[str] = set()
        for site in self_assignments(facts, cls):
            if site.method is not init or site.attr in seen:
                continue
            seen.add(site.attr)  # only the first store can register the name
            if not tensors.is_tensor(site.value):
                continue
            message = (
                f"`{site.self_arg}.{site.attr}` is a plain tensor attribute: it does not follow "
                ".to(device)/.cuda()/.double(); register it with register_buffer"
            )
            if top_statement(facts, site.assign, init) not in after:
                self.report(site.assign, f"{message} (not fixed: assigned before nn.Module.__init__ runs)")
                continue
            if taken is None or site.attr in taken or site.attr in MODULE_ATTRIBUTES:
                continue
            if not self._other_stores_are_tensors(site, tensors):
                continue
            self.report(site.assign, message, Fix({site.assign: self._register(site)}))

    def _register(self, site: SelfAssignment):
        persistent = "True" if self.options.buffer_persistent else "False"
        self_arg, attr = site.self_arg, site.attr

        def edit(assign: cst.Assign) -> cst.Expr:
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

        return edit

    def _local_tensors(self, init: cst.FunctionDef) -> set[str]:
        """Local names of ``__init__`` bound only to tensor expressions (to a fixed point)."""
        facts = self.facts
        if not isinstance(init.body, cst.IndentedBlock) or not init.body.body:
            return set()
        scope = facts.scope(init.body.body[0])
        if scope is None:
            return set()
        values: dict[str, list[cst.BaseExpression]] = {}
        excluded: set[str] = set()
        for assignment in scope.assignments:
            holder = facts.parent(assignment.node) if isinstance(assignment.node, cst.Name) else None
            assign = facts.parent(holder) if isinstance(holder, cst.AssignTarget) else None
            if isinstance(assign, cst.Assign) and len(assign.targets) == 1 and holder.target is assignment.node:
                values.setdefault(assignment.name, []).append(assign.value)
            else:
                excluded.add(assignment.name)
        for assignment in scope.assignments:
            for access in assignment.references:
                if self._gets_requires_grad(access.node):
                    excluded.add(assignment.name)
        known: set[str] = set()
        changed = True
        while changed:
            changed = False
            checker = TensorExpressions(facts, known)
            for name, exprs in values.items():
                if name not in known and name not in excluded and all(checker.is_tensor(v) for v in exprs):
                    known.add(name)
                    changed = True
        return known

    def _names_taken(self, cls: cst.ClassDef) -> set[str] | None:
        """Attribute names the class, its bases or its subclasses in this file define
        (register_buffer raises KeyError on them, or bypasses a property's setter),
        or None when a base is unknown."""
        taken = set().union(*(class_body_names(member) for member in self.facts.class_family(cls)))
        for base in self.facts.base_classes(cls):
            if base == TORCH_MODULE_BASE:
                continue
            if not isinstance(base, cst.ClassDef):
                return None
            inherited = self._names_taken(base)
            if inherited is None:
                return None
            taken |= inherited
            taken |= {site.attr for site in self_assignments(self.facts, base)}
        return taken

    def _other_stores_are_tensors(self, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        """Every other store to the attribute in the file keeps it a tensor (or None)."""
        facts = self.facts
        for use in facts.attributes.get(site.attr, ()):
            if use is site.target:
                continue
            holder = facts.parent(use)
            if isinstance(holder, (cst.Element, cst.StarredElement)):
                return False  # `self.x, self.y = ...`: the value is not visible
            if self._gets_requires_grad(use):
                return False
            if isinstance(holder, cst.AssignTarget):
                value = facts.parent(holder).value
            elif isinstance(holder, cst.AnnAssign) and holder.target is use:
                value = holder.value
            else:
                continue
            if value is None or (isinstance(value, cst.Name) and value.value == "None"):
                continue
            if not (tensors.is_tensor(value) or self._is_same_attribute_chain(value, site)):
                return False
        return True

    def _gets_requires_grad(self, node: cst.CSTNode) -> bool:
        """``t.requires_grad = True`` / ``t.requires_grad_()``: the tensor wants to be a Parameter."""
        parent = self.facts.parent(node)
        return isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in {"requires_grad", "requires_grad_"} and not (
            parent.attr.value == "requires_grad" and not isinstance(self.facts.parent(parent), cst.AssignTarget)
        )

    @staticmethod
    def _is_same_attribute_chain(value: cst.BaseExpression, site: SelfAssignment) -> bool:
        """``self.x = self.x.to(device)`` and the like keep a tensor a tensor."""
        node = value
        while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            if node.func.attr.value not in TENSOR_METHODS:
                return False
            node = node.func.value
        return node is not value and isinstance(node, cst.Attribute) and node.attr.value == site.attr
