"""TFM102: a Python dict of layers on an nn.Module becomes an ``nn.ModuleDict``."""

from __future__ import annotations

import ast
import re

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


_COMPUTED = "a key computed at run time may not be a string nn.ModuleDict accepts"


def _loop_source(model, name: ast.Name) -> tuple[ast.expr, int | None] | None:
    """The iterable a name is the loop variable of (``for name in X``, ``for i, b in X``, or
    a comprehension's), and its place in a tuple target (None: the whole element); None when
    the name has any other binding."""
    bindings = model.scope(name).resolve(name.id)
    if len(bindings) != 1 or not isinstance(bindings[0].node, ast.Name):
        return None
    target = bindings[0].node
    holder = model.parent(target)
    place = None
    if isinstance(holder, ast.Tuple) and all(isinstance(e, ast.Name) for e in holder.elts):
        place = next(i for i, e in enumerate(holder.elts) if e is target)
        target, holder = holder, model.parent(holder)
    if isinstance(holder, (ast.For, ast.AsyncFor, ast.comprehension)) and holder.target is target:
        return holder.iter, place
    return None


def _builtin_call(model, node: ast.expr, name: str) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
        and not model.scope(node.func).resolve(name)
    )


def _is_int(model, node: ast.expr) -> bool:
    """An expression whose value is certainly an int: an int literal, a ``range`` loop
    variable, the index of an ``enumerate`` loop, ``len(...)``."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if _builtin_call(model, node, "len"):
        return True
    if isinstance(node, ast.Name):
        found = _loop_source(model, node)
        if found is not None:
            iterable, place = found
            return (_builtin_call(model, iterable, "range") and place is None) or (
                _builtin_call(model, iterable, "enumerate") and place == 0
            )
    return False


_PERCENT = re.compile(r"%(?:%|([dis]))")


def _percent_parts(model, key: ast.BinOp) -> list[ast.expr] | None:
    """``'layer%d' % i`` (or ``'%s_%d' % (i, j)``) as constant text and int parts, when the
    format is a string literal whose only conversions are plain ``%d``/``%i``/``%s`` and every
    value formatted is certainly an int; None otherwise."""
    fmt = key.left
    if not (isinstance(fmt, ast.Constant) and isinstance(fmt.value, str)):
        return None
    values = key.right.elts if isinstance(key.right, ast.Tuple) else [key.right]
    if any(isinstance(v, ast.Starred) or not _is_int(model, v) for v in values):
        return None
    parts: list[ast.expr] = []
    text, at, used = fmt.value, 0, 0
    for match in _PERCENT.finditer(text):
        parts.append(ast.Constant(text[at:match.start()]))
        at = match.end()
        if match.group(1) is None:
            parts.append(ast.Constant("%"))
            continue
        if used >= len(values):
            return None
        parts.append(values[used])
        used += 1
    parts.append(ast.Constant(text[at:]))
    if used != len(values) or "%" in "".join(p.value for p in parts if isinstance(p, ast.Constant) and p.value != "%"):
        return None  # a conversion with flags, width or another type, or values left over
    return [p for p in parts if not (isinstance(p, ast.Constant) and p.value == "")]


def computed_key_problem(model, key: ast.expr, reserved: frozenset[str] = MODULE_DICT_ATTRIBUTES) -> str | None:
    """Why a computed key may be refused by ``nn.ModuleDict`` at construction (an int, a name
    with ``.``, an attribute of the container), or None when every value it can take is a
    valid key: a loop variable over string literals, or an f-string (or ``str(n)``) of int
    parts between constant text."""
    if _is_int(model, key):
        return "an int key: nn.ModuleDict keys must be strings"
    if isinstance(key, ast.Name):
        found = _loop_source(model, key)
        if found is not None and found[1] is None and isinstance(found[0], (ast.List, ast.Tuple, ast.Set)):
            problems = [key_problem(e, reserved) for e in found[0].elts]
            return next((p or _COMPUTED for p in problems if p is not None), None)
        return _COMPUTED
    if _builtin_call(model, key, "str") and len(key.args) == 1 and not key.keywords and _is_int(model, key.args[0]):
        parts = [key.args[0]]
    elif isinstance(key, ast.JoinedStr):
        parts = key.values
    elif isinstance(key, ast.BinOp) and isinstance(key.op, ast.Mod):
        parts = _percent_parts(model, key)
        if parts is None:
            return _COMPUTED
    else:
        return _COMPUTED
    pattern = ""
    for part in parts:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            if "." in part.value:
                return f"key text {part.value!r} contains '.'"
            pattern += re.escape(part.value)
        elif isinstance(part, ast.FormattedValue) and part.format_spec is None and _is_int(model, part.value):
            pattern += r"-?\d+"
        elif not isinstance(part, (ast.Constant, ast.FormattedValue)) and _is_int(model, part):
            pattern += r"-?\d+"
        else:
            return _COMPUTED
    if not pattern:
        return "an empty key"
    clash = next((name for name in sorted(reserved) if re.fullmatch(pattern, name)), None)
    return f"the key may be {clash!r}, an attribute of the nn container" if clash else None


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
    Safe, and offered only when every key is provably one `nn.ModuleDict`
    accepts: a string, non-empty, without `.`, and not the name of an attribute
    of `nn.ModuleDict` (`type`, `keys`, `items`, `values`, `float`, `to`,
    `train`, `training`, `forward`, `parameters`, `state_dict`, ...: these raise
    `KeyError` at construction; an int key raises `TypeError`). Keys proven so
    are string literals, loop variables over a list or tuple of such literals,
    and f-strings, `'text%d' % i` or `str(i)` built from constant text and ints (a `range` loop
    variable, an `enumerate` index, `len(...)`), checked against every attribute
    name (`f"t{i}"` gives `t0`, `t1`, ..., never `to`).

    ## Known problems
    Left alone: values that are not module constructions, dicts handed to
    other code, dicts assigned more than once. Reported without a fix: keys
    `nn.ModuleDict` rejects (ints, `""`, `"a.b"`, `"type"`), keys computed from
    values the analysis cannot see (a parameter, a name of unknown origin),
    and dicts that use
    what `nn.ModuleDict` lacks (`get`, `copy`, `setdefault`, `popitem`,
    `fromkeys`, `update`), and dicts whose layers certainly hold no parameter
    but may hold buffers (registering them adds state_dict keys).
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
            _init("self.heads = {f'head_{i}': nn.Linear(4, 4) for i in range(3)}"),
            _init("self.heads = nn.ModuleDict({f'head_{i}': nn.Linear(4, 4) for i in range(3)})"),
        ),
        FixCase(
            _init("self.heads = {}", "for name in ('cls', 'box'):", "    self.heads[name] = nn.Linear(4, 4)"),
            _init("self.heads = nn.ModuleDict()", "for name in ('cls', 'box'):", "    self.heads[name] = nn.Linear(4, 4)"),
        ),
        FixCase(
            _init("self.stages = {str(i): nn.Linear(4, 4) for i, _ in enumerate(names)}"),
            _init("self.stages = nn.ModuleDict({str(i): nn.Linear(4, 4) for i, _ in enumerate(names)})"),
        ),
        # `%`-formatted int keys, and layers handed to a function of the file that only moves
        # them and gives them back to be called (COTREC's item convolution)
        FixCase(
            "import torch\nimport torch.nn as nn\n\n"
            "def on_device(m):\n    if torch.cuda.is_available():\n        return m.cuda()\n    return m\n\n"
            "class Conv(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n        self.n = n\n"
            "        self.w = {}\n        for i in range(n):\n            self.w['weight%d' % (i)] = nn.Linear(4, 4, bias=False)\n"
            "    def forward(self, h):\n        for i in range(self.n):\n            h = on_device(self.w['weight%d' % i])(h)\n        return h\n",
            "import torch\nimport torch.nn as nn\n\n"
            "def on_device(m):\n    if torch.cuda.is_available():\n        return m.cuda()\n    return m\n\n"
            "class Conv(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n        self.n = n\n"
            "        self.w = nn.ModuleDict()\n        for i in range(n):\n            self.w['weight%d' % (i)] = nn.Linear(4, 4, bias=False)\n"
            "    def forward(self, h):\n        for i in range(self.n):\n            h = on_device(self.w['weight%d' % i])(h)\n        return h\n",
        ),
    )
    keeps = (
        KeepCase(_init("self.heads = {0: nn.Linear(4, 4), 1: nn.Linear(4, 4)}"), reported=True),
        # keys computed at run time: ints raise TypeError, unknown strings may raise KeyError
        KeepCase(_init("self.blocks = {i: nn.Linear(4, 4) for i in range(3)}"), reported=True),
        KeepCase(_init("self.blocks = {}", "for i in range(3):", "    self.blocks[i] = nn.Linear(4, 4)"), reported=True),
        KeepCase(_init("self.heads = {name: nn.Linear(4, 4) for name in names}"), reported=True),
        KeepCase(_init("self.heads = {f'{name}': nn.Linear(4, 4) for name in names}"), reported=True),
        KeepCase(_init("self.heads = {f'layer.{i}': nn.Linear(4, 4) for i in range(3)}"), reported=True),
        KeepCase(_init("self.heads = {'type': nn.Linear(4, 4)}"), reported=True),
        KeepCase(_init("self.heads = {'a.b': nn.Linear(4, 4), '': nn.ReLU()}"), reported=True),
        KeepCase(_init("self.cfg = {'dim': 4, 'act': nn.ReLU()}")),
        KeepCase(_init("self.heads = {'cls': nn.Linear(4, 4)}", "self.first = self.heads.get('cls')"), reported=True),
        KeepCase(_init("self.heads = {'cls': nn.Linear(4, 4)}", "self.seq = nn.Sequential(*self.heads.values())")),
        KeepCase(_init("self.heads = {'cls': nn.Linear(4, 4)}", "self.both = nn.ModuleDict(self.heads)")),
        KeepCase(_init("self.lookup = {}", "self.lookup['x'] = names")),
        # `%5d` pads with spaces, `%r` quotes: no proven key
        KeepCase(_init("self.heads = {}", "for i in range(3):", "    self.heads['h%5d' % i] = nn.Linear(4, 4)"), reported=True),
        KeepCase(_init("self.heads = {'h%s' % n: nn.Linear(4, 4) for n in names}"), reported=True),
        # a function that keeps what it is handed: it may register it elsewhere
        KeepCase(
            "import torch.nn as nn\n\nKEPT = []\n\ndef keep(m):\n    KEPT.append(m)\n    return m\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.heads = {'a': nn.Linear(4, 4)}\n    def forward(self, h):\n        return keep(self.heads['a'])(h)\n"
        ),
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
        verdict = uses.check(site.attr)
        if verdict in (Verdict.ELSEWHERE, Verdict.NOT_MODULES):
            return  # registered by the code it is handed to, or not a container of modules
        if verdict == Verdict.OK:
            keys.extend(uses.dict_keys)
        problems = [key_problem(k, self.reserved_keys, self.model.text(k)) for k in keys]
        bad = [p for p in problems if p]
        bad += [
            p for k, problem in zip(keys, problems)
            if problem == "" and (p := computed_key_problem(self.model, k, self.reserved_keys))
        ]
        if bad:
            self.report(site.assign, f"{message} (not fixed: {bad[0]})")
            return
        self.conclude(site, uses, message, wrap)

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
