"""TorchFix's rules (TFM701-TFM710): runtime proof with real torch, decisions on ``ast``, and
parity with TorchFix.

Runtime: each test runs the code a rule rewrites, before and after its own fix, and checks what
the fix claims (and, for the unsafe fixes, the behaviour change that makes them unsafe).

Decisions: the rules decide on ``ast`` what LibCST decided before: spans and fixes where the two
trees differ (parentheses of an argument's own, comments beside an operator, one-line class
bodies, implicitly concatenated strings), and no LibCST import unless a fix is written.

Parity: every example of every TFM7xx rule (its ``fixes`` and ``keeps``) is run through both
tools, and the outcomes (reported or not, and the rewritten text) must agree, except for the
differences listed in DIFFERENCES below, which the test also checks still hold, so this list
stays true. TorchFix is found as ``$TORCHFIX_BIN`` or ``torchfix`` on PATH; without it the
parity tests are skipped. TorchFix runs with ``--fix`` and only the mapped TOR code selected;
torchfix-mod with ``--unsafe-fixes`` (TorchFix has no notion of unsafe fixes and applies all of
its own).

Rule by rule (TorchFix 0.7.0):

- TFM701 / TOR102 torch.load: the same findings and the same appended ``weights_only=True``.
  TorchFix takes ``pickle_module=None`` for a custom module (no fix) and appends the
  argument after ``**kwargs`` that may already hold it (torchfix-mod: report, no fix).
  In a function that handles ``weights_only`` itself (timm's ``_torch_load`` falls back to
  ``torch.load(path)`` under ``if not weights_only:`` for builds without the argument)
  TorchFix adds ``weights_only=True``, inverting the author's choice; torchfix-mod leaves
  such calls alone. torchfix-mod marks the fix unsafe (on PyTorch < 2.6 it changes what
  loads).
- TFM702 / TOR003 checkpoint: TorchFix does not know ``checkpoint_sequential``, and appends
  ``use_reentrant=False`` after ``**kwargs`` even where the surrounding code puts
  ``use_reentrant`` in them (diffusers' ``ckpt_kwargs`` pattern), which raises "got
  multiple values for keyword argument" at run time.
- TFM703 / TOR002 require_grad: TorchFix renames every ``x.require_grad = ...`` in a file
  that contains the string ``torch``; torchfix-mod reads every file and leaves the name
  alone where it is the program's own attribute (``self.require_grad``, a read of
  ``.require_grad``, a class attribute of that name, the string ``"require_grad"``).
- TFM704 / TOR104, TOR105 private collate: TorchFix points to
  ``torch.utils.data.dataloader.default_collate``, torchfix-mod to the documented
  ``torch.utils.data.default_collate`` (the same function). TorchFix rewrites imports and
  calls only (not ``fallback = <private name>``), reports an import mixing other private
  names without a fix, and turns ``C.default_collate`` (``C`` an alias of the private
  module) into the broken ``C.dataloader.default_collate``.
- TFM705 / TOR106, TOR107: the same findings; TorchFix has no fix.
- TFM706 / TOR201 pretrained: the same weights (both tables are torchvision's legacy
  mapping; ``test_pretrained_table_matches_torchfix`` compares them entry by entry), but
  TorchFix always writes ``models.<Enum>`` and adds ``from torchvision import models``
  (which may shadow a local ``models``), lacks ``keypointrcnn_resnet50_fpn``, fails on a
  file with a non-literal ``pretrained=`` or with ``vit_h_14(pretrained=True)`` (it writes
  ``models.None``), ignores the quantized builders, and takes a new-style positional
  ``weights`` argument for ``pretrained``.
- TFM707 / TOR202 v2.ToTensor: TorchFix reports the import line and attribute uses,
  without a fix; torchfix-mod reports each use (not the import) and has an unsafe fix.
- TFM708 / TOR203: TorchFix only knows ``datasets``, ``models`` and ``transforms`` directly
  under torchvision (not ``torchvision.transforms.v2 as v2``), and looks at the first
  name of an import statement only.
- TFM709 / TOR401: the same pattern; TorchFix also reports calls with ``**kwargs``.
- TFM710 / TOR402: TorchFix 0.7.0 has no TOR402 (later releases report explicit
  ``set_to_none=False`` without a fix, as torchfix-mod does with an unsafe fix).
"""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from conftest import ALL_RULES, transform
from rule_helpers import fixed, run, torchfix_bin


def before_after(source: str, code: str, unsafe: bool = False) -> tuple[dict, dict, str]:
    after = fixed(source, code, unsafe)
    return run(source), run(after), after


# -- TFM701: torch.load(..., weights_only=True) ------------------------------------

LOAD = "import torch\n\ndef load(path):\n    return torch.load(path, map_location='cpu')\n"


@pytest.fixture
def payload(tmp_path, monkeypatch):
    """A checkpoint whose unpickling runs code: it writes a marker file."""
    (tmp_path / "tfm701_payload.py").write_text(
        "def run(path):\n    open(path, 'w').write('code ran while loading')\n    return {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import tfm701_payload

    marker = tmp_path / "marker.txt"

    class Exploit:
        def __reduce__(self):
            return (tfm701_payload.run, (str(marker),))

    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(2), "extra": Exploit()}, path)
    yield path, marker
    sys.modules.pop("tfm701_payload", None)


def test_tfm701_state_dict_loads_identically(tmp_path):
    before, after, source = before_after(LOAD, "TFM701", unsafe=True)
    assert "torch.load(path, map_location='cpu', weights_only=True)" in source
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    model(torch.randn(5, 4))  # running stats and num_batches_tracked change
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded_before, loaded_after = before["load"](path), after["load"](path)
    assert list(loaded_before) == list(loaded_after) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded_after[key], value) and loaded_after[key].dtype == value.dtype
        assert torch.equal(loaded_before[key], loaded_after[key])
    fresh = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    fresh.load_state_dict(loaded_after)


def test_tfm701_fixed_call_refuses_code_in_the_checkpoint(payload):
    path, marker = payload
    _, after, _ = before_after(LOAD, "TFM701", unsafe=True)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        after["load"](path)
    assert not marker.exists()
    # what `torch.load` did by default before PyTorch 2.6: the code runs
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran while loading"


def test_tfm701_explicit_argument_holds_where_the_default_does_not(payload, monkeypatch):
    """PyTorch >= 2.6 defaults to weights_only=True, but an unspecified default can be switched
    off from outside the program; the written argument cannot."""
    path, marker = payload
    before, after, _ = before_after(LOAD, "TFM701", unsafe=True)
    with pytest.raises(pickle.UnpicklingError):
        before["load"](path)  # the current default already refuses
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before["load"](path)
    assert marker.exists(), "the unfixed call unpickled the payload"
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError):
        after["load"](path)
    assert not marker.exists()


def test_tfm701_custom_pickle_module_is_why_there_is_no_fix(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(1)}, path)
    with pytest.raises(RuntimeError, match="explicit pickle_module"):
        torch.load(path, pickle_module=pickle, weights_only=True)
    source = "import pickle\nimport torch\n\nobj = torch.load(path, pickle_module=pickle)\n"
    result = transform(source, rules=[r for r in ALL_RULES if r.code == "TFM701"], unsafe=True)
    assert result.new_source == source and [d.code for d in result.diagnostics] == ["TFM701"]


# -- TFM702: checkpoint(..., use_reentrant=False) ----------------------------------

CHECKPOINT = (
    "import torch\nfrom torch.utils.checkpoint import checkpoint\n\n"
    "def run(blocks, x):\n"
    "    for block in blocks:\n"
    "        x = checkpoint(block, x)\n"
    "    return x\n"
)


def make_blocks() -> nn.ModuleList:
    torch.manual_seed(0)
    return nn.ModuleList(nn.Sequential(nn.Linear(6, 6), nn.Tanh()) for _ in range(3))


def grads_of(run_fn, x: torch.Tensor) -> list[torch.Tensor | None]:
    blocks = make_blocks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_fn(blocks, x).pow(2).sum().backward()
    return [p.grad for p in blocks.parameters()]


def plain(blocks, x):
    for block in blocks:
        x = block(x)
    return x


def test_tfm702_non_reentrant_gives_the_gradients_of_no_checkpoint():
    before, after, source = before_after(CHECKPOINT, "TFM702", unsafe=True)
    assert "checkpoint(block, x, use_reentrant=False)" in source
    torch.manual_seed(1)
    x = torch.randn(4, 6, requires_grad=True)
    reference = grads_of(plain, x)
    for variant in (after["run"], before["run"]):
        got = grads_of(variant, x.detach().requires_grad_())
        assert all(torch.allclose(g, r, atol=1e-6) for g, r in zip(got, reference))


def test_tfm702_reentrant_default_loses_gradients_when_the_input_needs_none():
    """The behaviour change behind the unsafe fix: a plain batch as input."""
    before, after, _ = before_after(CHECKPOINT, "TFM702", unsafe=True)
    torch.manual_seed(1)
    x = torch.randn(4, 6)  # does not require grad
    reference = grads_of(plain, x)
    got = grads_of(after["run"], x)
    assert all(torch.allclose(g, r, atol=1e-6) for g, r in zip(got, reference))
    with pytest.raises(RuntimeError, match="does not require grad"):
        grads_of(before["run"], x)  # the reentrant variant cut every parameter off the graph


def test_tfm702_unfixed_call_warns():
    before, after, _ = before_after(CHECKPOINT, "TFM702", unsafe=True)
    x = torch.randn(2, 6, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before["run"](make_blocks(), x)
    assert any("use_reentrant" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        after["run"](make_blocks(), x)
    assert not any("use_reentrant" in str(w.message) for w in caught)


# -- TFM703: require_grad -> requires_grad ----------------------------------------

TYPO = (
    "import torch\n\n"
    "def freeze(module):\n"
    "    for p in module.parameters():\n"
    "        p.require_grad = False\n\n"
    "def trainable_zeros(n):\n"
    "    t = torch.zeros(n)\n"
    "    t.require_grad = True\n"
    "    return t\n"
)


def test_tfm703_typo_does_nothing_fix_sets_the_flag():
    before, after, source = before_after(TYPO, "TFM703")
    assert "p.requires_grad = False" in source and "t.requires_grad = True" in source
    t_before, t_after = before["trainable_zeros"](3), after["trainable_zeros"](3)
    assert t_before.requires_grad is False and t_before.require_grad is True  # a stray attribute
    assert t_after.requires_grad is True


def test_tfm703_frozen_layer_really_stops_training():
    before, after, _ = before_after(TYPO, "TFM703")
    moved = {}
    for name, ns in (("before", before), ("after", after)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
        ns["freeze"](model[0])
        start = model[0].weight.detach().clone()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        moved[name] = not torch.equal(model[0].weight, start)
    assert moved == {"before": True, "after": False}


# -- TFM704: private default_collate -> torch.utils.data ---------------------------


def test_tfm704_public_import_is_the_same_function():
    source = "from torch.utils.data._utils.collate import default_collate, default_convert\n"
    before, after, fixed_source = before_after(source, "TFM704")
    assert fixed_source == "from torch.utils.data import default_collate, default_convert\n"
    assert after["default_collate"] is before["default_collate"]
    assert after["default_convert"] is before["default_convert"]
    batch = [{"x": torch.ones(2), "y": 1}, {"x": torch.zeros(2), "y": 2}]
    out = after["default_collate"](batch)
    assert torch.equal(out["x"], torch.stack([torch.ones(2), torch.zeros(2)]))
    assert torch.equal(out["y"], torch.tensor([1, 2]))


def test_tfm704_attribute_spelling_is_the_same_function():
    source = "import torch\n\ncollate = torch.utils.data._utils.collate.default_collate\n"
    before, after, fixed_source = before_after(source, "TFM704")
    assert "torch.utils.data.default_collate" in fixed_source
    assert after["collate"] is before["collate"]


# -- TFM705: log1p / expm1 ----------------------------------------------------------

PRECISION = "import torch\n\ndef f(x):\n    return torch.log(1 + x), torch.exp(x) - 1\n"


def test_tfm705_expm1_is_an_unsafe_fix_and_log1p_a_safe_one():
    """The TorchScript-based ONNX exporter has no `expm1`: a model that exported before the
    rewrite would not after it, so only `--unsafe-fixes` writes `expm1`."""
    safe = fixed(PRECISION, "TFM705", False)
    assert "torch.log1p(x)" in safe and "torch.expm1" not in safe and "torch.exp(x) - 1" in safe


def test_tfm705_rewrite_is_exact_for_tiny_x():
    before, after, source = before_after(PRECISION, "TFM705", unsafe=True)
    assert "torch.log1p(x), torch.expm1(x)" in source
    x = torch.tensor([1e-10], dtype=torch.float32)
    (log_b, exp_b), (log_a, exp_a) = before["f"](x), after["f"](x)
    exact = math.log1p(1e-10)  # = expm1(1e-10) to double precision, ~1e-10
    assert log_b.item() == 0.0 and exp_b.item() == 0.0  # all digits lost
    assert log_a.item() == pytest.approx(exact, rel=1e-6)
    assert exp_a.item() == pytest.approx(math.expm1(1e-10), rel=1e-6)


def test_tfm705_rewrite_agrees_elsewhere_with_the_same_dtype_and_gradient():
    before, after, _ = before_after(PRECISION, "TFM705", unsafe=True)
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = (torch.rand(100, dtype=dtype) * 4).requires_grad_()
        y = x.detach().clone().requires_grad_()
        lb, eb = before["f"](x)
        la, ea = after["f"](y)
        assert la.dtype == lb.dtype == ea.dtype == eb.dtype == dtype
        assert torch.allclose(la, lb) and torch.allclose(ea, eb)
        (lb.sum() + eb.sum()).backward()
        (la.sum() + ea.sum()).backward()
        assert torch.allclose(x.grad, y.grad)
    ints = torch.tensor([0, 1, 5])
    assert after["f"](ints)[0].dtype == before["f"](ints)[0].dtype


# -- TFM708: the from-import binds the same module ----------------------------------


def test_tfm708_rewrite_binds_the_same_module():
    fixed_source = fixed("import torchvision.transforms.v2 as v2\n", "TFM708")
    assert fixed_source == "from torchvision.transforms import v2\n"
    # the same two statement forms, on a package that is installed here
    old = run("import torch.utils.data as data\n")["data"]
    new = run("from torch.utils import data\n")["data"]
    assert old is new is sys.modules["torch.utils.data"]


def test_tfm708_torchvision_modules_are_the_same():
    pytest.importorskip("torchvision")
    old = run("import torchvision.models as models\nimport torchvision.transforms.v2 as v2\n")
    new = run(fixed("import torchvision.models as models\nimport torchvision.transforms.v2 as v2\n", "TFM708"))
    assert old["models"] is new["models"] and old["v2"] is new["v2"]


# -- TFM706: pretrained=True -> the weights torchvision substituted ------------------


@pytest.mark.parametrize("builder", ["resnet18", "mobilenet_v3_small", "squeezenet1_0"])
def test_tfm706_weights_are_the_ones_pretrained_true_selected(builder, monkeypatch):
    """torchvision's own legacy layer picks the weights for `pretrained=True`; record them
    (without downloading) and compare with what the fix writes."""
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models._api import WeightsEnum

    class Picked(Exception):
        pass

    def refuse(self, *args, **kwargs):
        raise Picked(self)

    monkeypatch.setattr(WeightsEnum, "get_state_dict", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Picked) as picked:
            getattr(torchvision.models, builder)(pretrained=True)
    chosen = picked.value.args[0]
    source = fixed(f"import torchvision\n\nm = torchvision.models.{builder}(pretrained=True)\n", "TFM706")
    assert source.endswith(f"torchvision.models.{type(chosen).__name__}.{chosen.name})\n")


# -- TFM710: zero_grad(set_to_none=True) --------------------------------------------

ZERO = (
    "def step(model, opt, x):\n"
    "    opt.zero_grad(set_to_none=False)\n"
    "    model(x).sum().backward()\n"
    "    opt.step()\n"
)


def test_tfm710_grads_are_freed_and_unused_parameters_stop_moving():
    before, after, source = before_after(ZERO, "TFM710", unsafe=True)
    assert "opt.zero_grad(set_to_none=True)" in source
    results = {}
    for name, ns in (("before", before), ("after", after)):
        torch.manual_seed(0)
        used, unused = nn.Linear(3, 1), nn.Linear(3, 1)
        opt = torch.optim.SGD([*used.parameters(), *unused.parameters()], lr=0.1, momentum=0.9)
        x = torch.randn(4, 3)
        unused(x).sum().backward()  # one step where `unused` gets a gradient
        opt.step()
        start = unused.weight.detach().clone()
        ns["step"](used, opt, x)  # `unused` gets no gradient in this step
        results[name] = (unused.weight.grad, not torch.equal(unused.weight, start))
    grad_before, moved_before = results["before"]
    grad_after, moved_after = results["after"]
    assert grad_before is not None and torch.count_nonzero(grad_before) == 0
    assert grad_after is None  # memory freed
    # with a zero grad, momentum keeps moving it; with None, SGD skips it: why the fix is unsafe
    assert moved_before and not moved_after


# -- decided on ast as LibCST decided before --------------------------------------

CASES = [
    pytest.param(
        "TFM706",
        "from torchvision import models as M\n\n"
        "f = M.mobilenet_v3_large((True))\n"
        "g = M.mobilenet_v3_large(pretrained = ( True ))\n",
        "from torchvision import models as M\n\n"
        "f = M.mobilenet_v3_large(weights=M.MobileNet_V3_Large_Weights.IMAGENET1K_V1)\n"
        "g = M.mobilenet_v3_large(weights = M.MobileNet_V3_Large_Weights.IMAGENET1K_V1)\n",
        # a positional argument spans its parentheses, as LibCST's Arg does
        [(3, 26, 3, 32), (4, 26, 4, 47)],
        id="pretrained-in-parentheses",
    ),
    pytest.param(
        "TFM710",
        "opt.zero_grad((False))\nopt.zero_grad(set_to_none=(False))\n",
        "opt.zero_grad(True)\nopt.zero_grad(set_to_none=True)\n",
        [(1, 1, 1, 23), (2, 1, 2, 35)],
        id="set-to-none-in-parentheses",
    ),
    pytest.param(
        "TFM705",
        "import torch\n\n"
        "y = torch.log(1 +  # one\n    x)\n"
        "z = torch.log(1 + (  # x\n    x))\n"
        "w = (  # why\n    torch.exp(h) - 1)\n",
        "import torch\n\n"
        "y = torch.log(1 +  # one\n    x)\n"
        "z = torch.log1p((  # x\n    x))\n"
        "w = (  # why\n    torch.expm1(h))\n",
        [(3, 5, 4, 7), (5, 5, 6, 8), (8, 5, 8, 21)],
        id="comments-beside-operator",
    ),
    pytest.param(
        "TFM703",
        "import torch\n\nclass A: require_grad = True\n\nx = torch.zeros(1)\nx.require_grad = True\n",
        "import torch\n\nclass A: require_grad = True\n\nx = torch.zeros(1)\nx.requires_grad = True\n",
        [(6, 1, 6, 15)],
        id="one-line-class-body",
    ),
    pytest.param(
        "TFM701",
        "import torch\n\n"
        "def f(path):\n    note = 'weights' '_only'\n    return torch.load(path)\n\n"
        "def g(path):\n    note = 'x' 'weights_only'\n    return torch.load(path)\n",
        "import torch\n\n"
        "def f(path):\n    note = 'weights' '_only'\n    return torch.load(path, weights_only=True)\n\n"
        "def g(path):\n    note = 'x' 'weights_only'\n    return torch.load(path)\n",
        [(5, 12, 5, 28)],
        id="concatenated-strings",
    ),
]


@pytest.mark.parametrize(("code", "source", "expected", "spans"), CASES)
def test_decided_as_before(code, source, expected, spans):
    result = transform(source, rules=[r for r in ALL_RULES if r.code == code], unsafe=True)
    assert not result.errors
    assert result.new_source == expected
    assert [(d.line, d.column, d.end_line, d.end_column) for d in result.diagnostics] == spans


def test_deciding_does_not_import_libcst():
    script = (
        "import importlib, sys\n"
        "from torchfix_mod.engine import Settings, transform_source\n"
        "names = ['torch_load', 'checkpoint_reentrant', 'require_grad', 'private_collate', 'log1p_expm1',\n"
        "         'torchvision_pretrained', 'torchvision_to_tensor', 'torchvision_import', 'dataloader_workers',\n"
        "         'zero_grad']\n"
        "rules = []\n"
        "for name in names:\n"
        "    module = importlib.import_module('torchfix_mod.codemods.torchfix.' + name)\n"
        "    rules += [v for v in vars(module).values() if getattr(v, '__module__', None) == module.__name__\n"
        "              and getattr(v, 'code', None)]\n"
        "source = ('import torch\\nimport torchvision\\nfrom torch.utils.checkpoint import checkpoint\\n'\n"
        "          'a = torch.load(p)\\nb = checkpoint(f, x)\\nc = torch.log(1 + x)\\n'\n"
        "          'd = torchvision.models.resnet50(pretrained=True)\\np.require_grad = False\\n')\n"
        "result = transform_source(source, Settings(rules=tuple(rules), apply_fixes=False))\n"
        "assert len({d.code for d in result.diagnostics}) == 5, result.diagnostics\n"
        "assert 'libcst' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


# -- parity with TorchFix -----------------------------------------------------------

TORCHFIX = torchfix_bin()
needs_torchfix = pytest.mark.skipif(TORCHFIX is None, reason="TorchFix is not installed (set TORCHFIX_BIN)")

TOR_CODES = {
    "TFM701": ("TOR102",),
    "TFM702": ("TOR003",),
    "TFM703": ("TOR002",),
    "TFM704": ("TOR104", "TOR105"),
    "TFM705": ("TOR106", "TOR107"),
    "TFM706": ("TOR201",),
    "TFM707": ("TOR202",),
    "TFM708": ("TOR203",),
    "TFM709": ("TOR401",),
    "TFM710": ("TOR402",),
}

# example id -> why the two tools differ on it
DIFFERENCES = {
    "TFM701-fix-1": "layout only: TorchFix writes `weights_only=True)` on the closing parenthesis' line",
    "TFM701-fix-3": "TorchFix takes `pickle_module=None` for a custom pickle module and gives no fix",
    "TFM701-keep-4": "TorchFix appends `weights_only=True` after `**load_kwargs`, which may hold it",
    "TFM701-keep-7": "TorchFix adds `weights_only=True` to the fallback meant for `weights_only=False` on old PyTorch",
    "TFM701-keep-8": "TorchFix appends `weights_only=True` after `**extra` that already holds it (TypeError)",
    "TFM702-fix-1": "TorchFix does not know `checkpoint_sequential`",
    "TFM702-fix-2": "layout only: TorchFix writes `use_reentrant=False)` on the closing parenthesis' line",
    "TFM702-keep-2": "TorchFix appends `use_reentrant=False` after `**ckpt_kwargs` that already hold it (TypeError)",
    "TFM702-keep-3": "TorchFix appends `use_reentrant=False` after `**options`, which may hold it",
    "TFM702-keep-4": "TorchFix appends `use_reentrant=False` in a wrapper that passes its callers' `**kwargs` on",
    "TFM703-fix-0": "TorchFix skips files without the string `torch`",
    "TFM703-keep-1": "TorchFix renames the class's own `self.require_grad` attribute",
    "TFM703-keep-2": "TorchFix renames `cfg.require_grad` although the file reads `cfg.require_grad`",
    "TFM703-keep-3": "TorchFix renames although the file reads the attribute through getattr",
    "TFM703-keep-4": "TorchFix renames although `require_grad` is a class attribute of Options",
    "TFM704-fix-0": "TorchFix imports from torch.utils.data.dataloader instead of torch.utils.data",
    "TFM704-fix-1": "TorchFix rewrites calls only (not `fallback = <private name>`), to torch.utils.data.dataloader",
    "TFM704-fix-2": "TorchFix reports an import mixing private names without a fix",
    "TFM704-keep-4": "TorchFix writes `C.dataloader.default_collate` (no such attribute) and imports `dataloader`",
    "TFM705-fix-0": "TorchFix reports log1p/expm1 without a fix",
    "TFM705-fix-1": "TorchFix reports log1p/expm1 without a fix",
    "TFM705-fix-2": "TorchFix reports log1p/expm1 without a fix",
    "TFM705-fix-3": "TorchFix reports log1p/expm1 without a fix",
    "TFM706-fix-0": "TorchFix writes `models.ResNet50_Weights...` and adds `from torchvision import models`",
    "TFM706-fix-1": "TorchFix writes `models.ResNet18_Weights...` and adds `from torchvision import models`",
    "TFM706-keep-1": "TorchFix fails on the file: `pretrained=cfg.pretrained` is not a Name",
    "TFM706-keep-2": "TorchFix writes the invalid `weights=models.None` for vit_h_14 and fails on the file",
    "TFM706-keep-3": "TorchFix ignores quantized builders",
    "TFM706-keep-6": "TorchFix takes a positional new-style `weights` argument for `pretrained`",
    "TFM707-fix-0": "TorchFix reports v2.ToTensor without a fix",
    "TFM707-fix-1": "TorchFix reports v2.ToTensor without a fix (at the import)",
    "TFM708-fix-0": "TorchFix only knows torchvision.{datasets,models,transforms}, not transforms.v2",
    "TFM709-keep-5": "TorchFix reports a DataLoader whose `**loader_kwargs` may set num_workers",
    "TFM710-fix-0": "TorchFix 0.7.0 has no TOR402",
}


def _examples():
    for rule in ALL_RULES:
        if rule.code not in TOR_CODES:
            continue
        for i, case in enumerate(rule.fixes):
            yield f"{rule.code}-fix-{i}", rule, case.before
        for i, case in enumerate(rule.keeps):
            yield f"{rule.code}-keep-{i}", rule, case.source


EXAMPLES = list(_examples())
LINE = re.compile(r"^(?:\./)?(?P<file>ex_\d+\.py):\d+:\d+: (?P<code>TOR\d+)")


def _available_codes() -> set[str]:
    out = subprocess.run([TORCHFIX, "--help"], capture_output=True, text=True, check=False).stdout
    return set(re.findall(r"TOR\d{3}", " ".join(out.split())))


@pytest.fixture(scope="module")
def torchfix_outcomes(tmp_path_factory) -> dict[str, tuple[bool, str]]:
    """example id -> (TorchFix reported it, text after ``torchfix --fix``)."""
    available = _available_codes()
    outcomes: dict[str, tuple[bool, str]] = {}
    for code, tor_codes in TOR_CODES.items():
        examples = [(eid, source) for eid, rule, source in EXAMPLES if rule.code == code]
        selected = [c for c in tor_codes if c in available]
        if not selected:
            outcomes.update({eid: (False, source) for eid, source in examples})
            continue
        workdir = tmp_path_factory.mktemp(code)
        names = {}
        for index, (eid, source) in enumerate(examples):
            name = f"ex_{index}.py"
            (workdir / name).write_text(source, encoding="utf-8")
            names[name] = eid
        result = subprocess.run(
            [TORCHFIX, "--fix", "-j", "1", "--select", ",".join(selected), "."],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        reported = {names[m["file"]] for m in map(LINE.match, result.stdout.splitlines()) if m}
        for name, eid in names.items():
            outcomes[eid] = (eid in reported, (workdir / name).read_text(encoding="utf-8"))
    return outcomes


def ours(rule, source: str) -> tuple[bool, str]:
    result = transform(source, rules=[rule], unsafe=True)
    return any(d.code == rule.code for d in result.diagnostics), result.new_source


@needs_torchfix
@pytest.mark.parametrize(("eid", "rule", "source"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_same_outcome_as_torchfix_or_a_documented_difference(eid, rule, source, torchfix_outcomes):
    theirs = torchfix_outcomes[eid]
    mine = ours(rule, source)
    if eid in DIFFERENCES:
        assert mine != theirs, f"{eid} is listed as a difference but both tools agree: {DIFFERENCES[eid]}"
    else:
        assert mine == theirs, f"{eid}: torchfix-mod {mine!r} vs TorchFix {theirs!r}"


@needs_torchfix
def test_pretrained_table_matches_torchfix():
    """The legacy weights table agrees with TorchFix's, model by model (TorchFix lacks
    keypointrcnn_resnet50_fpn, and has "None" where torchvision has no weights)."""
    python = Path(TORCHFIX).with_name("python")
    if not python.exists():
        pytest.skip("TorchFix's interpreter not found next to its script")
    script = (
        "import json\n"
        "from torchfix.visitors.vision.pretrained import TorchVisionDeprecatedPretrainedVisitor as V\n"
        "print(json.dumps([[k[0], k[1], v] for k, v in V.MODEL_WEIGHTS.items()]))\n"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True, timeout=120).stdout
    import json

    from torchfix_mod.codemods.torchfix.torchvision_pretrained import BUILDERS, MODELS

    theirs = {(model, param): weights for model, param, weights in json.loads(out)}
    mine = {}
    for builder in set(BUILDERS.values()):
        sub = builder.public[len(MODELS) + 1 :]
        model = f"{sub}.{builder.name}" if sub else builder.name
        mine[(model, "pretrained")] = builder.weights or "None"
        if builder.backbone:
            mine[(model, "pretrained_backbone")] = builder.backbone
    extra = {k: v for k, v in mine.items() if k not in theirs}
    assert extra == {
        ("detection.keypointrcnn_resnet50_fpn", "pretrained"): "KeypointRCNN_ResNet50_FPN_Weights.COCO_V1",
        ("detection.keypointrcnn_resnet50_fpn", "pretrained_backbone"): "ResNet50_Weights.IMAGENET1K_V1",
    }
    assert {k: v for k, v in mine.items() if k in theirs} == theirs


@needs_torchfix
def test_line_parity_script_counts_shared_and_torchfix_only_lines(tmp_path, monkeypatch, capsys):
    """bench/torchfix_lines.py: TorchFix's TOR105 (import) and TOR104 (use) lines are ours too;
    the fallback for releases without `weights_only` is TorchFix's only, and listed."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.syspath_prepend(str(root))
    from bench import torchfix_lines

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text(
        "import torch\n"
        "from torch.utils.data._utils.collate import default_collate\n\n\n"
        "def load(path, batch):\n"
        "    try:\n"
        "        state = torch.load(path, weights_only=True)\n"
        "    except TypeError:  # a release without weights_only\n"
        "        state = torch.load(path)\n"
        "    return state, default_collate(batch)\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(root))
    assert torchfix_lines.main(["--torchfix", TORCHFIX, "src"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines() if line.startswith("TOR")}
    assert rows["TOR104"] == ["TFM704", "1", "0"] and rows["TOR105"] == ["TFM704", "1", "0"]
    assert rows["TOR102"] == ["TFM701", "0", "1"]
