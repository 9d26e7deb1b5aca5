"""The training-loop rules (TFM8xx) with real torch: the bug before the fix, its absence after.

# -- TFM803 ----------------------------------------------------------------------------------
A running total of the loss that keeps its graph reaches back through every step's graph: the
number of live autograd nodes grows with the steps before the fix and stays flat after.

# -- TFM801 ----------------------------------------------------------------------------------
Without ``zero_grad()`` the gradient after two steps is the sum of both batches' gradients;
with it, it equals a fresh gradient of the last batch.

# -- TFM802 ----------------------------------------------------------------------------------
A change through ``.data`` does not advance the parameter's version counter, so autograd cannot
tell that a tensor it saved has changed. The fix writes the same values (random draws included,
under a fixed seed) and the counter moves.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from conftest import ALL_RULES, transform
from rule_helpers import build, fixed, load, run


# -- TFM802: .data mutation -> nn.init / torch.no_grad() ---------------------------------------

INIT = """import torch
import torch.nn as nn


def weights_init(m):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        m.weight.data.normal_(0.0, 0.02)
        m.bias.data.fill_(0.01)
    elif isinstance(m, nn.BatchNorm2d):
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.zero_()


class Net(nn.Module):
    def __init__(self, table):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        self.emb = nn.Embedding(5, 4)
        self.emb.weight.data.copy_(table)
        self.apply(weights_init)

    def forward(self, x, idx):
        h = self.bn(self.conv(x)).mean(dim=(2, 3)) + self.emb(idx)
        return self.fc(h)
"""


def _build(namespace: dict, seed: int = 0):
    torch.manual_seed(seed)
    table = torch.arange(20.0).reshape(5, 4)
    return namespace["Net"](table)


def test_tfm802_the_fix_gives_identical_weights_and_autograd_sees_the_change():
    after_source = fixed(INIT, "TFM802")
    assert ".data." not in after_source
    assert "nn.init.normal_(m.weight, 0.0, 0.02)" in after_source
    assert "with torch.no_grad():\n            self.emb.weight.copy_(table)" in after_source
    before, after = run(INIT), run(after_source)
    old, new = _build(before), _build(after)
    old_state, new_state = old.state_dict(), new.state_dict()
    assert old_state.keys() == new_state.keys()
    for key in old_state:
        assert torch.equal(old_state[key], new_state[key]), key  # same values, same random draws
    assert torch.equal(new.emb.weight, torch.arange(20.0).reshape(5, 4))
    # the version counter: the layers' own initialisation moves it; the changes through .data
    # add nothing to that, nn.init and the no_grad copy_ do
    assert old.conv.weight._version == nn.Conv2d(3, 4, 3).weight._version  # construction only
    for name in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "emb.weight"):
        old_p, new_p = old.get_parameter(name), new.get_parameter(name)
        assert new_p._version == old_p._version + 1, name
    # and the model still trains
    x, idx = torch.randn(2, 3, 5, 5), torch.tensor([1, 3])
    new(x, idx).sum().backward()
    assert new.fc.weight.grad is not None


def test_tfm802_why_the_change_must_be_visible_a_saved_weight_gives_a_wrong_gradient():
    """Through .data, a weight changed after the forward pass gives a gradient computed from the
    new values without a word; through the documented API autograd refuses. This is also why the
    rule does not rewrite such code outside initialisation: the fix would make it raise."""
    torch.manual_seed(0)
    lin = nn.Linear(3, 1, bias=False)
    x = torch.randn(4, 3, requires_grad=True)
    out = (lin(x) ** 2).sum()  # saves the weight for the gradient of x
    lin.weight.data.fill_(0.0)
    out.backward()  # silently uses the zeroed weight
    assert torch.count_nonzero(x.grad) == 0  # the true gradient of x is not zero

    x2 = torch.randn(4, 3, requires_grad=True)
    out2 = (lin(x2) ** 2).sum()
    nn.init.constant_(lin.weight, 0.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out2.backward()


def test_tfm802_forward_and_training_steps_are_reported_without_a_fix():
    source = (
        "import torch.nn as nn\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(2, 2)\n\n"
        "    def forward(self, x):\n"
        "        self.fc.weight.data.clamp_(-1, 1)\n"
        "        self.fc.weight.data.normal_(0, 1)\n"
        "        return self.fc(x)\n\n\n"
        "def train(model, opt, loss):\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        "    for p in model.parameters():\n"
        "        p.data.copy_(p.data * 0.5)\n"
    )
    rule = next(r for r in ALL_RULES if r.code == "TFM802")
    result = transform(source, rules=[rule])
    assert [(d.line, d.fix_available) for d in result.diagnostics] == [(11, False), (19, False)]
    assert result.new_source == source


def test_tfm802_sample_same_generator_and_the_changes_are_tracked():
    palette = torch.eye(3) * 0.5
    before = build("TFM802", "before", "Generator", palette=palette)
    after = build("TFM802", "after", "Generator", palette=palette)
    for (name, old), (_, new) in zip(before.state_dict().items(), after.state_dict().items()):
        assert torch.equal(old, new), name
    assert torch.equal(after.colour.weight, palette)
    tracked = {n: p._version for n, p in after.named_parameters()}
    hidden = {n: p._version for n, p in before.named_parameters()}
    changed = ["main.0.weight", "main.1.weight", "main.1.bias", "main.3.weight", "colour.weight"]
    assert all(tracked[n] == hidden[n] + 1 for n in changed), (tracked, hidden)
    assert tracked["colour.bias"] == hidden["colour.bias"]  # not touched by either
    z = torch.randn(2, 8, 1, 1)
    torch.testing.assert_close(before(z), after(z))


# -- TFM801: missing zero_grad -------------------------------------------------------------------


def _batches(n: int = 2):
    torch.manual_seed(1)
    return [(torch.randn(8, 1), torch.randn(8, 1)) for _ in range(n)]


def _fresh_gradient(module, model: nn.Module, batch) -> dict:
    """The gradient of one batch alone, at the model's current parameters."""
    probe = module.LinearRegression()
    probe.load_state_dict(model.state_dict())
    inputs, labels = batch
    nn.MSELoss()(probe(inputs), labels).backward()
    return {n: p.grad.clone() for n, p in probe.named_parameters()}


def test_tfm801_sample_after_two_steps_the_gradient_is_the_last_batchs_own():
    batches = _batches()
    results = {}
    for which in ("before", "after"):
        module = load("TFM801", which)
        torch.manual_seed(0)
        model = module.LinearRegression()
        # lr=0: the parameters stay where they are, so the two batches' gradients are comparable
        module.train(model, batches, epochs=1, lr=0.0)
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[which] = (grads, _fresh_gradient(module, model, batches[-1]), _fresh_gradient(module, model, batches[0]))
    grads, last, first = results["before"]
    for name in grads:  # before: the sum of both batches
        assert not torch.allclose(grads[name], last[name])
        torch.testing.assert_close(grads[name], last[name] + first[name])
    grads, last, _ = results["after"]
    for name in grads:  # after: the last batch's own gradient
        torch.testing.assert_close(grads[name], last[name])


def test_tfm801_trains_the_sample_better_after_the_fix():
    """The visible symptom: with accumulated gradients the same learning rate overshoots."""
    torch.manual_seed(3)
    x = torch.randn(64, 1)
    y = 3 * x + 1
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)]
    losses = {}
    for which in ("before", "after"):
        module = load("TFM801", which)
        torch.manual_seed(0)
        model = module.train(module.LinearRegression(), batches, epochs=5, lr=0.1)
        with torch.no_grad():
            losses[which] = nn.MSELoss()(model(x), y).item()
    assert losses["after"] < 1e-3 < losses["before"], losses


def test_tfm801_a_parameter_named_optimizer_is_reported_without_a_fix():
    source = (
        "def train(model, loader, optimizer):\n"
        "    for x in loader:\n"
        "        model(x).sum().backward()\n"
        "        optimizer.step()\n"
    )
    rule = next(r for r in ALL_RULES if r.code == "TFM801")
    result = transform(source, rules=[rule])
    assert [(d.line, d.fix_available) for d in result.diagnostics] == [(3, False)]


# -- TFM803: accumulated history ------------------------------------------------------------------


def _graph_nodes(tensor) -> int:
    """Autograd nodes reachable from ``tensor`` (what its history keeps alive)."""
    fn = getattr(tensor, "grad_fn", None)
    seen, stack = set(), [fn] if fn is not None else []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return len(seen)


def test_tfm803_sample_the_graph_kept_grows_with_the_steps_before_and_not_after():
    torch.manual_seed(0)
    data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(40)]
    kept = {}
    for which in ("before", "after"):
        module = load("TFM803", which)
        counts = []
        for steps in (10, 20, 40):
            torch.manual_seed(0)
            model = module.Regressor()
            mean = module.train_epoch(model, data[:steps])
            counts.append(_graph_nodes(mean))
            kept[(which, steps)] = float(mean.detach())
        if which == "before":
            assert counts[0] < counts[1] < counts[2]  # one more graph per step
            assert counts[2] >= 40
        else:
            assert counts == [0, 0, 0]
    for steps in (10, 20, 40):  # the same numbers are reported
        assert kept[("before", steps)] == pytest.approx(kept[("after", steps)], rel=1e-6)
    # and the result keeps its type: a tensor the caller can .item()
    module = load("TFM803", "after")
    assert isinstance(module.train_epoch(module.Regressor(), data[:3]), torch.Tensor)


AMP_LOOP = """import torch
import torch.nn as nn


def train(model, batches, k=2):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu")
    total = torch.zeros(())
    for x, y in batches:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.mse_loss(model(x).float(), y)
        loss = loss / k
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total = total + loss
    return total
"""


def test_tfm803_scaled_backward_and_a_rebound_loss_the_fix_keeps_the_numbers_and_drops_the_graphs():
    after = fixed(AMP_LOOP, "TFM803")
    assert "total = total + loss.detach()" in after
    torch.manual_seed(0)
    batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(12)]
    results = {}
    for which, source in (("before", AMP_LOOP), ("after", after)):
        namespace = run(source)
        counts = []
        for steps in (3, 12):
            torch.manual_seed(0)
            total = namespace["train"](nn.Linear(4, 1), batches[:steps])
            counts.append(_graph_nodes(total))
            results[(which, steps)] = float(total.detach())
        if which == "before":
            assert counts[0] < counts[1]
        else:
            assert counts == [0, 0]
    for steps in (3, 12):
        assert results[("before", steps)] == pytest.approx(results[("after", steps)], rel=1e-6)
