"""The tensor-attribute rules (TFM301: plain tensor attributes, TFM302: tensors created with
requires_grad=True), run with real torch: each sample's bug shows up in before.py and is gone in
after.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from conftest import ALL_RULES
from rule_helpers import build, fixed, load, run, sgd_step
from torchfix_mod.engine import Settings, transform_source

HIDDEN, SEQ = 8, 5  # the TFM301 sample's width and the inputs' sequence length


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


# -- TFM302: tensors created with requires_grad=True ---------------------------

DIM, CLASSES = 3, 4


def _namespace(source: str) -> dict:
    namespace: dict = {"__name__": "tfm301_case"}
    exec(compile(source, "case.py", "exec"), namespace)
    return namespace


TFM301 = next(r for r in ALL_RULES if r.code == "TFM301")
SET_EARLIER = [
    next(c.source for c in TFM301.keeps if marker in c.source) for marker in ("def _reset", "def init_state", "class Child")
]


@pytest.mark.parametrize("source", SET_EARLIER, ids=["helper-method", "helper-function", "subclass"])
def test_tfm301_a_name_set_by_code_that_runs_first_is_reported_not_registered(source):
    """`register_buffer` raises KeyError on a name that already holds a plain attribute. The
    rule used to register it anyway when a helper, a function handed `self`, or a subclass
    set it first; now it reports without a fix, and the module still builds."""
    result = transform_source(source, Settings(rules=(TFM301,)))
    assert result.new_source == source and not result.errors
    findings = [d for d in result.diagnostics if d.code == "TFM301"]
    assert findings and not any(d.fix_available for d in findings)
    assert any("may already be set" in d.message for d in findings)
    cls = "Child" if "class Child" in source else "Net"
    _namespace(source)[cls](3)  # builds as it is
    naive = source.replace("self.mask = torch.ones(n)", 'self.register_buffer("mask", torch.ones(n), persistent=False)')
    with pytest.raises(KeyError, match="already exists"):
        _namespace(naive)[cls](3)


def test_tfm301_a_helper_that_stores_the_tensor_again_gets_no_fix():
    """`_reset` stores a new CPU tensor after construction: once registered, the buffer would be
    replaced by that CPU tensor whenever the helper runs after `.to(device)`, so the fix proves
    nothing. The finding is reported without a fix."""
    case = next(c for c in TFM301.keeps if "self._reset(n)\n" in c.source and c.source.index("self.mask = torch.ones") < c.source.index("self._reset(n)\n"))
    result = transform_source(case.source, Settings(rules=(TFM301,)))
    assert result.new_source == case.source
    [finding] = result.diagnostics
    assert not finding.fix_available and "stored elsewhere" in finding.message
    net = _namespace(case.source)["Net"](3).to(torch.float64)
    net._reset(3)
    assert net.mask.dtype == torch.float32  # the helper's store decides the tensor, whatever was moved


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


# -- TFM303: a conversion of an nn.Parameter ------------------------------------


def test_tfm303_a_copying_conversion_stores_a_plain_tensor_before_and_a_parameter_after():
    """On the CPU a dtype conversion copies as a move to a GPU would: before the fix the
    attribute is a plain tensor (not trained, not saved); after it, a registered parameter."""
    rule = next(r for r in ALL_RULES if r.code == "TFM303")
    case = next(c for c in rule.fixes if ".double().to(device)" in c.before)
    assert transform_source(case.before, Settings(rules=(rule,))).new_source == case.after
    before = _namespace(case.before)["Net"](3, "cpu")
    after = _namespace(case.after)["Net"](3, "cpu")
    assert not isinstance(before.scale, nn.Parameter) and "scale" not in before.state_dict()
    assert isinstance(after.scale, nn.Parameter) and "scale" in after.state_dict()
    assert after.scale.dtype == before.scale.dtype == torch.float64
    assert torch.equal(after.scale, before.scale) and not after.scale.requires_grad
    weights = next(c for c in rule.fixes if "torch.randn(n, n)).to(device)" in c.before)
    moved = _namespace(weights.after.replace(".to(device)", ".to(torch.float64)"))["Net"](3, "cpu")
    assert [name for name, _ in moved.named_parameters()] == ["w"] and moved.w.is_leaf
    stuck = _namespace(weights.before.replace(".to(device)", ".to(torch.float64)"))["Net"](3, "cpu")
    assert list(stuck.named_parameters()) == [] and not stuck.w.is_leaf


def test_tfm301_a_tensor_every_read_moves_is_left_plain():
    """`x @ self.basis.to(x.device)`: the code moves the tensor where it is used and keeps its
    dtype. As a buffer it would follow `.double()`, and the float32 input would then meet a
    float64 basis; the rule leaves it alone."""
    source = next(c.source for c in TFM301.keeps if "self.basis.to(x.device)" in c.source)
    result = transform_source(source, Settings(rules=(TFM301,)))
    assert result.new_source == source and not result.diagnostics
    x = torch.randn(2, 3)
    plain = _namespace(source)["Net"](3).double()
    assert plain(x).dtype == torch.float32
    naive = source.replace("self.basis = torch.randn(n, n)", 'self.register_buffer("basis", torch.randn(n, n), persistent=False)')
    registered = _namespace(naive)["Net"](3).double()
    with pytest.raises(RuntimeError, match="dtype"):
        registered(x)


SAMPLER_SIDE = '''
import torch
import torch.nn as nn


class Walker(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.emb = nn.Embedding(3 * n, 4)
        self.offset = torch.tensor([0, n, 2 * n])

    def forward(self, idx):
        return self.emb(idx)

    def sample(self, walks):
        # runs in the data loader on CPU tensors
        return walks + self.offset
'''


def test_tfm301_a_tensor_only_the_cpu_side_reads_is_left_alone():
    """torch_geometric's MetaPath2Vec keeps `offset` plain on purpose: only its sampler, run by
    the data loader on CPU walks, reads it. As a buffer it would follow the module to another
    device and the CPU sampler would then raise."""
    result = transform_source(SAMPLER_SIDE, Settings(rules=(TFM301,), unsafe_fixes=True))
    assert result.diagnostics == [] and result.new_source == SAMPLER_SIDE
    walks = torch.zeros(5, 3, dtype=torch.long)
    plain = _namespace(SAMPLER_SIDE)["Walker"](2).to("meta")
    assert plain.sample(walks).device.type == "cpu"
    naive = SAMPLER_SIDE.replace("self.offset = torch.tensor([0, n, 2 * n])",
                                 'self.register_buffer("offset", torch.tensor([0, n, 2 * n]), persistent=False)')
    moved = _namespace(naive)["Walker"](2).to("meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        moved.sample(walks).cpu()


# -- kinds found beyond the tensor factories in __init__ ------------------------

# Modelled on OpenNMT/OpenNMT-py onmt/modules/Transformer.py @ c2e76fd9bcf0efd05cbe7cf511704f2505d9fb5d
# line 90 (and torchgeo/torchgeo torchgeo/models/croma.py @ 65507dcb line 77): the mask comes from a
# helper function of the file and is added to the attention scores in forward.
HELPER_MADE = '''
import torch
import torch.nn as nn


def causal_bias(n):
    bias = [[0.0 if j <= i else -1e4 for j in range(n)] for i in range(n)]
    bias = torch.tensor(bias)
    return bias.unsqueeze(0)


class Attention(nn.Module):
    def __init__(self, dim, n):
        super().__init__()
        self.qk = nn.Linear(dim, 2 * dim)
        self.bias = causal_bias(n)

    def forward(self, x):
        q, k = self.qk(x).chunk(2, dim=-1)
        scores = q @ k.transpose(1, 2) + self.bias[:, : x.shape[1], : x.shape[1]]
        return scores.softmax(-1)
'''


def test_tfm301_a_tensor_from_a_helper_function_follows_to_only_after_the_fix():
    after_source = fixed(HELPER_MADE, "TFM301")
    assert 'self.register_buffer("bias", causal_bias(n), persistent=False)' in after_source
    before = run(HELPER_MADE)["Attention"](4, 6).to(torch.float64)
    after = run(after_source)["Attention"](4, 6).to(torch.float64)
    assert before.bias.dtype == torch.float32 and after.bias.dtype == torch.float64
    assert "bias" not in dict(before.named_buffers()) and "bias" in dict(after.named_buffers())
    assert list(before.state_dict()) == list(after.state_dict())  # non-persistent: same keys
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    after.load_state_dict(before.state_dict())
    assert torch.allclose(before(x), after(x))


# Modelled on allenai/allennlp allennlp/modules/elmo.py @ 80fb6061e568cb9d6ab5d45b661e86eb61b92c82
# line 306 (the helper there is allennlp/nn/util.py's add_sentence_boundary_token_ids).
MOVED_BY_HELPER = '''
import torch
import torch.nn as nn


def with_boundary(ids, bos):
    return torch.cat([bos.to(ids.device).expand(ids.shape[0], -1), ids], dim=1)


class Embedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 3)
        self.bos = torch.tensor([[1, 2]])

    def forward(self, ids):
        return self.emb(with_boundary(ids, self.bos))
'''


def test_tfm301_a_tensor_a_helper_moves_to_the_input_is_left_alone():
    """The helper moves the ids to the input's device at each use: nothing mixes devices, and
    the rule, which follows the call into the helper, stays silent."""
    result = transform_source(MOVED_BY_HELPER, Settings(rules=(TFM301,), unsafe_fixes=True))
    assert result.diagnostics == [] and result.new_source == MOVED_BY_HELPER
    net = run(MOVED_BY_HELPER)["Embedder"]().to(torch.float64)
    assert net(torch.tensor([[3, 4]])).shape == (1, 4, 3)


# Modelled on styalai/xLSTM-pytorch xLSTM/mLSTMblock.py @ d86cb367e0d8b1ee4f6cce09724d020e84767b5a
# line 51: a helper of __init__ sets the recurrent state, forward reads it, then stores it again.
RECURRENT = next(c.source for c in TFM301.keeps if "def init_states" in c.source)


def test_tfm301_a_recurrent_state_set_by_a_helper_is_reported_without_a_fix():
    result = transform_source(RECURRENT, Settings(rules=(TFM301,), unsafe_fixes=True))
    assert result.new_source == RECURRENT
    [finding] = result.diagnostics
    assert "c_prev" in finding.message and not finding.fix_available
    cell = run(RECURRENT)["Cell"](3).to(torch.float64)
    assert cell.gate.weight.dtype == torch.float64
    assert cell.c_prev.dtype == torch.float32  # the first forward meets the state __init__ made
    cell(torch.randn(2, 3, dtype=torch.float64))
    assert cell.c_prev.dtype == torch.float64  # from then on it follows the inputs


# Modelled on kan-bayashi/ParallelWaveGAN parallel_wavegan/losses/stft_loss.py @ b68023b8 line 85.
BY_NAME = next(c.source for c in TFM301.keeps if "getattr(torch, window)" in c.source)


def test_tfm301_a_factory_named_by_an_argument_is_reported_without_a_fix():
    result = transform_source(BY_NAME, Settings(rules=(TFM301,), unsafe_fixes=True))
    assert result.new_source == BY_NAME
    [finding] = result.diagnostics
    assert "`window`" in finding.message and not finding.fix_available
    loss = run(BY_NAME)["Loss"](8).to(torch.float64)
    assert loss.window.dtype == torch.float32 and "window" not in dict(loss.named_buffers())


# Modelled on Hzzone/Precipitation-Nowcasting nowcasting/models/convLSTM.py @ 04a7dd36 line 14.
TRAINABLE_LATER = '''
import torch
import torch.nn as nn


class Peephole(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.gate = nn.Linear(n, n)
        self.wci = torch.zeros(1, n).to("cpu")
        self.wci.requires_grad = True

    def forward(self, x, c):
        return torch.sigmoid(self.gate(x) + self.wci * c)
'''


def test_tfm302_a_tensor_made_trainable_afterwards_is_trained_only_after_the_fix():
    after_source = fixed(TRAINABLE_LATER, "TFM302")
    assert 'self.wci = nn.Parameter(torch.zeros(1, n).to("cpu"))' in after_source
    torch.manual_seed(0)
    x, c = torch.randn(4, 3), torch.ones(4, 3)
    loss = lambda model: model(x, c).sum()  # noqa: E731
    before, after = run(TRAINABLE_LATER)["Peephole"](3), run(after_source)["Peephole"](3)
    assert [n for n, _ in before.named_parameters()] == ["gate.weight", "gate.bias"]
    assert sorted(n for n, _ in after.named_parameters()) == ["gate.bias", "gate.weight", "wci"]
    sgd_step(before, loss)
    sgd_step(after, loss)
    assert torch.equal(before.wci, torch.zeros(1, 3))  # a gradient, but no optimizer step
    assert before.wci.grad is not None and not torch.equal(after.wci, torch.zeros(1, 3))
    assert after.to(torch.float64).wci.dtype == torch.float64


TFM302 = next(r for r in ALL_RULES if r.code == "TFM302")
# Modelled on CWanli/RecoNet reconet.py @ 704ab04a4951f085790d3f115b01a305f779013f line 51.
REBOUND = next(c.source for c in TFM302.keeps if "self.lam = torch.softmax(self.lam" in c.source)


def test_tfm302_a_tensor_forward_rebinds_is_reported_without_a_fix():
    result = transform_source(REBOUND, Settings(rules=(TFM302,), unsafe_fixes=True))
    assert result.new_source == REBOUND
    [finding] = result.diagnostics
    assert not finding.fix_available and "TypeError" in finding.message
    lr = run(REBOUND)["LR"](3)
    assert list(lr.parameters()) == [] and lr(torch.ones(3)).shape == (3,)
    naive = REBOUND.replace("torch.ones(dim, requires_grad=True)", "nn.Parameter(torch.ones(dim))")
    with pytest.raises(TypeError, match="cannot assign"):
        run(naive)["LR"](3)(torch.ones(3))


# Modelled on graykode/nlp-tutorial 2-1.TextCNN/TextCNN.py @ 2cc31240e5d90656dc7fad4310fd11938c812205
# line 46.
def test_tfm303_a_conversion_to_what_the_data_already_is_keeps_the_parameter():
    rule = next(r for r in ALL_RULES if r.code == "TFM303")
    source = next(c.source for c in rule.keeps if ".type(dtype)" in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.diagnostics == [] and result.new_source == source
    net = run(source)["Net"](3)
    assert isinstance(net.w, nn.Parameter) and isinstance(net.b, nn.Parameter)
    assert [n for n, _ in net.named_parameters()] == ["w", "b"]
    copying = next(c for c in rule.fixes if "dtype=torch.float64" in c.before)
    stuck, moved = run(copying.before)["Net"](3), run(copying.after)["Net"](3)
    assert list(stuck.named_parameters()) == [] and [n for n, _ in moved.named_parameters()] == ["w"]
    assert moved.w.dtype == torch.float32


# Modelled on espnet/espnet espnet2/tts/prodiff/denoiser.py (SpectogramDenoiser.inference, the
# `self.betas` schedule from the file's noise_scheduler helper), as vendored in the precision corpus.
# And on dmlc/dgl python/dgl/nn/pytorch/network_emb.py (DeepWalk.forward: CPU index lists offset by a
# CPU `torch.arange`), as vendored in the precision corpus.
CPU_PARTNERS = [
    (next(c.source for c in TFM301.keeps if "torch.cat((torch.ones(1), self.betas" in c.source), "betas", "torch.linspace(0.1, 0.2, n)"),
    (next(c.source for c in TFM301.keeps if "offset = torch.arange(2) * 3" in c.source), "idx", "torch.LongTensor([0, 1, 1])"),
]


@pytest.mark.parametrize("CPU_PARTNER, name, value", CPU_PARTNERS, ids=["cpu-factory", "cpu-local"])
def test_tfm301_a_tensor_combined_with_cpu_made_tensors_is_left_plain(CPU_PARTNER, name, value):
    """The schedule meets `torch.ones(1)`, made on the CPU, before the result is moved: as a
    buffer on another device it would meet that CPU tensor and raise."""
    result = transform_source(CPU_PARTNER, Settings(rules=(TFM301,), unsafe_fixes=True))
    assert result.diagnostics == [] and result.new_source == CPU_PARTNER
    x = torch.ones(6 if name == "idx" else 3, device="meta")
    plain = run(CPU_PARTNER)["Net"](3).to("meta")
    assert plain(x).device.type == "meta"
    naive = CPU_PARTNER.replace(f"self.{name} = {value}", f'self.register_buffer("{name}", {value}, persistent=False)')
    assert naive != CPU_PARTNER
    moved = run(naive)["Net"](3).to("meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        moved(x)


# The flag set after a store of a value that is not a factory call: a product is a fresh tensor
# (wrapped, it trains through parameters()); a local that an optimizer also holds is the tensor
# that optimizer trains, and a Parameter made from it would be another one.
SCALED = '''
import torch
import torch.nn as nn


class Scaled(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.w = torch.randn(n) * 0.01
        self.w.requires_grad = True

    def forward(self, x):
        return x * self.w
'''

SHARED = '''
import torch
import torch.nn as nn


class Table(nn.Module):
    def __init__(self, n):
        super().__init__()
        table = torch.randn(n)
        self.table = table
        self.table.requires_grad = True
        self.opt = torch.optim.SGD([table], lr=0.5)

    def forward(self, x):
        return x * self.table

    def step(self, x):
        self.opt.zero_grad()
        self(x).sum().backward()
        self.opt.step()
'''


def test_tfm302_a_product_made_trainable_afterwards_becomes_a_parameter():
    after_source = fixed(SCALED, "TFM302")
    assert "self.w = nn.Parameter(torch.randn(n) * 0.01)" in after_source
    torch.manual_seed(0)
    before = run(SCALED)["Scaled"](3)
    torch.manual_seed(0)
    after = run(after_source)["Scaled"](3)
    assert torch.equal(before.w, after.w) and after.w.is_leaf and after.w.requires_grad
    assert list(before.parameters()) == [] and [n for n, _ in after.named_parameters()] == ["w"]
    start = after.w.detach().clone()
    sgd_step(after, lambda m: m(torch.ones(3)).sum())
    assert not torch.equal(after.w, start)


def test_tfm302_a_local_another_holder_trains_is_reported_without_a_fix():
    result = transform_source(SHARED, Settings(rules=(TFM302,), unsafe_fixes=True))
    assert result.new_source == SHARED and not result.errors
    [finding] = result.diagnostics
    assert not finding.fix_available and "`table`" in finding.message
    x = torch.ones(3)
    torch.manual_seed(0)
    plain = run(SHARED)["Table"](3)
    start = plain.table.detach().clone()
    plain.step(x)
    assert not torch.equal(plain.table, start)  # the optimizer holds the attribute's tensor
    naive = SHARED.replace("self.table = table\n", "self.table = nn.Parameter(table)\n")
    torch.manual_seed(0)
    wrapped = run(naive)["Table"](3)
    wrapped.step(x)
    assert torch.equal(wrapped.table, start)  # the optimizer's tensor never gets a gradient


# Values the code keeps on the CPU whatever the module's device: a copy brought there with
# `.cpu()` (detections scaled on the host), and lengths the code hands to pack_padded_sequence,
# which raises on lengths anywhere else.
HOST_COPY = '''
import torch
import torch.nn as nn


class Boxes(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.tensor([8., 8., 16., 16.])
        self.head = nn.Softplus()

    def forward(self, x):
        boxes = self.head(x).detach().cpu()
        return boxes * self.scale
'''

CPU_LENGTHS = '''
import torch
import torch.nn as nn


class Tagger(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.steps = torch.arange(100)
        self.rnn = nn.GRU(n, n, batch_first=True)

    def forward(self, x, lengths):
        mask = (self.steps[None, : x.shape[1]] < lengths[:, None]).to(x.device)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        return h[-1] * mask.sum(1, keepdim=True)
'''


def _buffer_instead(source: str, name: str) -> str:
    line = next(line for line in source.splitlines() if line.strip().startswith(f"self.{name} = "))
    value = line.split(" = ", 1)[1]
    naive = source.replace(line, line.split("self.")[0] + f'self.register_buffer("{name}", {value}, persistent=False)')
    assert naive != source
    return naive


def test_tfm301_a_tensor_combined_with_a_cpu_copy_is_left_plain():
    result = transform_source(HOST_COPY, Settings(rules=(TFM301,), unsafe_fixes=True))
    assert result.diagnostics == [] and result.new_source == HOST_COPY
    x = torch.randn(2, 4)  # the copy `.cpu()` makes is on the CPU whatever the module's device
    plain = run(HOST_COPY)["Boxes"]().to("meta")
    assert plain(x).device.type == "cpu"
    moved = run(_buffer_instead(HOST_COPY, "scale"))["Boxes"]().to("meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        moved(x)


def test_tfm301_a_tensor_compared_with_lengths_the_code_requires_on_the_cpu_is_left_plain():
    result = transform_source(CPU_LENGTHS, Settings(rules=(TFM301,), unsafe_fixes=True))
    assert result.diagnostics == [] and result.new_source == CPU_LENGTHS
    x, lengths = torch.randn(2, 5, 3, device="meta"), torch.tensor([5, 3])
    plain = run(CPU_LENGTHS)["Tagger"](3).to("meta")
    assert plain(x, lengths).device.type == "meta"
    with pytest.raises(RuntimeError, match="CPU"):  # the caller cannot move the lengths along
        nn.utils.rnn.pack_padded_sequence(x, lengths.to("meta"), batch_first=True, enforce_sorted=False)
    moved = run(_buffer_instead(CPU_LENGTHS, "steps"))["Tagger"](3).to("meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        moved(x, lengths)


# Modelled on xmu-xiaoma666/External-Attention-pytorch model/attention/AFT.py
# @ d75848e40233ed56fa503c888472bab8b17c568c line 17 (AFT_FULL with simple=True).
LEARNABLE_OR_FIXED = '''
import torch
from torch import nn


class AFT(nn.Module):
    def __init__(self, d_model, n=4, simple=False):
        super().__init__()
        self.fc_k = nn.Linear(d_model, d_model)
        if simple:
            self.position_biases = torch.zeros((n, n))
        else:
            self.position_biases = nn.Parameter(torch.ones((n, n)))

    def forward(self, x):
        bs, n, dim = x.shape
        k = self.fc_k(x).view(1, bs, n, dim)
        return torch.exp(k + self.position_biases.view(n, 1, -1, 1)).sum(dim=2)
'''


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_tfm301_a_constant_kept_where_the_other_branch_learns_follows_the_module_only_after_the_fix(dtype):
    """With ``simple=True`` the biases are a plain tensor: ``.to(dtype)`` leaves them float32
    and the forward mixes dtypes (on a GPU, devices). After the fix they are a buffer; with
    ``simple=False`` they are the same parameter before and after."""
    after_source = fixed(LEARNABLE_OR_FIXED, "TFM301")
    assert 'self.register_buffer("position_biases", torch.zeros((n, n)), persistent=False)' in after_source
    before, after = run(LEARNABLE_OR_FIXED)["AFT"], run(after_source)["AFT"]
    old, new = before(8, simple=True).to(dtype), after(8, simple=True).to(dtype)
    assert old.position_biases.dtype == torch.float32 and new.position_biases.dtype == dtype
    assert "position_biases" in dict(new.named_buffers())
    x = torch.randn(2, 4, 8, dtype=dtype)
    assert new(x).dtype == dtype
    if dtype == torch.bfloat16:  # float32 biases promote the bf16 activations: the output changes type
        assert old(x).dtype == torch.float32
    learnable_before, learnable_after = before(8), after(8)
    assert [n for n, _ in learnable_before.named_parameters()] == [n for n, _ in learnable_after.named_parameters()]
    assert "position_biases" in dict(learnable_after.named_parameters())
    assert list(learnable_before.state_dict()) == list(learnable_after.state_dict())


def test_tfm301_a_tensor_handed_in_is_reported_and_indeed_does_not_follow_the_module():
    """botorch's AppendFeatures keeps the caller's ``feature_set``: the module's ``.to()`` never
    moves it, so appended features stay on the old device and dtype. Reported, not fixed."""
    rule = next(r for r in ALL_RULES if r.code == "TFM301")
    source = next(c.source for c in rule.keeps if "class Append(Transform, nn.Module)" in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    [finding] = result.diagnostics
    assert not finding.fix_available and "caller's" in finding.message
    module = run(source)["Append"](torch.zeros(1, 2)).to(torch.float64)
    assert module.features.dtype == torch.float32 and list(module.buffers()) == []
