"""The pure core: name resolution, imports, newlines, isolation of failing rules,
and the torch facts the rules rely on, checked against the installed torch."""

from __future__ import annotations

import ast
import inspect

import libcst as cst
import pytest
import torch
import torch.nn as nn

from torchfix_mod.codemods.containers.module_dict import key_problem
from conftest import ALL_RULES, transform
from torchfix_mod import torch_facts
from torchfix_mod.rule import Fix, Rule

LIST_BODY = (
    "class Net({base}):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.layers = [{layer}(2, 2), {layer}(2, 2)]\n"
)


@pytest.mark.parametrize(
    ("header", "base", "layer", "expected"),
    [
        ("import torch.nn as nn\n", "nn.Module", "nn.Linear", "nn.ModuleList(["),
        ("import torch.nn as tnn\n", "tnn.Module", "tnn.Linear", "tnn.ModuleList(["),
        ("import torch\n", "torch.nn.Module", "torch.nn.Linear", "torch.nn.ModuleList(["),
        ("import torch.nn\n", "torch.nn.Module", "torch.nn.Linear", "torch.nn.ModuleList(["),
        ("from torch import nn\n", "nn.Module", "nn.Linear", "nn.ModuleList(["),
        ("from torch.nn import Module, Linear, ModuleList\n", "Module", "Linear", "self.layers = ModuleList(["),
        # `import torch.nn` binds `torch` first, so that name is used
        ("import torch.nn\nimport torch as th\n", "th.nn.Module", "th.nn.Linear", "torch.nn.ModuleList(["),
        # importing any torch submodule binds a `torch` that reaches torch.nn
        ("import torch.utils.data\n", "torch.nn.Module", "torch.nn.Linear", "torch.nn.ModuleList(["),
    ],
)
def test_module_list_uses_the_files_own_binding(header, base, layer, expected):
    source = header + "\n" + LIST_BODY.format(base=base, layer=layer)
    result = transform(source)
    assert expected in result.new_source
    assert result.new_source.count("import") == source.count("import"), "no import may be added"


def test_import_added_in_the_files_style_when_needed():
    source = "from torch.nn import Module, Linear\n\n" + LIST_BODY.format(base="Module", layer="Linear")
    result = transform(source)
    tree = ast.parse(result.new_source)
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names}
    assert imported == {"Module", "Linear", "ModuleList"}
    assert "self.layers = ModuleList([Linear(2, 2), Linear(2, 2)])" in result.new_source


def test_no_fix_when_every_spelling_would_shadow_a_local_name():
    source = (
        "from torch.nn import Module, Linear\n\n"
        "torch = ModuleList = None\n\n" + LIST_BODY.format(base="Module", layer="Linear")
    )
    result = transform(source)
    assert result.new_source == source
    assert [d.code for d in result.diagnostics] == ["TFM101"]
    assert not result.diagnostics[0].fix_available


def test_a_local_named_nn_is_not_torch_nn():
    source = (
        "import torch\n\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, nn):\n"
        "        super().__init__()\n"
        "        self.layers = [nn.Linear(2, 2)]\n"
    )
    assert transform(source).diagnostics == []


def test_modules_from_other_classes_of_the_file_count():
    source = (
        "import torch.nn as nn\n\n"
        "class Block(nn.Module):\n    pass\n\n"
        "class Deeper(Block):\n    pass\n\n"
        "class Plain:\n    pass\n\n"
        "class Net(Deeper):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.blocks = [Block(), Deeper()]\n"
        "        self.plain = [Plain()]\n"
    )
    result = transform(source)
    assert "self.blocks = nn.ModuleList([Block(), Deeper()])" in result.new_source
    assert "self.plain = [Plain()]" in result.new_source


def test_crlf_and_comments_are_kept():
    source = (
        "import torch.nn as nn\r\n\r\n"
        "class Net(nn.Module):  # the model\r\n"
        "    def __init__(self):\r\n"
        "        super().__init__()\r\n"
        "        # layers\r\n"
        "        self.layers = [nn.Linear(2, 2)]  # two\r\n"
    )
    result = transform(source)
    assert result.new_source == source.replace("[nn.Linear(2, 2)]", "nn.ModuleList([nn.Linear(2, 2)])")
    assert "\n" not in result.new_source.replace("\r\n", "")


def test_added_import_follows_crlf():
    source = "from torch.nn import Module, Linear\r\n\r\n" + LIST_BODY.format(base="Module", layer="Linear").replace("\n", "\r\n")
    result = transform(source)
    assert result.changed
    assert "\n" not in result.new_source.replace("\r\n", "")


def test_syntax_error_is_an_error_with_position():
    result = transform("import torch\n\ndef f(:\n    pass\n")
    assert result.new_source == result.source
    assert len(result.errors) == 1
    assert result.errors[0].line == 3


class _Crashes(Rule):
    code = "TFM999"
    name = "crashes"
    summary = "always raises"

    def check(self):
        raise RuntimeError("boom")


class _BreaksCode(Rule):
    code = "TFM998"
    name = "breaks"
    summary = "produces invalid code"

    def check(self):
        for node in self.model.nodes(ast.Return):
            self.report(node, "bad", Fix([self.edit(node.value, "Integer", lambda updated: cst.Name("lambda"))]))


INPLACE = next(r for r in ALL_RULES if r.code == "TFM201")


def test_a_crashing_rule_does_not_cost_the_other_rules_their_fixes():
    source = INPLACE.fixes[0].before
    result = transform(source, rules=[INPLACE, _Crashes])
    assert result.new_source == INPLACE.fixes[0].after
    assert any("TFM999" in e.message and "boom" in e.message for e in result.errors)


@pytest.mark.parametrize("mode, others", [
    ("write", "the other rules' fixes were applied"),
    ("diff", "the other rules' fixes are in the diff"),
    ("check", "the other rules' findings are reported"),
])
def test_the_summary_says_what_happened_to_a_file_a_rule_crashed_on(mode, others):
    """A rule that raises costs only its own findings: the summary must not claim the file was
    left untouched when the other rules' fixes were written."""
    from pathlib import Path

    from torchfix_mod.report import summary
    from torchfix_mod.runner import FileReport

    source = INPLACE.fixes[0].before
    result = transform(source, rules=[INPLACE, _Crashes])
    assert result.changed
    report = FileReport(Path("a.py"), "a.py", list(result.diagnostics), list(result.errors), changed=True)
    unreadable = FileReport(Path("b.py"), "b.py", errors=[transform("def f(:\n").errors[0]])
    line = summary([report, unreadable], mode)
    assert "1 error (reported above; those files were left untouched)." in line
    assert f"1 internal rule error (reported above; the failing rule's findings in those files are lost, {others})." in line
    assert "2 errors" not in line


def test_output_that_does_not_compile_is_refused():
    """A fix whose result does not compile is a rule's defect, not the file's: the finding is
    reported as not fixed, with the reason, and the run reports no error for the file."""
    source = "class A:\n    def f(self):\n        return 1\n"
    result = transform(source, rules=[_BreaksCode])
    assert result.new_source == source
    assert not result.errors
    [finding] = result.diagnostics
    assert not finding.fixed and not finding.fix_available
    assert "would not compile" in finding.fix_note


def test_a_refused_fix_costs_the_file_none_of_its_other_fixes():
    source = INPLACE.fixes[0].before + "\n\nclass A:\n    def f(self):\n        return 1\n"
    result = transform(source, rules=[INPLACE, _BreaksCode])
    assert not result.errors
    assert result.new_source == INPLACE.fixes[0].after + "\n\nclass A:\n    def f(self):\n        return 1\n"
    by_code = {d.code: d for d in result.diagnostics}
    assert by_code["TFM201"].fixed and not by_code["TFM201"].fix_note
    assert not by_code["TFM998"].fixed and by_code["TFM998"].fix_note


class _EditFindsNoNode(Rule):
    code = "TFM997"
    name = "misplaced"
    summary = "an edit at a position holding no such node"

    def check(self):
        for node in self.model.nodes(ast.Return):
            self.report(node, "misplaced", Fix([self.edit(node, "Lambda", lambda updated: updated)]))


def test_a_fix_that_cannot_be_applied_is_reported_as_not_applied_with_the_reason():
    source = INPLACE.fixes[0].before + "\n\ndef g():\n    return 1\n"
    result = transform(source, rules=[INPLACE, _EditFindsNoNode])
    assert not result.errors
    assert result.new_source.startswith(INPLACE.fixes[0].after)
    misplaced = [d for d in result.diagnostics if d.code == "TFM997"]
    assert misplaced and all(not d.fixed and "could not be applied" in d.fix_note for d in misplaced)
    assert any(d.code == "TFM201" and d.fixed for d in result.diagnostics)


def test_torch_facts_match_the_installed_torch():
    classes = {n for n in dir(nn) if inspect.isclass(getattr(nn, n)) and issubclass(getattr(nn, n), nn.Module)}
    assert torch_facts.NN_MODULE_CLASSES == classes
    assert torch_facts.MODULE_ATTRIBUTES == set(dir(nn.Module()))
    assert torch_facts.MODULE_DICT_ATTRIBUTES == set(dir(nn.ModuleDict()))
    rejected = set()
    for key in dir(nn.ParameterDict()):
        try:
            nn.ParameterDict({key: nn.Parameter(torch.zeros(1))})
        except Exception:
            rejected.add(key)
    assert torch_facts.PARAMETER_DICT_REJECTED_KEYS == rejected


KEY_CANDIDATES = sorted(torch_facts.MODULE_DICT_ATTRIBUTES) + ["cls", "box", "layer_1", "a.b", "", "Type", "add2"]


@pytest.mark.parametrize("key", KEY_CANDIDATES)
def test_module_dict_key_check_agrees_with_torch(key):
    accepted = key_problem(ast.parse(repr(key), mode="eval").body) is None
    try:
        nn.ModuleDict({key: nn.Identity()})
    except (KeyError, TypeError):
        constructs = False
    else:
        constructs = True
    assert accepted == constructs


def test_module_list_lacks_what_the_rule_refuses():
    from torchfix_mod.codemods.containers._containers import DICT_METHODS, LIST_METHODS

    assert all(hasattr(nn.ModuleList, name) for name in LIST_METHODS)
    assert all(hasattr(nn.ModuleDict, name) for name in DICT_METHODS)
    for missing in ("sort", "remove", "index", "count", "reverse", "clear", "copy"):
        assert not hasattr(nn.ModuleList, missing)
    for missing in ("get", "copy", "setdefault", "popitem", "fromkeys"):
        assert not hasattr(nn.ModuleDict, missing)
    with pytest.raises(TypeError):
        [nn.ReLU()] + nn.ModuleList([nn.ReLU()])


def test_register_buffer_rejects_the_names_the_rule_avoids():
    module = nn.Module()
    for name in ("training", "forward", "to"):
        assert name in torch_facts.MODULE_ATTRIBUTES
        with pytest.raises(KeyError):
            module.register_buffer(name, torch.zeros(1))


def test_readme_rules_table_is_current():
    from pathlib import Path

    from torchfix_mod.docs import rules_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert rules_table() in readme, "regenerate the README table with `python -m torchfix_mod.docs`"


def test_findings_of_a_later_pass_point_at_the_original_lines():
    # the first pass adds `super().__init__()` (a new line) and makes `self.layers` a ModuleList;
    # only then is `layer.forward(x)` provably a module call. Its position must be the line in
    # the file the user has, not in the intermediate text.
    source = (
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        self.layers = [nn.Linear(4, 4), nn.Linear(4, 4)]\n"
        "    def forward(self, x):\n"
        "        for layer in self.layers:\n"
        "            x = layer.forward(x)\n"
        "        return x\n"
    )
    result = transform(source)
    assert "x = layer(x)" in result.new_source
    direct = [d for d in result.diagnostics if d.code == "TFM402"]
    assert [(d.line, d.column) for d in direct] == [(7, 17)]
    assert source.splitlines()[direct[0].line - 1][direct[0].column - 1 :].startswith("layer.forward(x)")


def test_a_later_pass_finding_on_a_line_identical_to_a_rewritten_one_keeps_its_own_line():
    # the first pass rewrites line 7 only; the second pass then fixes line 8, which is the same
    # text. A plain line diff of original and intermediate may pair line 8 with line 7 and
    # report both fixes on line 7 (found by the generated-module property test).
    source = (
        "import torch\n"
        "import torch.nn as nn\n"
        "\n"
        "class Net0(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.scale = torch.ones(4) * 2\n"
        "        self.scale = torch.ones(4) * 2\n"
        "        self.mask = torch.ones(4, requires_grad=True)\n"
        "\n"
        "    def forward(self, x):\n"
        "        return x + self.scale + self.mask\n"
    )
    result = transform(source)
    # line 8 then stores into the buffer line 7 registered: it stays a buffer, nothing to fix
    assert sorted((d.code, d.line) for d in result.diagnostics if d.fixed) == [("TFM301", 7), ("TFM302", 9)]
    assert result.new_source.count('self.register_buffer("scale"') == 1
    assert "        self.scale = torch.ones(4) * 2\n        self.mask = nn.Parameter(" in result.new_source


def test_a_later_pass_finding_inside_a_method_an_earlier_fix_reported_on_keeps_its_line():
    # TFM401 reports the whole `__init__` and inserts one line into it; only then can TFM104
    # make the dict a ParameterDict. Its line is in the middle of the reported region, among
    # identical comment lines.
    source = (
        "import torch\n"
        "import torch.nn as nn\n"
        "\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        # note\n"
        "        self.dim = 4\n"
        "        # note\n"
        "        self.biases = {'a': nn.Parameter(torch.ones(4))}\n"
        "        # note\n"
        "        self.scale = 2.0\n"
        "\n"
        "    def forward(self, x):\n"
        "        return x + self.biases['a'] * self.scale\n"
    )
    result = transform(source)
    assert "nn.ParameterDict(" in result.new_source and "super().__init__()" in result.new_source
    [late] = [d for d in result.diagnostics if d.code == "TFM104" and d.fixed]
    assert late.line == 9


def test_classes_whose_bases_form_a_cycle_cost_no_findings():
    """`class A(nn.Module, B)` with `class B(A)` cannot run, but the file's other findings stay."""
    source = (
        "import torch.nn as nn\n\nclass A(nn.Module, B):\n    def forward(self, x):\n        x += 1\n        return x\n\n"
        "class B(A):\n    def __init__(self):\n        self.w = None\n\n"
        "def init(m):\n    nn.init.normal(m.weight)\n"
    )
    result = transform(source)
    assert not result.errors
    assert "TFM501" in [d.code for d in result.diagnostics]


def _fix_inputs():
    """Every sample and every fix example of every rule, with its findings that carry a fix."""
    from pathlib import Path

    from torchfix_mod.engine import Settings, _check, parse_python
    from torchfix_mod.semantic import SemanticModel

    sources = [p.read_text() for p in sorted((Path(__file__).resolve().parents[1] / "samples").glob("*/before.py"))]
    sources += [case.before for rule in ALL_RULES for case in rule.fixes]
    for source in sources:
        tree = parse_python(source)
        model = SemanticModel(tree, source)
        findings, _ = _check(model, Settings(rules=ALL_RULES, unsafe_fixes=True))
        fixed = [f for f in findings if f.fix is not None]
        if fixed:
            yield source, tree, fixed


def test_fixes_applied_statement_by_statement_equal_fixes_applied_to_the_whole_module():
    """Positions are measured only on the statements that hold an edit; the result must be
    the one measuring the whole module gives, on every fix the rules make."""
    from torchfix_mod import cst_engine

    compared = 0
    for source, tree, fixed in _fix_inputs():
        whole = cst_engine.apply_fixes(cst.parse_module(source), fixed).code
        scoped = cst_engine.apply_fixes(cst.parse_module(source), fixed, tree).code
        assert scoped == whole, source
        compared += 1
    assert compared > 50


def test_an_edit_spanning_two_statements_falls_back_to_the_whole_module():
    from torchfix_mod import cst_engine
    from torchfix_mod.rule import Edit, Finding
    from torchfix_mod.semantic import Span

    source = "import torch\n\nx = 1\ny = 2\n"
    module = cst.parse_module(source)
    # the Module node spans every statement: only the whole-module path can find it
    edit = Edit(Span(1, 0, 5, 0), "Module", lambda node: node.with_changes(header=[cst.EmptyLine(comment=cst.Comment("# top"))]))
    finding = Finding("TFM000", Span(1, 0, 1, 1), "m", Fix([edit]))
    out = cst_engine.apply_fixes(module, [finding], ast.parse(source)).code
    assert out == "# top\n" + source


def test_lines_ended_by_a_lone_carriage_return_count_as_ast_counts_them():
    """Found by the long property run: a lone ``\\r`` ends a line for the tokenizer, so
    ``node.lineno`` counts it; TFM401 read the line by splitting on ``\\n`` only and ran past
    the end of the list."""
    from torchfix_mod.engine import Settings, transform_source

    source = (
        "class A: A =\\\r\\\r(); global A0\n\nimport torch\nimport torch.nn as nn\n\n"
        "class Plain(nn.Module):\n    def __init__(self):\n        self.scale = 2\n"
    )
    result = transform_source(source, Settings(rules=ALL_RULES))
    assert result.errors == []
    assert [(d.code, d.line) for d in result.diagnostics] == [("TFM401", 9)]
    assert "super().__init__()" in result.new_source
    compile(result.new_source, "<fixed>", "exec")


GRAMMAR_TOUR = '''
from __future__ import annotations
import a.b as c, d
from .. import e as f
x: int = 1  # type: ignore[x]
def g(p, /, q: int = 2, *r, s, t=3, **u) -> int:  # type: (...) -> int
    global x
    def h():
        nonlocal p
        return (yield from p)
    return lambda v=1: v
async def k():
    async with m as (n, o), w:
        async for y in z:
            await y
    return [i async for i in z if i]
class C(B, metaclass=M, **kw):
    z = {**a, 'b': {1, 2}, **{c: d for c, d in e}}
    def __init__(self, *a, **k): super().__init__(*a, **k); self.y = not -~1 ** 2 < 3 <= 4
try:
    pass
except* (E, F) as err:
    del a[1:2:3], b.c
else:
    assert q, f"{q!r:>{w}} {q=}"
finally:
    raise E from None
match p:
    case [1, *rest] | (None as n): pass
    case {"k": 1, **others}: pass
    case Point(x=0, y=_) if x > 0: pass
    case True | False | -1 | 1 + 2j: pass
while (walrus := next(it)) is not None: continue
else: ...
with open(f) as h: print(*h, sep="", end=x if y else z)
'''


def test_the_walk_skips_only_fields_that_never_hold_a_node():
    """The index and the binder look only at the fields that may hold child nodes: on every
    construct of the grammar, and on the engine's own sources, they find what looking at every
    field finds."""
    from pathlib import Path

    from torchfix_mod import syntax

    def every_field(node):
        found = []
        for field in node._fields:
            value = getattr(node, field, None)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.AST) and item.__class__ not in syntax.SHARED_NODE_TYPES:
                    found.append(item)
        return found

    sources = [GRAMMAR_TOUR] + [p.read_text() for p in sorted(Path(syntax.__file__).parent.glob("*.py"))]
    kinds = set()
    for source in sources:
        tree = ast.parse(source, type_comments=True)
        for node in ast.walk(tree):
            assert syntax.children(node) == every_field(node), ast.dump(node)[:200]
            kinds.add(type(node))
        index = syntax.TreeIndex(tree)
        assert len(index.position) == len([n for n in ast.walk(tree) if n.__class__ not in syntax.SHARED_NODE_TYPES])
    assert {ast.MatchClass, ast.MatchMapping, ast.MatchStar, ast.Global, ast.Nonlocal, ast.TryStar} <= kinds


NESTED_FIXES = '''\
import torch
import torch.nn as nn


class Block(nn.Module):
    """A docstring."""

    def __init__(self, n):
        super().__init__()
        self.proj = nn.Linear(n, n)

    @torch.no_grad()
    def other(self, x):  # a comment
        return x

    def forward(self, x, flag=True):
        out = torch.sigmoid(self.proj(x)); y = x
        if flag:
            for _ in range(2):
                with torch.autocast("cpu"):
                    try:
                        out += self.proj(
                            x)  # continued
                    except RuntimeError:
                        pass
        else:
            out *= torch.sigmoid(y)
        return out * 2


def helper(layer):
    return torch.nn.init.xavier_normal(layer.weight)
'''


@pytest.mark.parametrize("indent", ["    ", "\t", "  "])
def test_fixes_deep_inside_nested_blocks_equal_fixes_measured_on_the_whole_module(indent):
    """An edit is measured inside the innermost statement holding it, with the statements
    around it kept (so its columns stay those of the file): on edits four blocks deep, under
    each indentation style, the result is the one measuring the whole module gives."""
    from torchfix_mod import cst_engine
    from torchfix_mod.engine import Settings, _check, parse_python
    from torchfix_mod.semantic import SemanticModel

    source = NESTED_FIXES.replace("    ", indent)
    tree = parse_python(source)
    findings, _ = _check(SemanticModel(tree, source), Settings(rules=ALL_RULES, unsafe_fixes=True))
    fixed = [f for f in findings if f.fix is not None]
    assert sorted(f.code for f in fixed) == ["TFM201", "TFM201", "TFM501"]
    whole = cst_engine.apply_fixes(cst.parse_module(source), fixed).code
    scoped = cst_engine.apply_fixes(cst.parse_module(source), fixed, tree).code
    assert scoped == whole
    assert scoped != source
    compile(scoped, "<fixed>", "exec")


def test_scopes_recorded_where_they_change_equal_scopes_recorded_on_every_node():
    """The binder records a node's scope only where it differs from its parent's; asked of
    any node, the model answers what recording every node answered."""
    from pathlib import Path

    from torchfix_mod import semantic, syntax

    class RecordingEveryNode(semantic._Binder):
        _handlers: dict = {}

        def visit(self, node):
            if node not in self.model._scope_at:
                self.model._scope_at[node] = self.scope
            super().visit(node)

        def generic_visit(self, node):
            for child in syntax.children(node):
                self.visit(child)

    class Reference(semantic.SemanticModel):
        pass

    root = Path(syntax.__file__).resolve().parents[1]
    sources = [GRAMMAR_TOUR, NESTED_FIXES]
    sources += [p.read_text() for p in sorted((root / "samples").glob("*/*.py"))]
    sources += [p.read_text() for p in sorted((root / "torchfix_mod").glob("*.py"))]
    sources += [p.read_text() for p in sorted((root / "codemods").rglob("*.py"))]
    compared = 0
    for source in sources:
        tree = ast.parse(source)
        model = semantic.SemanticModel(tree, source)
        original = semantic._Binder
        try:
            semantic._Binder = RecordingEveryNode
            reference = Reference(ast.parse(source), source)
        finally:
            semantic._Binder = original
        ours = [model.scope(n) for n in syntax.walk(tree)]
        theirs = [reference.scope(n) for n in syntax.walk(reference.tree)]
        assert [(s.kind, s.name, s.node.__class__) for s in ours] == [(s.kind, s.name, s.node.__class__) for s in theirs]
        compared += len(ours)
    assert compared > 50_000


def test_lone_carriage_returns_count_as_line_ends_for_columns_and_noqa():
    """A file whose lines end in a lone \\r (old Mac style): lines and columns are counted as
    ``ast`` counts them, non-ASCII text before a finding included, and a ``# noqa`` silences."""
    from tests.conftest import transform

    source = (
        "import torch.nn as nn\r\rclass Net(nn.Module):\r    def __init__(self):\r"
        "        super().__init__()\r        self.l = [nn.Linear(1, 1)]; s = 'é'\r"
        "    def forward(self, x):\r        for m in self.l:\r            x = m(x)\r        return x\r"
    )
    (d,) = [d for d in transform(source).diagnostics if d.code == "TFM101"]
    assert (d.line, d.column) == (6, 9)
    silenced = source.replace("s = 'é'\r", "s = 'é'  # noqa: TFM101\r")
    assert [d.code for d in transform(silenced).diagnostics] == []
