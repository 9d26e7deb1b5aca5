"""TFM701: ``torch.load`` without ``weights_only`` -> ``weights_only=True``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import (
    argument,
    calls_to,
    change,
    has_star_args,
    has_star_kwargs,
    keyword_arg,
    mentioned_around,
    value_of,
)
from torchfix_mod.rule import Applicability, Fix, FixCase, KeepCase, Rule

LOAD = frozenset({"torch.load", "torch.serialization.load"})
ADD_KEYWORD = change("add_keyword")


class TorchLoadWeightsOnlyRule(Rule):
    """
    ## What it does
    Finds `torch.load(...)` calls that do not pass `weights_only` and adds
    `weights_only=True`. TorchFix reports the same as TOR102.

    ## Why is this bad?
    `torch.load` unpickles. With `weights_only=False` a checkpoint can run any
    code while it loads (an object's `__reduce__` names a function and its
    arguments, and unpickling calls it), so loading a file from someone else is
    running their program. `weights_only=True` restricts unpickling to tensors,
    containers and a list of allowed types, and refuses anything else.
    PyTorch changed the default to `weights_only=True` in 2.6, so on recent
    versions a call without the argument is already restricted; on 1.13 to
    2.5 the same line loads anything. Writing it out makes the call mean the
    same on every version, and says at the call site that the file is only
    weights.

    ## Example
    ```python
    state = torch.load(path, map_location="cpu")
    ```

    ## Use instead
    ```python
    state = torch.load(path, map_location="cpu", weights_only=True)
    ```

    ## Fix safety
    Unsafe. On PyTorch 2.6 and later the call loads exactly what it loaded
    before, with one exception: the environment variable
    `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1` switches an *unspecified* default
    back to full unpickling, and can no longer do so once the argument is
    written. On PyTorch 1.13 to 2.5 the fix changes what loads: a
    checkpoint holding other pickled objects (an `argparse.Namespace`, a
    whole `nn.Module`, custom classes) stops loading with "Weights only load
    failed". Before 1.13 the parameter does not exist. If the file is trusted
    and holds such objects, write `weights_only=False` instead.

    ## Known problems
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Reported without a fix: calls passing `pickle_module` (by keyword or as
    the third positional argument) other than `None`: `weights_only=True`
    cannot be combined with a custom pickle module (torch raises
    "Can not safely load weights when explicit pickle_module is specified"),
    so the choice of `weights_only=False` is left to the author; calls with
    `**kwargs` (which may already hold `weights_only`) or `*args`.
    Not reported: calls in a function that handles `weights_only` itself (a
    parameter or variable of that name, a kwargs dict with the key `"weights_only"`,
    as in `torch.load(f, **weights_only_kwarg)` or a fallback under
    `if not weights_only:` for old PyTorch builds), where leaving it out is a
    decision, not an oversight.
    """

    code = "TFM701"
    respects_version_gates = True
    name = "torch-load-weights-only"
    summary = "torch.load without weights_only; pass weights_only=True (TorchFix TOR102)"
    applicability = Applicability.UNSAFE

    fixes = (
        FixCase(
            "import torch\n\nstate = torch.load(path, map_location='cpu')\n",
            "import torch\n\nstate = torch.load(path, map_location='cpu', weights_only=True)\n",
            unsafe=True,
        ),
        FixCase(
            "from torch import load as tload\n\n"
            "def restore(model, path):\n"
            "    model.load_state_dict(\n"
            "        tload(\n"
            "            path,\n"
            "            map_location=lambda s, loc: s,  # keep on CPU\n"
            "        )\n"
            "    )\n",
            "from torch import load as tload\n\n"
            "def restore(model, path):\n"
            "    model.load_state_dict(\n"
            "        tload(\n"
            "            path,\n"
            "            map_location=lambda s, loc: s,  # keep on CPU\n"
            "            weights_only=True,\n"
            "        )\n"
            "    )\n",
            unsafe=True,
        ),
        FixCase(
            "import torch\n\ndef both(a, b):\n    return torch.load(a, weights_only=True), torch.load(b)\n",
            "import torch\n\ndef both(a, b):\n    return torch.load(a, weights_only=True), torch.load(b, weights_only=True)\n",
            unsafe=True,
        ),
        FixCase(
            "import torch\n\nsd = torch.load(\n    f, pickle_module=None\n)\n",
            "import torch\n\nsd = torch.load(\n    f, pickle_module=None, weights_only=True\n)\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("import torch\n\nsd = torch.load(path, weights_only=True)\n"),
        KeepCase("import torch\n\nobj = torch.load(path, weights_only=False)\n"),
        KeepCase("import torch\nimport dill\n\nobj = torch.load(path, pickle_module=dill)\n", reported=True),
        KeepCase("import torch\nimport dill\n\nobj = torch.load(path, None, dill)\n", reported=True),
        KeepCase("import torch\n\nobj = torch.load(path, **load_kwargs)\n", reported=True),
        KeepCase("import pickle\nimport numpy as np\n\nd = pickle.load(f)\na = np.load(path)\n"),
        KeepCase("def load(path):\n    return open(path).read()\n\nload('x')\n"),
        KeepCase(
            "import torch\n\n"
            "def load(path, weights_only=True):\n"
            "    try:\n"
            "        return torch.load(path, weights_only=weights_only)\n"
            "    except TypeError:  # PyTorch < 1.13 has no weights_only\n"
            "        if not weights_only:\n"
            "            return torch.load(path)\n"
            "        raise\n"
        ),
        KeepCase(
            "import torch\n\n"
            "def load(path, new_torch):\n"
            "    extra = {\"weights_only\": True} if new_torch else {}\n"
            "    return torch.load(path, **extra)\n"
        ),
    )

    def check(self) -> None:
        model = self.model
        for node, _ in calls_to(model, LOAD):
            self._check(node)

    def _check(self, node: ast.Call) -> None:
        model = self.model
        if keyword_arg(node, "weights_only") is not None:
            return
        if mentioned_around(model, node, "weights_only", LOAD):
            return  # the code handles `weights_only` itself (a parameter, a kwargs dict, a version check)
        message = (
            "`torch.load` without `weights_only`: pass `weights_only=True` unless the file is trusted "
            "and needs full unpickling"
        )
        pickle_module = argument(node, "pickle_module", 2)
        custom_pickle = pickle_module is not None and not (
            isinstance(value_of(pickle_module), ast.Constant) and value_of(pickle_module).value is None
        )
        if custom_pickle:
            message = (
                "`torch.load` with a custom `pickle_module` unpickles anything; "
                "`weights_only=True` cannot be combined with it: write `weights_only=False` if the file is trusted"
            )
        if custom_pickle or has_star_args(node) or has_star_kwargs(node):
            self.report(node, message)
            return
        fix = Fix([self.edit(node, "Call", ADD_KEYWORD, "weights_only", "True")], unsafe=True)
        self.report(node, message, fix)
