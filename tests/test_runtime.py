"""Runtime proof with real torch: each sample's bug shows up in before.py and is gone in after.py."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import torch.nn as nn

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

INPLACE_ERROR = "modified by an inplace operation"


@lru_cache(maxsize=None)
def load(rule: str, which: str):
    path = SAMPLES / rule / f"{which}.py"
    spec = importlib.util.spec_from_file_location(f"torchfix_sample_{rule}_{which}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def linear_size(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


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


# -- TFM301: plain tensor attributes -------------------------------------------

MAX_LEN = 16


def make_encoder(which: str) -> nn.Module:
    torch.manual_seed(0)
    return load("TFM301", which).TinyCausalEncoder(HIDDEN, MAX_LEN)


def test_tfm301_tensors_follow_to_only_after_the_fix():
    before = make_encoder("before").to(torch.float64)
    after = make_encoder("after").to(torch.float64)
    assert before.pos.pe.dtype == torch.float32
    assert before.attn.mask.dtype == torch.float32
    assert after.pos.pe.dtype == torch.float64
    assert after.attn.mask.dtype == torch.float64
    assert after.attn.qkv.weight.dtype == before.attn.qkv.weight.dtype == torch.float64


def test_tfm301_tensors_become_buffers():
    before, after = make_encoder("before"), make_encoder("after")
    before_buffers, after_buffers = dict(before.named_buffers()), dict(after.named_buffers())
    assert "pos.pe" not in before_buffers and "attn.mask" not in before_buffers
    assert set(after_buffers) == {"pos.pe", "attn.mask"}
    assert torch.equal(after_buffers["pos.pe"], before.pos.pe)
    assert torch.equal(after_buffers["attn.mask"], before.attn.mask)
    assert after_buffers["pos.pe"].shape == (1, MAX_LEN, HIDDEN)


def test_tfm301_state_dict_keys_do_not_change():
    before, after = make_encoder("before"), make_encoder("after")
    assert list(before.state_dict().keys()) == list(after.state_dict().keys())
    assert not any(k.endswith((".pe", ".mask")) for k in after.state_dict())
    # a checkpoint written before the fix still loads strictly after it
    result = after.load_state_dict(before.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_tfm301_forward_is_unchanged_by_the_fix():
    before, after = make_encoder("before"), make_encoder("after")
    after.load_state_dict(before.state_dict())
    x = torch.randn(2, SEQ, HIDDEN)
    assert torch.allclose(before(x), after(x))
    # the causal mask really masks: the first position sees only itself
    y = torch.randn(2, SEQ, HIDDEN)
    y[:, 0] = x[:, 0]
    assert torch.allclose(after(x)[:, 0], after(y)[:, 0])


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
