"""TFM103: a Python list of ``nn.Parameter`` on an nn.Module becomes an ``nn.ParameterList``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.containers.module_list import ModuleListRule
from torchfix_mod.project import PARAMETER_CLASSES
from torchfix_mod.rule import FixCase, KeepCase

# Tensor methods that give the tensor back, or a copy moved or cast
MOVES = frozenset({"to", "cuda", "cpu", "double", "float", "half", "bfloat16"})

HEADER = "import torch\nimport torch.nn as nn\n\n"


def _init(*lines: str) -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class Mix(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n{body}"


class ParameterListRule(ModuleListRule):
    """
    ## What it does
    Finds `nn.Parameter`s kept in a Python list attribute of an nn.Module (a
    literal, a comprehension, or an empty list filled with `append`/`extend`)
    and makes it an `nn.ParameterList`.

    ## Why is this bad?
    Parameters in a Python list are not registered: they are missing from
    `parameters()` (never trained), `state_dict()` and `.to(device)`.

    ## Example
    ```python
    self.scales = [nn.Parameter(torch.ones(d)) for _ in range(n)]
    ```

    ## Use instead
    ```python
    self.scales = nn.ParameterList([nn.Parameter(torch.ones(d)) for _ in range(n)])
    ```

    ## Fix safety
    Safe when every element is an `nn.Parameter(...)` construction and every
    use of the attribute works on `nn.ParameterList`.

    ## Known problems
    Left alone: lists of parameters collected from other modules
    (`[m.weight for m in ...]`, `list(self.parameters())`), which are
    registered already. Reported without a fix: lists using `insert` or `pop`
    (`nn.ParameterList` has neither) or other list-only methods, and lists of
    `nn.Parameter(...).to(...)` (on another device or dtype that is a plain
    tensor copy, which `nn.ParameterList` would make a new parameter).
    """

    code = "TFM103"
    name = "parameter-list"
    summary = "Python list of nn.Parameters is not registered; use nn.ParameterList"
    container = "ParameterList"
    noun = "nn.Parameters"
    methods = frozenset({"append", "extend"})
    holds_modules = False

    fixes = (
        FixCase(
            _init("self.scales = [nn.Parameter(torch.ones(4)) for _ in range(n)]"),
            _init("self.scales = nn.ParameterList([nn.Parameter(torch.ones(4)) for _ in range(n)])"),
        ),
        FixCase(
            _init("self.ws = []", "for i in range(n):", "    self.ws.append(nn.Parameter(torch.randn(4, 4)))"),
            _init("self.ws = nn.ParameterList()", "for i in range(n):", "    self.ws.append(nn.Parameter(torch.randn(4, 4)))"),
        ),
        FixCase(
            _init("self.ws = [nn.Parameter(torch.ones(1)) for _ in range(n)]", "self.total = torch.mul(self.ws[0], 2) * self.ws[-1] + sum(self.ws)"),
            _init("self.ws = nn.ParameterList([nn.Parameter(torch.ones(1)) for _ in range(n)])", "self.total = torch.mul(self.ws[0], 2) * self.ws[-1] + sum(self.ws)"),
        ),
    )
    keeps = (
        KeepCase(_init("self.ws = [nn.Parameter(torch.ones(1))]", "self.stacked = torch.stack(self.ws)"), reported=True),
        KeepCase(_init("self.lin = nn.Linear(4, 4)", "self.weights = [m.weight for m in self.modules()]")),
        KeepCase(_init("self.all = list(self.parameters())")),
        KeepCase(_init("self.ws = [nn.Parameter(torch.ones(1))]", "self.ws.insert(0, nn.Parameter(torch.ones(1)))"), reported=True),
        KeepCase(_init("self.layers = [nn.Linear(2, 2)]")),
        # on another device `.to()` gives a plain tensor copied from the parameter (BigVGAN's alphas)
        KeepCase(_init("self.alphas = []", "for i in range(n):", "    self.alphas.append(nn.Parameter(torch.ones(1, 4, 1)).to(0))"), reported=True),
        KeepCase(_init("self.alphas = [nn.Parameter(torch.ones(4)).to('cpu') for _ in range(n)]"), reported=True),
    )

    def is_element(self, expr: ast.AST) -> bool:
        if not isinstance(expr, ast.Call):
            return False
        func = expr.func
        if isinstance(func, ast.Attribute) and func.attr in MOVES and self.is_element(func.value):
            # `nn.Parameter(t).to(device)`: the parameter itself on its own device, a plain
            # (non-leaf) tensor copied from it on another; unregistered either way
            self._doubts.append(f"`.{func.attr}()` of a new nn.Parameter gives a plain tensor when it moves or casts it, "
                                "which nn.ParameterList would make a new parameter")
            return True
        qnames = self.model.qualified_names(func)
        return bool(qnames) and qnames <= PARAMETER_CLASSES
