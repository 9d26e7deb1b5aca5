"""The container rules (TFM101-TFM104: layers and nn.Parameters kept in plain Python lists and
dicts), run with real torch: each sample's bug shows up in before.py and is gone in after.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from rule_helpers import build, load, sgd_step


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def linear_size(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def snapshot(tensors) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


# -- TFM101: layers in a Python list ------------------------------------------

VOCAB, N_LAYERS, HIDDEN, HEADS, INNER = 10, 2, 8, 2, 16


def make_decoder(which: str) -> nn.Module:
    torch.manual_seed(0)
    return load("TFM101", which).Decoder(VOCAB, N_LAYERS, HIDDEN, HEADS, INNER)


def test_tfm101_layers_are_registered_only_after_the_fix():
    before, after = make_decoder("before"), make_decoder("after")

    layer_size = 4 * linear_size(HIDDEN, HIDDEN) + linear_size(HIDDEN, INNER) + linear_size(INNER, HIDDEN) + 2 * HIDDEN
    outer_size = VOCAB * HIDDEN + linear_size(HIDDEN, VOCAB)
    assert n_params(before) == outer_size == 170
    assert n_params(after) == outer_size + N_LAYERS * layer_size == 1338
    assert n_params(before) < n_params(after)

    before_keys, after_keys = set(before.state_dict()), set(after.state_dict())
    for i in range(N_LAYERS):
        assert not any(k.startswith(f"dec_layers.{i}.") for k in before_keys)
        assert f"dec_layers.{i}.ffn.fc1.weight" in after_keys
        assert f"dec_layers.{i}.multiheadattention.fcQ.weight" in after_keys
    assert before_keys < after_keys
    assert len(list(before.children())) == 2
    assert [name for name, _ in after.named_children()] == ["embedding", "dec_layers", "finalFc"]
    assert isinstance(after.dec_layers, nn.ModuleList)
    assert len(after.dec_layers) == N_LAYERS


def test_tfm101_layers_follow_double_only_after_the_fix():
    tokens = torch.tensor([[1, 2, 3, 4]])
    before, after = make_decoder("before").double(), make_decoder("after").double()
    assert before.dec_layers[0].ffn.fc1.weight.dtype == torch.float32
    with pytest.raises(RuntimeError):
        before(tokens)  # float64 embeddings meet float32 layers left behind
    assert after.dec_layers[0].ffn.fc1.weight.dtype == torch.float64
    assert after(tokens).shape == (1, 4, VOCAB)


def test_tfm101_forward_is_unchanged_by_the_fix():
    before, after = make_decoder("before"), make_decoder("after")
    # same seed, same construction order: the same weights, before and after
    for b, a in zip(before.dec_layers, after.dec_layers):
        a.load_state_dict(b.state_dict())
    tokens = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert torch.allclose(before(tokens), after(tokens))


# -- TFM102: layers in a Python dict ------------------------------------------

FEATURES = 4


def make_calculator(which: str) -> nn.Module:
    torch.manual_seed(0)
    return load("TFM102", which).Calculator(FEATURES)


def test_tfm102_layers_are_registered_only_after_the_fix():
    before, after = make_calculator("before"), make_calculator("after")

    assert n_params(before) == linear_size(FEATURES, FEATURES) == 20
    assert n_params(after) == linear_size(FEATURES, FEATURES) + 3 * FEATURES == 32

    keys = {f"add_dict.{name}.value" for name in ("add2", "add3", "add5")}
    assert set(before.state_dict()) == {"proj.weight", "proj.bias"}
    assert set(after.state_dict()) == {"proj.weight", "proj.bias"} | keys
    assert isinstance(after.add_dict, nn.ModuleDict)
    assert list(after.add_dict.keys()) == ["add2", "add3", "add5"]


def test_tfm102_offsets_are_trained_only_after_the_fix():
    before, after = make_calculator("before"), make_calculator("after")
    x = torch.ones(3, FEATURES)
    for model in (before, after):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    # the optimizer never saw the offsets kept in the plain dict
    assert torch.equal(before.add_dict["add2"].value, torch.full((FEATURES,), 2.0))
    assert not torch.equal(after.add_dict["add2"].value, torch.full((FEATURES,), 2.0))


def test_tfm102_forward_is_unchanged_by_the_fix():
    before, after = make_calculator("before"), make_calculator("after")
    after.load_state_dict(before.state_dict(), strict=False)
    x = torch.randn(3, FEATURES)
    expected = before.proj(x) + 10.0
    assert torch.allclose(before(x), expected)
    assert torch.allclose(after(x), expected)


# -- TFM103: nn.Parameters in a Python list -------------------------------------

STACK_HIDDEN, STACK_LAYERS = 4, 3


def test_tfm103_list_parameters_are_registered_only_after_the_fix():
    before = build("TFM103", "before", "Polynomial", (3.0, 5.0))
    after = build("TFM103", "after", "Polynomial", (3.0, 5.0))
    assert list(before.parameters()) == []
    assert before.state_dict() == {}
    assert isinstance(after.coefficients, nn.ParameterList)
    assert list(after.state_dict()) == ["coefficients.0", "coefficients.1"]
    assert [p.item() for p in after.parameters()] == [3.0, 5.0]

    before = build("TFM103", "before", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS)
    after = build("TFM103", "after", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS)
    scale_keys = {f"scales.{i}" for i in range(STACK_LAYERS)}
    assert not scale_keys & set(before.state_dict())
    assert set(after.state_dict()) == set(before.state_dict()) | scale_keys
    assert sum(p.numel() for p in after.parameters()) == sum(p.numel() for p in before.parameters()) + STACK_LAYERS * STACK_HIDDEN


def test_tfm103_optimizer_trains_the_list_only_after_the_fix():
    before = build("TFM103", "before", "Polynomial")
    with pytest.raises(ValueError, match="empty parameter list"):
        torch.optim.SGD(before.parameters(), lr=0.1)

    x = torch.randn(6, STACK_HIDDEN)
    loss = lambda model: model(x).pow(2).mean()  # noqa: E731
    before = build("TFM103", "before", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS)
    after = build("TFM103", "after", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS)
    before_scales, after_scales = snapshot(before.scales), snapshot(after.scales)
    before_blocks = snapshot(before.blocks.parameters())
    sgd_step(before, loss)
    sgd_step(after, loss)
    # the blocks are trained in both, the scales only once they are registered
    assert any(not torch.equal(old, new) for old, new in zip(before_blocks, before.blocks.parameters()))
    assert all(torch.equal(old, new) for old, new in zip(before_scales, before.scales))
    assert any(not torch.equal(old, new) for old, new in zip(after_scales, after.scales))


def test_tfm103_list_parameters_follow_double_only_after_the_fix():
    before = build("TFM103", "before", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS).double()
    after = build("TFM103", "after", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS).double()
    assert before.scales[0].dtype == torch.float32
    assert after.scales[0].dtype == torch.float64


def test_tfm103_forward_is_unchanged_by_the_fix():
    x = torch.randn(6, STACK_HIDDEN)
    before = build("TFM103", "before", "Polynomial", (3.0, 5.0))
    after = build("TFM103", "after", "Polynomial", (3.0, 5.0))
    assert torch.allclose(before(x), 3.0 + 5.0 * x)
    assert torch.allclose(after(x), 3.0 + 5.0 * x)

    before = build("TFM103", "before", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS)
    after = build("TFM103", "after", "ScaledResidualStack", STACK_HIDDEN, STACK_LAYERS)
    after.load_state_dict(before.state_dict(), strict=False)
    assert torch.allclose(before(x), after(x))


# -- TFM104: nn.Parameters in a Python dict -------------------------------------

TASKS = ("depth", "normals", "segmentation")
TASK_FEATURES = 5


def batch():
    torch.manual_seed(1)
    x = torch.randn(8, TASK_FEATURES)
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

    before = build("TFM104", "before", "MultiTaskHead", TASK_FEATURES)
    after = build("TFM104", "after", "MultiTaskHead", TASK_FEATURES)
    loss_keys = {f"loss.log_vars.{task}" for task in TASKS}
    assert not loss_keys & set(before.state_dict())
    assert set(after.state_dict()) == set(before.state_dict()) | loss_keys


def test_tfm104_optimizer_trains_the_dict_only_after_the_fix():
    x, targets = batch()
    loss = lambda model: model(x, targets).sum()  # noqa: E731
    before = build("TFM104", "before", "MultiTaskHead", TASK_FEATURES)
    after = build("TFM104", "after", "MultiTaskHead", TASK_FEATURES)
    trunk_before = before.trunk.weight.detach().clone()
    sgd_step(before, loss)
    sgd_step(after, loss)
    assert not torch.equal(before.trunk.weight, trunk_before)
    for task in TASKS:
        assert torch.equal(before.loss.log_vars[task], torch.zeros(1))
        assert not torch.equal(after.loss.log_vars[task], torch.zeros(1))


def test_tfm104_forward_is_unchanged_by_the_fix():
    x, targets = batch()
    before = build("TFM104", "before", "MultiTaskHead", TASK_FEATURES)
    after = build("TFM104", "after", "MultiTaskHead", TASK_FEATURES)
    after.load_state_dict(before.state_dict(), strict=False)
    # with every log-variance at 0 the combined loss is the plain sum of the task losses
    features = torch.relu(before.trunk(x))
    expected = sum(((before.heads[t](features) - targets[t]) ** 2).mean() for t in TASKS)
    assert torch.allclose(before(x, targets), expected.reshape(1))
    assert torch.allclose(after(x, targets), expected.reshape(1))




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


# -- TFM102: keys computed at run time ------------------------------------------

def _build(source: str, *args):
    namespace: dict = {"__name__": "tfm102_case"}
    exec(compile(source, "case.py", "exec"), namespace)
    return namespace["Net"](*args)


def test_tfm102_computed_keys_proven_valid_are_fixed_and_register_every_layer():
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM102")
    cases = [c for c in rule.fixes if "range(3)" in c.before or "('cls', 'box')" in c.before or "enumerate" in c.before]
    assert len(cases) == 3
    for case in cases:
        assert transform_source(case.before, Settings(rules=(rule,))).new_source == case.after
        before, after = _build(case.before, ["a", "b"]), _build(case.after, ["a", "b"])
        assert sum(p.numel() for p in before.parameters()) == 0
        container = next(v for v in vars(after)["_modules"].values())
        assert isinstance(container, nn.ModuleDict) and len(container) >= 2
        assert sum(p.numel() for p in after.parameters()) == 20 * len(container)


def test_tfm102_keys_that_could_be_refused_are_reported_not_wrapped():
    """Int keys make `nn.ModuleDict` raise TypeError at construction, and a key computed from
    unknown values may be a name it refuses: those dicts are reported without a fix (the
    `--unsafe-fixes` wrap used to turn `{i: ... for i in range(3)}` into a TypeError)."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM102")
    ints = next(c.source for c in rule.keeps if "{i: nn.Linear" in c.source)
    names = next(c.source for c in rule.keeps if "for name in names}" in c.source and "f'" not in c.source)
    for source in (ints, names):
        result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
        assert result.new_source == source
        assert result.diagnostics and not any(d.fix_available or d.unsafe_fix for d in result.diagnostics)
    _build(ints, [])  # builds as written
    with pytest.raises(TypeError):
        _build(ints.replace("self.blocks = {", "self.blocks = nn.ModuleDict({").replace("range(3)}", "range(3)})"), [])
    _build(names, ["type"])
    wrapped = names.replace("self.heads = {", "self.heads = nn.ModuleDict({").replace("in names}", "in names})")
    with pytest.raises(KeyError):
        _build(wrapped, ["type"])  # a name the container has as an attribute


OPAQUE_LAYERS = '''
import torch
import torch.nn as nn


class Resample(nn.Module):
    """Wraps a transform that keeps a precomputed kernel as a (persistent) buffer."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor
        self.resampler = make_transform(factor)

    def forward(self, x):
        return self.resampler(x)


class SpeedPerturb(nn.Module):
    def __init__(self, factors=(2, 3)):
        super().__init__()
        self.resamplers = []
        for factor in factors:
            self.resamplers.append(Resample(factor))

    def forward(self, x, i=0):
        return self.resamplers[i](x)
'''


class _Kernel(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.register_buffer("kernel", torch.full((3,), float(factor)))

    def forward(self, x):
        return x * self.kernel.sum()


@pytest.mark.parametrize("rule_code", ["TFM101"])
def test_tfm101_layers_that_hold_no_parameter_but_may_hold_buffers_are_reported_not_wrapped(rule_code):
    """speechbrain's SpeedPerturb keeps resampler modules (a wrapped transform with a persistent
    kernel buffer, no parameter) in a list. Wrapping them would add state_dict keys that a strict
    load of an existing checkpoint rejects; the finding is reported without a fix."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == rule_code)
    result = transform_source(OPAQUE_LAYERS, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == OPAQUE_LAYERS
    [finding] = result.diagnostics
    assert not finding.fix_available and "no layer certainly holds a parameter" in finding.message

    def build(source):
        namespace = {"__name__": "opaque_layers", "make_transform": _Kernel}
        exec(compile(source, "case.py", "exec"), namespace)
        return namespace["SpeedPerturb"]()

    checkpoint = build(OPAQUE_LAYERS).state_dict()
    naive = OPAQUE_LAYERS.replace("self.resamplers = []", "self.resamplers = nn.ModuleList()")
    build(OPAQUE_LAYERS).load_state_dict(checkpoint, strict=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        build(naive).load_state_dict(checkpoint, strict=True)


def test_tfm101_layers_a_helper_method_calls_are_trained_only_after_the_fix():
    """OpenNMT's RNN encoder kept its bridge layers in a list and ran them through a helper
    method: the optimizer never saw them. After the fix they are parameters and get gradients."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM101")
    case = next(c for c in rule.fixes if "def _bottle" in c.before)
    assert transform_source(case.before, Settings(rules=(rule,))).new_source == case.after
    counts = {}
    for which, source in (("before", case.before), ("after", case.after)):
        namespace = {"__name__": f"tfm101_bridge_{which}"}
        exec(compile(source, f"{which}.py", "exec"), namespace)
        torch.manual_seed(0)
        encoder = namespace["Encoder"](2)
        out = encoder(torch.randn(3, 4))
        counts[which] = len(list(encoder.parameters()))
        if which == "after":
            out.sum().backward()
            assert encoder.bridge[0].weight.grad is not None
    assert counts == {"before": 0, "after": 4}


# -- TFM102: layers in a dict keyed 'name%d' % i, run through a device helper -----------------

# modelled on xiaxin1998/COTREC model.py (commit 5a4884746329bca804b1f9c508b37498812ba355,
# lines 15-35: ItemConv keeps nn.Linear weights in a dict keyed 'weight_item%d' % (i) and runs each
# through trans_to_cuda(...) in forward); a small replica, not the original code
ITEM_CONV = '''
import torch
import torch.nn as nn


def on_device(variable):
    if torch.cuda.is_available():
        return variable.cuda()
    return variable


class ItemConv(nn.Module):
    def __init__(self, layers, size=4):
        super().__init__()
        self.layers = layers
        self.w_item = {}
        for i in range(self.layers):
            self.w_item['weight_item%d' % (i)] = nn.Linear(size, size, bias=False)

    def forward(self, h):
        for i in range(self.layers):
            h = torch.tanh(on_device(self.w_item['weight_item%d' % (i)])(h))
        return h
'''


def test_tfm102_percent_keyed_layers_run_through_a_helper_are_trained_only_after_the_fix():
    from rule_helpers import fixed, run

    after_source = fixed(ITEM_CONV, "TFM102")
    assert "self.w_item = nn.ModuleDict()" in after_source
    models = {}
    for which, source in (("before", ITEM_CONV), ("after", after_source)):
        torch.manual_seed(0)
        models[which] = run(source, f"tfm102_itemconv_{which}")["ItemConv"](2)
    before, after = models["before"], models["after"]
    h = torch.randn(3, 4)
    assert torch.equal(before(h), after(h))  # same layers, same output
    assert n_params(before) == 0 and n_params(after) == 2 * 16
    assert set(after.state_dict()) == {"w_item.weight_item0.weight", "w_item.weight_item1.weight"}
    assert before.state_dict() == {}
    after.to(torch.float64)
    assert after.w_item["weight_item0"].weight.dtype == torch.float64
    before.to(torch.float64)
    assert before.w_item["weight_item0"].weight.dtype == torch.float32
    for model in (before, after):
        weights = [model.w_item[k].weight for k in ("weight_item0", "weight_item1")]
        old = snapshot(weights)
        if list(model.parameters()):
            sgd_step(model, lambda m: m(torch.randn(3, 4, dtype=torch.float64)).pow(2).sum())
        moved = [not torch.equal(o, w.detach()) for o, w in zip(old, weights)]
        assert all(moved) if model is after else not any(moved)


# -- TFM101: a list of layers of another file, run through a local name, moved by a hand-written to()

# modelled on plenoptic-org/plenoptic src/plenoptic/simulate/models/portilla_simoncelli.py
# (commit d918a420156f70ee5cb9bede4b1cddfd36f61e4c, lines 90-100 and 1181-1220: per-scale pyramid
# modules of another file kept in a list, run as `pyr = self.pyrs[i]; pyr.forward(x)`, and a
# hand-written to() that rebuilds the list); a small replica, not the original code
PYRAMIDS = '''
import torch
import torch.nn as nn
from pyramid_replica import Pyramid


class Stats(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.pyrs = [Pyramid(i + 1) for i in range(n)]

    def forward(self, x, scale=0):
        pyr = self.pyrs[scale]
        return pyr.forward(x)

    def to(self, *args, **kwargs):
        self.pyrs = [pyr.to(*args, **kwargs) for pyr in self.pyrs]
        return super().to(*args, **kwargs)
'''


class _Pyramid(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.register_buffer("filt", torch.ones(size))

    def forward(self, x):
        return x * self.filt.sum()


def test_tfm101_layers_of_another_file_moved_by_a_handwritten_to_are_reported_not_wrapped(monkeypatch):
    """The pyramids are run as layers (through a local name), so the list is reported; the
    class's own to() assigns a new list to the attribute, which an nn.ModuleList would refuse
    (TypeError), so no fix is offered."""
    import sys
    import types

    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    replica = types.ModuleType("pyramid_replica")
    replica.Pyramid = _Pyramid
    monkeypatch.setitem(sys.modules, "pyramid_replica", replica)
    rule = next(r for r in ALL_RULES if r.code == "TFM101")
    result = transform_source(PYRAMIDS, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == PYRAMIDS
    [finding] = result.diagnostics
    assert not finding.fix_available and "assigned more than once" in finding.message

    from rule_helpers import run

    before = run(PYRAMIDS, "tfm101_pyramids_before")["Stats"](2)
    before.double()  # the bug: .double()/.half()/.cuda() do not reach the pyramids
    assert before.pyrs[0].filt.dtype == torch.float32
    assert "pyrs.0.filt" not in before.state_dict()
    naive = run(PYRAMIDS.replace("self.pyrs = [Pyramid", "self.pyrs = nn.ModuleList([Pyramid").replace(
        "range(n)]", "range(n)])"), "tfm101_pyramids_naive")["Stats"](2)
    assert "pyrs.0.filt" in naive.state_dict()
    with pytest.raises(TypeError):
        naive.to(torch.float64)  # the hand-written to() assigns a list over the registered container


# -- TFM103: parameters moved with .to() as they are appended -----------------------------

# modelled on sh-lee-prml/BigVGAN models_bigvgan.py (commit 37e49f36e50134de45b407bf2c6b1a61cea09329,
# lines 99-107: Generator.alphas = [] filled with nn.Parameter(torch.ones(1, ch, 1)).to(rank));
# a small replica, not the original code
ALPHAS = '''
import torch
import torch.nn as nn


class Snake(nn.Module):
    def __init__(self, n, dtype=torch.float32):
        super().__init__()
        self.alphas = []
        for i in range(n):
            self.alphas.append(nn.Parameter(torch.ones(1, 4, 1)).to(dtype))

    def forward(self, x):
        for a in self.alphas:
            x = x + (1 / a) * torch.sin(a * x) ** 2
        return x
'''


def test_tfm103_parameters_moved_as_they_are_appended_are_reported_not_wrapped():
    """The alphas are never registered (no optimizer of model.parameters() trains them), so the
    list is reported; `.to()` gives the parameter back on its own device and dtype but a plain
    tensor copy on another one, which nn.ParameterList would turn into a new, detached parameter:
    no fix is offered."""
    from conftest import ALL_RULES
    from rule_helpers import run
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM103")
    result = transform_source(ALPHAS, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == ALPHAS
    [finding] = result.diagnostics
    assert not finding.fix_available and "plain tensor" in finding.message

    snake = run(ALPHAS, "tfm103_alphas_before")["Snake"](2)
    assert list(snake.parameters()) == [] and snake.state_dict() == {}  # the bug
    assert all(isinstance(a, nn.Parameter) for a in snake.alphas)  # same dtype: the parameters
    cast = run(ALPHAS, "tfm103_alphas_cast")["Snake"](2, torch.float64)
    assert not any(isinstance(a, nn.Parameter) for a in cast.alphas)  # another dtype: plain copies
    assert all(a.grad_fn is not None for a in cast.alphas)
    naive = run(ALPHAS.replace("self.alphas = []", "self.alphas = nn.ParameterList()"), "tfm103_alphas_naive")
    wrapped = naive["Snake"](2, torch.float64)
    assert all(isinstance(a, nn.Parameter) and a.grad_fn is None for a in wrapped.alphas)


# -- TFM101: modules handed in as *varargs and kept as a tuple or list --------------------

# modelled on facebookresearch/fairscale fairscale/experimental/nn/distributed_pipeline/graph.py
# (commit 1cc4c8370bb5b59dc7bae37575032494c09f365e, lines 16-29: `def __init__(self, *modules:
# nn.Module)` stores `self.modules_list = modules` and runs them in forward); a small replica,
# not the original code
MULTI_INPUT = '''
import torch
from torch import nn


class MultiInput(nn.Module):
    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        self.modules_list = modules

    def forward(self, *inputs):
        x = self.modules_list[0](*inputs)
        for module in self.modules_list[1:]:
            x = module(x)
        return x
'''


def test_tfm101_modules_handed_in_as_varargs_are_reported_not_wrapped():
    """The stage's modules are missing from parameters() (the bug); the finding comes without a
    fix because the annotation does not bind callers: one passing a plain function works today
    and would get a TypeError from nn.ModuleList."""
    from conftest import ALL_RULES
    from rule_helpers import run
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM101")
    result = transform_source(MULTI_INPUT, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == MULTI_INPUT
    [finding] = result.diagnostics
    assert not finding.fix_available and "come from the caller" in finding.message

    stage = run(MULTI_INPUT, "tfm101_multi_before")["MultiInput"](nn.Bilinear(2, 3, 4), nn.Linear(4, 1))
    out = stage(torch.ones(5, 2), torch.ones(5, 3))
    assert out.shape == (5, 1)
    assert list(stage.parameters()) == [] and stage.state_dict() == {}  # the bug
    stage.to(torch.float64)
    assert stage.modules_list[1].weight.dtype == torch.float32
    naive_source = MULTI_INPUT.replace("self.modules_list = modules", "self.modules_list = nn.ModuleList(modules)")
    naive = run(naive_source, "tfm101_multi_naive")["MultiInput"]
    assert len(list(naive(nn.Linear(2, 2)).parameters())) == 2  # what the wrap would register
    run(MULTI_INPUT, "tfm101_multi_fn")["MultiInput"](torch.relu, torch.tanh)(torch.ones(2))  # works today
    with pytest.raises(TypeError):
        naive(torch.relu, torch.tanh)


# -- TFM101: layers appended after an isinstance test or from a checking factory ----------

# modelled on asyml/texar-pytorch texar/core/layers.py (commit e72a966f93d11f6fcf033dae53b11c9b9f1103a0,
# lines 466-510 and 636-660: get_layer raises unless its result is an nn.Module; MergeLayer starts
# self._layers as None, then fills [] with isinstance-checked layers or get_layer(...) results, and a
# property returns it); a small replica, not the original code
MERGE = '''
from typing import List, Optional

import torch
import torch.nn as nn


def get_layer(spec):
    if isinstance(spec, dict):
        layer = nn.Sequential()
        for i, size in enumerate(spec["sizes"]):
            layer.add_module(str(i), nn.Linear(size, size))
    else:
        layer = spec
    if not isinstance(layer, nn.Module):
        raise ValueError("layer must be an nn.Module")
    return layer


class Merge(nn.Module):
    def __init__(self, layers: Optional[list] = None):
        super().__init__()
        self._layers: Optional[List[nn.Module]] = None
        if layers is not None:
            self._layers = []
            for layer in layers:
                if isinstance(layer, nn.Module):
                    self._layers.append(layer)
                else:
                    self._layers.append(get_layer(layer))

    def forward(self, x):
        return torch.cat([layer(x) for layer in self._layers], dim=-1)

    @property
    def layers(self):
        return self._layers
'''


def test_tfm101_checked_layers_appended_to_a_none_started_list_are_reported():
    from conftest import ALL_RULES
    from rule_helpers import run
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM101")
    result = transform_source(MERGE, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == MERGE
    [finding] = result.diagnostics
    assert not finding.fix_available and "_layers" in finding.message

    merge = run(MERGE, "tfm101_merge_before")["Merge"]([nn.Linear(3, 2), {"sizes": [3]}])
    assert merge(torch.ones(4, 3)).shape == (4, 5)
    assert list(merge.parameters()) == [] and merge.state_dict() == {}  # the bug
    merge.to(torch.float64)
    assert merge.layers[0].weight.dtype == torch.float32
    naive = run(MERGE.replace("self._layers = []", "self._layers = nn.ModuleList()"), "tfm101_merge_naive")["Merge"](
        [nn.Linear(3, 2), {"sizes": [3]}]
    )
    assert len(list(naive.parameters())) == 4  # what registering them gives
    naive.to(torch.float64)
    assert naive.layers[0].weight.dtype == torch.float64


# -- TFM101: a list read through a @property ------------------------------------------------

# a small replica: the property hands out the list itself, and its readers use it as a list
BLOCKS = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 4)
        self._blocks = [nn.Linear(4, 4), nn.Linear(4, 4)]

    @property
    def blocks(self):
        return self._blocks

    def forward(self, x):
        for b in [self.stem] + self.blocks:
            x = b(x)
        return x


def flip(net):
    net.blocks.reverse()
'''


def test_tfm101_list_read_through_a_property_as_a_list_is_reported_not_wrapped():
    """The property's readers count as uses of the attribute: `[a] + net.blocks` and
    `net.blocks.reverse()` work on the list and raise on nn.ModuleList, so the finding (the
    blocks are missing from parameters()) comes without a fix."""
    from conftest import ALL_RULES
    from rule_helpers import run
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM101")
    result = transform_source(BLOCKS, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == BLOCKS
    [finding] = result.diagnostics
    assert not finding.fix_available and "property `blocks`" in finding.message

    before = run(BLOCKS, "tfm101_blocks_before")
    net = before["Net"]()
    assert net(torch.ones(2, 4)).shape == (2, 4)
    before["flip"](net)
    assert len(list(net.parameters())) == 2  # the bug: only the stem is registered
    naive = run(BLOCKS.replace("self._blocks = [nn.Linear(4, 4), nn.Linear(4, 4)]",
                               "self._blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])"), "tfm101_blocks_naive")
    wrapped = naive["Net"]()
    assert len(list(wrapped.parameters())) == 6
    with pytest.raises(TypeError):
        wrapped(torch.ones(2, 4))  # list + ModuleList
    with pytest.raises(AttributeError):
        naive["flip"](wrapped)  # ModuleList has no reverse()


# -- TFM101: modules handed in and also registered another way ----------------------------

# a small replica: the layers are kept in a Python list for the loop and registered by the
# nn.Sequential built from the same parameter
CHAIN = '''
import torch
import torch.nn as nn


class Chain(nn.Module):
    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = list(layers)
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
'''


def test_tfm101_modules_also_registered_through_another_path_are_not_reported():
    """Nothing is lost: state_dict() holds the layers under body.*, and .double() reaches them;
    registering the list too would only add a second set of keys a strict load of an existing
    checkpoint rejects."""
    from conftest import ALL_RULES
    from rule_helpers import run
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM101")
    result = transform_source(CHAIN, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == CHAIN and result.diagnostics == []

    chain = run(CHAIN, "tfm101_chain_before")["Chain"](nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert set(chain.state_dict()) == {"body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"}
    assert len(list(chain.parameters())) == 4
    chain.double()
    assert chain.layers[0].weight.dtype == torch.float64
    assert chain(torch.ones(5, 3, dtype=torch.float64)).shape == (5, 2)
    naive = run(CHAIN.replace("self.layers = list(layers)", "self.layers = nn.ModuleList(layers)"), "tfm101_chain_naive")
    wrapped = naive["Chain"](nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert "layers.0.weight" in wrapped.state_dict()
    with pytest.raises(RuntimeError):
        wrapped.load_state_dict(chain.state_dict())  # an existing checkpoint lacks layers.*
