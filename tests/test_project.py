"""Project-wide knowledge: nn.Module classes resolved across the files of a run."""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ALL_RULES
from torchfix_mod.project import absolute, build_index, module_name, summarize
from torchfix_mod.runner import RunOptions, run


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def index_of(root: Path):
    summaries = [summarize(ast.parse(p.read_text()), p) for p in sorted(root.rglob("*.py"))]
    return build_index(summaries)


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("pkg/__init__.py", ("pkg", True)),
        ("pkg/blocks.py", ("pkg.blocks", False)),
        ("pkg/sub/__init__.py", ("pkg.sub", True)),
        ("pkg/sub/attn.py", ("pkg.sub.attn", False)),
        ("script.py", ("script", False)),
    ],
)
def test_module_name_follows_the_init_files(tmp_path, rel, expected):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/blocks.py": "", "pkg/sub/__init__.py": "", "pkg/sub/attn.py": "", "script.py": ""})
    assert module_name(tmp_path / rel) == expected


@pytest.mark.parametrize(
    "name, module, is_package, expected",
    [
        (".blocks.Block", "pkg.net", False, "pkg.blocks.Block"),
        (".blocks.Block", "pkg", True, "pkg.blocks.Block"),
        ("..layers.Attn", "pkg.sub.attn", False, "pkg.layers.Attn"),
        ("..layers.Attn", "pkg.sub", True, "pkg.layers.Attn"),
        ("...x.Y", "pkg.net", False, None),  # beyond the top-level package
        ("pkg.blocks.Block", "anything", False, "pkg.blocks.Block"),
    ],
)
def test_relative_names_become_absolute(name, module, is_package, expected):
    assert absolute(name, module, is_package) == expected


def test_subclass_chains_and_re_exports_across_files(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from .blocks import Block\nfrom .sub.attn import Attention as Attn\n",
            "pkg/blocks.py": "import torch.nn as nn\nclass Base(nn.Module):\n    pass\nclass Block(Base):\n    pass\nclass Plain:\n    pass\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/attn.py": "from ..blocks import Block\nclass Attention(Block):\n    pass\nclass Mixed(Block, SomethingUnknown):\n    pass\n",
            "pkg/other.py": "from thirdparty import Layer\nclass FromOutside(Layer):\n    pass\n",
        },
    )
    index = index_of(tmp_path)
    for name in ("pkg.blocks.Base", "pkg.blocks.Block", "pkg.Block", "pkg.sub.attn.Attention", "pkg.Attn"):
        assert index.classes[name].module_subclass, name
        assert not index.classes[name].customizes_access, name
    assert "pkg.blocks.Plain" not in index.classes
    assert "pkg.other.FromOutside" not in index.classes  # nothing is known about thirdparty.Layer
    # a base the pre-pass cannot see may override attribute access: rules must not rely on it
    assert index.classes["pkg.sub.attn.Mixed"].customizes_access
    assert index.lookup(".blocks.Block", "pkg.net", False) is index.classes["pkg.blocks.Block"]


def test_rebound_names_and_access_hooks(tmp_path):
    write(
        tmp_path,
        {
            "m.py": (
                "import torch.nn as nn\n"
                "class Twice(nn.Module):\n    pass\n"
                "class Twice(object):\n    pass\n"
                "class Hooked(nn.Module):\n    def __getattr__(self, name):\n        return 1\n"
                "class Child(Hooked):\n    pass\n"
                "class Meta(nn.Module, metaclass=type):\n    pass\n"
                "try:\n    from fast import Layer\nexcept ImportError:\n    Layer = None\n"
            ),
            "n.py": "from m import Layer, Child\n",
        },
    )
    index = index_of(tmp_path)
    assert "m.Twice" not in index.classes  # which definition wins is not the pre-pass' call
    assert index.classes["m.Hooked"].customizes_access
    assert index.classes["m.Child"].customizes_access and index.classes["n.Child"].customizes_access
    assert index.classes["m.Meta"].customizes_access  # a metaclass may do anything
    assert "n.Layer" not in index.classes


def test_import_cycles_terminate(tmp_path):
    write(
        tmp_path,
        {
            "a.py": "from b import B\nclass A(B):\n    pass\n",
            "b.py": "from a import A\nclass B(A):\n    pass\n",
        },
    )
    assert len(index_of(tmp_path)) == 0


PACKAGE = {
    "pkg/__init__.py": "from .blocks import Block\n",
    "pkg/blocks.py": """\
        import torch.nn as nn


        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.fc = nn.Linear(d, d)

            def forward(self, x):
                return self.fc(x)
        """,
    "pkg/net.py": """\
        import torch.nn as nn

        from pkg import Block
        from .blocks import Block as Same
        import pkg.blocks as blocks


        class Net(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.a = [Block(d) for _ in range(2)]
                self.b = [Same(d), Same(d)]
                self.c = []
                for _ in range(2):
                    self.c.append(blocks.Block(d))

            def forward(self, x):
                for layer in self.a:
                    x = layer(x)
                for layer in self.b:
                    x = layer(x)
                for layer in self.c:
                    x = layer(x)
                return x
        """,
}


def _load_net(root: Path):
    sys.path.insert(0, str(root))
    try:
        for name in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
            del sys.modules[name]
        return importlib.import_module("pkg.net").Net
    finally:
        sys.path.remove(str(root))


def test_runtime_a_list_of_modules_defined_in_another_file_gets_registered(tmp_path):
    torch = pytest.importorskip("torch")
    write(tmp_path, PACKAGE)
    before = _load_net(tmp_path)(4)
    assert len(list(before.parameters())) == 0  # the bug: six Linear layers the optimizer never sees
    assert before.state_dict() == {}

    reports = run([tmp_path], ALL_RULES, RunOptions(mode="write"), cwd=tmp_path)
    net_report = next(r for r in reports if r.display == "pkg/net.py")
    assert [(d.code, d.fixed) for d in net_report.diagnostics] == [("TFM101", True)] * 3
    assert not any(r.errors for r in reports)

    after = _load_net(tmp_path)(4)
    assert len(list(after.parameters())) == 12
    assert {k for k in after.state_dict() if k.endswith("fc.weight")} == {
        f"{attr}.{i}.fc.weight" for attr in "abc" for i in range(2)
    }
    x = torch.randn(3, 4, requires_grad=True)
    after(x).sum().backward()
    assert all(p.grad is not None for p in after.parameters())
    after.to(torch.float64)
    assert after.c[1].fc.weight.dtype == torch.float64


def test_a_single_file_run_reads_the_files_it_imports(tmp_path):
    """A pre-commit run names one file: the classes it imports from its own package are read
    (never checked, never changed), so the fix is as safe as on a whole-repository run."""
    write(tmp_path, PACKAGE)
    blocks_before = (tmp_path / "pkg" / "blocks.py").read_bytes()
    reports = run([tmp_path / "pkg" / "net.py"], ALL_RULES, RunOptions(mode="write"), cwd=tmp_path)
    assert [r.display for r in reports] == ["pkg/net.py"]
    assert [(d.code, d.fixed) for d in reports[0].diagnostics] == [("TFM101", True)] * 3
    assert (tmp_path / "pkg" / "blocks.py").read_bytes() == blocks_before
    assert (tmp_path / "pkg" / "net.py").read_text().count("nn.ModuleList(") == 3


def test_a_class_from_outside_the_project_stays_unknown_and_is_not_fixed(tmp_path):
    net = PACKAGE["pkg/net.py"].replace("from pkg import Block", "from elsewhere import Block")
    net = net.replace("from .blocks import Block as Same", "from elsewhere import Block as Same")
    net = net.replace("import pkg.blocks as blocks", "import elsewhere as blocks")
    write(tmp_path, PACKAGE | {"pkg/net.py": net})
    reports = run([tmp_path / "pkg" / "net.py"], ALL_RULES, RunOptions(mode="diff"), cwd=tmp_path)
    found = [d for r in reports for d in r.diagnostics]
    # reported where the class runs the elements as layers, but never wrapped: their class is unknown
    assert found and all(d.code == "TFM101" and not d.fix_available for d in found)


def test_a_cached_run_is_not_reused_when_a_file_it_imports_changes(tmp_path):
    from torchfix_mod.cache import Cache

    write(tmp_path, PACKAGE)
    net = tmp_path / "pkg" / "net.py"
    first = run([net], ALL_RULES, RunOptions(mode="diff"), cwd=tmp_path, jobs=1, cache=Cache(tmp_path / "cache", "salt"))
    assert [d.fix_available for d in first[0].diagnostics] == [True] * 3
    # Block stops being a module: nn.ModuleList would now raise TypeError on it
    blocks = tmp_path / "pkg" / "blocks.py"
    blocks.write_text(blocks.read_text().replace("class Block(nn.Module):", "class Block:").replace("super().__init__()", "pass"))
    second = run([net], ALL_RULES, RunOptions(mode="diff"), cwd=tmp_path, jobs=1, cache=Cache(tmp_path / "cache", "salt"))
    assert second[0].diagnostics == [] or not any(d.fix_available for d in second[0].diagnostics)


def test_a_class_reaching_into_dict_through_a_normalised_spelling_is_seen(tmp_path):
    """Python reads identifiers NFKC-normalised: ``self.__ｄict__`` (a fullwidth d) is
    ``self.__dict__``. The summary looks for the plain spelling in the text before it walks a
    class; the normalised spelling must not slip past that shortcut."""
    source = "import torch.nn as nn\n\nclass A(nn.Module):\n    def f(self):\n        return self.__\uff44ict__\n\nclass B(nn.Module):\n    pass\n"
    path = tmp_path / "m.py"
    path.write_text(source, encoding="utf-8")
    summary = summarize(ast.parse(source), path, source)
    assert summary.classes["A"].customizes_access
    assert not summary.classes["B"].customizes_access


def test_a_class_combined_with_other_bases_in_another_file_gets_no_super_init(tmp_path, monkeypatch):
    """`Flags` lacks `super().__init__()`, and `model.py` combines it with `Trunk`: the call
    would reach `Trunk.__init__`, which needs `width`. The index marks `Flags` (and what it
    derives from) as combined, and TFM401 reports it without a fix; alone, it is fixed."""
    files = {
        "mixpkg/__init__.py": "",
        "mixpkg/flags.py": """\
            import torch.nn as nn


            class Flags(nn.Module):
                def __init__(self):
                    self.verbose = False
            """,
        "mixpkg/model.py": """\
            import torch.nn as nn

            from .flags import Flags


            class Trunk(nn.Module):
                def __init__(self, width):
                    super().__init__()
                    self.fc = nn.Linear(width, width)


            class Model(Flags, Trunk):
                def __init__(self, width):
                    Trunk.__init__(self, width)
                    Flags.__init__(self)
            """,
    }
    write(tmp_path, files)
    index = index_of(tmp_path)
    assert index.classes["mixpkg.flags.Flags"].mixed and index.classes["mixpkg.model.Trunk"].mixed
    assert not index.classes["mixpkg.model.Model"].mixed
    monkeypatch.chdir(tmp_path)
    rule = [r for r in ALL_RULES if r.code == "TFM401"]
    together = {r.display: r for r in run([Path("mixpkg")], rule, RunOptions(mode="diff", unsafe_fixes=True))}
    flags = together["mixpkg/flags.py"]
    assert flags.diagnostics and not flags.changed and not flags.diagnostics[0].fix_available
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("mixpkg.model").Model(3)  # builds as written
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "mixpkg" or m.startswith("mixpkg.")]:
            del sys.modules[name]
    alone = {r.display: r for r in run([Path("mixpkg/flags.py")], rule, RunOptions(mode="diff"))}
    assert alone["mixpkg/flags.py"].changed  # nothing in this run combines it


def test_import_targets_that_are_not_module_paths_are_skipped(tmp_path):
    from torchfix_mod.runner import _module_file

    write(tmp_path, PACKAGE)
    roots = {tmp_path}
    assert _module_file("pkg.blocks.Block", roots) == (tmp_path / "pkg" / "blocks.py").resolve()
    assert _module_file("pkg.Block", roots) == (tmp_path / "pkg" / "__init__.py").resolve()
    for target in ("", "pkg..blocks", "..pkg", "pkg.blocks.", "pkg/blocks", "elsewhere.Block"):
        assert _module_file(target, roots) is None, target


CALLPKG = {
    "callpkg/__init__.py": "",
    "callpkg/base.py": """\
        from abc import ABC
        from typing import Generic, TypeVar

        import torch.nn as nn

        T = TypeVar("T")


        class Model(Generic[T], ABC, nn.Module):
            def describe(self):
                return type(self).__name__


        class Wrapped(nn.Module):
            def __call__(self, *args):
                return ("wrapped", super().__call__(*args))
        """,
    "callpkg/seq.py": """\
        import torch.nn as nn

        from callpkg.base import Model, Wrapped


        class Stepper(Model[int]):
            def __init__(self):
                super().__init__()
                self.cell = nn.Linear(2, 2)

            def forward(self, x):
                return self.cell(x)

            def run_sequence(self, xs):
                return [self.forward(x) for x in xs]


        class Special(Wrapped):
            def forward(self, x):
                return x

            def run_sequence(self, xs):
                return [self.forward(x) for x in xs]
        """,
}


def test_calls_reach_forward_only_through_bases_known_to_keep_nn_modules_call(tmp_path):
    """A generic base (``Model[int]``) is its class; ``Generic`` and ``ABC`` add no ``__call__``,
    so ``Stepper`` keeps nn.Module's; ``Wrapped`` defines its own, and so do its subclasses."""
    write(tmp_path, CALLPKG)
    index = index_of(tmp_path)
    assert index.classes["callpkg.base.Model"].plain_call and index.classes["callpkg.base.Model"].module_subclass
    assert index.classes["callpkg.seq.Stepper"].plain_call
    assert not index.classes["callpkg.base.Wrapped"].plain_call
    assert not index.classes["callpkg.seq.Special"].plain_call


def test_runtime_own_forward_through_a_base_of_another_file_is_reported_and_the_call_runs_hooks(tmp_path):
    """cogitare's SequentialModel steps itself with ``self.forward`` from a method forward never
    reaches; its base is in another file. A single-file run reads that base and reports the call
    in ``Stepper`` (without a fix: hooks and subclasses elsewhere may call it back); it leaves
    ``Special`` (whose base gives ``__call__`` a meaning) alone. Calling the module runs hooks."""
    torch = pytest.importorskip("torch")
    write(tmp_path, CALLPKG)

    def load():
        sys.path.insert(0, str(tmp_path))
        try:
            for name in [m for m in sys.modules if m == "callpkg" or m.startswith("callpkg.")]:
                del sys.modules[name]
            return importlib.import_module("callpkg.seq")
        finally:
            sys.path.remove(str(tmp_path))

    def hook_calls(module) -> int:
        torch.manual_seed(0)
        model = module.Stepper()
        seen = []
        model.register_forward_hook(lambda mod, inp, out: seen.append(out))
        outputs = model.run_sequence([torch.randn(1, 2) for _ in range(3)])
        assert len(outputs) == 3
        return len(seen)

    assert hook_calls(load()) == 0  # the bug: hooks on the model never run while stepping
    seq = tmp_path / "callpkg" / "seq.py"
    source = seq.read_text()
    reports = run([seq], ALL_RULES, RunOptions(mode="write", unsafe_fixes=True), cwd=tmp_path)
    assert [(d.code, d.line, d.fix_available) for r in reports for d in r.diagnostics] == [("TFM402", 15, False)]
    assert seq.read_text() == source
    seq.write_text(source.replace("return [self.forward(x) for x in xs]\n\n\nclass Special",
                                  "return [self(x) for x in xs]\n\n\nclass Special"))
    after = load()
    assert hook_calls(after) == 3
    assert after.Special().run_sequence([1]) == [1]  # untouched: `self(...)` would wrap the result


def test_a_class_on_a_generic_base_of_the_file_is_a_module_class():
    from torchfix_mod.semantic import SemanticModel

    source = textwrap.dedent("""\
        from typing import Generic, TypeVar
        import torch.nn as nn

        T = TypeVar("T")

        class Base(nn.Module, Generic[T]):
            pass

        class Op(Base[int]):
            pass

        class Plain(Generic[T]):
            pass
        """)
    model = SemanticModel(ast.parse(source), source)
    verdict = {cls.name: model.is_module_class(cls) for cls in model.module_classes}
    assert verdict == {"Base": True, "Op": True, "Plain": False}


DISPATCH = {
    "mm/__init__.py": "",
    "mm/base_model.py": """\
        import torch.nn as nn


        class BaseModel(nn.Module):
            def forward(self, inputs, mode="tensor"):
                if mode == "loss":
                    return self.loss(inputs)
                return self._forward(inputs)


        class HookedBase(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_forward_hook(lambda mod, inp, out: self.after_forward(inp, out))

            def after_forward(self, inp, out):
                pass
        """,
    "mm/models.py": """\
        import torch
        import torch.nn as nn

        from .base_model import BaseModel, HookedBase


        class Classifier(BaseModel):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def _forward(self, inputs):
                return self.fc(inputs)

            def loss(self, inputs):
                return self.forward(inputs, mode="tensor").pow(2).mean()


        class Consistent(HookedBase):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)

            def forward(self, x):
                return self.fc(x)

            def after_forward(self, inp, out):
                with torch.no_grad():
                    self.extra = (self.forward(inp[0] + 0.01) - out).pow(2).mean()
        """,
}


def test_a_method_a_base_of_another_file_runs_from_its_forward_or_hooks_keeps_its_forward_call(tmp_path):
    """mmengine's BaseModel.forward dispatches to ``self.loss``; a base that runs
    ``self.after_forward`` from a hook it installs. ``self(...)`` in those methods would run the
    hooks twice, or recurse forever: the index records the names the bases call on their
    instance, and the calls are left as they are."""
    torch = pytest.importorskip("torch")
    write(tmp_path, DISPATCH)
    index = index_of(tmp_path)
    assert index.classes["mm.models.Classifier"].knows_name("loss")
    assert index.classes["mm.models.Consistent"].knows_name("after_forward")
    reports = run([tmp_path / "mm" / "models.py"], ALL_RULES, RunOptions(mode="write"), cwd=tmp_path)
    assert [d for r in reports for d in r.diagnostics if d.code == "TFM402"] == []
    sys.path.insert(0, str(tmp_path))
    try:
        models = importlib.import_module("mm.models")
        calls = []
        classifier = models.Classifier()
        classifier.register_forward_hook(lambda mod, inp, out: calls.append(1))
        classifier(torch.randn(2, 4), mode="loss")
        assert calls == [1]  # as written: one call, one hook
        consistent = models.Consistent()
        consistent(torch.ones(1, 2))
        assert consistent.extra.item() >= 0
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "mm" or m.startswith("mm.")]:
            del sys.modules[name]
