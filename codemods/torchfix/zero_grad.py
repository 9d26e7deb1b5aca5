"""TFM710: ``zero_grad(set_to_none=False)`` -> ``set_to_none=True``; off by default."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import argument, bool_literal, change, imported_from, in_source_order, value_of
from torchfix_mod.rule import Applicability, Fix, FixCase, KeepCase, Rule

SET_ARGUMENT = change("set_argument")


class ZeroGradSetToNoneRule(Rule):
    """
    ## What it does
    Reports `optimizer.zero_grad(set_to_none=False)` and
    `model.zero_grad(set_to_none=False)` (also the positional
    `zero_grad(False)`), and offers `set_to_none=True`. Off by default:
    select it with `--select TFM710`. Newer TorchFix releases report the same
    as TOR402 (off by default there too); TorchFix 0.7.0 does not have it.

    ## Why is this bad?
    Filling every gradient with zeros costs a kernel launch per parameter and
    keeps all gradient memory allocated between steps; setting them to `None`
    frees it, and the next `backward()` writes the gradient instead of adding
    to zeros. This is the pattern `torch.profiler` calls "gradient set to
    zero instead of None". Since PyTorch 2.0 `set_to_none=True` is the
    default, so only an explicit `False` still asks for the slow path.

    ## Example
    ```python
    optimizer.zero_grad(set_to_none=False)
    ```

    ## Use instead
    ```python
    optimizer.zero_grad(set_to_none=True)
    ```
    (`True` rather than dropping the argument: before PyTorch 2.0 the default
    was `False`.)

    ## Fix safety
    Unsafe: `None` and a zero tensor are not the same gradient. Code that reads
    or updates `p.grad` after `zero_grad()` (`p.grad.add_(...)`, gradient
    logging, clipping by hand) fails on `None`; and a parameter that gets no
    gradient in a step is *skipped* by `torch.optim` optimizers when its grad
    is `None`, whereas with a zero grad momentum and weight decay still move
    it. An explicit `False` is often there for one of these reasons, which is
    why the rule is off by default.

    ## Known problems
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Any method named `zero_grad` is checked, as the receiver's type is not
    known; calls through a module-level function imported by name are left
    alone. Values other than the literal `False` are not reported.
    """

    code = "TFM710"
    respects_version_gates = True
    name = "zero-grad-set-to-none"
    summary = "zero_grad(set_to_none=False) keeps zero-filled grads; use set_to_none=True (TorchFix TOR402)"
    applicability = Applicability.UNSAFE
    default_enabled = False

    fixes = (
        FixCase(
            "def step(model, optimizer, loss):\n"
            "    optimizer.zero_grad(set_to_none=False)\n"
            "    loss.backward()\n"
            "    optimizer.step()\n"
            "    model.zero_grad(False)\n",
            "def step(model, optimizer, loss):\n"
            "    optimizer.zero_grad(set_to_none=True)\n"
            "    loss.backward()\n"
            "    optimizer.step()\n"
            "    model.zero_grad(True)\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("optimizer.zero_grad()\nmodel.zero_grad(set_to_none=True)\n"),
        KeepCase("optimizer.zero_grad(set_to_none=args.to_none)\n"),
        KeepCase("from helpers import zero_grad\n\nzero_grad(False)\n"),
        KeepCase("import helpers\n\nhelpers.zero_grad(set_to_none=False)\n"),
    )

    def check(self) -> None:
        model = self.model
        for node in in_source_order(model.attributes.get("zero_grad", ())):
            call = model.parent(node)
            if isinstance(call, ast.Call) and call.func is node:
                self._check(call, node)

    def _check(self, node: ast.Call, func: ast.Attribute) -> None:
        if imported_from(self.model, func.value):
            return  # `helpers.zero_grad(...)`: a module's function, not a method
        arg = argument(node, "set_to_none", 0)
        if arg is None or bool_literal(value_of(arg)) is not False:
            return
        # the call is rewritten (not the argument: a positional one in parentheses of its own
        # is larger in LibCST than its value)
        fix = Fix([self.edit(node, "Call", SET_ARGUMENT, "set_to_none", 0, "True")], unsafe=True)
        self.report(
            node,
            "`zero_grad(set_to_none=False)` fills every gradient with zeros and keeps their memory; "
            "`set_to_none=True` frees it (the default since PyTorch 2.0)",
            fix,
        )
