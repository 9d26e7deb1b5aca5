"""TFM102: a Python dict of layers on an nn.Module becomes an ``nn.ModuleDict``."""

from __future__ import annotations

import ast

import libcst as cst

from torchfix_mod.analysis import Verdict
from torchfix_mod.containers import ContainerRule, SelfAssignment, wrap_call
from torchfix_mod.legacy_rule import FixCase, KeepCase
from torchfix_mod.screen import constructor_names, may_build_module, methods, nodes
from torchfix_mod.torch_facts import MODULE_DICT_ATTRIBUTES

HEADER = "import torch.nn as nn\n\n"


def _init(*lines: str) -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"{HEADER}class Net(nn.Module):\n    def __init__(self, names):\n        super().__init__()\n{body}"


def key_problem(key: cst.BaseExpression, reserved: frozenset[str] = MODULE_DICT_ATTRIBUTES) -> str | None:
    """Why ``key`` cannot be a ModuleDict key; "" when it is computed (not provable)."""
    if isinstance(key, (cst.SimpleString, cst.ConcatenatedString)):
        value = key.evaluated_value
        if not isinstance(value, str):
            return "a bytes key"
        if not value:
            return "an empty key"
        if "." in value:
            return f"key {value!r} contains '.'"
        if value in reserved:
            return f"key {value!r} is an attribute of the nn container"
        return None
    if isinstance(key, (cst.Integer, cst.Float, cst.Imaginary, cst.Tuple)) or (
        isinstance(key, cst.Name) and key.value in {"None", "True", "False"}
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

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        # every value a construction (or a local bound to one); an empty dict filled with them
        constructors = constructor_names(tree)
        for method, self_arg in methods(tree):
            call_bound = {
                node.targets[0].id
                for node in nodes(method, ast.Assign)
                if isinstance(node.targets[0], ast.Name) and may_build_module(node.value, set(), constructors)
            }

            def builds(expr: ast.AST) -> bool:
                return may_build_module(expr, call_bound, constructors)

            filled = {
                target.value.attr
                for node in nodes(method, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute) and builds(node.value)
            }
            for node in nodes(method, ast.Assign):
                value = node.value
                for target in node.targets:
                    if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_arg):
                        continue
                    if isinstance(value, ast.DictComp) and builds(value.value):
                        return True
                    if isinstance(value, ast.Dict) and (
                        (value.values and all(builds(v) for v in value.values))
                        or (not value.values and target.attr in filled)
                    ):
                        return True
        return False

    def wrap_literal(self, func: cst.BaseExpression, value: cst.BaseExpression) -> cst.Call:
        return wrap_call(func, value)

    def check(self, site: SelfAssignment) -> None:
        value = site.value
        uses = self.uses(site)
        message = (
            f"`{site.self_arg}.{site.attr}` keeps {self.noun} in a Python dict: "
            f"PyTorch does not register them (missing from parameters(), state_dict(), .to()); use nn.{self.container}"
        )
        keys: list[cst.BaseExpression] = []
        if isinstance(value, cst.Dict) and value.elements:
            for element in value.elements:
                if not isinstance(element, cst.DictElement) or not self.module_value(element.value):
                    return
                keys.append(element.key)
            fix_value = self.wrap_literal
        elif isinstance(value, cst.DictComp):
            if not self.is_element(value.value):
                return
            keys.append(value.key)
            fix_value = self.wrap_literal
        elif isinstance(value, cst.Dict):
            if not self._filled_with_modules(site):
                return
            fix_value = lambda func, _value: wrap_call(func, None)  # noqa: E731
        else:
            return
        # the use check also gathers the keys of every `self.x[key] = ...` in the file
        if uses.check(site.attr) == Verdict.OK:
            keys.extend(uses.dict_keys)
        problems = [key_problem(k, self.reserved_keys) for k in keys]
        bad = [p for p in problems if p]
        if bad:
            self.report(site.assign, f"{message} (not fixed: {bad[0]})")
            return
        self.conclude(site, uses, message, fix_value, unsafe="" in problems)

    def _filled_with_modules(self, site: SelfAssignment) -> bool:
        """``self.x = {}`` followed in the same method by ``self.x[key] = <module>``."""
        facts = self.facts
        start = facts.start(site.assign)
        for use in facts.attributes.get(site.attr, ()):
            if use is site.target or facts.enclosing_function(use) is not site.method:
                continue
            if not (isinstance(use.value, cst.Name) and use.value.value == site.self_arg) or facts.start(use) <= start:
                continue
            sub = facts.parent(use)
            if isinstance(sub, cst.Subscript) and isinstance(facts.parent(sub), cst.AssignTarget):
                assign = facts.parent(facts.parent(sub))
                if self.module_value(assign.value):
                    return True
        return False
