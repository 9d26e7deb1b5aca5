"""TFM502: ``register_backward_hook`` -> ``register_full_backward_hook`` (unsafe)."""

from __future__ import annotations

import ast

from torchfix_mod.edits import rename_attribute
from torchfix_mod.rule import Applicability, Fix, FixCase, KeepCase, Rule

OLD, NEW = "register_backward_hook", "register_full_backward_hook"


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

    ## Known problems
    Left alone: code kept for releases without the new API (either branch of an
    `if` that tests a version or `hasattr`, directly or through a flag or function
    of the file; an `except AttributeError`/`ImportError` fallback).
    """

    code = "TFM502"
    respects_version_gates = True
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
        # code kept for releases without the new API uses the old one on purpose
        KeepCase(
            "import torch\n\ndef attach(model, hook):\n"
            "    if hasattr(model, 'register_full_backward_hook'):\n"
            "        return model.register_full_backward_hook(hook)\n"
            "    else:\n        return model.register_backward_hook(hook)\n"
        ),
        KeepCase(
            "import torch\nfrom packaging import version\n\n"
            "FULL_HOOKS = version.parse(torch.__version__) >= version.parse('1.8')\n\n"
            "def attach(model, hook):\n"
            "    if not FULL_HOOKS:\n        return model.register_backward_hook(hook)\n"
            "    return model.register_full_backward_hook(hook)\n"
        ),
        KeepCase(
            "import torch\n\ndef new_hooks():\n    return hasattr(torch.nn.Module, 'register_full_backward_hook')\n\n"
            "def attach(model, hook):\n"
            "    return model.register_full_backward_hook(hook) if new_hooks() else model.register_backward_hook(hook)\n"
        ),
        KeepCase(
            "def attach(model, hook):\n    try:\n        return model.register_full_backward_hook(hook)\n"
            "    except AttributeError:\n        return model.register_backward_hook(hook)\n"
        ),
    )

    def check(self) -> None:
        if OLD not in self.model.called:
            return
        for call in sorted(self.model.nodes(ast.Call), key=lambda c: (c.lineno, c.col_offset, -c.end_lineno, -c.end_col_offset)):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == OLD:
                fix = Fix([self.edit(func, "Attribute", rename_attribute, NEW)], unsafe=True)
                self.report(
                    call,
                    f"`{OLD}` is deprecated and gives wrong grad_input on modules with several ops; use `{NEW}`",
                    fix,
                )
