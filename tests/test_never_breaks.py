"""Default (safe) fixes must never break code that works.

Each case is a small, working nn.Module. The tool runs on it with default settings; then either
it left the source alone, or the module built from the rewritten source behaves exactly like the
original one: same outputs, same buffer updates, same state_dict keys where the original already
registered the layers, and no new exception. Both versions run with real torch.
"""

from __future__ import annotations

import textwrap
import warnings

import pytest
import torch

from conftest import transform

HEADER = "import torch\nimport torch.nn as nn\n\n"


def module_source(body: str, header: str = HEADER) -> str:
    return header + textwrap.dedent(body).lstrip("\n")


def run_check(source: str, check, label: str):
    namespace = {"__name__": f"never_breaks_{label}"}
    exec(compile(source, f"<{label}>", "exec"), namespace)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check(namespace)


def assert_same(before, after, where="result"):
    if isinstance(before, torch.Tensor):
        assert isinstance(after, torch.Tensor), f"{where}: tensor became {type(after).__name__}"
        assert after.dtype == before.dtype, f"{where}: dtype {before.dtype} became {after.dtype}"
        assert after.shape == before.shape, f"{where}: shape {tuple(before.shape)} became {tuple(after.shape)}"
        assert torch.allclose(after, before, equal_nan=True), f"{where}: values changed\n{before}\n{after}"
    elif isinstance(before, (list, tuple)):
        assert isinstance(after, (list, tuple)) and len(after) == len(before), f"{where}: {before!r} became {after!r}"
        for i, (b, a) in enumerate(zip(before, after)):
            assert_same(b, a, f"{where}[{i}]")
    elif isinstance(before, dict):
        assert isinstance(after, dict) and list(after) == list(before), f"{where}: keys {list(before)} became {after!r}"
        for key in before:
            assert_same(before[key], after[key], f"{where}[{key!r}]")
    else:
        assert after == before, f"{where}: {before!r} became {after!r}"


def state_keys(model):
    return sorted(model.state_dict())


def forward_ones(cls_name, *args, shape=(1, 4)):
    def check(ns):
        return ns[cls_name](*args)(torch.ones(*shape))

    return check


# ---------------------------------------------------------------------------------------------
# 1-4: TFM101 / TFM102 on containers used in ways nn.ModuleList / nn.ModuleDict do not support


def check_pop(ns):
    model = ns["MLP"](2)
    return [type(layer).__name__ for layer in model.layers], model(torch.ones(1, 4))


def check_insert(ns):
    model = ns["MLP"]().eval()
    return [type(layer).__name__ for layer in model.layers], model(torch.ones(1, 4))


def check_dict_pop(ns):
    model = ns["Heads"]()
    return sorted(model.heads), model(torch.ones(1, 4))


def check_slice_concat(ns):
    return ns["Net"]()(torch.ones(1, 4), [torch.tanh])


CONTAINER_CASES = [
    pytest.param(
        module_source(
            """
            class MLP(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.layers = []
                    for _ in range(n):
                        self.layers.append(nn.Linear(4, 4))
                        self.layers.append(nn.ReLU())
                    self.layers.pop()

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x
            """
        ),
        check_pop,
        id="bug01-tfm101-list-pop-no-args",
    ),
    pytest.param(
        module_source(
            """
            class MLP(nn.Module):
                def __init__(self, p=0.1):
                    super().__init__()
                    self.layers = [nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)]
                    if p > 0:
                        self.layers.insert(-1, nn.Dropout(p))

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x
            """
        ),
        check_insert,
        id="bug02-tfm101-list-insert-negative-index",
    ),
    pytest.param(
        module_source(
            """
            class Heads(nn.Module):
                def __init__(self, aux=False):
                    super().__init__()
                    self.heads = {"cls": nn.Linear(4, 2), "aux": nn.Linear(4, 2)}
                    if not aux:
                        self.heads.pop("aux", None)

                def forward(self, x):
                    return {k: head(x) for k, head in self.heads.items()}
            """
        ),
        check_dict_pop,
        id="bug03-tfm102-dict-pop-with-default",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(4, 4), nn.Linear(4, 4)]

                def forward(self, x):
                    for f in self.layers + [torch.tanh]:
                        x = f(x)
                    return x
            """
        ),
        forward_ones("Net"),
        id="bug04-tfm101-list-plus-function-list",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.enc = [nn.Linear(4, 4), nn.Linear(4, 4)]

                def forward(self, x, extra):
                    for f in self.enc[:1] + extra:
                        x = f(x)
                    return x
            """
        ),
        check_slice_concat,
        id="bug04-tfm101-slice-plus-list",
    ),
]


# ---------------------------------------------------------------------------------------------
# 5, 6, 17, 18, 19: TFM201 rewrites `a op= b` to `a = a op b`; that is only the same program when
# `a` is a tensor of the result dtype that nothing else refers to.


def check_len_and_values(ns):
    return list(ns["FPN"]()(torch.ones(1, 4)))


def check_no_grad(cls_name):
    def check(ns):
        model = ns[cls_name]().eval()
        with torch.no_grad():
            return model(torch.randn(2, 4))

    return check


def check_feats(ns):
    model = ns["Enc"]()
    x = torch.ones(1, 4, requires_grad=True)
    out, feats = model(x)
    (out.sum() + feats[0].sum()).backward()
    return out, feats, x.grad


def check_buffer_after_forward(cls_name, buffer, *shape):
    def check(ns):
        model = ns[cls_name]()
        out = model(torch.ones(*shape))
        return out.detach(), getattr(model, buffer).clone()

    return check


def check_buf_mode(ns):
    model = ns["M"]()
    out = model(torch.ones(2), "acc")
    return out, model.buf.clone()


def check_buf_flag(ns):
    model = ns["M"]()
    out = model(torch.ones(2), True)
    return out, model.buf.clone()


def check_forward_dtype(cls_name):
    def check(ns):
        out = ns[cls_name]()(torch.ones(2, 4))
        return out.dtype, out

    return check


INPLACE_CASES = [
    # found by fuzzing: `+=` casts the result back to the target's dtype, `x = x + v` promotes
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def forward(self, x):
                    g = torch.sigmoid(x)
                    g *= torch.ones(2, 4).double()
                    return g
            """
        ),
        check_forward_dtype("Net"),
        id="fuzz-tfm201-rhs-double",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def forward(self, x):
                    g = torch.sigmoid(x)
                    g -= torch.full((2, 4), 0.5, dtype=torch.float64)
                    return g
            """
        ),
        check_forward_dtype("Net"),
        id="fuzz-tfm201-rhs-explicit-dtype",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def forward(self, x):
                    h = torch.sigmoid(x.half())
                    h += torch.ones(2, 4)
                    return h.float()
            """
        ),
        check_forward_dtype("Net"),
        id="fuzz-tfm201-half-target-float-factory",
    ),
    pytest.param(
        module_source(
            """
            class FPN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(4, 4)
                    self.extra = nn.ModuleList([nn.Linear(4, 4)])

                def backbone(self, x):
                    return [self.a(x)]

                def forward(self, x):
                    outs = self.backbone(x)
                    last = outs[-1]
                    outs += (conv(last) for conv in self.extra)
                    return outs
            """
        ),
        check_len_and_values,
        id="bug05-tfm201-list-iadd-generator",
    ),
    pytest.param(
        module_source(
            """
            class FPN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(4, 4)

                def backbone(self, x):
                    return [self.a(x)]

                def forward(self, x):
                    outs = self.backbone(x)
                    n = len(outs)
                    outs += tuple(o * n for o in outs)
                    return outs
            """
        ),
        check_len_and_values,
        id="bug05-tfm201-list-iadd-tuple",
    ),
    pytest.param(
        module_source(
            """
            class Gate(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.register_buffer("scale", torch.full((4,), 0.5, dtype=torch.float64))

                def forward(self, x):
                    g = torch.sigmoid(self.fc(x))
                    g *= self.scale
                    return g
            """
        ),
        check_no_grad("Gate"),
        id="bug06-tfm201-dtype-promotion-output",
    ),
    pytest.param(
        module_source(
            """
            class Gate(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.out = nn.Linear(4, 2)
                    self.register_buffer("scale", torch.full((4,), 0.5, dtype=torch.float64))

                def forward(self, x):
                    g = torch.sigmoid(self.fc(x))
                    g *= self.scale
                    return self.out(g)
            """
        ),
        check_no_grad("Gate"),
        id="bug06-tfm201-dtype-promotion-into-linear",
    ),
    pytest.param(
        module_source(
            """
            class Block(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Linear(4, 4)
                    self.bias_term = nn.Linear(4, 4)

                def forward(self, x):
                    h = self.conv(x)
                    skip = h
                    h += self.bias_term(x)
                    return h + skip
            """
        ),
        forward_ones("Block"),
        id="bug17-tfm201-alias-skip",
    ),
    pytest.param(
        module_source(
            """
            class Enc(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = nn.Linear(4, 4)
                    self.pos = nn.Parameter(torch.ones(4))

                def forward(self, x):
                    h = self.proj(x)
                    feats = [h]
                    h += self.pos
                    return h, feats
            """
        ),
        check_feats,
        id="bug17-tfm201-alias-in-list",
    ),
    pytest.param(
        module_source(
            """
            class Mem(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("memory", torch.zeros(8, 4))

                def forward(self, x):
                    mem = torch.narrow(self.memory, 0, 0, x.size(0))
                    out = x + mem
                    mem += x.detach()
                    return out
            """
        ),
        check_buffer_after_forward("Mem", "memory", 2, 4),
        id="bug18-tfm201-narrow-view-of-buffer",
    ),
    pytest.param(
        module_source(
            """
            class EMA(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("avg", torch.ones(4))

                def forward(self, x):
                    avg = self.avg.mul_(0.9)
                    y = x - avg
                    avg += 0.1 * x.detach().mean(0)
                    return y
            """
        ),
        check_buffer_after_forward("EMA", "avg", 2, 4),
        id="bug18-tfm201-inplace-method-result-alias",
    ),
    pytest.param(
        module_source(
            """
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("buf", torch.zeros(2))

                def forward(self, x, acc=False):
                    y = torch.sigmoid(x)
                    if acc and (y := self.buf) is not None:
                        pass
                    total = y.sum()
                    y += 1
                    return x * total
            """
        ),
        check_buf_flag,
        id="bug19-tfm201-walrus-rebinds-to-buffer",
    ),
    pytest.param(
        module_source(
            """
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("buf", torch.zeros(2))

                def forward(self, x, mode: str = "a"):
                    y = torch.sigmoid(x)
                    match mode:
                        case "acc":
                            y = self.buf
                    total = y.sum()
                    y += 1
                    return x * total
            """
        ),
        check_buf_mode,
        id="bug19-tfm201-match-rebinds-to-buffer",
    ),
    pytest.param(
        module_source(
            """
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("buf", torch.zeros(2))

                def forward(self, x):
                    y = torch.sigmoid(x)
                    _ = [(y := self.buf) for _ in range(1)]
                    total = y.sum()
                    y += 1
                    return x * total
            """
        ),
        check_buffer_after_forward("M", "buf", 2),
        id="bug19-tfm201-comprehension-walrus-rebinds-to-buffer",
    ),
]


# ---------------------------------------------------------------------------------------------
# 7-11, 15: TFM301 register_buffer where the value is not a tensor, the name is taken, the
# attribute later holds a non-tensor, the module is not initialised yet, or the tensor is a leaf
# meant for an optimizer.


def check_reset(ns):
    model = ns["Mem"](3)
    first = model(torch.ones(3)).clone()
    model.reset()
    return first, model.state


def check_property(ns):
    model = ns["Learned"]()
    return [name for name, _ in model.named_parameters()], model(torch.ones(2))


def check_wrapper(ns):
    torch.manual_seed(0)
    base = torch.nn.Linear(4, 4)
    return ns["Masked"](base)(torch.ones(1, 4))


def check_mixin(ns):
    model = ns["Net"]()
    return type(model.mask).__name__, model.mask, len(model.blocks), model(torch.ones(1, 3))


def check_leaf_param(ns):
    model = ns["Temp"]().double()
    opt = torch.optim.SGD([model.alpha], lr=0.1)
    out = model(torch.ones(2, dtype=torch.float64))
    out.sum().backward()
    opt.step()
    return out.detach(), model.alpha.detach().clone()


BUFFER_CASES = [
    pytest.param(
        module_source(
            """
            class Grid(nn.Module):
                def __init__(self, h, w):
                    super().__init__()
                    self.coords = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")

                def forward(self, x):
                    return x + self.coords[0] + self.coords[1]
            """
        ),
        lambda ns: ns["Grid"](2, 3)(torch.zeros(2, 3)),
        id="bug07-tfm301-meshgrid-tuple",
    ),
    pytest.param(
        module_source(
            """
            class Sel(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.idx = torch.where(torch.triu(torch.ones(n, n)))

                def forward(self, x):
                    return x[self.idx]
            """
        ),
        lambda ns: ns["Sel"](3)(torch.arange(9.0).view(3, 3)),
        id="bug07-tfm301-where-one-arg",
    ),
    pytest.param(
        module_source(
            """
            class Perm(nn.Module):
                def __init__(self):
                    super().__init__()
                    t = torch.tensor([3.0, 1.0, 2.0])
                    self.order = torch.sort(t)

                def forward(self, x):
                    return x[self.order.indices]
            """
        ),
        lambda ns: ns["Perm"]()(torch.arange(3.0)),
        id="bug07-tfm301-sort-namedtuple",
    ),
    pytest.param(
        module_source(
            """
            class Mem(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.state = torch.zeros(n)
                    self.steps = 0

                def reset(self):
                    self.state, self.steps = 0, 0

                def forward(self, x):
                    self.state.add_(x)
                    return self.state
            """
        ),
        check_reset,
        id="bug08-tfm301-tuple-store-of-int-later",
    ),
    pytest.param(
        module_source(
            """
            class Mem(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.state = torch.zeros(n)

                def reset(self):
                    setattr(self, "state", 0)

                def forward(self, x):
                    self.state.add_(x)
                    return self.state
            """
        ),
        check_reset,
        id="bug08-tfm301-setattr-int-later",
    ),
    pytest.param(
        module_source(
            """
            class Base(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.scale = torch.ones(1)

                def forward(self, x):
                    return x * (self.scale if self.scale is not None else 2)


            class NoScale(Base):
                scale = None
            """
        ),
        lambda ns: (ns["Base"]()(torch.ones(2)), ns["NoScale"]()(torch.ones(2))),
        id="bug09-tfm301-subclass-class-attribute",
    ),
    pytest.param(
        module_source(
            """
            class Base(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.temperature = torch.ones(1)

                def forward(self, x):
                    return x / self.temperature


            class Learned(Base):
                @property
                def temperature(self):
                    return self._t.exp()

                @temperature.setter
                def temperature(self, value):
                    self._t = nn.Parameter(value.log())
            """
        ),
        check_property,
        id="bug09-tfm301-subclass-property",
    ),
    pytest.param(
        module_source(
            """
            class Masked(nn.Module):
                def __init__(self, base):
                    super().__init__()
                    self.base = base
                    self.weight = torch.ones(4, 4)

                def __getattr__(self, name):
                    try:
                        return super().__getattr__(name)
                    except AttributeError:
                        return getattr(self.base, name)

                def forward(self, x):
                    return x @ (self.base.weight * self.weight).T
            """
        ),
        check_wrapper,
        id="bug10-tfm301-getattr-forwarding-wrapper",
    ),
    pytest.param(
        module_source(
            """
            class ConfigMixin:
                def __init__(self, cfg=None):
                    self.cfg = cfg or {}


            class Net(ConfigMixin, nn.Module):
                def __init__(self):
                    ConfigMixin.__init__(self)
                    self.mask = torch.ones(3)
                    self.blocks = [nn.Linear(3, 3)]
                    nn.Module.__init__(self)
                    self.fc = nn.Linear(3, 3)

                def forward(self, x):
                    for block in self.blocks:
                        x = block(x)
                    return self.fc(x) * self.mask
            """
        ),
        check_mixin,
        id="bug11-tfm101-tfm301-mixin-init-before-module-init",
    ),
    pytest.param(
        module_source(
            """
            class Temp(nn.Module):
                def __init__(self):
                    super().__init__()
                    alpha = torch.zeros(1)
                    alpha.requires_grad = True
                    self.alpha = alpha

                def forward(self, x):
                    return x * self.alpha.exp()
            """
        ),
        check_leaf_param,
        id="bug15-tfm301-requires-grad-set-on-local",
    ),
]


# ---------------------------------------------------------------------------------------------
# 12-14, 16: TFM101 / TFM102 where the list is reached some other way, or already registered.


def check_keys_and_forward(cls_name, *args):
    def check(ns):
        model = ns[cls_name](*args)
        return state_keys(model), model(torch.ones(1, 4))

    return check


REGISTRATION_CASES = [
    pytest.param(
        module_source(
            """
            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [torch.nn.Linear(4, 4)]

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x
            """,
            header="from typing import TYPE_CHECKING\n\nimport torch\n\nif TYPE_CHECKING:\n"
            "    from torch.nn import ModuleList\n\n\n",
        ),
        forward_ones("Net"),
        id="bug12-tfm101-type-checking-import-reused",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = []

                    def add(m):
                        layers.append(m)

                    layers.append(nn.Linear(4, 4))
                    add(torch.relu)
                    self.layers = layers

                def forward(self, x):
                    for f in self.layers:
                        x = f(x)
                    return x
            """
        ),
        forward_ones("Net"),
        id="bug13-tfm101-local-list-filled-by-nested-function",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.blocks = [nn.Linear(4, 4) for _ in range(n)]
                    self.head = nn.Linear(4, 4)

                def __getattr__(self, name):
                    if name.startswith("block"):
                        return self.blocks[int(name[len("block"):])]
                    return super().__getattr__(name)

                def forward(self, x):
                    return self.head(self.block1(self.block0(x)))
            """
        ),
        forward_ones("Net", 2),
        id="bug14-tfm101-custom-getattr-reads-list",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(4, 4)]

                def forward(self, x):
                    for layer in self.__dict__["layers"]:
                        x = layer(x)
                    return x
            """
        ),
        forward_ones("Net"),
        id="bug14-tfm101-instance-dict-access",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.layers = [nn.Linear(4, 4) for _ in range(n)]
                    for i, layer in enumerate(self.layers):
                        self.add_module("layer%d" % i, layer)

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x
            """
        ),
        check_keys_and_forward("Net", 2),
        id="bug16-tfm101-already-registered-add-module",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.heads = {"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)}
                    for k, v in self.heads.items():
                        setattr(self, "head_" + k, v)

                def forward(self, x):
                    return self.heads["a"](x) + self.heads["b"](x)
            """
        ),
        check_keys_and_forward("Net"),
        id="bug16-tfm102-already-registered-setattr",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(4, 4), nn.ReLU()]
                    self.body = nn.Sequential(self.layers[0], self.layers[1])

                def forward(self, x):
                    return self.body(x)
            """
        ),
        check_keys_and_forward("Net"),
        id="bug16-tfm101-elements-in-sequential",
    ),
    pytest.param(
        module_source(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(4, 4), nn.Linear(4, 2)]
                    self.head = self.layers[-1]

                def forward(self, x):
                    return self.head(x)
            """
        ),
        check_keys_and_forward("Net"),
        id="bug16-tfm101-element-aliased-as-attribute",
    ),
]


ALL_CASES = CONTAINER_CASES + INPLACE_CASES + BUFFER_CASES + REGISTRATION_CASES


@pytest.mark.parametrize(("source", "check"), ALL_CASES)
def test_default_fixes_keep_working_code_working(source, check):
    before = run_check(source, check, "before")  # the case itself must be valid, working code

    result = transform(source)
    assert not result.errors, result.errors
    if result.new_source == source:
        return
    compile(result.new_source, "<after>", "exec")
    try:
        after = run_check(result.new_source, check, "after")
    except Exception as exc:  # noqa: BLE001 - any new exception is the failure being tested
        pytest.fail(f"rewritten code raises {exc!r}; the original ran fine\n--- rewritten ---\n{result.new_source}")
    assert_same(before, after)
