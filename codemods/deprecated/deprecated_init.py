"""TFM501: deprecated ``nn.init`` functions without the trailing underscore."""

from __future__ import annotations

import ast

from torchfix_mod.edits import rename_attribute, rename_name
from torchfix_mod.rule import Fix, FixCase, ImportNeed, KeepCase, Rule
from torchfix_mod.semantic import dotted

INIT_MODULE = "torch.nn.init"
DEPRECATED = frozenset(
    {
        "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "normal", "uniform",
        "constant", "orthogonal", "sparse", "eye", "dirac",
    }
)


class DeprecatedInitRule(Rule):
    """
    ## What it does
    Finds calls to the `torch.nn.init` functions without a trailing underscore
    (`xavier_uniform`, `xavier_normal`, `kaiming_uniform`, `kaiming_normal`,
    `normal`, `uniform`, `constant`, `orthogonal`, `sparse`, `eye`, `dirac`),
    in any import spelling, and calls the in-place version instead.

    ## Why is this bad?
    They are deprecated: each call warns "`nn.init.xavier_uniform` is now
    deprecated in favor of `nn.init.xavier_uniform_`", and they may be removed.

    ## Example
    ```python
    nn.init.xavier_uniform(m.weight)
    ```

    ## Use instead
    ```python
    nn.init.xavier_uniform_(m.weight)
    ```

    ## Fix safety
    Safe: the deprecated function only warns and calls the underscore version,
    so values under a fixed seed are identical. A function imported by name
    (`from torch.nn.init import xavier_uniform`) is renamed at the call and the
    import follows (the old name is dropped once unused).

    ## Known problems
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Reported without a fix: names imported under an alias
    (`import ... as xu`), and calls where the underscore name is already bound
    to something else in the file.
    """

    code = "TFM501"
    respects_version_gates = True
    name = "deprecated-nn-init"
    summary = "Deprecated nn.init function without trailing underscore"

    fixes = (
        FixCase(
            "import torch\nimport torch.nn as nn\n\ndef init_weights(m):\n"
            "    if isinstance(m, nn.Linear):\n"
            "        nn.init.xavier_uniform(m.weight, gain=1.0)  # init\n"
            "        torch.nn.init.constant(m.bias, 0.01)\n",
            "import torch\nimport torch.nn as nn\n\ndef init_weights(m):\n"
            "    if isinstance(m, nn.Linear):\n"
            "        nn.init.xavier_uniform_(m.weight, gain=1.0)  # init\n"
            "        torch.nn.init.constant_(m.bias, 0.01)\n",
        ),
        FixCase(
            "import torch\nfrom torch.nn import init\n\n"
            "def reset(w, b):\n    init.kaiming_normal(w)\n    torch.nn.init.normal(b, std=0.02)\n",
            "import torch\nfrom torch.nn import init\n\n"
            "def reset(w, b):\n    init.kaiming_normal_(w)\n    torch.nn.init.normal_(b, std=0.02)\n",
        ),
        FixCase(
            "from torch.nn.init import orthogonal\n\ndef reset(w):\n    orthogonal(w)\n",
            "from torch.nn.init import orthogonal_\n\ndef reset(w):\n    orthogonal_(w)\n",
        ),
    )
    keeps = (
        KeepCase("import torch.nn as nn\n\ndef f(w):\n    nn.init.xavier_uniform_(w)\n"),
        KeepCase("import numpy as np\n\ndef f():\n    return np.random.normal(0, 1)\n"),
        KeepCase("def normal(x):\n    return x\n\nnormal(3)\n"),
        KeepCase("from torch.nn.init import orthogonal as ortho\n\ndef f(w):\n    ortho(w)\n", reported=True),
    )

    def check(self) -> None:
        model = self.model
        for call in model.nodes(ast.Call):
            func = call.func
            if dotted(func) is None:
                continue
            qname = model.torch_qualified(func)
            if qname is None:
                continue
            module, _, name = qname.rpartition(".")
            if module != INIT_MODULE or name not in DEPRECATED:
                continue
            replacement = f"{name}_"
            message = f"`{dotted(func)}` is deprecated; use `{replacement}` (the same function, without the warning)"
            fix = None
            if isinstance(func, ast.Attribute) and func.attr == name:
                fix = Fix([self.edit(func, "Attribute", rename_attribute, replacement)])
            elif isinstance(func, ast.Name) and func.id == name and self._free_or_imported(replacement, func):
                fix = Fix(
                    [self.edit(func, "Name", rename_name, replacement)],
                    imports=(ImportNeed(INIT_MODULE, replacement),),
                    removals=(ImportNeed(INIT_MODULE, name),),
                )
            self.report(call, message, fix)

    def _free_or_imported(self, name: str, at: ast.AST) -> bool:
        """``name`` is unused in the file, or bound here only to the init function itself."""
        if name not in self.model.names_used:
            return True
        found = self.model.scope(at).resolve(name)
        return bool(found) and {b.target for b in found} == {f"{INIT_MODULE}.{name}"}
