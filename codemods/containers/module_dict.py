"""TFM102: a Python dict of layers on an nn.Module becomes an ``nn.ModuleDict``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.containers._containers import ContainerRule, SelfAssignment, Verdict, is_concatenated, start
from torchfix_mod.rule import FixCase, KeepCase
from torchfix_mod.torch_facts import MODULE_DICT_ATTRIBUTES

HEADER = "import torch.nn as nn\n\n"


def _init(*lines: str) -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class Net(nn.Module):\n    def __init__(self, names):\n        super().__init__()\n{body}"


def key_problem(key: ast.expr, reserved: frozenset[str] = MODULE_DICT_ATTRIBUTES, source: str | None = None) -> str | None:
    """Why ``key`` cannot be a ModuleDict key; "" when it is computed (not provable).

    ``source`` is the key's text: adjacent strings with an f-string among them
    (``'a' f'{b}'``) have no value to check and are refused."""
    if isinstance(key, ast.JoinedStr) and source is not None and is_concatenated(source):
        return "a bytes key"
    if isinstance(key, ast.Constant) and isinstance(key.value, (str, bytes)):
        value = key.value
        if not isinstance(value, str):
            return "a bytes key"
        if not value:
            return "an empty key"
        if "." in value:
            return f"key {value!r} contains '.'"
        if value in reserved:
            return f"key {value!r} is an attribute of the nn container"
        return None
    if isinstance(key, ast.Tuple) or (
        isinstance(key, ast.Constant) and (key.value is None or type(key.value) in (bool, int, float, complex))
    ):
        return "a key that is not a string"
    return ""


class ModuleDictRule(ContainerRule):
    """
    ## What it does
    Finds nn.Modules kept in a Python dict attribute of an nn.Module: a dict
    literal, a dict comprehension, or an empty dict filled with `d[key] = ...`.

    ## Why is this bad?
    Layers in a Python dict are not submodules: they are missing from
    `parameters()`, `state_dict()`, `.to(device)`, `.train()`/`.eval()`.

    ## Example
    ```python
    self.heads = {"cls": nn.Linear(d, 10), "box": nn.Linear(d, 4)}
    ```

    ## Use instead
    ```python
    self.heads = nn.ModuleDict({"cls": nn.Linear(d, 10), "box": nn.Linear(d, 4)})
    ```

    ## Fix safety
    Safe when every key is a string literal that `nn.ModuleDict` accepts:
    non-empty, without `.`, and not the name of an attribute of `nn.ModuleDict`
    (`type`, `keys`, `items`, `values`, `float`, `to`, `train`, `training`,
    `forward`, `parameters`, `state_dict`, ...: these raise `KeyError` at
    construction). Unsafe when a key is computed (a variable, an f-string, a
    comprehension): it may be one of those names at run time.

    ## Known problems
    Left alone: values that are not module constructions, dicts handed to
    other code, dicts assigned more than once. Reported without a fix: keys
    `nn.ModuleDict` rejects (ints, `""`, `"a.b"`, `"type"`), and dicts that use
    what `nn.ModuleDict` lacks (`get`, `copy`, `setdefault`, `popitem`,
    `fromkeys`, `update`).
    """

    code = "TFM102"
    name = "module-dict"
    summary = "Python dict of nn.Modules is not registered; use nn.ModuleDict"
    kind = "dict"
    container = "ModuleDict"
    reserved_keys = MODULE_DICT_ATTRIBUTES

    fixes = (
        FixCase(
            _init("self.heads = {'cls': nn.Linear(4, 10), 'box': nn.Linear(4, 4)}"),
            _init("self.heads = nn.ModuleDict({'cls': nn.Linear(4, 10), 'box': nn.Linear(4, 4)})"),
        ),
        FixCase(
            _init("self.heads = {}", "self.heads['cls'] = nn.Linear(4, 10)", "self.heads['box'] = nn.Linear(4, 4)"),
            _init("self.heads = nn.ModuleDict()", "self.heads['cls'] = nn.Linear(4, 10)", "self.heads['box'] = nn.Linear(4, 4)"),
        ),
        FixCase(
            _init("self.heads = {name: nn.Linear(4, 4) for name in names}"),
            _init("self.heads = nn.ModuleDict({name: nn.Linear(4, 4) for name in names})"),
            unsafe=True,
        ),
        FixCase(
            _init("self.heads = {}", "for name in names:", "    self.heads[name] = nn.Linear(4, 4)"),
            _init("self.heads = nn.ModuleDict()", "for name in names:", "    self.heads[name] = nn.Linear(4, 4)"),
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase(_init("self.heads = {0: nn.Linear(4, 4), 1: nn.Linear(4, 4)}"), reported=True),
        KeepCase(_init("self.heads = {'type': nn.Linear(4, 4)}"), reported=True),
        KeepCase(_init("self.heads = {'a.b': nn.Linear(4, 4), '': nn.ReLU()}"), reported=True),
        KeepCase(_init("self.cfg = {'dim': 4, 'act': nn.ReLU()}")),
        KeepCase(_init("self.heads = {'cls': nn.Linear(4, 4)}", "self.first = self.heads.get('cls')"), reported=True),
        KeepCase(_init("self.heads = {'cls': nn.Linear(4, 4)}", "self.seq = nn.Sequential(*self.heads.values())")),
        KeepCase(_init("self.heads = {'cls': nn.Linear(4, 4)}", "self.both = nn.ModuleDict(self.heads)")),
        KeepCase(_init("self.lookup = {}", "self.lookup['x'] = names")),
    )

    def literal_wrap(self, value: ast.expr) -> str:
        """How a dict literal or comprehension becomes the container (see ``wrap_value``)."""
        return "call"

    def check_site(self, site: SelfAssignment) -> None:
        value = site.value
        uses = self.uses(site)
        message = (
            f"`{site.self_arg}.{site.attr}` keeps {self.noun} in a Python dict: "
            f"PyTorch does not register them (missing from parameters(), state_dict(), .to()); use nn.{self.container}"
        )
        keys: list[ast.expr] = []
        if isinstance(value, ast.Dict) and value.keys:
            for key, item in zip(value.keys, value.values):
                if key is None or not self.module_value(item):
                    return
                keys.append(key)
            wrap = self.literal_wrap(value)
        elif isinstance(value, ast.DictComp):
            if not self.is_element(value.value):
                return
            keys.append(value.key)
            wrap = self.literal_wrap(value)
        elif isinstance(value, ast.Dict):
            if not self._filled_with_modules(site):
                return
            wrap = "empty"
        else:
            return
        # the use check also gathers the keys of every `self.x[key] = ...` in the file
        if uses.check(site.attr) == Verdict.OK:
            keys.extend(uses.dict_keys)
        problems = [key_problem(k, self.reserved_keys, self.model.text(k)) for k in keys]
        bad = [p for p in problems if p]
        if bad:
            self.report(site.assign, f"{message} (not fixed: {bad[0]})")
            return
        self.conclude(site, uses, message, wrap, unsafe="" in problems)

    def _filled_with_modules(self, site: SelfAssignment) -> bool:
        """``self.x = {}`` followed in the same method by ``self.x[key] = <module>``."""
        model = self.model
        begin = start(site.assign)
        for use in model.attributes.get(site.attr, ()):
            if use is site.target or model.enclosing_function(use) is not site.method:
                continue
            if not (isinstance(use.value, ast.Name) and use.value.id == site.self_arg) or start(use) <= begin:
                continue
            sub = model.parent(use)
            assign = model.parent(sub)
            if (
                isinstance(sub, ast.Subscript)
                and sub.value is use
                and isinstance(assign, ast.Assign)
                and any(t is sub for t in assign.targets)
                and self.module_value(assign.value)
            ):
                return True
        return False
