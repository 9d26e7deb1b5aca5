"""Runtime proof with real torch for the TFM7xx rules: each test runs the code a rule
rewrites, before and after its own fix, and checks what the fix claims (and, for the
unsafe fixes, the behaviour change that makes them unsafe)."""

from __future__ import annotations

import math
import pickle
import sys
import warnings

import pytest
import torch
import torch.nn as nn

from conftest import ALL_RULES, transform


def fixed(source: str, code: str, unsafe: bool = False) -> str:
    rule = next(r for r in ALL_RULES if r.code == code)
    result = transform(source, rules=[rule], unsafe=unsafe)
    assert not result.errors
    assert result.new_source != source, f"{code} did not rewrite the example"
    return result.new_source


def run(source: str) -> dict:
    namespace: dict = {"__name__": "tfm7xx_example"}
    exec(compile(source, "<example>", "exec"), namespace)
    return namespace


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


def test_tfm705_rewrite_is_exact_for_tiny_x():
    before, after, source = before_after(PRECISION, "TFM705")
    assert "torch.log1p(x), torch.expm1(x)" in source
    x = torch.tensor([1e-10], dtype=torch.float32)
    (log_b, exp_b), (log_a, exp_a) = before["f"](x), after["f"](x)
    exact = math.log1p(1e-10)  # = expm1(1e-10) to double precision, ~1e-10
    assert log_b.item() == 0.0 and exp_b.item() == 0.0  # all digits lost
    assert log_a.item() == pytest.approx(exact, rel=1e-6)
    assert exp_a.item() == pytest.approx(math.expm1(1e-10), rel=1e-6)


def test_tfm705_rewrite_agrees_elsewhere_with_the_same_dtype_and_gradient():
    before, after, _ = before_after(PRECISION, "TFM705")
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
