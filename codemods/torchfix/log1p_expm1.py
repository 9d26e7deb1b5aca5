"""TFM705: ``torch.log(1 + x)`` -> ``torch.log1p(x)``, ``torch.exp(x) - 1`` -> ``torch.expm1(x)``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import calls_to, change, comment_at_operator, is_one, qualified, reference
from torchfix_mod.rule import Fix, FixCase, ImportNeed, KeepCase, Rule

LOG = frozenset({"torch.log"})
EXP = frozenset({"torch.exp"})
LOG1P_CALL = change("log1p_call")
EXPM1_CALL = change("expm1_call")


def _input(call: ast.Call) -> tuple[ast.expr | None, bool]:
    """The input of ``f(x, ...)`` or ``f(input=x, ...)``, and whether it is the only argument."""
    if any(isinstance(arg, ast.Starred) for arg in call.args) or any(kw.arg is None for kw in call.keywords):
        return None, False
    alone = len(call.args) + len(call.keywords) == 1
    if call.args:  # without `*args`, positional arguments come before keywords
        return call.args[0], alone
    for kw in call.keywords:
        if kw.arg == "input":
            return kw.value, alone
    return None, False


class Log1pExpm1Rule(Rule):
    """
    ## What it does
    Finds `torch.log(1 + x)` (or `x + 1`) and `torch.exp(x) - 1`, with the
    literal `1` or `1.0`, and writes `torch.log1p(x)` and `torch.expm1(x)`.
    TorchFix reports the same as TOR106 and TOR107 (without a fix).

    ## Why is this bad?
    For small `x`, `1 + x` rounds away most of `x`'s digits before `log`
    sees it, and `exp(x) - 1` subtracts two nearly equal numbers: in float32,
    `torch.log(1 + x)` is exactly `0` for `x = 1e-10`, while
    `torch.log1p(x)` is `1e-10`. The dedicated functions compute the same
    value without the cancellation.

    ## Example
    ```python
    y = torch.log(1 + rate)
    z = torch.exp(h) - 1.0
    ```

    ## Use instead
    ```python
    y = torch.log1p(rate)
    z = torch.expm1(h)
    ```

    ## Fix safety
    `log1p` is a safe fix; `expm1` is unsafe: the TorchScript-based ONNX
    exporter (`torch.onnx.export(..., dynamo=False)`, the default before the
    dynamo exporter) has no translation for `expm1`, so a model that exported
    before the fix would stop exporting. Both are the same mathematical function, with the same result dtype
    (integer and bool tensors become the default float dtype either way) and
    the same gradient. The values themselves change in the last bits, always
    toward the exact result, which is the point; a test that compares
    bit-exact outputs against an old run may need its reference updated.

    ## Known problems
    Only the shapes above are matched: the literal must be exactly one and the
    other operand is kept as written (`torch.log(1 + a * b)` ->
    `torch.log1p(a * b)`; `torch.log(1 + x + y)` is `(1 + x) + y` and is left
    alone). Tensor methods (`x.exp() - 1`) are not checked. Reported without a
    fix: calls with other arguments (`out=`), a comment inside the
    expression, or a bare imported `log`/`exp` whose counterpart cannot be
    named without shadowing something.
    """

    code = "TFM705"
    name = "log1p-expm1"
    summary = "torch.log(1 + x) / torch.exp(x) - 1 lose precision; use torch.log1p / torch.expm1 (TorchFix TOR106/TOR107)"

    fixes = (
        FixCase(
            "import torch\n\n"
            "def f(rate):\n"
            "    a = torch.log(1 + rate)\n"
            "    b = torch.log(rate.clamp(min=0) + 1.0)\n"
            "    return a, b\n",
            "import torch\n\n"
            "def f(rate):\n"
            "    a = torch.log1p(rate)\n"
            "    b = torch.log1p(rate.clamp(min=0))\n"
            "    return a, b\n",
        ),
        FixCase(
            "import torch\n\n"
            "def f(h):\n"
            "    c = torch.exp(h) - 1\n"
            "    d = 2 * (torch.exp(-h) - 1.0) * scale\n"
            "    return c, d\n",
            "import torch\n\n"
            "def f(h):\n"
            "    c = torch.expm1(h)\n"
            "    d = 2 * torch.expm1(-h) * scale\n"
            "    return c, d\n",
            unsafe=True,
        ),
        FixCase(
            "import torch as T\nfrom torch import exp\n\ny = T.log(1 + a * b) + exp(z) - 1\n",
            "import torch as T\nfrom torch import exp\n\ny = T.log1p(a * b) + exp(z) - 1\n",
        ),
        FixCase(
            "import torch\nfrom torch import log\n\ny = log(1 + x)\n",
            "import torch\n\ny = torch.log1p(x)\n",
        ),
    )
    keeps = (
        KeepCase("import torch\n\ny = torch.log1p(x)\nz = torch.expm1(x)\n"),
        KeepCase("import torch\n\ny = torch.log(2 + x)\nz = torch.exp(x) - 2\nw = torch.log(1 - x)\n"),
        KeepCase("import torch\n\ny = torch.log(1 + x + y)\nz = 1 - torch.exp(x)\n"),
        KeepCase("import math\nimport numpy as np\n\ny = math.log(1 + x)\nz = np.exp(x) - 1\n"),
        KeepCase("import torch\n\ny = torch.log(1 + x, out=buf)\nz = torch.exp(x, out=buf) - 1\n", reported=True),
        KeepCase("import torch\n\ny = torch.log(1 +  # shift\n    x)\n", reported=True),
    )

    def check(self) -> None:
        model = self.model
        for node, _ in calls_to(model, LOG):
            self._check_log(node)
        for node in model.nodes(ast.BinOp):
            self._check_exp(node)

    def _check_log(self, node: ast.Call) -> None:
        model = self.model
        binop, alone = _input(node)
        if not (isinstance(binop, ast.BinOp) and isinstance(binop.op, ast.Add)):
            return
        if is_one(model, binop.left):
            keep_right = True
        elif is_one(model, binop.right):
            keep_right = False
        else:
            return
        message = "`torch.log(1 + x)` loses precision for small x; use `torch.log1p(x)`"
        func = self._counterpart(node.func, "log1p")
        if func is None or not alone or comment_at_operator(model, binop):
            self.report(node, message)
            return
        spelling, need = func
        edit = self.edit(node, "Call", LOG1P_CALL, spelling, "log1p", keep_right)
        self.report(node, message, self._fix(edit, node.func, "log", need))

    def _check_exp(self, node: ast.BinOp) -> None:
        model = self.model
        if not (isinstance(node.op, ast.Sub) and is_one(model, node.right) and isinstance(node.left, ast.Call)):
            return
        call = node.left
        arg, alone = _input(call)
        if qualified(model, call.func, EXP) is None or arg is None:
            return
        message = "`torch.exp(x) - 1` loses precision for small x; use `torch.expm1(x)`"
        func = self._counterpart(call.func, "expm1")
        if func is None or not alone or comment_at_operator(model, node):
            self.report(node, message)
            return
        spelling, need = func
        edit = self.edit(node, "BinaryOperation", EXPM1_CALL, spelling, "expm1")
        message += " (unsafe fix: the TorchScript-based ONNX exporter, `torch.onnx.export(..., dynamo=False)`, has no `expm1`)"
        self.report(node, message, self._fix(edit, call.func, "exp", need, unsafe=True))

    def _fix(self, edit, func: ast.AST, old_name: str, need: ImportNeed | None, unsafe: bool = False) -> Fix:
        # a bare `log` imported from torch is dropped once the fix leaves it unused
        removals = (ImportNeed("torch", old_name),) if isinstance(func, ast.Name) and func.id == old_name else ()
        return Fix([edit], imports=(need,) if need else (), removals=removals, unsafe=unsafe)

    def _counterpart(self, func: ast.AST, name: str) -> tuple[str | None, ImportNeed | None] | None:
        """How to spell torch's ``name`` for the call (None: rename the call's own attribute)."""
        if isinstance(func, ast.Attribute):
            return None, None
        return reference(self.model, func, ["torch"], name, package="torch")
