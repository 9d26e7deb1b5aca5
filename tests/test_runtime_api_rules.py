"""Runtime proof with real torch for the API rules (TFM501-TFM503): before.py vs after.py."""

from __future__ import annotations

import importlib.util
import warnings
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import torch.nn as nn

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@lru_cache(maxsize=None)
def load(rule: str, which: str):
    path = SAMPLES / rule / f"{which}.py"
    spec = importlib.util.spec_from_file_location(f"torchfix_api_sample_{rule}_{which}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recorded_warnings(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` and every warning it emitted (none swallowed by the once-per-place filter)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [w for w in caught]


# -- TFM501: deprecated nn.init functions -------------------------------------


def test_tfm501_before_warns_after_does_not():
    before, after = load("TFM501", "before"), load("TFM501", "after")

    _, caught = recorded_warnings(before.build_net)
    messages = [str(w.message) for w in caught]
    assert caught, "the deprecated nn.init calls should warn"
    assert all(issubclass(w.category, (FutureWarning, UserWarning)) for w in caught)
    assert all("deprecated" in m for m in messages), messages
    # one warning per deprecated call: two Linear layers x 2 calls, one Conv2d x 2 calls
    assert len(caught) == 6
    for old in ("xavier_uniform", "constant", "kaiming_normal"):
        assert any(f"nn.init.{old}`" in m for m in messages), old

    _, caught = recorded_warnings(after.build_net)
    assert [str(w.message) for w in caught] == []


def test_tfm501_weights_are_identical_under_a_fixed_seed():
    torch.manual_seed(0)
    net_before, _ = recorded_warnings(load("TFM501", "before").build_net)
    torch.manual_seed(0)
    net_after = load("TFM501", "after").build_net()

    sd_before, sd_after = net_before.state_dict(), net_after.state_dict()
    assert list(sd_before) == list(sd_after)
    for key in sd_before:
        assert torch.equal(sd_before[key], sd_after[key]), key
    # the init function really ran: constant biases
    assert torch.equal(sd_after["2.bias"], torch.full((4,), 0.01))
    assert torch.equal(sd_after["0.bias"], torch.zeros(2))


@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_tfm501_init_weights_alone_gives_the_same_values(layer: str):
    def fresh():
        torch.manual_seed(3)
        return nn.Linear(6, 3) if layer == "linear" else nn.Conv2d(2, 4, 3)

    m_before, m_after = fresh(), fresh()
    torch.manual_seed(7)
    recorded_warnings(load("TFM501", "before").init_weights, m_before)
    torch.manual_seed(7)
    load("TFM501", "after").init_weights(m_after)
    assert torch.equal(m_before.weight, m_after.weight)
    assert torch.equal(m_before.bias, m_after.bias)
    # and the values differ from the default initialization
    assert not torch.equal(m_after.weight, fresh().weight)


# -- TFM502: register_backward_hook -> register_full_backward_hook ------------

BATCH, N_IN, N_OUT = 3, 4, 5


def hooked_run(which: str):
    sample = load("TFM502", which)
    torch.manual_seed(0)
    module = sample.ScaledLinear(N_IN, N_OUT)
    log = []
    handle = sample.attach_grad_logger(module, log)
    torch.manual_seed(1)
    x = torch.randn(BATCH, N_IN, requires_grad=True)
    _, caught = recorded_warnings(lambda: module(x).sum().backward())
    handle.remove()
    assert len(log) == 1, "the hook fires once per backward"
    grad_input, grad_output = log[0]
    return x, grad_input, grad_output, caught


def test_tfm502_hook_sees_different_grad_input_before_and_after():
    x_b, gin_b, gout_b, caught_b = hooked_run("before")
    x_a, gin_a, gout_a, caught_a = hooked_run("after")
    assert torch.equal(x_b, x_a) and torch.equal(x_b.grad, x_a.grad)

    # the old hook sees the grads of the last op only (the Linear's addmm: bias, its input h, weight^T)
    assert [tuple(g.shape) for g in gin_b] == [(N_OUT,), (BATCH, N_IN), (N_IN, N_OUT)]
    # ... so what looks like "grad w.r.t. the input" is d/dh, off by the x*2 factor
    assert not torch.allclose(gin_b[1], x_b.grad)
    assert torch.allclose(gin_b[1] * 2, x_b.grad)
    assert any("multiple autograd Nodes" in str(w.message) for w in caught_b)

    # the full hook sees exactly the grad w.r.t. the module's input
    assert len(gin_a) == 1
    assert torch.allclose(gin_a[0], x_a.grad)
    assert not any("backward hook" in str(w.message) for w in caught_a)

    # grad_output is the same in both
    assert len(gout_b) == len(gout_a) == 1
    assert torch.equal(gout_b[0], gout_a[0])


def test_tfm502_full_hook_grad_input_matches_the_module_input_shape():
    x, grad_input, _, _ = hooked_run("after")
    assert grad_input[0] is not None
    assert grad_input[0].shape == x.shape == (BATCH, N_IN)

    x, grad_input, _, _ = hooked_run("before")
    assert len(grad_input) != 1 or grad_input[0].shape != x.shape


# -- TFM503: torch.autograd.Variable ------------------------------------------


def quietly(fn, *args):
    result, _ = recorded_warnings(fn, *args)
    return result


def test_tfm503_plain_tensors_are_unchanged():
    before, after = load("TFM503", "before"), load("TFM503", "after")
    x, y = torch.randn(6, 1), torch.randn(6, 1)
    (xb, yb), (xa, ya) = quietly(before.to_variables, x, y), after.to_variables(x, y)
    for b, a, src in ((xb, xa, x), (yb, ya, y)):
        assert torch.equal(b, a) and torch.equal(a, src)
        assert b.requires_grad is a.requires_grad is False
        assert b.grad_fn is None and a.grad_fn is None
        # both share the source's storage, as a new tensor object
        assert b.data_ptr() == a.data_ptr() == src.data_ptr()
        assert b is not src and a is not src


def test_tfm503_non_leaf_input_is_detached_like_variable_did():
    before, after = load("TFM503", "before"), load("TFM503", "after")
    w = torch.randn(6, 1, requires_grad=True)
    x = w * 3  # non-leaf, carries a graph
    assert x.grad_fn is not None and x.requires_grad
    (xb, _), (xa, _) = quietly(before.to_variables, x, x), after.to_variables(x, x)
    assert torch.equal(xb, xa)
    assert xb.grad_fn is None and xa.grad_fn is None
    assert xb.requires_grad is xa.requires_grad is False
    assert xb.is_leaf and xa.is_leaf


def test_tfm503_requires_grad_leaf_gets_the_same_grad():
    before, after = load("TFM503", "before"), load("TFM503", "after")
    grads = []
    for sample, wrap in ((before, quietly), (after, lambda f, *a: f(*a))):
        torch.manual_seed(0)
        src = torch.randn(4, requires_grad=True)
        t = src * 2  # non-leaf: Variable(t, requires_grad=True) cuts it off into a new leaf
        leaf = wrap(sample.make_leaf, t)
        assert leaf.is_leaf and leaf.requires_grad and leaf.grad_fn is None
        assert torch.equal(leaf, t)
        (leaf * torch.arange(4.0)).pow(2).sum().backward()
        assert src.grad is None, "the graph behind the wrapped tensor is cut"
        grads.append(leaf.grad)
    assert grads[0] is not None and torch.equal(grads[0], grads[1])


def test_tfm503_fresh_weight_is_a_trainable_leaf():
    before, after = load("TFM503", "before"), load("TFM503", "after")
    wb, wa = quietly(before.make_weight, 3), after.make_weight(3)
    for w in (wb, wa):
        assert torch.equal(w, torch.ones(3, 1))
        assert w.requires_grad and w.is_leaf and w.grad_fn is None


def test_tfm503_training_step_is_unchanged():
    before, after = load("TFM503", "before"), load("TFM503", "after")
    torch.manual_seed(0)
    x = torch.arange(8.0).unsqueeze(1)
    y = 2 * x + 1
    results = []
    for sample, wrap in ((before, quietly), (after, lambda f, *a: f(*a))):
        torch.manual_seed(0)
        model = sample.LinearRegression(1, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        losses = [wrap(sample.train_step, model, opt, x, y) for _ in range(3)]
        results.append((losses, {k: v.clone() for k, v in model.state_dict().items()}))
    (losses_b, state_b), (losses_a, state_a) = results
    assert losses_b == losses_a
    assert losses_a[-1] < losses_a[0]
    for key in state_b:
        assert torch.equal(state_b[key], state_a[key]), key
