"""The nn.Module API rules (TFM201: in-place updates in forward, TFM401: __init__ without
super().__init__(), TFM402: module.forward(x) called directly), run with real torch: each
sample's bug shows up in before.py and is gone in after.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from rule_helpers import build, load
from rule_helpers import run as run_source

INPLACE_ERROR = "modified by an inplace operation"

HIDDEN, HEADS, INNER = 8, 2, 16  # the layer sizes the TFM201 samples are built with


# -- TFM201: in-place updates in forward ---------------------------------------

SEQ = 5


def pair(cls_name: str, *args):
    torch.manual_seed(0)
    before = getattr(load("TFM201", "before"), cls_name)(*args)
    after = getattr(load("TFM201", "after"), cls_name)(*args)
    after.load_state_dict(before.state_dict())
    return before, after


def run(model: nn.Module, *inputs):
    torch.manual_seed(1)  # same dropout masks in both runs
    return model(*inputs)


def check_inplace_fix(before: nn.Module, after: nn.Module, *inputs):
    out_before = run(before, *inputs)
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        out_before.sum().backward()

    out_after = run(after, *inputs)
    assert torch.allclose(out_before.detach(), out_after.detach())
    out_after.sum().backward()
    grads = [p.grad for p in after.parameters()]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_tfm201_encoder_layer_residual(train: bool):
    before, after = pair("EncoderLayer", HIDDEN, HEADS, INNER)
    before.train(train)
    after.train(train)
    x = torch.randn(2, SEQ, HIDDEN)
    check_inplace_fix(before, after, x)


def test_tfm201_softmax_weights():
    before, after = pair("AttentionPooling", HIDDEN)
    x = torch.randn(2, SEQ, HIDDEN)
    keep = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    check_inplace_fix(before, after, x, keep)


def test_tfm201_sigmoid_gate():
    before, after = pair("SigmoidGate", HIDDEN)
    x = torch.randn(2, SEQ, HIDDEN)
    check_inplace_fix(before, after, x)


def test_tfm201_fix_does_not_touch_the_callers_tensor():
    _, after = pair("EncoderLayer", HIDDEN, HEADS, INNER)
    after.eval()
    x = torch.randn(2, SEQ, HIDDEN)
    snapshot = x.clone()
    after(x)
    assert torch.equal(x, snapshot)


# -- TFM201: when the out-of-place form would change the dtype -----------------

DTYPE_GATE = '''
import torch
import torch.nn as nn


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        {scale_line}
        g = torch.sigmoid(self.proj(x))
        g *= scale
        return g
'''


def _gate(source: str) -> nn.Module:
    namespace: dict = {}
    exec(compile(source, "<gate>", "exec"), namespace)
    torch.manual_seed(0)
    return namespace["Gate"]()


@pytest.mark.parametrize(
    ("scale_line", "safe"),
    [
        ("scale = x * 2", True),  # inherits x's dtype: `g * scale` is float32 like `g *= scale`
        ("scale = torch.full((4,), 2.0, dtype=torch.float64)", False),
        ("scale = (x * 2).double()", False),
    ],
    ids=["inherited", "float64-factory", "double-method"],
)
def test_tfm201_dtype_of_its_own_makes_the_fix_unsafe(scale_line: str, safe: bool):
    from conftest import transform

    source = DTYPE_GATE.format(scale_line=scale_line)
    x = torch.randn(2, 4)
    before = _gate(source)
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        before(x).sum().backward()  # the bug is there in every variant
    in_place_dtype = _gate(source)(x).dtype

    plain = transform(source)
    [finding] = [d for d in plain.diagnostics if d.code == "TFM201"]
    assert finding.fix_available == safe and finding.unsafe_fix == (not safe)
    assert plain.changed == safe

    fixed = transform(source, unsafe=True)
    assert fixed.changed
    after = _gate(fixed.new_source)
    out = after(x)
    out.sum().backward()  # the fix always cures the autograd error ...
    assert after.proj.weight.grad is not None
    # ... but only the safe variant keeps the dtype the in-place update had
    assert in_place_dtype == torch.float32
    assert (out.dtype == in_place_dtype) == safe


# -- TFM201: reported exactly where autograd kept the tensor --------------------

SAVED_TEMPLATE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.norm = nn.GroupNorm(2, 4)

    def forward(self, x):
        h = self.norm(self.proj(x))
{body}
        return h
'''

# (body, autograd fails on the in-place update): the rule must report exactly the failing ones
SAVED_CASES = {
    "kept-by-mul-with-a-tensor": ("        y = h * x\n        h += 1\n        h = h + y", True),
    "kept-by-a-layer": ("        y = self.proj(h)\n        h -= 1\n        h = h * 1.0 + y", True),
    "kept-by-matmul": ("        y = h @ x.t()\n        h *= 2\n        h = h + y.sum()", True),
    "softmax-result": ("        h = F.softmax(h, dim=-1)\n        h /= h.sum(dim=-1, keepdim=True)", True),
    "sum-keeps-nothing": ("        h /= h.sum(dim=-1, keepdim=True) + 1e-20", False),
    "gather-copies": ("        w = h.gather(1, torch.topk(h, 2, dim=-1)[1])\n        w /= w.sum(dim=-1, keepdim=True)\n        h = h + w.sum()", False),
    "sigmoid-keeps-its-result": ("        h *= torch.sigmoid(h)", False),
    "mul-by-a-number": ("        y = h * 2.0 + h\n        h += 1\n        h = h + y", False),
}


def _net(source: str) -> nn.Module:
    namespace: dict = {}
    exec(compile(source, "<net>", "exec"), namespace)
    torch.manual_seed(0)
    return namespace["Net"]()


@pytest.mark.parametrize("case", sorted(SAVED_CASES))
def test_tfm201_reports_exactly_what_autograd_kept(case: str):
    from conftest import transform

    body, fails = SAVED_CASES[case]
    source = SAVED_TEMPLATE.format(body=body)
    # an activation of an earlier layer: it needs grad, so `h * x` keeps `h` for x's gradient
    x = torch.randn(2, 4, requires_grad=True)
    out = _net(source)(x)
    if fails:
        with pytest.raises(RuntimeError, match=INPLACE_ERROR):
            out.sum().backward()
    else:
        out.sum().backward()

    result = transform(source)
    findings = [d for d in result.diagnostics if d.code == "TFM201"]
    assert bool(findings) == fails, [d.message for d in findings]
    if fails:
        assert all(d.fixed for d in findings)
        before, after = _net(source), _net(result.new_source)
        out_after = after(x)
        assert torch.allclose(out_after.detach(), before(x).detach())
        out_after.sum().backward()
        assert after.proj.weight.grad is not None


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


@pytest.mark.parametrize("marker", ["class Model(Flags, Trunk)", "class Wide(nn.Linear)"])
def test_tfm401_super_init_that_would_raise_is_reported_not_inserted(marker):
    """`super().__init__()` in a mixin reaches the next class of the combined class's MRO;
    in a subclass of a layer with required arguments it reaches that layer. Either way the
    inserted call raises TypeError at construction, where the code built before."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM401")
    source = next(c.source for c in rule.keeps if marker in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == source
    assert result.diagnostics and not any(d.fix_available or d.unsafe_fix for d in result.diagnostics)
    cls = "Model" if "Model" in marker else "Wide"
    args = (3,) if cls == "Model" else ()
    namespace: dict = {"__name__": "tfm401_case"}
    exec(compile(source, "case.py", "exec"), namespace)
    namespace[cls](*args)  # builds as written
    naive = source.replace("    def __init__(self):\n        self.", "    def __init__(self):\n        super().__init__()\n        self.")
    assert naive != source
    broken: dict = {"__name__": "tfm401_case"}
    exec(compile(naive, "naive.py", "exec"), broken)
    with pytest.raises(TypeError):
        broken[cls](*args)


def test_tfm401_unbound_super_is_bound_and_the_module_builds():
    """`super(LR).__init__()` makes a super object bound to nothing: nn.Module's `__init__`
    never runs and the first layer assignment raises. The fix binds it to the instance."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM401")
    case = next(c for c in rule.fixes if "super(LR).__init__()" in c.before)
    assert transform_source(case.before, Settings(rules=(rule,))).new_source == case.after
    before: dict = {"__name__": "tfm401_unbound"}
    exec(compile(case.before, "before.py", "exec"), before)
    with pytest.raises(AttributeError, match=INIT_ERROR):
        before["LR"](4)
    after: dict = {"__name__": "tfm401_unbound"}
    exec(compile(case.after, "after.py", "exec"), after)
    lr = after["LR"](4)
    assert [name for name, _ in lr.named_parameters()] == ["linear.weight", "linear.bias"]
    lr.linear(torch.randn(2, 4)).sum().backward()
    assert lr.linear.weight.grad is not None


def test_tfm401_base_without_init_gets_the_call_and_the_module_becomes_callable():
    """A base that defines no `__init__` (only static helpers) hands the call to nn.Module's,
    which takes nothing. Before the fix the instance builds (it assigns no layer) but calling it
    fails: nn.Module's registries were never made."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM401")
    case = next(c for c in rule.fixes if "class GEVD(Beamformer)" in c.before)
    assert transform_source(case.before, Settings(rules=(rule,))).new_source == case.after
    forward = "\n    def forward(self, v, x):\n        return self.apply(v, x) * self.mu\n"
    v, x = torch.randn(3), torch.randn(3)
    before: dict = {"__name__": "tfm401_gevd"}
    exec(compile(case.before + forward, "before.py", "exec"), before)
    with pytest.raises(AttributeError):
        before["GEVD"](2.0)(v, x)
    after: dict = {"__name__": "tfm401_gevd"}
    exec(compile(case.after + forward, "after.py", "exec"), after)
    module = after["GEVD"](2.0)
    assert torch.equal(module(v, x), v * x * 2.0)
    assert module.to(torch.float64).mu == 2.0


def test_tfm401_layer_stored_before_the_base_init_is_reported_and_moving_the_call_would_break_it():
    """PyG's ARGA stored its discriminator before `super().__init__()`: construction raises.
    Moving the call up is no fix either, since the base `__init__` calls a `reset` override that
    reads the attribute; the finding is reported without one."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM401")
    source = next(c.source for c in rule.keeps if "class ARGA(Base)" in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == source
    [finding] = result.diagnostics
    assert finding.line == source.splitlines().index("        self.discriminator = discriminator") + 1
    assert not finding.fix_available
    namespace: dict = {"__name__": "tfm401_late"}
    exec(compile(source, "case.py", "exec"), namespace)
    with pytest.raises(AttributeError, match=INIT_ERROR):
        namespace["ARGA"](nn.Linear(2, 2), nn.Linear(2, 1))
    moved = source.replace(
        "        self.discriminator = discriminator\n        super().__init__(encoder)\n",
        "        super().__init__(encoder)\n        self.discriminator = discriminator\n",
    )
    assert moved != source
    broken: dict = {"__name__": "tfm401_late"}
    exec(compile(moved, "moved.py", "exec"), broken)
    with pytest.raises(AttributeError, match="discriminator"):
        broken["ARGA"](nn.Linear(2, 2), nn.Linear(2, 1))


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


def test_tfm402_own_forward_called_from_another_method_is_reported_and_the_call_runs_hooks():
    """pixyz's `Loss.eval` ran `self.forward(...)`: forward hooks on the loss never fired. The
    finding is reported without a fix (a hook or subclass the file does not show may call the
    method back); calling the module, as the message says, runs them."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM402")
    before = next(c.source for c in rule.keeps if "def evaluate" in c.source)
    result = transform_source(before, Settings(rules=(rule,), unsafe_fixes=True))
    [finding] = result.diagnostics
    assert result.new_source == before and not finding.fix_available
    after = before.replace("self.forward(x)", "self(x)")
    fired = {}
    for which, source in (("before", before), ("after", after)):
        namespace: dict = {"__name__": f"tfm402_{which}"}
        exec(compile(source, f"{which}.py", "exec"), namespace)
        loss = namespace["Loss"]()
        calls: list = []
        loss.register_forward_hook(recording_hook(calls))
        assert loss.evaluate(torch.tensor(3.0)) == 6.0
        fired[which] = calls
    assert fired == {"before": [], "after": ["Loss"]}


@pytest.mark.parametrize("chosen", [False, True], ids=["always-relu", "relu-by-argument"])
def test_tfm201_a_layer_of_the_file_ending_in_relu_keeps_its_output_and_the_sum_breaks_backward(chosen: bool):
    """multiresunet's residual path added the shortcut in place to the output of a conv-bn
    layer whose forward ends in F.relu (there: only when built with activation="relu"): relu's
    backward needs that output, so backward() raised. The out-of-place sum (offered as an
    unsafe fix) trains."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    case = next(c for c in rule.fixes if "class ResPath" in c.before and ("self.activation" in c.before) == chosen)
    assert transform_source(case.before, Settings(rules=(rule,), unsafe_fixes=True)).new_source == case.after
    x = torch.randn(2, 3, 5, 5)
    for which, source in (("before", case.before), ("after", case.after)):
        namespace: dict = {"__name__": f"tfm201_respath_{which}"}
        exec(compile(source, f"{which}.py", "exec"), namespace)
        torch.manual_seed(0)
        out = namespace["ResPath"](3)(x)
        if which == "before":
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
        else:
            out.sum().backward()


def test_tfm201_a_layer_built_without_its_activation_keeps_nothing_and_the_in_place_sum_trains():
    """The same layer built with activation="none" returns the batch norm's output, which
    backward does not need: the in-place sum is left alone, and backward() succeeds."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    case = next(c for c in rule.keeps if "class ResPath" in c.source and "self.activation" in c.source)
    result = transform_source(case.source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == case.source and not result.diagnostics
    namespace: dict = {"__name__": "tfm201_no_activation"}
    exec(compile(case.source, "keep.py", "exec"), namespace)
    out = namespace["ResPath"](3)(torch.randn(2, 3, 5, 5))
    out.sum().backward()


def test_tfm201_an_alias_rebound_before_the_update_chained_pooling_trains_after_the_fix():
    """refinenet's chained residual pooling (thomasjpfan/pytorch_refinenet,
    pytorch_refinenet/blocks.py, 8a0bef0, line 79) named the in-place relu's output `path` too,
    then rebound `path` to each block's output and added it to `x` in place: relu's backward
    needs its output, so backward() raised. The alias no longer holds the tensor when it is
    updated, so the out-of-place sum is safe: the same outputs, and backward() succeeds."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    case = next(c for c in rule.fixes if "class ChainedPool" in c.before)
    assert transform_source(case.before, Settings(rules=(rule,))).new_source == case.after
    x = torch.randn(2, 3, 8, 8)
    outputs = {}
    for which, source in (("before", case.before), ("after", case.after)):
        namespace: dict = {"__name__": f"tfm201_pool_{which}"}
        exec(compile(source, f"{which}.py", "exec"), namespace)
        torch.manual_seed(0)
        pool = namespace["ChainedPool"](3)
        with torch.no_grad():
            outputs[which] = pool(x.clone())
        features = x.clone().requires_grad_()
        out = pool(features * 1.0)  # what an earlier layer hands over: a tensor in the graph
        if which == "before":
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
        else:
            out.sum().backward()
            assert all(p.grad is not None for p in pool.parameters()) and features.grad is not None
    assert torch.equal(outputs["before"], outputs["after"])


def test_tfm201_a_view_kept_by_a_layer_then_updated_through_a_second_name_fails_backward():
    """jasonppy/word-discovery models/audio_encoder.py (e2beb6a, line 484): `x = features`, a
    transposed view of x goes to the positional convolution, which keeps it, then `x += x_conv`.
    The finding is reported without a fix; the replica shows the backward failure it names."""
    import sys
    import types

    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    case = next(c for c in rule.keeps if "class Encoder(BaseFairseqModel)" in c.source)
    result = transform_source(case.source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == case.source
    assert [(d.line, d.fix_available) for d in result.diagnostics] == [(15, False)]
    fairseq = types.ModuleType("fairseq")
    fairseq.models = types.ModuleType("fairseq.models")
    fairseq.models.BaseFairseqModel = nn.Module  # what the real base class is
    saved = {name: sys.modules.get(name) for name in ("fairseq", "fairseq.models")}
    sys.modules.update({"fairseq": fairseq, "fairseq.models": fairseq.models})
    try:
        namespace: dict = {"__name__": "tfm201_positional_conv"}
        exec(compile(case.source, "keep.py", "exec"), namespace)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    encoder = namespace["Encoder"](4)
    out, _ = encoder(torch.randn(2, 6, 4, requires_grad=True))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_tfm201_writing_by_index_into_a_relu_output_fails_backward():
    """AggMan96/RK-Net model.py (4eb0253, line 37): USAM's __call__ zeroes the border of a relu
    output by slice assignment; relu's backward needs that output. Reported once, without a fix;
    the replica shows the failure, and the same writes into a tensor nothing keeps train."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    kept, free = [c.source for c in rule.keeps if "class Attention" in c.source]
    result = transform_source(kept, Settings(rules=(rule,), unsafe_fixes=True))
    assert [(d.line, d.fix_available) for d in result.diagnostics] == [(11, False)]
    assert not transform_source(free, Settings(rules=(rule,), unsafe_fixes=True)).diagnostics
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    for source, fails in ((kept, True), (free, False)):
        namespace: dict = {"__name__": "tfm201_border"}
        exec(compile(source, "keep.py", "exec"), namespace)
        out = namespace["Attention"]()(x)
        if fails:
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
        else:
            out.sum().backward()


def test_tfm201_writes_into_forwards_input_through_a_name_that_reads_like_a_copy_fail_the_callers_backward():
    """Jee-King/TSAN Train/model/tsan.py (22c528b, line 104): CSB does `out = x` and writes the
    four quadrants into `out`, which is its caller's tensor; the caller gave that tensor to a
    convolution first, which kept it, so backward() fails. Reported once, without a fix."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    case = next(c for c in rule.keeps if "class Quadrants" in c.source)
    result = transform_source(case.source, Settings(rules=(rule,), unsafe_fixes=True))
    assert [(d.line, d.fix_available) for d in result.diagnostics] == [(15, False)]
    namespace: dict = {"__name__": "tfm201_quadrants"}
    exec(compile(case.source, "keep.py", "exec"), namespace)
    torch.manual_seed(0)
    block = namespace["Block"](2)
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        block(x * 1.0).sum().backward()
    # with a copy, as the message says, it trains
    copied = case.source.replace("out = x\n", "out = x.clone()\n")
    namespace = {"__name__": "tfm201_quadrants_copied"}
    exec(compile(copied, "copied.py", "exec"), namespace)
    namespace["Block"](2)(x * 1.0).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize(("marker", "fails"), [("class Viewed", True), ("last=True", False), ("class Decay", False)])
def test_tfm201_what_is_reported_is_what_backward_does(marker: str, fails: bool):
    """An alias rebound to a view of itself still sees the update (reported, no fix, and
    backward fails); an argument __init__ rebinds before storing it, and kept-op results no
    gradient flows through, are left alone, and backward succeeds."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    source = next(c.source for c in rule.keeps if marker in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == source
    assert bool(result.diagnostics) == fails and not any(d.fix_available for d in result.diagnostics)
    namespace: dict = {"__name__": "tfm201_truth"}
    exec(compile(source, "keep.py", "exec"), namespace)
    module = next(v for k, v in namespace.items() if isinstance(v, type) and issubclass(v, nn.Module) and k in ("Viewed", "ResPath", "Decay"))
    args = (3,) if module.__name__ == "ResPath" else ()
    x = torch.randn(2, 3, 5, 5) if args else torch.randn(4, 4)
    out = module(*args)(x * 1.0)
    loss = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    if fails:
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()
    else:
        loss.backward()


def test_tfm201_an_in_place_dropout_after_a_relu_fails_backward_and_inplace_false_trains_the_same():
    """BierOne/bottom-up-attention-vqa model/classifier.py: Linear, ReLU, Dropout(inplace=True)
    in one Sequential. In training the dropout overwrites the relu output relu keeps for its
    backward, so backward() fails; with inplace=False the same seed gives the same outputs and
    backward succeeds."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    case = next(c for c in rule.fixes if "class Head" in c.before)
    assert transform_source(case.before, Settings(rules=(rule,))).new_source == case.after
    x = torch.randn(8, 6, requires_grad=True)
    outputs = {}
    for which, source in (("before", case.before), ("after", case.after)):
        namespace: dict = {"__name__": f"tfm201_head_{which}"}
        exec(compile(source, f"{which}.py", "exec"), namespace)
        torch.manual_seed(0)
        head = namespace["Head"](6)
        torch.manual_seed(1)
        out = head(x)
        outputs[which] = out.detach()
        if which == "before":
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
        else:
            out.sum().backward()
            assert head.main[0].weight.grad is not None
    assert torch.equal(outputs["before"], outputs["after"])


def test_tfm201_a_layer_that_sums_its_input_first_keeps_nothing_and_the_in_place_scale_trains():
    """speechbrain's EnhanceResnet scales a conv output in place by a squeeze-excitation block
    of the same file; the block sums its input before anything could keep it, so backward
    works and the rule stays silent."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    source = next(c.source for c in rule.keeps if "class SEBlock" in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.diagnostics == [] and result.new_source == source
    namespace: dict = {"__name__": "tfm201_se"}
    exec(compile(source, "case.py", "exec"), namespace)
    block = namespace["Block"](3)
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    block(x).sum().backward()
    assert x.grad is not None and block.conv.weight.grad is not None


OWN_GATE = '''
import numpy as np
import torch
import torch.nn as nn


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        {init_line}

    def forward(self, x):
        g = torch.sigmoid(self.proj(x))
        g *= self.scale
        return g
'''


@pytest.mark.parametrize(
    ("init_line", "safe"),
    [
        ("self.scale = nn.Parameter(torch.full((4,), 2.0))", True),
        ('self.register_buffer("scale", torch.full((4,), 2.0))', True),
        ("self.scale = 0.5", True),
        ('self.register_buffer("scale", torch.full((4,), 2.0, dtype=torch.float64))', False),
        ("self.scale = nn.Parameter(torch.full((4,), 2.0).double())", False),
        ('self.register_buffer("scale", torch.from_numpy(np.full(4, 2.0)))', False),  # float64 array
    ],
    ids=["parameter", "buffer", "number", "float64-buffer", "float64-parameter", "numpy-buffer"],
)
def test_tfm201_the_modules_own_parameters_buffers_and_numbers_keep_the_fix_safe(init_line: str, safe: bool):
    """A parameter or buffer made without a dtype of its own has the module's dtype (and follows
    `.double()` with it), and a Python number never promotes: `g = g * self.scale` keeps the
    dtype `g *= self.scale` kept, under any cast of the module. An explicit float64 does not."""
    from conftest import transform

    source = OWN_GATE.format(init_line=init_line)
    plain = transform(source)
    [finding] = [d for d in plain.diagnostics if d.code == "TFM201"]
    assert finding.fix_available == safe and finding.unsafe_fix == (not safe)
    fixed = transform(source, unsafe=True)
    assert fixed.changed
    for cast in (lambda m: m, lambda m: m.double()):
        before, after = cast(_gate(source)), cast(_gate(fixed.new_source))
        x = torch.randn(2, 4, dtype=before.proj.weight.dtype)
        with pytest.raises(RuntimeError, match=INPLACE_ERROR):
            before(x).sum().backward()
        with torch.no_grad():
            kept = before(x)
        out = after(x)
        out.sum().backward()
        assert after.proj.weight.grad is not None
        if safe or kept.dtype == torch.float64:
            assert out.dtype == kept.dtype
        else:
            assert out.dtype == torch.float64  # the out-of-place form promotes a float32 module
        torch.testing.assert_close(out.detach(), kept.to(out.dtype))


def test_tfm401_an_init_that_runs_a_bases_initialiser_is_left_alone_and_the_module_works():
    """torch.ao's quantized convolutions call `super()._init(...)`, the base's own initialiser,
    which runs Module.__init__: nothing is missing. Left alone, and the module works."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM401")
    source = next(c.source for c in rule.keeps if "super()._init(c)" in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == source and not result.diagnostics
    namespace: dict = {"__name__": "tfm401_delegated"}
    exec(compile(source, "keep.py", "exec"), namespace)
    conv = namespace["Conv1d"](3)
    conv.head = nn.Linear(2, 2)  # raises before Module.__init__ has run
    assert conv.c == 3 and [name for name, _ in conv.named_parameters()] == ["head.weight", "head.bias"]


# Modelled on aupendu/zero-restore model/watermodel.py @ 7d2f44eb008ef47042a3a5b0e0a2654731e22f53
# line 91 (SKConv.forward: `conv(x).unsqueeze_(dim=1)` over a ModuleList whose first branch ends in ReLU).
BRANCHES = '''
import torch
import torch.nn as nn


class InConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv(x)


class SKConv(nn.Module):
    def __init__(self, M=3):
        super().__init__()
        self.convs = nn.ModuleList([])
        in_conv = InConv()
        for i in range(M):
            if i == 0:
                self.convs.append(in_conv)
            else:
                self.convs.append(nn.Sequential(nn.AvgPool2d(2 ** i), in_conv, nn.Upsample(scale_factor=2 ** i)))

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            fea = conv(x).unsqueeze_(dim=1)
            feas = fea if i == 0 else torch.cat([feas, fea], dim=1)
        return feas.sum(dim=1)
'''


def test_tfm201_an_in_place_reshape_of_a_kept_layer_output_fails_backward_and_the_twin_trains_the_same():
    """Reported without a fix (the in-place ReLU returns the tensor it was given, so the code
    may hold it elsewhere); the out-of-place twin the message names trains, with the same output."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM201")
    result = transform_source(BRANCHES, Settings(rules=(rule,), unsafe_fixes=True))
    [finding] = result.diagnostics
    assert finding.line == BRANCHES.splitlines().index("            fea = conv(x).unsqueeze_(dim=1)") + 1
    assert not finding.fix_available and "`.unsqueeze()`" in finding.message
    after_source = BRANCHES.replace("conv(x).unsqueeze_(dim=1)", "conv(x).unsqueeze(dim=1)")
    torch.manual_seed(0)
    before = run_source(BRANCHES)["SKConv"]()
    after = run_source(after_source)["SKConv"]()
    after.load_state_dict(before.state_dict())
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        before(x).sum().backward()
    out = after(x)
    out.sum().backward()
    assert torch.allclose(out, before(x).detach())
    assert all(p.grad is not None for p in after.parameters())


def test_tfm402_a_listed_layer_with_a_call_of_its_own_is_reported_and_calling_it_would_change_the_result():
    """A ModuleList holding a layer whose class overrides ``__call__``: ``layer(x)`` would run
    that override (here a clamp), not only ``forward`` with hooks. Reported, left as written."""
    from conftest import ALL_RULES
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM402")
    source = next(c.source for c in rule.keeps if "class Gate(nn.Module)" in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    [finding] = result.diagnostics
    assert result.new_source == source and not finding.fix_available
    torch.manual_seed(0)
    net = run_source(source)["Net"]()
    x = torch.randn(4, 2) * 10
    torch.manual_seed(0)
    called = run_source(source.replace("layer.forward(x)", "layer(x)"))["Net"]()
    called.load_state_dict(net.state_dict())
    assert not torch.allclose(net(x), called(x))  # the rewrite would have changed what forward returns
