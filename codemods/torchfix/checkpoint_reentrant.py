"""TFM702: ``torch.utils.checkpoint.checkpoint`` without ``use_reentrant``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import (
    argument,
    calls_to,
    change,
    has_star_args,
    has_star_kwargs,
    mentioned_around,
)
from torchfix_mod.rule import Applicability, Fix, FixCase, KeepCase, Rule

CHECKPOINT = "torch.utils.checkpoint.checkpoint"
SEQUENTIAL = "torch.utils.checkpoint.checkpoint_sequential"
# where `use_reentrant` may be passed by position (checkpoint takes it by keyword only)
POSITION = {CHECKPOINT: None, SEQUENTIAL: 3}
ADD_KEYWORD = change("add_keyword")


class CheckpointReentrantRule(Rule):
    """
    ## What it does
    Finds `torch.utils.checkpoint.checkpoint(...)` and
    `checkpoint_sequential(...)` calls that do not pass `use_reentrant`, and
    offers `use_reentrant=False`. TorchFix reports `checkpoint` as TOR003.

    ## Why is this bad?
    Without the argument PyTorch warns on every call and runs the old
    reentrant implementation, which PyTorch documents as the one to move away
    from: when no *input* of the checkpointed function requires grad (the
    first block of a frozen-embedding model, an input that is a plain batch),
    the parameters inside the block get **no gradient at all**, silently; it
    does not support `torch.autograd.grad`, keyword arguments, or inputs
    nested in containers. PyTorch has announced that the argument will become
    required. The non-reentrant variant (`use_reentrant=False`) has none of
    these limits and is the one PyTorch recommends.

    ## Example
    ```python
    from torch.utils.checkpoint import checkpoint

    x = checkpoint(self.block, x)
    ```

    ## Use instead
    ```python
    x = checkpoint(self.block, x, use_reentrant=False)
    ```

    ## Fix safety
    Unsafe: the two implementations differ on purpose. With
    `use_reentrant=False`, blocks whose inputs do not require grad start
    receiving gradients (that is the bug fix, but it changes training),
    gradients flow through tensors nested in the arguments, the recomputation
    stops early once the saved tensors are rebuilt, and memory use and speed
    change. Code that relied on the reentrant behaviour, or that must run on
    PyTorch older than 1.11 (no `use_reentrant` there), needs
    `use_reentrant=True` instead.

    ## Known problems
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Not reported: calls in a function that handles `use_reentrant` itself (a
    parameter or variable of that name, or the string `"use_reentrant"`, as
    in `ckpt_kwargs = {"use_reentrant": False} if ... else {}` followed by
    `checkpoint(block, x, **ckpt_kwargs)`), and wrappers that pass their own
    `**kwargs` on (`def ckpt(f, *args, **kwargs): return checkpoint(f, *args,
    **kwargs)`: their callers decide). Reported without a fix: other calls
    unpacking `**kwargs`, and `checkpoint_sequential` with `*args`.
    """

    code = "TFM702"
    respects_version_gates = True
    name = "checkpoint-use-reentrant"
    summary = "checkpoint without use_reentrant; pass use_reentrant=False (TorchFix TOR003)"
    applicability = Applicability.UNSAFE

    fixes = (
        FixCase(
            "import torch.nn as nn\nfrom torch.utils.checkpoint import checkpoint\n\n"
            "class Net(nn.Module):\n"
            "    def forward(self, x):\n"
            "        for block in self.blocks:\n"
            "            x = checkpoint(block, x)\n"
            "        return x\n",
            "import torch.nn as nn\nfrom torch.utils.checkpoint import checkpoint\n\n"
            "class Net(nn.Module):\n"
            "    def forward(self, x):\n"
            "        for block in self.blocks:\n"
            "            x = checkpoint(block, x, use_reentrant=False)\n"
            "        return x\n",
            unsafe=True,
        ),
        FixCase(
            "import torch\n\ny = torch.utils.checkpoint.checkpoint(fn, a, *rest, preserve_rng_state=False)\n"
            "z = torch.utils.checkpoint.checkpoint_sequential(model, 2, x)\n",
            "import torch\n\ny = torch.utils.checkpoint.checkpoint(fn, a, *rest, preserve_rng_state=False, use_reentrant=False)\n"
            "z = torch.utils.checkpoint.checkpoint_sequential(model, 2, x, use_reentrant=False)\n",
            unsafe=True,
        ),
        FixCase(
            "import torch.utils.checkpoint as cp\n\nout = cp.checkpoint(\n    layer,\n    hidden,\n)\n",
            "import torch.utils.checkpoint as cp\n\nout = cp.checkpoint(\n    layer,\n    hidden,\n    use_reentrant=False,\n)\n",
            unsafe=True,
        ),
        FixCase(
            "from torch.utils.checkpoint import checkpoint\n\n"
            "def run(a, b, x):\n    return checkpoint(b, checkpoint(a, x, use_reentrant=False))\n",
            "from torch.utils.checkpoint import checkpoint\n\n"
            "def run(a, b, x):\n    return checkpoint(b, checkpoint(a, x, use_reentrant=False), use_reentrant=False)\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("from torch.utils.checkpoint import checkpoint\n\ny = checkpoint(f, x, use_reentrant=True)\n"),
        KeepCase("from torch.utils.checkpoint import checkpoint_sequential\n\ny = checkpoint_sequential(m, 2, x, False)\n"),
        KeepCase(
            "from torch.utils.checkpoint import checkpoint\n\n"
            "def run(block, x, new_torch):\n"
            "    ckpt_kwargs = {\"use_reentrant\": False} if new_torch else {}\n"
            "    return checkpoint(block, x, **ckpt_kwargs)\n"
        ),
        KeepCase("from torch.utils.checkpoint import checkpoint\n\ny = checkpoint(f, x, **options)\n", reported=True),
        # a wrapper handing its callers' keywords on (transformers' `checkpoint_func` with offloading)
        KeepCase(
            "from torch.utils.checkpoint import checkpoint\n\n"
            "def checkpoint_func(function, *args, **kwargs):\n"
            "    with offload():\n"
            "        return checkpoint(function, *args, **kwargs)\n"
        ),
        KeepCase("def checkpoint(model, path):\n    pass\n\ncheckpoint(net, 'ckpt.pt')\n"),
        KeepCase("import deepspeed\n\ny = deepspeed.checkpointing.checkpoint(f, x)\n"),
    )

    def _passes_callers_keywords(self, node: ast.Call) -> bool:
        """``**kwargs`` is the enclosing function's own ``**`` parameter: its callers choose."""
        home = self.model.enclosing_function(node)
        star = home.args.kwarg if home is not None else None
        if star is None:
            return False
        return any(
            kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id == star.arg for kw in node.keywords
        )

    def check(self) -> None:
        for node, target in calls_to(self.model, POSITION):
            self._check(node, target)

    def _check(self, node: ast.Call, target: str) -> None:
        model = self.model
        if argument(node, "use_reentrant", POSITION[target]) is not None:
            return
        if mentioned_around(model, node, "use_reentrant", POSITION):
            return  # the code handles `use_reentrant` itself (a parameter, a kwargs dict, a version check)
        if self._passes_callers_keywords(node):
            return
        short = target.rpartition(".")[2]
        message = (
            f"`{short}` without `use_reentrant` runs the reentrant variant, which gives no gradient to the "
            "block's parameters when no input requires grad; pass `use_reentrant=False` (or `True` to keep it)"
        )
        if has_star_kwargs(node):
            self.report(node, message)
            return
        if POSITION[target] is not None and has_star_args(node):
            self.report(node, message)
            return
        fix = Fix([self.edit(node, "Call", ADD_KEYWORD, "use_reentrant", "False")], unsafe=True)
        self.report(node, message, fix)
