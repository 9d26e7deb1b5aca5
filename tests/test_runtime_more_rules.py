"""Runtime proof with real torch for TFM103, TFM104, TFM302, TFM401 and TFM402: before.py vs after.py."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import torch.nn as nn

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@lru_cache(maxsize=None)
def load(rule: str, which: str):
    path = SAMPLES / rule / f"{which}.py"
    spec = importlib.util.spec_from_file_location(f"torchfix_more_sample_{rule}_{which}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(rule: str, which: str, cls_name: str, *args, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return getattr(load(rule, which), cls_name)(*args, **kwargs)


def snapshot(tensors) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


def sgd_step(model: nn.Module, loss_fn, lr: float = 0.1) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss_fn(model).backward()
    opt.step()


# -- TFM103: nn.Parameters in a Python list -------------------------------------

HIDDEN, N_LAYERS = 4, 3


def test_tfm103_list_parameters_are_registered_only_after_the_fix():
    before = build("TFM103", "before", "Polynomial", (3.0, 5.0))
    after = build("TFM103", "after", "Polynomial", (3.0, 5.0))
    assert list(before.parameters()) == []
    assert before.state_dict() == {}
    assert isinstance(after.coefficients, nn.ParameterList)
    assert list(after.state_dict()) == ["coefficients.0", "coefficients.1"]
    assert [p.item() for p in after.parameters()] == [3.0, 5.0]

    before = build("TFM103", "before", "ScaledResidualStack", HIDDEN, N_LAYERS)
    after = build("TFM103", "after", "ScaledResidualStack", HIDDEN, N_LAYERS)
    scale_keys = {f"scales.{i}" for i in range(N_LAYERS)}
    assert not scale_keys & set(before.state_dict())
    assert set(after.state_dict()) == set(before.state_dict()) | scale_keys
    assert sum(p.numel() for p in after.parameters()) == sum(p.numel() for p in before.parameters()) + N_LAYERS * HIDDEN


def test_tfm103_optimizer_trains_the_list_only_after_the_fix():
    before = build("TFM103", "before", "Polynomial")
    with pytest.raises(ValueError, match="empty parameter list"):
        torch.optim.SGD(before.parameters(), lr=0.1)

    x = torch.randn(6, HIDDEN)
    loss = lambda model: model(x).pow(2).mean()  # noqa: E731
    before = build("TFM103", "before", "ScaledResidualStack", HIDDEN, N_LAYERS)
    after = build("TFM103", "after", "ScaledResidualStack", HIDDEN, N_LAYERS)
    before_scales, after_scales = snapshot(before.scales), snapshot(after.scales)
    before_blocks = snapshot(before.blocks.parameters())
    sgd_step(before, loss)
    sgd_step(after, loss)
    # the blocks are trained in both, the scales only once they are registered
    assert any(not torch.equal(old, new) for old, new in zip(before_blocks, before.blocks.parameters()))
    assert all(torch.equal(old, new) for old, new in zip(before_scales, before.scales))
    assert any(not torch.equal(old, new) for old, new in zip(after_scales, after.scales))


def test_tfm103_list_parameters_follow_double_only_after_the_fix():
    before = build("TFM103", "before", "ScaledResidualStack", HIDDEN, N_LAYERS).double()
    after = build("TFM103", "after", "ScaledResidualStack", HIDDEN, N_LAYERS).double()
    assert before.scales[0].dtype == torch.float32
    assert after.scales[0].dtype == torch.float64


def test_tfm103_forward_is_unchanged_by_the_fix():
    x = torch.randn(6, HIDDEN)
    before = build("TFM103", "before", "Polynomial", (3.0, 5.0))
    after = build("TFM103", "after", "Polynomial", (3.0, 5.0))
    assert torch.allclose(before(x), 3.0 + 5.0 * x)
    assert torch.allclose(after(x), 3.0 + 5.0 * x)

    before = build("TFM103", "before", "ScaledResidualStack", HIDDEN, N_LAYERS)
    after = build("TFM103", "after", "ScaledResidualStack", HIDDEN, N_LAYERS)
    after.load_state_dict(before.state_dict(), strict=False)
    assert torch.allclose(before(x), after(x))


# -- TFM104: nn.Parameters in a Python dict -------------------------------------

TASKS = ("depth", "normals", "segmentation")
FEATURES = 5


def batch():
    torch.manual_seed(1)
    x = torch.randn(8, FEATURES)
    targets = {task: torch.randn(8, 1) for task in TASKS}
    return x, targets


def test_tfm104_dict_parameters_are_registered_only_after_the_fix():
    before = build("TFM104", "before", "UncertaintyWeightedLoss")
    after = build("TFM104", "after", "UncertaintyWeightedLoss")
    assert list(before.parameters()) == []
    assert before.state_dict() == {}
    assert isinstance(after.log_vars, nn.ParameterDict)
    assert list(after.state_dict()) == [f"log_vars.{task}" for task in TASKS]
    assert list(after.log_vars.keys()) == list(TASKS)

    before = build("TFM104", "before", "MultiTaskHead", FEATURES)
    after = build("TFM104", "after", "MultiTaskHead", FEATURES)
    loss_keys = {f"loss.log_vars.{task}" for task in TASKS}
    assert not loss_keys & set(before.state_dict())
    assert set(after.state_dict()) == set(before.state_dict()) | loss_keys


def test_tfm104_optimizer_trains_the_dict_only_after_the_fix():
    x, targets = batch()
    loss = lambda model: model(x, targets).sum()  # noqa: E731
    before = build("TFM104", "before", "MultiTaskHead", FEATURES)
    after = build("TFM104", "after", "MultiTaskHead", FEATURES)
    trunk_before = before.trunk.weight.detach().clone()
    sgd_step(before, loss)
    sgd_step(after, loss)
    assert not torch.equal(before.trunk.weight, trunk_before)
    for task in TASKS:
        assert torch.equal(before.loss.log_vars[task], torch.zeros(1))
        assert not torch.equal(after.loss.log_vars[task], torch.zeros(1))


def test_tfm104_forward_is_unchanged_by_the_fix():
    x, targets = batch()
    before = build("TFM104", "before", "MultiTaskHead", FEATURES)
    after = build("TFM104", "after", "MultiTaskHead", FEATURES)
    after.load_state_dict(before.state_dict(), strict=False)
    # with every log-variance at 0 the combined loss is the plain sum of the task losses
    features = torch.relu(before.trunk(x))
    expected = sum(((before.heads[t](features) - targets[t]) ** 2).mean() for t in TASKS)
    assert torch.allclose(before(x, targets), expected.reshape(1))
    assert torch.allclose(after(x, targets), expected.reshape(1))


# -- TFM302: tensors created with requires_grad=True ---------------------------

DIM, CLASSES = 3, 4


def test_tfm302_tensors_are_parameters_only_after_the_fix():
    before = build("TFM302", "before", "LR", DIM)
    after = build("TFM302", "after", "LR", DIM)
    assert list(before.parameters()) == []
    assert before.state_dict() == {}
    assert [name for name, _ in after.named_parameters()] == ["W", "b"]
    assert isinstance(after.W, nn.Parameter) and after.W.requires_grad
    assert after.W.shape == (DIM, 1) and after.W.dtype == torch.float

    frozen = build("TFM302", "after", "LR", DIM, train_bias=False)
    assert isinstance(frozen.b, nn.Parameter) and not frozen.b.requires_grad
    assert frozen.W.requires_grad

    before = build("TFM302", "before", "TemperatureScaledClassifier", DIM, CLASSES)
    after = build("TFM302", "after", "TemperatureScaledClassifier", DIM, CLASSES)
    assert set(before.state_dict()) == {"fc.weight", "fc.bias"}
    assert set(after.state_dict()) == {"fc.weight", "fc.bias", "temperature"}


def test_tfm302_one_sgd_step_trains_the_tensor_only_after_the_fix():
    torch.manual_seed(2)
    x, y = torch.randn(16, DIM), torch.randint(0, 2, (16, 1)).float()
    bce = lambda model: nn.functional.binary_cross_entropy(model(x), y)  # noqa: E731

    before = build("TFM302", "before", "LR", DIM)
    with pytest.raises(ValueError, match="empty parameter list"):
        torch.optim.SGD(before.parameters(), lr=0.5)
    after = build("TFM302", "after", "LR", DIM)
    sgd_step(after, bce, lr=0.5)
    assert not torch.equal(after.W, torch.zeros(DIM, 1))
    assert not torch.equal(after.b, torch.zeros(1))

    labels = torch.randint(0, CLASSES, (16,))
    xent = lambda model: nn.functional.cross_entropy(model(x), labels)  # noqa: E731
    before = build("TFM302", "before", "TemperatureScaledClassifier", DIM, CLASSES)
    after = build("TFM302", "after", "TemperatureScaledClassifier", DIM, CLASSES)
    fc_before = before.fc.weight.detach().clone()
    sgd_step(before, xent)
    sgd_step(after, xent)
    assert not torch.equal(before.fc.weight, fc_before)
    # autograd filled the gradient, but the optimizer never saw the tensor
    assert before.temperature.grad is not None and before.temperature.grad.abs().sum() > 0
    assert torch.equal(before.temperature, torch.ones(1))
    assert not torch.equal(after.temperature, torch.ones(1))


def test_tfm302_tensor_follows_to_only_after_the_fix():
    before = build("TFM302", "before", "TemperatureScaledClassifier", DIM, CLASSES).to(torch.float64)
    after = build("TFM302", "after", "TemperatureScaledClassifier", DIM, CLASSES).to(torch.float64)
    assert before.fc.weight.dtype == after.fc.weight.dtype == torch.float64
    assert before.temperature.dtype == torch.float32
    assert after.temperature.dtype == torch.float64
    assert isinstance(after.temperature, nn.Parameter) and after.temperature.requires_grad

    before = build("TFM302", "before", "LR", DIM).to(torch.float64)
    after = build("TFM302", "after", "LR", DIM).to(torch.float64)
    assert before.W.dtype == torch.float32
    assert after.W.dtype == after.b.dtype == torch.float64


def test_tfm302_forward_is_unchanged_by_the_fix():
    x = torch.randn(5, DIM)
    before, after = build("TFM302", "before", "LR", DIM), build("TFM302", "after", "LR", DIM)
    assert torch.allclose(before(x), torch.full((5, 1), 0.5))
    assert torch.allclose(after(x), before(x))

    before = build("TFM302", "before", "TemperatureScaledClassifier", DIM, CLASSES)
    after = build("TFM302", "after", "TemperatureScaledClassifier", DIM, CLASSES)
    after.load_state_dict(before.state_dict(), strict=False)
    assert torch.allclose(before(x), after(x))


# -- TFM401: __init__ without super().__init__() --------------------------------

INIT_ERROR = r"cannot assign module before Module\.__init__\(\) call"


def test_tfm401_before_cannot_be_constructed():
    before = load("TFM401", "before")
    with pytest.raises(AttributeError, match=INIT_ERROR):
        before.LR(4, 1)
    with pytest.raises(AttributeError, match=INIT_ERROR):
        before.MLPRegressor()


def test_tfm401_after_constructs_and_runs():
    x = torch.randn(6, 4)
    lr = build("TFM401", "after", "LR", 4, 1)
    assert lr.test == 1
    assert [name for name, _ in lr.named_parameters()] == ["linear.weight", "linear.bias"]
    assert torch.allclose(lr(x), x @ lr.linear.weight.T + lr.linear.bias)

    mlp = build("TFM401", "after", "MLPRegressor")
    assert mlp.activation is torch.relu  # the base __init__ ran
    assert [name for name, _ in mlp.named_children()] == ["body", "head"]
    out = mlp(x)
    assert out.shape == (6, 1)
    out.sum().backward()
    assert all(p.grad is not None for p in mlp.parameters())


# -- TFM402: module.forward(x) called directly ----------------------------------


def recording_hook(calls: list):
    def hook(module, inputs, output):
        calls.append(type(module).__name__)

    return hook


def test_tfm402_forward_hook_on_submodule_fires_only_after_the_fix():
    x = torch.randn(3, 1)
    outputs = {}
    for which in ("before", "after"):
        model = build("TFM402", which, "Function_D")
        calls = []
        model.c.register_forward_hook(recording_hook(calls))
        outputs[which] = model(x)
        assert calls == ([] if which == "before" else ["Function_C"])
    assert torch.allclose(outputs["before"], outputs["after"])
    assert torch.allclose(outputs["after"], (x + 3) * 7 / 5)


def test_tfm402_backward_hook_on_submodule_fires_only_after_the_fix():
    x = torch.randn(3, 1)
    for which in ("before", "after"):
        model = build("TFM402", which, "Function_D")
        calls = []
        model.c.register_full_backward_hook(lambda module, grad_in, grad_out: calls.append(grad_out[0].shape))
        model(x).sum().backward()
        assert calls == ([] if which == "before" else [torch.Size([3, 1])])
        assert torch.allclose(model.W1.grad, torch.tensor([3 * 7 / 5]))


def test_tfm402_module_built_in_forward_runs_hooks_only_after_the_fix():
    x = torch.randn(3, 1)
    outputs = {}
    for which in ("before", "after"):
        model = build("TFM402", which, "Function_E")
        calls = []
        handle = nn.modules.module.register_module_forward_hook(recording_hook(calls))
        try:
            outputs[which] = model(x)
        finally:
            handle.remove()
        # the global hook sees the outer call, and the inner one only after the fix
        assert calls == (["Function_E"] if which == "before" else ["Function_C", "Function_E"])
    assert torch.allclose(outputs["before"], outputs["after"])


def test_tfm402_hooks_on_listed_layers_fire_only_after_the_fix():
    x = torch.randn(3, 4)
    outputs = {}
    for which in ("before", "after"):
        model = build("TFM402", which, "MLP", [4, 8, 2])
        calls = []
        for layer in model.layers:
            layer.register_forward_hook(recording_hook(calls))
        outputs[which] = model(x)
        assert calls == ([] if which == "before" else ["Linear", "Linear"])
    assert torch.allclose(outputs["before"], outputs["after"])


def test_tfm104_fix_keeps_the_dict_order():
    """nn.ParameterDict sorts a plain dict's keys; the fix must not reorder the values."""
    from conftest import transform

    source = (
        "import torch\nimport torch.nn as nn\n\n"
        "class AnisotropicScale(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.scales = {'width': nn.Parameter(torch.tensor([2.0])), 'height': nn.Parameter(torch.tensor([3.0]))}\n"
        "    def forward(self, x):\n"
        "        return x * torch.cat(list(self.scales.values()))\n"
    )
    result = transform(source)
    assert "nn.ParameterDict(" in result.new_source
    outputs = []
    for code in (source, result.new_source):
        namespace: dict = {}
        exec(compile(code, "<sample>", "exec"), namespace)
        model = namespace["AnisotropicScale"]()
        outputs.append((model(torch.ones(2)), len(list(model.parameters()))))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert outputs[0][1] == 0 and outputs[1][1] == 2
