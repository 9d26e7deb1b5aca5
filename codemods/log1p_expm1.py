"""TFM705: ``torch.log(1 + x)`` -> ``torch.log1p(x)``, ``torch.exp(x) - 1`` -> ``torch.expm1(x)``."""

from __future__ import annotations

import ast

import libcst as cst

from torchfix_mod.codemods._api import is_one, qualified, reference
from torchfix_mod.legacy_rule import Fix, FixCase, ImportNeed, KeepCase, Rule
from torchfix_mod.screen import calls_to, nodes, resolved


LOG = frozenset({"torch.log"})
EXP = frozenset({"torch.exp"})


def _one(expr: ast.AST) -> bool:
    """Could ``expr`` be a literal the rule's ``is_one`` accepts (``1``, ``1.0``, ``0x1``...)?"""
    return isinstance(expr, ast.Constant) and not isinstance(expr.value, bool) and expr.value == 1


def _has_comment(node: cst.CSTNode) -> bool:
    return "#" in cst.Module([]).code_for_node(node)


def _input(call: cst.Call) -> tuple[cst.Arg | None, bool]:
    """The input of ``f(x, ...)`` or ``f(input=x, ...)``, and whether it is the only argument."""
    if any(arg.star for arg in call.args):
        return None, False
    for arg in call.args:
        if arg.keyword is None or arg.keyword.value == "input":
            return arg, len(call.args) == 1
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
    Safe: the same mathematical function, with the same result dtype
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
            "def f(rate, h):\n"
            "    a = torch.log(1 + rate)\n"
            "    b = torch.log(rate.clamp(min=0) + 1.0)\n"
            "    c = torch.exp(h) - 1\n"
            "    d = 2 * (torch.exp(-h) - 1.0) * scale\n"
            "    return a, b, c, d\n",
            "import torch\n\n"
            "def f(rate, h):\n"
            "    a = torch.log1p(rate)\n"
            "    b = torch.log1p(rate.clamp(min=0))\n"
            "    c = torch.expm1(h)\n"
            "    d = 2 * torch.expm1(-h) * scale\n"
            "    return a, b, c, d\n",
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

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        # the shapes the rule matches, with `log`/`exp` resolved through the file's imports
        for call in calls_to(tree, LOG):
            for value in [*call.args, *(k.value for k in call.keywords if k.arg == "input")]:
                if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) and (_one(value.left) or _one(value.right)):
                    return True
        for node in nodes(tree, ast.BinOp):
            if isinstance(node.op, ast.Sub) and _one(node.right) and isinstance(node.left, ast.Call):
                if not resolved(tree, node.left.func).isdisjoint(EXP):
                    return True
        return False

    def visit_Call(self, node: cst.Call) -> None:
        if qualified(self.facts, node.func, LOG) is None:
            return
        arg, alone = _input(node)
        binop = arg.value if arg is not None else None
        if not (isinstance(binop, cst.BinaryOperation) and isinstance(binop.operator, cst.Add)):
            return
        if is_one(binop.left):
            operand = binop.right
        elif is_one(binop.right):
            operand = binop.left
        else:
            return
        message = "`torch.log(1 + x)` loses precision for small x; use `torch.log1p(x)`"
        func = self._counterpart(node.func, "log1p")
        if func is None or not alone or _has_comment(binop.operator):
            self.report(node, message)
            return
        new_func, need = func
        keep_right = operand is binop.right

        def edit(call: cst.Call) -> cst.Call:
            (old,) = call.args
            value = old.value.right if keep_right else old.value.left
            return call.with_changes(func=new_func, args=[old.with_changes(value=value)])

        self.report(node, message, self._fix(node, edit, node.func, "log", need))

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not (isinstance(node.operator, cst.Subtract) and is_one(node.right) and isinstance(node.left, cst.Call)):
            return
        call = node.left
        arg, alone = _input(call)
        if qualified(self.facts, call.func, EXP) is None or arg is None:
            return
        message = "`torch.exp(x) - 1` loses precision for small x; use `torch.expm1(x)`"
        func = self._counterpart(call.func, "expm1")
        if func is None or not alone or _has_comment(node.operator):
            self.report(node, message)
            return
        new_func, need = func

        # a call needs no parentheses around it; keep them only if they hold a comment
        keep = any(_has_comment(paren) for paren in (*node.lpar, *node.rpar))

        def edit(binop: cst.BinaryOperation) -> cst.Call:
            parens = (binop.lpar, binop.rpar) if keep else ((), ())
            return binop.left.with_changes(func=new_func, lpar=parens[0], rpar=parens[1])

        self.report(node, message, self._fix(node, edit, call.func, "exp", need))

    def _fix(self, node, edit, func, old_name, need) -> Fix:
        # a bare `log` imported from torch is dropped once the fix leaves it unused
        removals = (ImportNeed("torch", old_name),) if isinstance(func, cst.Name) and func.value == old_name else ()
        return Fix({node: edit}, imports=(need,) if need else (), removals=removals)

    def _counterpart(self, func: cst.BaseExpression, name: str):
        if isinstance(func, cst.Attribute):
            return func.with_changes(attr=cst.Name(name)), None
        return reference(self.facts, func, ["torch"], name, package="torch")
