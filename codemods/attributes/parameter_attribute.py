"""TFM302: a tensor attribute created with ``requires_grad=True`` becomes an ``nn.Parameter``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods._shared._attributes import SelfAssignment
from torchfix_mod.codemods._shared._tensor_factories import TENSOR_FACTORIES
from torchfix_mod.codemods.attributes._tensor_attributes import (
    TensorAttributeRule,
    TensorExpressions,
    has_star_args,
    is_constant,
    local_tensors,
    nn_reference,
)
from torchfix_mod.rule import Fix, FixCase, KeepCase
from torchfix_mod.semantic import dotted, keyword

HEADER = "import torch\nimport torch.nn as nn\n\n"


def _init(*lines: str, extra: str = "") -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class LR(nn.Module):\n    def __init__(self, dim, trainable=True):\n        super().__init__()\n{body}{extra}"


class ParameterAttributeRule(TensorAttributeRule):
    """
    ## What it does
    Finds tensors created with `requires_grad=True` and stored as plain
    attributes in `__init__` of an nn.Module, and wraps them in `nn.Parameter`.

    Also a tensor made trainable right after it is stored
    (`self.w = torch.zeros(n); self.w.requires_grad = True`, or any tensor
    expression: `self.w = torch.randn(n) * 0.01`).

    ## Why is this bad?
    A plain tensor attribute is not a parameter even when it requires grad:
    it is missing from `parameters()`, so the optimizer never updates it, and
    it is not moved by `.to(device)` or saved in `state_dict()`.

    ## Example
    ```python
    self.w = torch.randn(3, 3, requires_grad=True)
    ```

    ## Use instead
    ```python
    self.w = nn.Parameter(torch.randn(3, 3))
    ```

    ## Fix safety
    Safe: `nn.Parameter` requires grad by default (a non-literal
    `requires_grad=flag` is kept as `nn.Parameter(..., requires_grad=flag)`).
    The parameter joins `state_dict()`: a checkpoint saved before the fix
    lacks its key, so loading one with `strict=True` reports it missing.

    ## Known problems
    Left alone: the same cases as TFM301 (names the class family defines,
    classes with unknown bases or custom attribute access, stores before
    `super().__init__()`), and attributes stored elsewhere with anything but
    `None` or an `nn.Parameter` (a Parameter attribute rejects plain tensors).
    A tensor that forward stores again computed from itself
    (`self.lam = F.softmax(self.lam, -1)`) is reported without a fix, as is one
    initialised in place before the flag is set (in place on a Parameter
    raises), as is one made trainable afterwards whose tensor a local name also
    holds and the code reads elsewhere (`self.t = t; self.t.requires_grad = True;
    opt = SGD([t])`: a Parameter would be another tensor, and `t` would never get
    a gradient); flags set only on some paths are left alone.
    """

    code = "TFM302"
    name = "tensor-attribute-parameter"
    summary = "Tensor attribute with requires_grad=True is not a parameter; use nn.Parameter"

    fixes = (
        FixCase(
            _init("self.W = torch.zeros(dim, 1, dtype=torch.float, requires_grad=True)  # weight"),
            _init("self.W = nn.Parameter(torch.zeros(dim, 1, dtype=torch.float))  # weight"),
        ),
        FixCase(
            _init("self.b = torch.randn(dim, requires_grad=trainable)"),
            _init("self.b = nn.Parameter(torch.randn(dim), requires_grad=trainable)"),
        ),
        FixCase(
            # made trainable by the flag set after it is created
            _init("self.w = torch.zeros(1, dim).to('cpu')", "self.w.requires_grad = True"),
            _init("self.w = nn.Parameter(torch.zeros(1, dim).to('cpu'))", "self.w.requires_grad = True"),
        ),
        FixCase(
            # a product is a fresh tensor: the flag made it a trainable leaf, as nn.Parameter does
            _init("self.w = torch.randn(dim) * 0.01", "self.w.requires_grad = True"),
            _init("self.w = nn.Parameter(torch.randn(dim) * 0.01)", "self.w.requires_grad = True"),
        ),
        FixCase(
            # a local that nothing reads after the store
            _init("w = torch.empty(dim)", "w.normal_()", "self.w = w", "self.w.requires_grad = True"),
            _init("w = torch.empty(dim)", "w.normal_()", "self.w = nn.Parameter(w)", "self.w.requires_grad = True"),
        ),
    )
    keeps = (
        KeepCase(_init("self.W = torch.zeros(dim, requires_grad=False)")),
        KeepCase(_init("self.W = torch.zeros(dim, requires_grad=True)", extra="\n    def reset(self):\n        self.W = torch.zeros(3)\n")),
        KeepCase(_init("self.W = nn.Parameter(torch.zeros(dim))")),
        # forward stores a tensor computed from it: a Parameter attribute would reject that
        KeepCase(_init("self.lam = torch.ones(dim, requires_grad=True)",
                       extra="\n    def forward(self, x):\n        self.lam = torch.softmax(self.lam, -1)\n        return x * self.lam\n"),
                 reported=True),
        # initialised in place before it is made trainable: in place on a Parameter raises
        KeepCase(_init("self.w = torch.empty(dim)", "self.w.normal_()", "self.w.requires_grad_()"), reported=True),
        # the local still holds the tensor the flag made trainable, and the optimizer trains that
        # one: as a Parameter the attribute would be another tensor, and the optimizer's would
        # never get a gradient
        KeepCase(_init("table = torch.randn(dim, 4)", "self.table = table", "self.table.requires_grad = True",
                       "self.opt = torch.optim.SGD([table], lr=0.1)"), reported=True),
        KeepCase(_init("table = torch.randn(dim, 4)", "self.opt = torch.optim.SGD([table], lr=0.1)",
                       "self.table = table.to('cpu')", "self.table.requires_grad = True"), reported=True),
        # made trainable only on one path
        KeepCase(_init("self.w = torch.zeros(dim)", "if trainable:", "    self.w.requires_grad = True")),
        KeepCase(HEADER + "class Plain:\n    def __init__(self, dim):\n        self.W = torch.zeros(dim, requires_grad=True)\n"),
    )

    def wants(self, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        value = site.value
        if self._made_trainable_later(site) and tensors.is_tensor(value):
            return True
        if not isinstance(value, ast.Call) or dotted(value.func) is None or has_star_args(value):
            return False
        qname = self.model.torch_qualified(value.func)
        flag = keyword(value, "requires_grad")
        return (
            qname is not None
            and qname.count(".") == 1
            and qname.split(".")[1] in TENSOR_FACTORIES
            and flag is not None
            and not is_constant(flag.value, False)
        )

    def message(self, site: SelfAssignment) -> str:
        return (
            f"`{site.self_arg}.{site.attr}` requires grad but is a plain tensor attribute: it is not in "
            "parameters(), so an optimizer built from parameters() never trains it; use nn.Parameter"
        )

    def _made_trainable_later(self, site: SelfAssignment) -> list[ast.Attribute]:
        """``self.w.requires_grad = True`` or ``self.w.requires_grad_()`` in the same method
        after the store, at its top level: the reads of ``self.w`` that make it trainable
        (empty when there is none)."""
        model = self.model
        found = []
        for use in model.attributes.get(site.attr, ()):
            if not (isinstance(use.value, ast.Name) and use.value.id == site.self_arg):
                continue
            if model.enclosing_function(use) is not site.method or (use.lineno, use.col_offset) <= (site.assign.lineno, site.assign.col_offset):
                continue
            flag = model.parent(use)
            if not (isinstance(flag, ast.Attribute) and flag.value is use):
                continue
            statement = model.statement(flag)
            if model.parent(statement) is not site.method:
                continue  # under a condition: maybe never trainable
            holder = model.parent(flag)
            if flag.attr == "requires_grad" and isinstance(holder, ast.Assign) and holder.targets == [flag] and is_constant(holder.value, True):
                found.append(use)
            elif flag.attr == "requires_grad_" and isinstance(holder, ast.Call) and holder.func is flag and not holder.keywords and (
                not holder.args or (len(holder.args) == 1 and is_constant(holder.args[0], True))
            ) and isinstance(model.parent(holder), ast.Expr):
                found.append(use)
        return found

    def evidence(self, site: SelfAssignment) -> tuple[bool, str | None]:
        """Made trainable by a flag set on the attribute after the store, the stored value may
        be a tensor a local name also holds (``self.table = table``, ``table.to("cpu")``, an
        in-place method's result). The flag made that very tensor trainable, and what else
        holds it sees that (``torch.optim.SGD([table])``); ``nn.Parameter(table)`` is another
        tensor, so a holder would never get a gradient. Reported without a fix when the
        method reads the local anywhere else but to initialise it before the store."""
        if not self._made_trainable_later(site):
            return True, None
        name = _held_local(site.value)
        if name is None or self._only_initialised(site, name):
            return True, None
        return True, (f"the same tensor is also held as `{name}`, which the code reads elsewhere: as an "
                      f"nn.Parameter the attribute would be another tensor, and what holds `{name}` would "
                      "never get a gradient")

    def _only_initialised(self, site: SelfAssignment, name: str) -> bool:
        """Every read of the local ``name`` in the method but the stored value is before the
        store and only initialises it: an in-place method called as a statement
        (``t.normal_()``) or a rebinding of ``name`` to a tensor computed from it."""
        model = self.model
        tensors = TensorExpressions(model, local_tensors(model, site.method))
        inside = {id(node) for node in ast.walk(site.value)}
        for node in model.nodes(ast.Name, site.method):
            if node.id != name or not isinstance(node.ctx, ast.Load) or id(node) in inside:
                continue
            if (node.lineno, node.col_offset) > (site.assign.lineno, site.assign.col_offset):
                return False
            statement = model.statement(node)
            method = model.parent(node)
            call = model.parent(method)
            if (
                isinstance(statement, ast.Expr) and statement.value is call and isinstance(call, ast.Call)
                and isinstance(method, ast.Attribute) and method.value is node and call.func is method
                and method.attr.endswith("_") and not method.attr.startswith("_")
            ):
                continue
            if (
                isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id == name
                and tensors.is_tensor(statement.value)
            ):
                continue
            return False
        return True

    def _read_before(self, site: SelfAssignment, trainable: list[ast.Attribute]) -> bool:
        """The attribute is read between its store and the line that makes it trainable (an
        in-place initialisation, ``self.w.normal_()``, is allowed on a tensor that does not
        require grad yet, and raises on a Parameter)."""
        model = self.model
        first = min((use.lineno, use.col_offset) for use in trainable)
        return any(
            use is not site.target and use not in trainable and model.enclosing_function(use) is site.method
            and (site.assign.lineno, site.assign.col_offset) < (use.lineno, use.col_offset) < first
            for use in model.attributes.get(site.attr, ())
        )

    def other_store_ok(self, value: ast.expr, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        # a Parameter attribute only accepts Parameters (or None)
        return isinstance(value, ast.Call) and self.model.qualified_names(value.func) == {"torch.nn.Parameter"}

    def store_verdict(self, value: ast.expr, target: ast.Attribute, site: SelfAssignment, tensors: TensorExpressions) -> str:
        """A value computed from the attribute itself (``self.lam = F.softmax(self.lam, -1)``
        in forward) keeps the trainable tensor the source of what the module computes: the bug
        stands, but assigning a plain tensor to a Parameter attribute raises TypeError, so it is
        reported without a fix. Any other value says the attribute is not a parameter."""
        if self.other_store_ok(value, site, tensors):
            return "ok"
        if any(isinstance(node, ast.Attribute) and node.attr == site.attr and isinstance(node.value, ast.Name)
               and isinstance(node.ctx, ast.Load) for node in ast.walk(value)):
            return "report"
        return "refuse"

    def rebinding_reason(self, site: SelfAssignment) -> str:
        return ("the attribute is stored again with a plain tensor computed from it, which a Parameter "
                "attribute would reject with TypeError")

    def fix_for(self, site: SelfAssignment) -> Fix | None:
        reference = nn_reference(self.model, "Parameter", site.assign)
        if reference is None:
            return None
        func, need = reference
        trainable = self._made_trainable_later(site)
        flag = keyword(site.value, "requires_grad") if isinstance(site.value, ast.Call) else None
        if trainable and flag is None:
            if self._read_before(site, trainable):
                return None
            # any value the flag made trainable: `nn.Parameter(value)` is the same leaf, which
            # requires grad from the start (a product is a fresh tensor; a local is checked by
            # `evidence` for other holders)
            edit = self.edit(site.assign, "Assign", _wrap_value, func)
            return Fix([edit], (need,) if need else ())
        if flag is None:
            return None
        keep_flag = not is_constant(keyword(site.value, "requires_grad").value, True)
        edit = self.edit(site.value, "Call", _wrap_in_parameter, func, keep_flag)
        return Fix([edit], (need,) if need else ())


# conversions that return the tensor itself when nothing changes (`t.to("cpu")` on the CPU)
_MAY_RETURN_SELF = frozenset({
    "to", "cpu", "cuda", "contiguous", "float", "double", "half", "bfloat16", "long", "int", "short",
    "bool", "byte", "type", "type_as",
})


def _held_local(value: ast.expr) -> str | None:
    """The local name whose tensor ``value`` may be (``t``, ``t.to("cpu")``, ``t.normal_()``:
    the same object), or None when the value is a tensor of its own (a product, a view, a
    factory's result)."""
    node = value
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        method = node.func.attr
        if not (method in _MAY_RETURN_SELF or (method.endswith("_") and not method.startswith("_"))):
            return None
        node = node.func.value
    return node.id if isinstance(node, ast.Name) else None


def _wrap_value(assign, func: str):
    """``self.w = value`` -> ``self.w = func(value)``."""
    import libcst as cst

    return assign.with_changes(value=cst.Call(func=cst.parse_expression(func), args=[cst.Arg(assign.value)]))


def _wrap_in_parameter(value, func: str, keep_flag: bool):
    """``factory(..., requires_grad=flag)`` -> ``func(factory(...))``, with ``requires_grad=flag``
    moved to the Parameter when ``keep_flag``."""
    import libcst as cst

    flag = next(a for a in value.args if a.keyword is not None and a.keyword.value == "requires_grad")
    args = [a for a in value.args if a is not flag]
    if args:  # the argument before the removed one must not keep a trailing comma
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    outer = [cst.Arg(value.with_changes(args=args))]
    if keep_flag:
        outer.append(cst.Arg(flag.value, keyword=cst.Name("requires_grad"), equal=flag.equal))
    return cst.Call(func=cst.parse_expression(func), args=outer)
