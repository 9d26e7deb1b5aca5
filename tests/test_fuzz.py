"""Property-based tests: the tool on programs nobody wrote by hand.

Two families of inputs:

* arbitrary Python from hypothesmith (the grammar, and LibCST node trees), alone or with a small
  nn.Module that every rule has something to say about glued before or after it, and cut short
  at a random point now and then so that broken files come through too;
* nn.Module classes built from a small grammar of exactly the patterns the rules look for
  (containers of layers and parameters, in-place updates in ``forward``, tensor attributes,
  missing ``super().__init__()``, ``.forward`` calls, deprecated ``nn.init`` names, ``Variable``,
  ``register_backward_hook``), spelled with every import style. Those programs run: each class is
  built with no arguments and called on a small input, before and after the rewrite, with real torch.

The example counts below keep the whole file well under a minute; set
``TORCHFIX_MOD_FUZZ_EXAMPLES`` to run every property on that many examples instead, e.g.
``TORCHFIX_MOD_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz.py -q``.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import warnings
from dataclasses import dataclass, field

import hypothesmith
import pytest
import torch
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from conftest import transform

# hypothesmith's programs are full of `1()` and `{}()`: CPython compiles them with a warning
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

# ---------------------------------------------------------------------------------------------
# budget


def _long_run() -> int | None:
    raw = os.environ.get("TORCHFIX_MOD_FUZZ_EXAMPLES", "").strip()
    return int(raw) if raw else None


def fuzz_settings(ci: int) -> settings:
    """``ci`` examples by default; a long run checks more and, after a failure, keeps looking for
    failures of other kinds (in CI the first failure is shrunk and reported alone: shrinking
    programs that take a second each to check is slow)."""
    long_run = _long_run()
    return settings(
        max_examples=long_run or ci,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        report_multiple_bugs=long_run is not None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# ---------------------------------------------------------------------------------------------
# checks shared by every property

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")


def physical_lines(text: str) -> list[str]:
    """Lines as the tokenizer (and the tool's line numbers) count them: only \\n, \\r\\n and \\r
    end a line (``str.splitlines`` also splits on form feeds and other separators)."""
    lines = _LINE.findall(text)
    rest = text[sum(map(len, lines)):]
    if rest:
        lines.append(rest)
    return lines


def compiles(source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            compile(source, "<fuzz>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def run_tool(source: str, unsafe: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # the tool compiles what it writes
        return transform(source, unsafe=unsafe)


def import_lines(source: str) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def _is_import_text(line: str) -> bool:
    return line.lstrip().startswith(("import ", "from "))


def _insertion_positions(before: list[str], block: list[str], at: int) -> set[int]:
    """Every place the inserted ``block`` could equally have gone: when the lines around an
    insertion repeat the inserted ones, the diff may show it a few lines up or down."""
    positions = {at}
    up, p = list(block), at
    while p > 0 and before[p - 1] == up[-1]:
        up = [up[-1], *up[:-1]]
        p -= 1
        positions.add(p)
    down, p = list(block), at
    while p < len(before) and before[p] == down[0]:
        down = [*down[1:], down[0]]
        p += 1
        positions.add(p)
    return positions


def assert_changes_covered(source: str, result) -> None:
    """Output lines differ from the input only where a fixed diagnostic was reported, and every
    fixed diagnostic points at text that changed.

    A changed or removed input line lies in [line, end_line] of a fixed diagnostic (or is an
    import, which fixes may edit or drop); an inserted line sits inside or right next to such a
    range (or is an import added by a fix). Conversely each fixed diagnostic's range holds a
    changed line or an insertion."""
    fixed = [(d.line, d.end_line) for d in result.diagnostics if d.fixed]
    if not fixed:
        assert result.new_source == result.source, "the output changed but no diagnostic says it was fixed"
        return
    before, after = physical_lines(result.source), physical_lines(result.new_source)
    imports = import_lines(result.source)

    def covered(n: int) -> bool:
        return n in imports or any(a <= n <= b for a, b in fixed)

    changed: set[int] = set()  # input lines (1-based) edited or removed
    inserted: set[int] = set()  # insertions after input line n (0: at the top)
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag in ("replace", "delete"):
            for n in range(i1 + 1, i2 + 1):
                assert covered(n), (
                    f"input line {n} changed outside every fixed diagnostic {fixed}: {before[n - 1]!r} -> "
                    f"{after[j1:j2]!r}"
                )
            changed.update(range(i1 + 1, i2 + 1))
            continue
        block = after[j1:j2]
        positions = _insertion_positions(before, block, i1)
        inserted |= positions
        if any(_is_import_text(line) for line in block) and all(
            _is_import_text(line) or not line.strip() for line in block
        ):
            continue
        assert any(a - 1 <= p <= b for p in positions for a, b in fixed), (
            f"lines {block!r} inserted after input line {i1}, away from every fixed diagnostic {fixed}"
        )
    for d in result.diagnostics:
        if d.fixed:
            assert any(d.line <= n <= d.end_line for n in changed) or any(
                d.line - 1 <= p <= d.end_line for p in inserted
            ), (
                f"{d.code} reported fixed at input lines {d.line}-{d.end_line} "
                f"({before[d.line - 1:d.end_line]!r}), which the output does not change"
            )


def assert_idempotent(source: str, unsafe: bool) -> None:
    again = run_tool(source, unsafe)
    assert not again.errors, f"the second run reports errors: {again.errors}"
    refixed = [d for d in again.diagnostics if d.fixed]
    assert again.new_source == source, (
        f"a second run changes the output again ({[d.code for d in refixed]}):\n"
        + "".join(difflib.unified_diff(physical_lines(source), physical_lines(again.new_source), "first", "second"))
    )


def record_fixes(result) -> None:
    for code in sorted({d.code for d in result.diagnostics if d.fixed}):
        event(f"fixed {code}")


# ---------------------------------------------------------------------------------------------
# 1. arbitrary programs from hypothesmith

TRIGGER = '''
import torch
import torch.nn as nn

class _FuzzTrigger(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2), nn.ReLU()]
        self.heads = {"a": nn.Linear(2, 2)}
        self.mask = torch.ones(2)
        self.w = torch.zeros(2, requires_grad=True)
        self.fc = nn.Linear(2, 2)
        nn.init.xavier_uniform(self.fc.weight)

    def forward(self, x):
        y = torch.sigmoid(x)
        y += 1
        return self.fc.forward(torch.autograd.Variable(y))


class _FuzzPlain(nn.Module):
    def __init__(self):
        self.scale = 2
'''


@st.composite
def with_trigger(draw, programs):
    """One to three generated programs, maybe with a module every rule fires on before or after them,
    maybe cut short (which usually makes it invalid: the error path gets exercised too)."""
    source = "\n".join(draw(st.lists(programs, min_size=1, max_size=3)))
    where = draw(st.sampled_from(["alone", "before", "after"]))
    if where == "before":
        source = TRIGGER.lstrip("\n") + "\n" + source
    elif where == "after":
        source = source + ("" if source.endswith(("\n", "\r")) else "\n") + TRIGGER
    if draw(st.integers(0, 9)) == 0 and source:
        source = source[: draw(st.integers(0, len(source) - 1))]
    return source


def check_any_program(source: str, unsafe: bool) -> None:
    note(f"source:\n{source}")
    valid = compiles(source)
    event("input compiles" if valid else "input rejected by CPython")
    result = run_tool(source, unsafe)
    if result.errors:
        assert not valid, f"errors for a source CPython compiles: {result.errors}"
        assert result.new_source == source, "a file with errors was changed"
        return
    output = result.new_source
    ast.parse(output)  # the output parses
    if valid:
        assert compiles(output), "a source that compiled no longer compiles after the fixes"
    record_fixes(result)
    assert_idempotent(output, unsafe)
    assert_changes_covered(source, result)


@fuzz_settings(40)
@given(source=with_trigger(hypothesmith.from_grammar(auto_target=False)), unsafe=st.booleans())
def test_grammar_programs(source, unsafe):
    check_any_program(source, unsafe)


@fuzz_settings(20)
@given(source=with_trigger(hypothesmith.from_node(auto_target=False)), unsafe=st.booleans())
def test_libcst_node_programs(source, unsafe):
    check_any_program(source, unsafe)


# ---------------------------------------------------------------------------------------------
# 2. nn.Module classes from a grammar of the patterns the rules look for

NN_NAMES = (
    "Module", "Linear", "ReLU", "Tanh", "Sigmoid", "Identity", "LayerNorm", "Sequential", "Softmax",
    "ModuleList", "ModuleDict", "Parameter", "ParameterList", "ParameterDict",
)
DEPRECATED_INIT = {
    "xavier_uniform": "{w}",
    "xavier_normal": "{w}",
    "kaiming_uniform": "{w}",
    "kaiming_normal": "{w}",
    "normal": "{w}, std=0.02",
    "uniform": "{w}, -0.1, 0.1",
    "constant": "{w}, 0.05",
    "orthogonal": "{w}",
    "sparse": "{w}, 0.5",
    "eye": "{w}",
}
COMMENTS = ("# note", "# keep this", "# TODO: revisit", "# noqa: E501", "# type: ignore")


@dataclass
class Spelling:
    """How one generated file names torch, torch.nn, nn.init, Variable and F."""

    torch: str
    nn_prefix: str
    direct: frozenset
    imports: list
    functional: str | None
    init_style: str
    variable_style: str
    used_init: set = field(default_factory=set)
    used_variable: bool = False

    def nn(self, name: str) -> str:
        return name if name in self.direct else f"{self.nn_prefix}{name}"

    def t(self, name: str) -> str:
        return f"{self.torch}.{name}"

    def init(self, name: str) -> str:
        if self.init_style == "attr":
            return f"{self.nn_prefix}init.{name}"
        if self.init_style == "module":
            return f"init.{name}"
        if self.init_style == "alias":
            return f"nninit.{name}"
        self.used_init.add(name)
        return name

    def variable(self) -> str:
        self.used_variable = True
        return {"name": "Variable", "alias": "Var", "attr": f"{self.torch}.autograd.Variable"}[self.variable_style]

    def act(self, name: str) -> str:
        """``F.relu``-style when the file imports F, else the torch function."""
        return f"{self.functional}.{name}" if self.functional else self.t(name)

    def header(self) -> list[str]:
        lines = list(self.imports)
        if self.init_style == "module":
            lines.append("from torch.nn import init")
        elif self.init_style == "alias":
            lines.append("import torch.nn.init as nninit")
        elif self.used_init:
            lines.append(f"from torch.nn.init import {', '.join(sorted(self.used_init))}")
        if self.used_variable and self.variable_style == "name":
            lines.append("from torch.autograd import Variable")
        elif self.used_variable and self.variable_style == "alias":
            lines.append("from torch.autograd import Variable as Var")
        return lines


@st.composite
def spellings(draw) -> Spelling:
    torch_name = draw(st.sampled_from(["torch", "torch", "torch", "th"]))
    imports = ["import torch" if torch_name == "torch" else f"import torch as {torch_name}"]
    style = draw(st.sampled_from(["import_as", "from", "attr", "plain", "alias", "from_alias"]))
    prefix = {
        "import_as": "nn.", "from": "nn.", "attr": f"{torch_name}.nn.", "plain": "torch.nn.", "alias": "tnn.", "from_alias": "N.",
    }[style]
    imports += {
        "import_as": ["import torch.nn as nn"],
        "plain": ["import torch.nn"],
        "from": ["from torch import nn"],
        "attr": [],
        "alias": ["import torch.nn as tnn"],
        "from_alias": ["from torch import nn as N"],
    }[style]
    direct = frozenset(draw(st.sets(st.sampled_from(NN_NAMES), max_size=6))) if draw(st.booleans()) else frozenset()
    if direct:
        imports.append(f"from torch.nn import {', '.join(n for n in NN_NAMES if n in direct)}")
    functional = draw(st.sampled_from([None, "import", "from"]))
    if functional == "import":
        imports.append("import torch.nn.functional as F")
    elif functional == "from":
        imports.append("from torch.nn import functional as F")
    return Spelling(
        torch=torch_name,
        nn_prefix=prefix,
        direct=direct,
        imports=imports,
        functional="F" if functional else None,
        init_style=draw(st.sampled_from(["attr", "module", "alias", "names"])),
        variable_style=draw(st.sampled_from(["name", "alias", "attr"])),
    )


def indent(lines: list[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line if line else line for line in lines]


@dataclass
class ClassGen:
    name: str
    qualname: str
    base: str
    parent: str | None  # the generated class it derives from
    depth: int
    var: str  # the name forward threads its value through
    body: list = field(default_factory=list)  # class-level blocks (lists of lines)
    pre_super: list = field(default_factory=list)  # __init__ statements before super().__init__()
    init: list = field(default_factory=list)  # __init__ statements after it
    forward: list = field(default_factory=list)  # forward statements
    submodules: list = field(default_factory=list)  # attributes holding a registered layer
    tensors: list = field(default_factory=list)  # attributes holding a (4,) tensor
    apply_init: bool = False  # call self.apply(_init_weights) right after super().__init__()
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


@dataclass
class Context:
    sp: Spelling
    blocks: list  # names of generated top-level classes built with no arguments
    needs_hook: bool = False
    needs_keep: bool = False
    needs_trace: bool = False
    init_weights: str | None = None  # the deprecated nn.init function _init_weights uses


@dataclass
class Program:
    source: str
    classes: list


def module_ctor(draw, ctx: Context) -> str:
    """A construction of a layer that maps (2, 4) to (2, 4)."""
    nn = ctx.sp.nn
    choices = [
        f"{nn('Linear')}(4, 4)",
        f"{nn('Linear')}(4, 4, bias=False)",
        f"{nn('ReLU')}()",
        f"{nn('Tanh')}()",
        f"{nn('Sigmoid')}()",
        f"{nn('Identity')}()",
        f"{nn('LayerNorm')}(4)",
        f"{nn('Softmax')}(dim=-1)",
        f"{nn('Sequential')}({nn('Linear')}(4, 4), {nn('ReLU')}())",
    ]
    choices += [f"{name}()" for name in ctx.blocks]
    return draw(st.sampled_from(choices))


def callable_element(draw, ctx: Context, cls: ClassGen) -> tuple[str, bool]:
    """An element of a list or dict of layers: (expression, is a module)."""
    kind = draw(st.sampled_from(["module"] * 6 + ["lambda", "function", "none", "existing"]))
    if kind == "lambda":
        return "(lambda t: t * 2)", False
    if kind == "function":
        return ctx.sp.act("tanh"), False
    if kind == "none":
        return "None", False
    if kind == "existing" and cls.submodules:
        return f"self.{draw(st.sampled_from(cls.submodules))}", True
    return module_ctor(draw, ctx), True


def call(layer: str, value: str, via_forward: bool) -> str:
    return f"{layer}.forward({value})" if via_forward else f"{layer}({value})"


# -- stages: each adds what it needs to __init__, forward and the class body --------------------


def stage_linear(draw, ctx, cls, v):
    sp = ctx.sp
    attr = draw(st.sampled_from(["fc", "proj", "lin"]))
    cls.init.append([f"self.{attr} = {sp.nn('Linear')}(4, 4)"])
    for _ in range(draw(st.integers(0, 2))):
        fn = draw(st.sampled_from(sorted(DEPRECATED_INIT)))
        bias = fn in ("constant", "normal", "uniform") and draw(st.booleans())
        target = f"self.{attr}.bias" if bias else f"self.{attr}.weight"
        cls.init.append([f"{sp.init(fn)}({DEPRECATED_INIT[fn].format(w=target)})"])
    if draw(st.integers(0, 4)) == 0:
        ctx.needs_hook = True
        cls.init.append([f"self.{attr}.register_backward_hook(_hook)"])
    cls.submodules.append(attr)
    return [[f"{v} = {call('self.' + attr, v, draw(st.booleans()))}"]]


def stage_activation(draw, ctx, cls, v):
    nn = ctx.sp.nn
    attr = draw(st.sampled_from(["act", "gate", "norm"]))
    ctor = draw(st.sampled_from([
        f"{nn('Sigmoid')}()", f"{nn('Tanh')}()", f"{nn('ReLU')}()", f"{nn('Softmax')}(dim=-1)",
        f"{nn('LayerNorm')}(4)", f"{nn('Identity')}()",
    ]))
    cls.init.append([f"self.{attr} = {ctor}"])
    cls.submodules.append(attr)
    return [[f"{v} = {call('self.' + attr, v, draw(st.booleans()))}"]]


def stage_block(draw, ctx, cls, v):
    if not ctx.blocks:
        return stage_activation(draw, ctx, cls, v)
    block = draw(st.sampled_from(ctx.blocks))
    if draw(st.integers(0, 3)) == 0:  # built in forward
        return [[f"{v} = {call(block + '()', v, draw(st.booleans()))}"]]
    attr = draw(st.sampled_from(["block", "body", "inner"]))
    cls.init.append([f"self.{attr} = {block}()"])
    cls.submodules.append(attr)
    return [[f"{v} = {call('self.' + attr, v, draw(st.booleans()))}"]]


LIST_ODD_USES = {
    # name: (template, works on tuples too, assigns a module attribute)
    "sort": ("self.{a}.sort(key=lambda m: type(m).__name__)", False, False),
    "reverse": ("self.{a}.reverse()", False, False),
    "pop": ("self.{a}.pop()", False, False),
    "pop0": ("self.{a}.pop(0)", False, False),
    "insert0": ("self.{a}.insert(0, {ident})", False, False),
    "insert_neg": ("self.{a}.insert(-1, {ident})", False, False),
    "insert_len": ("self.{a}.insert(len(self.{a}), {ident})", False, False),
    "isinstance": ("assert isinstance(self.{a}, (list, tuple))", True, False),
    "radd": ("everything = [{ident}] + list(self.{a})", True, False),
    "radd_raw": ("everything = [{ident}] + self.{a}", False, False),
    "add": ("everything = self.{a} + [{ident}]", False, False),
    "sequential": ("self.seq = {seq}(*self.{a})", True, True),
    "setitem": ("self.{a}[0] = {ident}", False, False),
    "delitem": ("del self.{a}[0]", False, False),
    "index": ("first = self.{a}.index(self.{a}[0])", True, False),
    "count": ("n = self.{a}.count(self.{a}[0])", True, False),
    "copy": ("backup = self.{a}.copy()", False, False),
    "slice_copy": ("backup = self.{a}[:]", True, False),
    "len": ("self.depth = len(self.{a})", True, False),
    "eq": ("same = self.{a} == []", True, False),
    "add_module": ("self.add_module('first', self.{a}[0])", True, True),
    "reassign": ("self.{a} = self.{a}[::-1]", True, False),
    "imul": ("self.{a} *= 1", False, False),
}


def stage_module_list(draw, ctx, cls, v):
    sp = ctx.sp
    a = draw(st.sampled_from(["layers", "blocks", "stack"]))
    before_super = draw(st.integers(0, 7)) == 0 and cls.parent is None
    elements = [callable_element(draw, ctx, cls) for _ in range(draw(st.integers(2, 3)))]
    if before_super:  # nothing registered exists yet
        elements = [(e, m) if not e.startswith("self.") else (module_ctor(draw, ctx), True) for e, m in elements]
    exprs = [e for e, _ in elements]
    n = len(exprs)
    form = draw(st.sampled_from(["literal", "tuple", "bare_tuple", "comp", "append", "append_local", "extend", "iadd", "local", "repeat"]))
    if form in ("comp", "append", "append_local", "local"):  # one constructor, called n times
        ctor, is_module = next(((e, m) for e, m in elements if e != "None" and not e.startswith("self.")), (module_ctor(draw, ctx), True))
        elements = [(ctor, is_module)] * n
        exprs = [ctor] * n
    all_modules = all(is_module for _, is_module in elements)
    has_none = "None" in exprs
    ctor = exprs[0]
    stmts: list[list[str]] = []
    if form == "literal":
        stmts.append([f"self.{a} = [{', '.join(exprs)}]"])
    elif form == "tuple":
        stmts.append([f"self.{a} = ({', '.join(exprs)})"])
    elif form == "bare_tuple":
        stmts.append([f"self.{a} = {', '.join(exprs)}"])
    elif form == "comp":
        stmts.append([f"self.{a} = [{ctor} for _ in range({n})]"])
    elif form == "append":
        stmts.append([f"self.{a} = []"])
        stmts.append([f"for i in range({n}):", f"    self.{a}.append({ctor})"])
    elif form == "append_local":
        stmts.append([f"self.{a} = []"])
        stmts.append([f"for i in range({n}):", f"    layer = {ctor}", f"    self.{a}.append(layer)"])
    elif form == "extend":
        stmts.append([f"self.{a} = []"])
        stmts.append([f"self.{a}.extend([{', '.join(exprs)}])"])
    elif form == "iadd":
        stmts.append([f"self.{a} = [{exprs[0]}]"])
        stmts.append([f"self.{a} += [{', '.join(exprs[1:])}]"])
    elif form == "local":
        stmts.append(["modules = []"])
        stmts.append([f"for i in range({n}):", f"    modules.append({ctor})"])
        stmts.append([f"self.{a} = modules"])
        if not before_super and draw(st.integers(0, 3)) == 0:
            stmts.append([f"self.seq = {sp.nn('Sequential')}(*modules)"])
    else:  # repeat
        stmts.append([f"self.{a} = [{', '.join(exprs)}] * 2"])
        exprs = exprs * 2
    is_tuple = form in ("tuple", "bare_tuple")
    odd_names = [
        name for name, (_, tuples, registers) in LIST_ODD_USES.items()
        if (tuples or not is_tuple) and not (registers and before_super)
    ]
    odd = draw(st.lists(st.sampled_from(odd_names), max_size=2, unique=True)) if draw(st.integers(0, 2)) == 0 else []
    ident = f"{sp.nn('Identity')}()"
    for name in odd:
        stmts.append([LIST_ODD_USES[name][0].format(a=a, ident=ident, seq=sp.nn("Sequential"))])
    (cls.pre_super if before_super else cls.init).extend(stmts)

    via_forward = all_modules and draw(st.integers(0, 3)) == 0
    layer_call = call("layer", v, via_forward)
    guard = ["    if layer is not None:", f"        {v} = {layer_call}"] if has_none else [f"    {v} = {layer_call}"]
    if "sequential" in odd and not has_none and draw(st.booleans()):
        return [[f"{v} = self.seq({v})"]]
    uses = ["for", "enumerate", "reversed", "slice"] + ([] if has_none else ["range", "index"])
    use = draw(st.sampled_from(uses))
    if use == "for":
        return [[f"for layer in self.{a}:", *guard]]
    if use == "enumerate":
        return [[f"for i, layer in enumerate(self.{a}):", *guard]]
    if use == "reversed":
        return [[f"for layer in reversed(self.{a}):", *guard]]
    if use == "slice":
        part = draw(st.sampled_from(["1:", "::-1", ":"]))
        return [[f"for layer in self.{a}[{part}]:", *guard]]
    if use == "range":
        return [[f"for i in range(len(self.{a})):", f"    {v} = {call(f'self.{a}[i]', v, via_forward)}"]]
    index = draw(st.sampled_from(["0", "-1"]))
    return [[f"{v} = {call(f'self.{a}[{index}]', v, via_forward)}"]]


DICT_KEYS = ["a", "b", "enc", "dec", "cls", "box", "head_1"] * 3 + [
    "type", "keys", "to", "a.b", "", "training", "forward", "update", "values", 0, 1,
]
DICT_ODD_USES = {
    "get": "picked = self.{a}.get({k})",
    "update": "self.{a}.update({{{k3}: {ctor}}})",
    "setdefault": "self.{a}.setdefault({k3}, {ctor})",
    "pop": "self.{a}.pop({k})",
    "popitem": "self.{a}.popitem()",
    "del": "del self.{a}[{k}]",
    "copy": "backup = self.{a}.copy()",
    "contains": "present = {k} in self.{a}",
    "isinstance": "assert isinstance(self.{a}, dict)",
    "keys": "names = list(self.{a}.keys())",
    "dict": "backup = dict(self.{a})",
    "unpack": "backup = {{**self.{a}}}",
    "len": "self.width = len(self.{a})",
}


def dict_keys(draw, n: int) -> list:
    return draw(st.lists(st.sampled_from(DICT_KEYS), min_size=n, max_size=n, unique=True))


def stage_module_dict(draw, ctx, cls, v):
    sp = ctx.sp
    a = draw(st.sampled_from(["heads", "branches", "experts"]))
    keys = dict_keys(draw, draw(st.integers(2, 3)))
    elements = [callable_element(draw, ctx, cls) for _ in keys]
    exprs = [e for e, _ in elements]
    all_modules = all(m for _, m in elements)
    has_none = "None" in exprs
    ctor = module_ctor(draw, ctx)
    form = draw(st.sampled_from(["literal", "literal", "comp", "subscript", "loop", "call"]))
    stmts: list[list[str]] = []
    if form == "literal":
        stmts.append([f"self.{a} = {{{', '.join(f'{k!r}: {e}' for k, e in zip(keys, exprs))}}}"])
    elif form == "comp":
        stmts.append([f"self.{a} = {{k: {ctor} for k in {tuple(keys)!r}}}"])
        all_modules, has_none = True, False
    elif form == "subscript":
        stmts.append([f"self.{a} = {{}}"])
        stmts += [[f"self.{a}[{k!r}] = {e}"] for k, e in zip(keys, exprs)]
    elif form == "loop":
        stmts.append([f"self.{a} = {{}}"])
        stmts.append([f"for k in {tuple(keys)!r}:", f"    self.{a}[k] = {ctor}"])
        all_modules, has_none = True, False
    else:
        str_keys = [k for k in keys if isinstance(k, str) and k.isidentifier()] or ["a"]
        stmts.append([f"self.{a} = dict({', '.join(f'{k}={ctor}' for k in str_keys)})"])
        keys, all_modules, has_none = str_keys, True, False
    removed = set()
    if draw(st.integers(0, 2)) == 0:
        for name in draw(st.lists(st.sampled_from(sorted(DICT_ODD_USES)), max_size=2, unique=True)):
            k3 = draw(st.sampled_from(["extra", "zz", "aa"]))
            stmts.append([DICT_ODD_USES[name].format(a=a, k=repr(keys[0]), k3=repr(k3), ctor=f"{sp.nn('Identity')}()")])
            if name in ("pop", "del", "popitem"):
                removed.add("any")
    before_super = draw(st.integers(0, 7)) == 0 and cls.parent is None and "self." not in "".join(exprs)
    (cls.pre_super if before_super else cls.init).extend(stmts)
    via_forward = all_modules and draw(st.integers(0, 3)) == 0
    body = (lambda layer: ["    if {0} is not None:".format(layer), f"        {v} = {call(layer, v, via_forward)}"]) if has_none else (
        lambda layer: [f"    {v} = {call(layer, v, via_forward)}"]
    )
    use = draw(st.sampled_from(["keys", "values", "items"] + ([] if removed else ["index"])))
    if use == "keys":
        return [[f"for k in self.{a}:", *body(f"self.{a}[k]")]]
    if use == "values":
        return [[f"for layer in self.{a}.values():", *body("layer")]]
    if use == "items":
        return [[f"for name, layer in self.{a}.items():", *body("layer")]]
    if has_none:
        return [[f"for layer in self.{a}.values():", *body("layer")]]
    return [[f"{v} = {call(f'self.{a}[{keys[-1]!r}]', v, via_forward)}"]]


def parameter_ctor(draw, ctx, i: int) -> str:
    sp = ctx.sp
    value = draw(st.sampled_from([
        f"{sp.t('ones')}(4) * {0.1 * (i + 1):.1f}",
        f"{sp.t('full')}((4,), {0.2 * (i + 1):.1f})",
        f"{sp.t('randn')}(4)",
        f"{sp.t('arange')}(4.0) / {i + 2}",
    ]))
    extra = ", requires_grad=False" if draw(st.integers(0, 5)) == 0 else ""
    return f"{sp.nn('Parameter')}({value}{extra})"


def stage_parameter_list(draw, ctx, cls, v):
    sp = ctx.sp
    a = draw(st.sampled_from(["scales", "gains", "weights"]))
    n = draw(st.integers(2, 3))
    elements = [
        parameter_ctor(draw, ctx, i) if draw(st.integers(0, 5)) else f"{sp.t('ones')}(4) * {i + 1}"
        for i in range(n)
    ]
    form = draw(st.sampled_from(["literal", "comp", "append", "extend", "iadd", "local"]))
    stmts: list[list[str]] = []
    if form == "literal":
        stmts.append([f"self.{a} = [{', '.join(elements)}]"])
    elif form == "comp":
        stmts.append([f"self.{a} = [{sp.nn('Parameter')}({sp.t('ones')}(4) * i) for i in range({n})]"])
    elif form == "append":
        stmts.append([f"self.{a} = []"])
        stmts.append([f"for i in range({n}):", f"    self.{a}.append({sp.nn('Parameter')}({sp.t('full')}((4,), 0.5 * i)))"])
    elif form == "extend":
        stmts.append([f"self.{a} = []"])
        stmts.append([f"self.{a}.extend([{', '.join(elements)}])"])
    elif form == "iadd":
        stmts.append([f"self.{a} = [{elements[0]}]"])
        stmts.append([f"self.{a} += [{', '.join(elements[1:])}]"])
    else:
        stmts.append(["params = []"])
        stmts.append([f"for i in range({n}):", f"    params.append({sp.nn('Parameter')}({sp.t('ones')}(4) + i))"])
        stmts.append([f"self.{a} = params"])
    odd = {
        "insert": f"self.{a}.insert(0, {sp.nn('Parameter')}({sp.t('zeros')}(4)))",
        "pop": f"self.{a}.pop()",
        "reverse": f"self.{a}.reverse()",
        "stack": f"stacked = {sp.t('stack')}(self.{a})",
        "sort": f"self.{a}.sort(key=lambda p: float(p.sum()))",
        "len": f"self.count = len(self.{a})",
    }
    if draw(st.integers(0, 2)) == 0:
        stmts.append([odd[draw(st.sampled_from(sorted(odd)))]])
    before_super = draw(st.integers(0, 7)) == 0 and cls.parent is None
    (cls.pre_super if before_super else cls.init).extend(stmts)
    use = draw(st.sampled_from(["loop", "sum", "index", "enumerate", "stack"]))
    if use == "loop":
        return [[f"for p in self.{a}:", f"    {v} = {v} * 0.5 + p"]]
    if use == "sum":
        return [[f"{v} = {v} + sum(self.{a})"]]
    if use == "index":
        return [[f"{v} = {v} + self.{a}[{draw(st.sampled_from(['0', '-1']))}]"]]
    if use == "enumerate":
        return [[f"for i, p in enumerate(self.{a}):", f"    {v} = {v} - i * p"]]
    return [[f"{v} = {v} + {sp.t('stack')}(list(self.{a})).sum(0)"]]


def stage_parameter_dict(draw, ctx, cls, v):
    sp = ctx.sp
    a = draw(st.sampled_from(["biases", "offsets", "shifts"]))
    keys = dict_keys(draw, draw(st.integers(2, 3)))
    values = [parameter_ctor(draw, ctx, i) for i in range(len(keys))]
    form = draw(st.sampled_from(["literal", "literal", "comp", "subscript"]))
    stmts: list[list[str]] = []
    if form == "literal":
        stmts.append([f"self.{a} = {{{', '.join(f'{k!r}: {e}' for k, e in zip(keys, values))}}}"])
    elif form == "comp":
        stmts.append([f"self.{a} = {{k: {sp.nn('Parameter')}({sp.t('ones')}(4) * i) for i, k in enumerate({tuple(keys)!r})}}"])
    else:
        stmts.append([f"self.{a} = {{}}"])
        stmts += [[f"self.{a}[{k!r}] = {e}"] for k, e in zip(keys, values)]
    removed = False
    if draw(st.integers(0, 2)) == 0:
        name = draw(st.sampled_from(sorted(DICT_ODD_USES)))
        stmts.append([DICT_ODD_USES[name].format(
            a=a, k=repr(keys[0]), k3="'zz'", ctor=f"{sp.nn('Parameter')}({sp.t('zeros')}(4))"
        )])
        removed = name in ("pop", "del", "popitem")
    (cls.init if draw(st.integers(0, 7)) or cls.parent is not None else cls.pre_super).extend(stmts)
    # iteration order matters: x * 0.5 + p does not commute
    use = draw(st.sampled_from(["items", "values", "keys"] + ([] if removed else ["index"])))
    if use == "items":
        return [[f"for name, p in self.{a}.items():", f"    {v} = {v} * 0.5 + p"]]
    if use == "values":
        return [[f"for p in self.{a}.values():", f"    {v} = {v} * 0.5 + p"]]
    if use == "keys":
        return [[f"for k in self.{a}:", f"    {v} = {v} * 0.5 + self.{a}[k]"]]
    return [[f"{v} = {v} + self.{a}[{keys[-1]!r}]"]]


def tensor_value(draw, ctx, grad: str) -> tuple[str, bool]:
    """A (4,)-shaped tensor expression, and whether it is a plain factory call (where a
    requires_grad keyword goes)."""
    t = ctx.sp.t
    factories = [
        f"{t('ones')}(4{grad})",
        f"{t('zeros')}(4{grad})",
        f"{t('full')}((4,), 0.5{grad})",
        f"{t('randn')}(4{grad})",
        f"{t('rand')}(4{grad})",
        f"{t('linspace')}(0, 1, 4{grad})",
        f"{t('tensor')}([1.0, 2.0, 3.0, 4.0]{grad})",
        f"{t('arange')}(4.0{grad})",
        f"{t('ones')}(4, dtype={t('float32')}{grad})",
    ]
    derived = [
        f"{t('arange')}(4).float()",
        f"{t('ones')}(4) * 2",
        f"{t('rand')}(4).sqrt()",
        f"{t('tril')}({t('ones')}(4, 4)).sum(0)",
        f"{t('ones')}(1, 4).squeeze(0)",
        f"{t('exp')}({t('zeros')}(4))",
    ]
    if grad or draw(st.booleans()):
        return draw(st.sampled_from(factories)), True
    return draw(st.sampled_from(derived)), False


def stage_tensor_attribute(draw, ctx, cls, v):
    sp = ctx.sp
    a = draw(st.sampled_from(["mask", "scale", "offset", "pe"] * 4 + ["training"]))
    grad = draw(st.sampled_from(["", "", "", ", requires_grad=True", ", requires_grad=False"]))
    value, _ = tensor_value(draw, ctx, grad)
    form = draw(st.sampled_from(["direct"] * 4 + ["local", "variable", "matrix", "annotated"]))
    stmts: list[list[str]] = []
    use_matrix = False
    if form == "local" and not grad:
        stmts.append([f"t = {value}"])
        stmts.append(["t[0] = 1.0"])
        stmts.append([f"self.{a} = {draw(st.sampled_from(['t', 't.unsqueeze(0)', 't * 2', 't.clone()']))}"])
    elif form == "variable":
        var = sp.variable()
        flag = draw(st.sampled_from(["", ", requires_grad=True", ", requires_grad=False"]))
        plain, _ = tensor_value(draw, ctx, "")
        stmts.append([f"self.{a} = {var}({plain}{flag})"])
    elif form == "matrix":
        matrix = draw(st.sampled_from([
            f"{sp.t('tril')}({sp.t('ones')}(4, 4))", f"{sp.t('eye')}(4)", f"{sp.t('randn')}(4, 4) * 0.1",
            f"{sp.t('ones')}(4, 4{grad}) / 4",
        ]))
        stmts.append([f"self.{a} = {matrix}"])
        use_matrix = True
    elif form == "annotated":
        stmts.append([f"self.{a}: {sp.t('Tensor')} = {value}"])
    else:
        stmts.append([f"self.{a} = {value}"])
    conflict = draw(st.sampled_from(["none"] * 6 + ["class_attr", "reset", "requires_grad", "restore", "to", "none_later"]))
    if conflict == "class_attr":
        cls.body.append([f"{a} = None"])
    elif conflict == "reset":
        cls.body.append([f"def reset_{a}(self):", f"    self.{a} = 0"])
    elif conflict == "requires_grad" and not grad and form != "variable":
        stmts.append([draw(st.sampled_from([f"self.{a}.requires_grad = True", f"self.{a}.requires_grad_()"]))])
    elif conflict == "restore":
        stmts.append([f"self.{a} = self.{a} * 2"])
    elif conflict == "to":
        stmts.append([f"self.{a} = self.{a}.to('cpu')"])
    elif conflict == "none_later":
        cls.body.append([f"def clear_{a}(self):", f"    self.{a} = None"])
    before_super = draw(st.integers(0, 7)) == 0 and cls.parent is None
    (cls.pre_super if before_super else cls.init).extend(stmts)
    if not use_matrix:
        cls.tensors.append(a)
    if use_matrix:
        return [[f"{v} = {v} @ self.{a}"]]
    return [[draw(st.sampled_from([
        f"{v} = {v} + self.{a}", f"{v} = {v} * self.{a}", f"{v} = {v} - self.{a}.mean()",
        f"{v} = {sp.t('add')}({v}, self.{a})",
    ]))]]


AUG_OPS = ["+=", "+=", "-=", "*=", "*=", "/=", "**=", "//=", "%="]


def inplace_binding(draw, ctx, cls, v) -> tuple[str, bool]:
    """An expression to bind a fresh local to, and whether it has the shape (2, 4)."""
    sp = ctx.sp
    t = sp.t
    kind = draw(st.sampled_from(["kept"] * 4 + ["fresh"] * 3 + ["alias"] * 4 + ["attr", "unknown", "scalar"]))
    if kind == "kept":
        options = [
            f"{t('sigmoid')}({v})", f"{t('tanh')}({v})", f"{t('relu')}({v})", f"{t('exp')}({v} * 0.1)",
            f"{t('softmax')}({v}, dim=-1)", f"{t('log_softmax')}({v}, dim=-1)", f"{v}.sigmoid()", f"{v}.tanh()",
            f"{v}.softmax(-1)", f"{sp.act('relu')}({v})", f"{sp.act('softmax')}({v}, dim=-1)",
            f"{t('sqrt')}({v}.abs() + 1)", "module",
        ]
        expr = draw(st.sampled_from(options))
        if expr == "module":
            attr = cls.fresh("gate")
            ctor = draw(st.sampled_from(["Sigmoid", "Tanh", "ReLU", "Softmax"]))
            cls.init.append([f"self.{attr} = {sp.nn(ctor)}({'dim=-1' if ctor == 'Softmax' else ''})"])
            expr = f"self.{attr}({v})"
        return expr, True
    if kind == "fresh":
        options = [
            f"{v} * 2.0", f"{v} + 1", f"{t('mul')}({v}, 2)", f"{v}.clone()", f"{v}.abs()", f"-{v}",
            f"{t('ones')}(2, 4)", f"{t('zeros_like')}({v})", "linear",
        ]
        expr = draw(st.sampled_from(options))
        if expr == "linear":
            attr = cls.fresh("lin")
            cls.init.append([f"self.{attr} = {sp.nn('Linear')}(4, 4)"])
            expr = f"self.{attr}({v})"
        return expr, True
    if kind == "alias":
        options = [
            v, f"{v}.view(2, 4)", f"{v}.reshape(2, 4)", f"{v}[:]", f"{v}.detach()", f"{v}.t().t()",
            f"{v}.view_as({v})", f"{v}.float()", f"{v}.contiguous()", f"{v}.to({t('float32')})", f"{v}.type_as({v})",
            f"{v}.expand(2, 4)", f"{v}.squeeze()", f"{t('flatten')}({v}, 1)", f"{v}.requires_grad_(False)",
            f"{v}.data", f"{v}.narrow(0, 0, 2)", f"{t('reshape')}({v}, (2, 4))", f"{v}[0]", "x",
        ]
        expr = draw(st.sampled_from(options))
        return expr, expr != f"{v}[0]"
    if kind == "attr":
        attr = cls.fresh("state")
        form = draw(st.sampled_from(["buffer", "plain", "parameter"]))
        if form == "buffer":
            cls.init.append([f'self.register_buffer("{attr}", {t("zeros")}(2, 4))'])
        elif form == "plain":
            cls.init.append([f"self.{attr} = {t('zeros')}(2, 4)"])
        else:
            cls.init.append([f"self.{attr} = {sp.nn('Parameter')}({t('zeros')}(2, 4))"])
        return f"self.{attr}", True
    if kind == "unknown":
        helper = cls.fresh("_helper")
        returns = draw(st.sampled_from(["t", "t * 2", f"{t('sigmoid')}(t)", "t.view(2, 4)"]))
        if draw(st.booleans()):
            cls.body.append(["@staticmethod", f"def {helper}(t):", f"    return {returns}"])
        else:
            cls.body.append([f"def {helper}(self, t):", f"    return {returns}"])
        expr = draw(st.sampled_from([
            f"self.{helper}({v})", f"{v} if {v}.sum() > 0 else {v} * 2", f"(lambda t: t)({v})",
            f"getattr({sp.torch}, 'sigmoid')({v})", f"[{v}][0]",
        ]))
        return expr, True
    return draw(st.sampled_from([f"float({v}.sum())", f"{v}.sum().item()", "2.0", f"len({v})"])), False


def inplace_operand(draw, ctx, cls, v, g) -> tuple[str, list[list[str]]]:
    """The right-hand side of an augmented assignment, and statements it needs before."""
    t = ctx.sp.t
    kinds = {
        "number": ["1.0", "2", "0.5", "3", "2 ** 2", "True"],
        "tensor": [v, "x", g, f"{t('ones')}(4)", f"{t('ones')}(2, 4)", f"{t('tensor')}(2.0)", f"{v}.mean()"],
        "expression": [f"{v} * 0.5 + 1", f"{v} - 1", f"-{v}", f"{v} if True else {g}", f"{t('sigmoid')}({v})"],
        # out of place, these change the result's dtype: in place, they cannot
        "dtype": [
            f"{t('ones')}(2, 4, dtype={t('float64')})", f"{t('ones')}(4, dtype={t('float64')})",
            f"{t('tensor')}(2.0, dtype={t('float64')})", f"{t('ones')}(4, dtype={t('float16')})",
            f"{t('full')}((2, 4), 2, dtype={t('int64')})", f"{v}.double()", f"{t('ones')}(2, 4).double()",
        ],
        "local": ["float32", "float64", "int64"],
        "attribute": [f"self.{a}" for a in cls.tensors] or ["1.0"],
    }
    kind = draw(st.sampled_from(sorted(kinds)))
    operand = draw(st.sampled_from(kinds[kind]))
    if kind == "local":
        name = cls.fresh("k")
        return name, [[f"{name} = {t('ones')}(2, 4, dtype={t(operand)}) * 2"]]
    return operand, []


def stage_inplace(draw, ctx, cls, v):
    g = cls.fresh(draw(st.sampled_from(["g", "out", "y", "z"])))
    expr, full_shape = inplace_binding(draw, ctx, cls, v)
    stmts: list[list[str]] = []
    bind = draw(st.sampled_from(["plain"] * 6 + ["walrus", "annotated", "tuple"]))
    if bind == "walrus":
        stmts.append([f"_ = ({g} := {expr})"])
    elif bind == "annotated":
        stmts.append([f"{g}: {ctx.sp.t('Tensor')} = {expr}"])
    elif bind == "tuple":
        stmts.append([f"{g}, _ = {expr}, None"])
    else:
        stmts.append([f"{g} = {expr}"])
    if draw(st.booleans()):
        stmts.append([draw(st.sampled_from([f"_ = {g} * 1.0", f"_ = {g}.sum()", f"_ = {g}.shape", f"_ = len({g}.size())"]))])
    for _ in range(draw(st.integers(1, 2))):
        operand, extra = inplace_operand(draw, ctx, cls, v, g)
        stmts += extra
        aug = [f"{g} {draw(st.sampled_from(AUG_OPS))} {operand}"]
        wrap = draw(st.sampled_from(["none"] * 6 + ["no_grad", "if", "loop", "try"]))
        if wrap == "no_grad":
            aug = [f"with {ctx.sp.t('no_grad')}():", *indent(aug)]
        elif wrap == "if":
            aug = [f"if {v}.sum() > -1e9:", *indent(aug)]
        elif wrap == "loop":
            aug = ["for _ in range(2):", *indent(aug)]
        elif wrap == "try":
            aug = ["try:", *indent(aug), "except RuntimeError:", "    pass"]
        stmts.append(aug)
    if draw(st.integers(0, 5)) == 0:
        stmts.append([f"self.{cls.fresh('seen')} = {g}"])
    if full_shape and draw(st.integers(0, 2)) == 0:
        stmts.append([f"{v} = {g}"])
    else:
        stmts.append([draw(st.sampled_from([f"{v} = {v} + {g}", f"{v} = {v} * 0.5 + {g} * 0.5", f"{v} = {g} - {v}"]))])
    return stmts


def stage_variable(draw, ctx, cls, v):
    var = ctx.sp.variable()
    t = ctx.sp.t
    options = [
        f"{v} = {var}({v})",
        f"{v} = {var}({v} * 2.0)",
        f"{v} = {v} + {var}({t('ones')}(4))",
        f"{v} = {v} + {var}({t('ones')}(4), requires_grad=True)",
        f"{v} = {var}({v}, requires_grad=False)",
        f"{v} = {var}({v}.data)",
        f"{v} = {var}({v}).data",
        f"{v} = {var}({v}, volatile=True)",
        f"{v} = {var}({v}, True)",
        f"{v} = {var}(-{v})",
        f"{v} = {var}({v} if True else {v})",
    ]
    return [[draw(st.sampled_from(options))]]


def stage_helper(draw, ctx, cls, v):
    helper = cls.fresh("_step")
    body = draw(st.sampled_from(["t * 0.5", "t", f"{ctx.sp.t('tanh')}(t)"]))
    cls.body.append([f"def {helper}(self, t):", f"    return {body}"])
    return [[f"{v} = self.{helper}({v})"]]


def stage_apply_init(draw, ctx, cls, v):
    # `apply` reaches exactly the registered layers: a fix that registers a list of layers would
    # rightly change what it initializes. So it runs first, before this class builds anything,
    # and only in classes that inherit no layers.
    if cls.parent is not None:
        return stage_linear(draw, ctx, cls, v)
    if ctx.init_weights is None:
        ctx.init_weights = draw(st.sampled_from(sorted(DEPRECATED_INIT)))
    cls.apply_init = True
    return []


def stage_nested(draw, ctx, cls, v):
    if cls.depth > 0:
        return stage_linear(draw, ctx, cls, v)
    inner = draw(class_gens(ctx, cls.fresh("Inner"), depth=cls.depth + 1, max_stages=2, owner=cls.qualname))
    cls.body.append(render_class(draw, ctx, inner))
    attr = cls.fresh("inner")
    owner = draw(st.sampled_from(["self", cls.name]))
    cls.init.append([f"self.{attr} = {owner}.{inner.name}()"])
    return [[f"{v} = {call('self.' + attr, v, draw(st.integers(0, 3)) == 0)}"]]


def stage_super_forward(draw, ctx, cls, v):
    if cls.parent is None:
        return stage_inplace(draw, ctx, cls, v)
    return [[f"{v} = super().forward({v})"]]


STAGES = [
    (stage_linear, 2), (stage_activation, 1), (stage_block, 1), (stage_module_list, 4), (stage_module_dict, 3),
    (stage_parameter_list, 2), (stage_parameter_dict, 2), (stage_tensor_attribute, 3), (stage_inplace, 5),
    (stage_variable, 1), (stage_helper, 1), (stage_apply_init, 1), (stage_nested, 1), (stage_super_forward, 1),
]
STAGE_CHOICES = [stage for stage, weight in STAGES for _ in range(weight)]


@st.composite
def class_gens(draw, ctx: Context, name: str, depth: int = 0, max_stages: int = 5, owner: str = "") -> ClassGen:
    sp = ctx.sp
    parent = None
    if depth == 0 and ctx.blocks and draw(st.integers(0, 4)) == 0:
        parent = draw(st.sampled_from(ctx.blocks))
    base = parent or sp.nn("Module")
    cls = ClassGen(name, f"{owner}.{name}" if owner else name, base, parent, depth, draw(st.sampled_from(["x", "h"])))
    for _ in range(draw(st.integers(1, max_stages))):
        stage = draw(st.sampled_from(STAGE_CHOICES))
        statements = stage(draw, ctx, cls, cls.var)
        wrap = draw(st.sampled_from(["none"] * 8 + ["if", "no_grad", "enable_grad", "try"]))
        if statements and wrap != "none":
            flat = [line for stmt in statements for line in stmt]
            header = {
                "if": f"if {cls.var}.abs().sum() >= 0:",
                "no_grad": f"with {sp.t('no_grad')}():",
                "enable_grad": f"with {sp.t('enable_grad')}():",
                "try": "try:",
            }[wrap]
            wrapped = [header, *indent(flat)]
            if wrap == "try":
                wrapped += ["except (RuntimeError, TypeError):", "    pass"]
            statements = [wrapped]
        cls.forward.extend(statements)
    return cls


def sprinkle(draw, statements: list[list[str]]) -> list[str]:
    """Statements to lines, with a comment line or a trailing comment here and there."""
    lines: list[str] = []
    for stmt in statements:
        if draw(st.integers(0, 7)) == 0:
            lines.append(draw(st.sampled_from(COMMENTS)))
        first, *rest = stmt
        if draw(st.integers(0, 9)) == 0 and not first.startswith("@"):
            first = f"{first}  {draw(st.sampled_from(COMMENTS))}"
        lines += [first, *rest]
    return lines


def render_class(draw, ctx: Context, cls: ClassGen) -> list[str]:
    sp = ctx.sp
    lines: list[str] = []
    if draw(st.integers(0, 5)) == 0:
        ctx.needs_keep = True
        lines.append("@_keep")
    lines.append(f"class {cls.name}({cls.base}):")
    body: list[list[str]] = []
    if draw(st.integers(0, 2)) == 0:
        body.append([f'"""{cls.name}: a generated module."""'])
    if draw(st.integers(0, 5)) == 0:
        body.append(["factor = 2"])

    # __init__
    init_statements = list(cls.pre_super)
    super_style = draw(st.sampled_from(["plain"] * 5 + ["named", "explicit", "missing"]))
    if super_style == "explicit" and cls.parent is not None:
        super_style = "plain"
    if super_style != "missing":
        init_statements.append([{
            "plain": "super().__init__()",
            "named": f"super({cls.qualname}, self).__init__()",
            "explicit": f"{sp.nn('Module')}.__init__(self)",
        }[super_style]])
    if cls.apply_init:
        init_statements.append(["self.apply(_init_weights)"])
    init_statements += cls.init
    init_lines = sprinkle(draw, init_statements)
    if draw(st.integers(0, 3)) == 0:
        init_lines.insert(0, '"""Build the layers."""')
    if draw(st.integers(0, 5)) == 0:
        init_lines.insert(0, "self.dim = 4")
    methods: list[list[str]] = []
    if init_lines or draw(st.booleans()):
        methods.append(["def __init__(self):", *indent(init_lines or ["super().__init__()"])])

    # forward
    v = cls.var
    forward_lines: list[str] = []
    if draw(st.integers(0, 4)) == 0:  # an in-place update of the argument itself
        forward_lines.append(f"x {draw(st.sampled_from(['+=', '*=', '-=']))} {draw(st.sampled_from(['1.0', '2', 'x']))}")
    if v != "x":
        forward_lines.append(f"{v} = {draw(st.sampled_from(['x', 'x.clone()', 'x * 1.0', 'x + 0']))}")
    forward_lines += sprinkle(draw, cls.forward)
    forward_lines.append(f"return {v}")
    decorators = []
    deco = draw(st.sampled_from(["none"] * 6 + ["no_grad", "trace"]))
    if deco == "no_grad":
        decorators.append(f"@{sp.t('no_grad')}()")
    elif deco == "trace":
        ctx.needs_trace = True
        decorators.append("@_trace")
    signature = draw(st.sampled_from(["self, x", "self, x, scale=1.0", f"self, x: {sp.t('Tensor')}"]))
    methods.append([*decorators, f"def forward({signature}):", *indent(forward_lines)])
    if draw(st.booleans()):
        methods.reverse()
    members = body + cls.body + methods
    ordered = draw(st.permutations(members)) if draw(st.integers(0, 3)) == 0 else members
    for i, member in enumerate(ordered):
        if i and draw(st.booleans()):
            lines.append("")
        lines += indent(member)
    return lines


@st.composite
def module_programs(draw) -> Program:
    sp = draw(spellings())
    ctx = Context(sp, [])
    rendered: list[list[str]] = []
    names: list[str] = []
    for i in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(["Net", "Block", "Encoder", "Head", "Model"])) + str(i)
        cls = draw(class_gens(ctx, name))
        rendered.append(render_class(draw, ctx, cls))
        names.append(name)
        ctx.blocks.append(name)

    helpers: list[str] = []
    if ctx.needs_hook:
        helpers += ["def _hook(module, grad_input, grad_output):", "    return None", ""]
    if ctx.needs_keep:
        helpers += ["def _keep(cls):", "    return cls", ""]
    if ctx.needs_trace:
        helpers += ["def _trace(fn):", "    return fn", ""]
    if ctx.init_weights is not None:
        fn = ctx.init_weights
        helpers += [
            "def _init_weights(m):",
            f"    if isinstance(m, {sp.nn('Linear')}):",
            f"        {sp.init(fn)}({DEPRECATED_INIT[fn].format(w='m.weight')})",
            "",
        ]
    lines: list[str] = []
    if draw(st.integers(0, 3)) == 0:
        lines.append('"""Generated models."""')
    if draw(st.integers(0, 3)) == 0:
        lines.append("from __future__ import annotations")
    lines += draw(st.permutations(sp.header()))
    lines.append("")
    if draw(st.integers(0, 4)) == 0:
        lines += ["# models below", ""]
    lines += helpers
    for block in rendered:
        lines += ["", *block, ""]
    return Program("\n".join(lines).rstrip("\n") + "\n", names)


# -- running the generated modules --------------------------------------------------------------


@dataclass
class Outcome:
    error: str | None = None
    params: int = 0
    outputs: list = field(default_factory=list)


def run_class(cls) -> Outcome:
    torch.manual_seed(0)
    try:
        model = cls()
        params = sum(p.numel() for p in model.parameters())
    except Exception as exc:  # noqa: BLE001 - any failure of the generated code counts
        return Outcome(error=f"__init__: {type(exc).__name__}: {exc}")
    outputs = []
    for call_number in (1, 2):  # twice: an in-place update of module state shows on the second call
        torch.manual_seed(call_number)
        x = torch.randn(2, 4)
        try:
            with torch.no_grad():
                outputs.append(model(x))
        except Exception as exc:  # noqa: BLE001
            return Outcome(error=f"forward: {type(exc).__name__}: {exc}", params=params)
    return Outcome(params=params, outputs=outputs)


def run_program(source: str, classes: list[str]) -> dict[str, Outcome]:
    namespace = {"__name__": "torchfix_mod_fuzz_generated"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exec(compile(source, "<generated>", "exec", dont_inherit=True), namespace)
        except Exception as exc:  # noqa: BLE001
            return {name: Outcome(error=f"exec: {type(exc).__name__}: {exc}") for name in classes}
        return {name: run_class(namespace[name]) for name in classes}


def assert_same(before, after, where: str) -> None:
    if isinstance(before, torch.Tensor):
        assert isinstance(after, torch.Tensor), f"{where}: a tensor became {type(after).__name__}"
        assert after.dtype == before.dtype, f"{where}: dtype {before.dtype} became {after.dtype}"
        assert after.shape == before.shape, f"{where}: shape {tuple(before.shape)} became {tuple(after.shape)}"
        assert torch.allclose(after.detach(), before.detach(), rtol=1e-5, atol=1e-6, equal_nan=True), (
            f"{where}: values changed\n{before}\n{after}"
        )
    elif isinstance(before, (list, tuple)):
        assert isinstance(after, (list, tuple)) and len(after) == len(before), f"{where}: {before!r} became {after!r}"
        for i, (b, a) in enumerate(zip(before, after)):
            assert_same(b, a, f"{where}[{i}]")
    else:
        assert after == before, f"{where}: {before!r} became {after!r}"


def assert_same_behaviour(program: Program, fixed: str) -> None:
    before = run_program(program.source, program.classes)
    after = run_program(fixed, program.classes)
    for name in program.classes:
        b, a = before[name], after[name]
        event(f"original class {'raises' if b.error else 'runs'}")
        if b.error is not None:
            continue
        assert a.error is None, f"{name}: works before the fixes, fails after them: {a.error}"
        for i, (out_b, out_a) in enumerate(zip(b.outputs, a.outputs)):
            assert_same(out_b, out_a, f"{name} forward call {i + 1}")
        assert a.params >= b.params, f"{name}: {b.params} parameters before the fixes, {a.params} after"


def check_generated(program: Program, unsafe: bool) -> None:
    source = program.source
    note(f"source:\n{source}")
    assert compiles(source), "the generator produced a program that does not compile"
    result = run_tool(source, unsafe)
    assert not result.errors, f"errors on a valid program: {result.errors}"
    output = result.new_source
    note(f"output:\n{output}")
    assert compiles(output), "the fixed program does not compile"
    record_fixes(result)
    assert_changes_covered(source, result)
    if not unsafe and output != source:  # unsafe fixes may change behaviour: that is what makes them unsafe
        assert_same_behaviour(program, output)
    assert_idempotent(output, unsafe)


@fuzz_settings(15)
@given(program=module_programs())
def test_generated_modules_keep_their_behaviour(program):
    check_generated(program, unsafe=False)


@fuzz_settings(12)
@given(program=module_programs())
def test_generated_modules_with_unsafe_fixes(program):
    check_generated(program, unsafe=True)


@fuzz_settings(60)
@given(program=module_programs(), unsafe=st.booleans())
def test_every_fix_intent_finds_its_node_in_generated_modules(program, unsafe):
    """Rules decide on ast and write with LibCST, which meet only at positions: on programs
    built from the patterns the rules look for, every edit a rule intends finds its node (no
    error), and every finding of the first pass whose fix applies is fixed."""
    from torchfix_mod.engine import Settings, transform_source
    from conftest import ALL_RULES

    fixed = run_tool(program.source, unsafe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        checked = transform_source(program.source, Settings(rules=ALL_RULES, unsafe_fixes=unsafe, apply_fixes=False))
    note(f"source:\n{program.source}")
    assert not fixed.errors
    assert all(d.fixed for d in fixed.diagnostics if d.fix_available)
    assert {(d.code, d.line, d.column) for d in checked.diagnostics} <= {(d.code, d.line, d.column) for d in fixed.diagnostics}
    event(f"findings: {'yes' if checked.diagnostics else 'none'}")
