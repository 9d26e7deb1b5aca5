"""TFM502: ``register_backward_hook`` -> ``register_full_backward_hook`` (unsafe)."""

from __future__ import annotations

import ast

import libcst as cst

from torchfix_mod.legacy_rule import Applicability, Fix, FixCase, KeepCase, Rule
from torchfix_mod.screen import called_names


class FullBackwardHookRule(Rule):
    """
    ## What it does
    Finds calls to `Module.register_backward_hook(...)` and offers
    `register_full_backward_hook(...)`.

    ## Why is this bad?
    `register_backward_hook` is deprecated. On a module made of several
    operations its hook receives the gradients of the last operation only, not
    of the module's inputs, which silently gives wrong `grad_input`.

    ## Example
    ```python
    model.fc.register_backward_hook(log_grads)
    ```

    ## Use instead
    ```python
    model.fc.register_full_backward_hook(log_grads)
    ```

    ## Fix safety
    Unsafe: the full hook sees different `grad_input` on modules with several
    operations, fires at a different point, and rejects hooks on modules whose
    inputs or outputs are not tensors the way the old one did not. Applied only
    with `--unsafe-fixes`; review the hook.
    """

    code = "TFM502"
    name = "full-backward-hook"
    summary = "register_backward_hook is deprecated; use register_full_backward_hook"
    applicability = Applicability.UNSAFE

    fixes = (
        FixCase(
            "def attach(model, hook):\n    return model.fc.register_backward_hook(hook)\n",
            "def attach(model, hook):\n    return model.fc.register_full_backward_hook(hook)\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("def attach(model, hook):\n    return model.fc.register_full_backward_hook(hook)\n"),
        KeepCase("class Recorder:\n    def register_backward_hook(self, hook):\n        self.hook = hook\n"),
        KeepCase("def attach(t, hook):\n    return t.register_hook(hook)\n"),
    )

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        return "register_backward_hook" in called_names(tree)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "register_backward_hook":
            fix = Fix({func: lambda f: f.with_changes(attr=cst.Name("register_full_backward_hook"))}, unsafe=True)
            self.report(
                node,
                "`register_backward_hook` is deprecated and gives wrong grad_input on modules with several ops; "
                "use `register_full_backward_hook`",
                fix,
            )
