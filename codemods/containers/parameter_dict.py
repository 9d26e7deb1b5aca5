"""TFM104: a Python dict of ``nn.Parameter`` on an nn.Module becomes an ``nn.ParameterDict``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.containers.module_dict import ModuleDictRule
from torchfix_mod.project import PARAMETER_CLASSES
from torchfix_mod.rule import FixCase, KeepCase
from torchfix_mod.torch_facts import PARAMETER_DICT_REJECTED_KEYS

HEADER = "import torch\nimport torch.nn as nn\n\n"


def _init(*lines: str) -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class Mix(nn.Module):\n    def __init__(self, names):\n        super().__init__()\n{body}"


class ParameterDictRule(ModuleDictRule):
    """
    ## What it does
    Finds `nn.Parameter`s kept in a Python dict attribute of an nn.Module (a
    literal, a comprehension, or an empty dict filled with `d[key] = ...`)
    and makes it an `nn.ParameterDict`.

    ## Why is this bad?
    Parameters in a Python dict are not registered: they are missing from
    `parameters()` (never trained), `state_dict()` and `.to(device)`.

    ## Example
    ```python
    self.gains = {"q": nn.Parameter(torch.ones(d)), "k": nn.Parameter(torch.ones(d))}
    ```

    ## Use instead
    ```python
    self.gains = nn.ParameterDict({"q": nn.Parameter(torch.ones(d)), "k": nn.Parameter(torch.ones(d))})
    ```

    ## Fix safety
    Built from a plain dict, `nn.ParameterDict` sorts its keys (unlike
    `nn.ModuleDict`): the fix passes `{...}.items()` unless the keys are
    already in order, so iteration order stays the same.
    Safe when every key is a string literal `nn.ParameterDict` accepts
    (non-empty, no `.`, not one of its attribute names such as `type`,
    `keys`, `to`: the list is read off torch), or computed from values proven
    to give such keys (see TFM102). Other computed keys are reported without a
    fix: an int key raises `TypeError` at construction, a refused name `KeyError`.

    ## Known problems
    Left alone: values that are not `nn.Parameter(...)` constructions (tensors
    or parameters of other modules), dicts using `update` or `setdefault`
    (which would turn plain tensors into parameters). Reported without a fix:
    rejected keys.
    """

    code = "TFM104"
    name = "parameter-dict"
    summary = "Python dict of nn.Parameters is not registered; use nn.ParameterDict"
    container = "ParameterDict"
    noun = "nn.Parameters"
    reserved_keys = PARAMETER_DICT_REJECTED_KEYS
    methods = frozenset({"keys", "values", "items", "pop", "clear", "get", "copy"})
    holds_modules = False

    def literal_wrap(self, value: ast.expr) -> str:
        """nn.ParameterDict sorts the keys of a plain dict; its ``.items()`` keep their order."""
        keys = value.keys if isinstance(value, ast.Dict) else []
        literal = [k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        if isinstance(value, ast.Dict) and len(literal) == len(keys) and literal == sorted(literal):
            return "call"
        return "items"

    fixes = (
        FixCase(
            _init("self.gains = {'k': nn.Parameter(torch.ones(4)), 'q': nn.Parameter(torch.ones(4))}"),
            _init("self.gains = nn.ParameterDict({'k': nn.Parameter(torch.ones(4)), 'q': nn.Parameter(torch.ones(4))})"),
        ),
        FixCase(
            _init("self.gains = {n: nn.Parameter(torch.ones(4)) for n in ('k', 'q')}"),
            _init("self.gains = nn.ParameterDict({n: nn.Parameter(torch.ones(4)) for n in ('k', 'q')}.items())"),
        ),
        # a plain dict would have its keys sorted by nn.ParameterDict: keep the order
        FixCase(
            _init("self.scales = {'width': nn.Parameter(torch.ones(1)), 'height': nn.Parameter(torch.ones(1))}"),
            _init("self.scales = nn.ParameterDict({'width': nn.Parameter(torch.ones(1)), 'height': nn.Parameter(torch.ones(1))}.items())"),
        ),
    )
    keeps = (
        # its values are registered by the container they are handed to (pyro's glmm guide)
        KeepCase(
            "import torch\nimport torch.nn as nn\n\nclass Guide(nn.Module):\n    def __init__(self, sizes):\n"
            "        super().__init__()\n        self.scale = {k: nn.Parameter(torch.ones(n)) for k, n in sizes.items()}\n"
            "        self._registered = nn.ParameterList(self.scale.values())\n"
        ),
        KeepCase(_init("self.lin = nn.Linear(4, 4)", "self.named = {'w': self.lin.weight}")),
        KeepCase(_init("self.gains = {'to': nn.Parameter(torch.ones(4))}"), reported=True),
        # keys from values the analysis cannot see may be ints (TypeError) or refused names
        KeepCase(_init("self.gains = {n: nn.Parameter(torch.ones(4)) for n in names}"), reported=True),
        KeepCase(_init("self.gains = {i: nn.Parameter(torch.ones(4)) for i in range(2)}"), reported=True),
        KeepCase(_init("self.stats = {'mean': torch.zeros(4)}")),
    )

    def is_element(self, expr: ast.AST) -> bool:
        if not isinstance(expr, ast.Call):
            return False
        qnames = self.model.qualified_names(expr.func)
        return bool(qnames) and qnames <= PARAMETER_CLASSES
