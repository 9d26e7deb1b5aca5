"""The deprecated-API rules (TFM501-TFM503, TFM601-TFM604): runtime proof with real torch and
parity with TorchFix.

TFM501-TFM503: each sample's before.py and after.py are run and compared.

TFM601-TFM604: every fix example of the four rules is rewritten by the tool here, then the code
before and after is executed with the same inputs and the results are compared: values, dtypes
and memory layout for the safe fixes, and the documented difference for the unsafe ones.
Property tests sweep the argument rewrites (``range``, ``qr``, ``cholesky``, ``chain_matmul``)
over many inputs, and the table in ``torchfix_mod.codemods.deprecated._deprecations`` is checked
against torch itself.

Parity: TFM601-TFM604 against TorchFix's deprecated-symbol checks (TOR001, TOR004, TOR101,
TOR103). Every example of the four rules (the fix examples' sources and the leave-alone
examples) is run through both tools: TorchFix with ``--fix`` on a copy of the files,
torchfix-mod with unsafe fixes allowed (the most either tool rewrites). Two things are compared
per example: the lines that get a finding, and the rewritten file. Where they differ,
``DIFFERENCES`` below says why; an example missing from it must give the same lines and the
same text, so a new difference fails until it is explained. The parity tests are skipped when
TorchFix is not installed (``TORCHFIX_BIN``, or ``torchfix`` on ``PATH``).

TFM604 has no TorchFix counterpart (0.7.0 has no AMP check): its examples are reported by
torchfix-mod only. The other differences:

| example | lines | text | why |
|---|---|---|---|
| TFM601-fix-0, -1 | same | differ | `torch.matrix_rank(A)`: TorchFix reports only; we rewrite (unsafe) to `torch.linalg.matrix_rank(A)` |
| TFM601-keep-4 | differ | same | `solver = torch.solve` is not a call: TorchFix looks at calls and imports only |
| TFM602-fix-0 | same | differ | TorchFix bugs: the `upper=True` cholesky fix writes the placeholder `torch.linalg.cholesky(A).mH` (the argument is lost: NameError); `torch.cholesky(s, flag)` loses `flag` (a lower factor where an upper one was asked for); `torch.qr(input=a)` becomes `torch.linalg.qr(input=a)` (TypeError: the parameter is `A`) |
| TFM602-fix-1 | differ | differ | `upper=not lower`: TorchFix crashes on the file (no finding, no fix); we pass the expression on |
| TFM602-fix-2 | same | differ | `torch.range`: TorchFix writes `torch.arange(0, 11)`, int64 where `torch.range` gave floats, and `end + step`, one element too many when `step` does not divide `end - start` (`range(0, 5, 2)` -> `arange(0, 7, 2)`); we write `torch.arange(0.0, 11.0)`, `torch.arange(0.0, 6.0, 2)` |
| TFM602-fix-3 | same | differ | `t.ger(u, v)`: both write `t.outer(u, v)`; TorchFix also adds an unused `from torch import outer` |
| TFM602-fix-4 | same | differ | `from torch import ger, qr`: TorchFix writes `torch.linalg.qr(...)` in a file without `import torch` (NameError) and `from torch import outer, ger, qr`; we add `import torch` and drop the old import |
| TFM602-fix-5 | same | differ | `nn.UpsamplingBilinear2d`/`Nearest2d`: TorchFix reports only; we rewrite (unsafe) to `nn.Upsample(..., mode=...)` |
| TFM602-fix-6 | same | differ | `torch.chain_matmul(*mats)`: TorchFix writes `multi_dot([mats])`, a list holding the list (TypeError); we write `multi_dot([*mats])` (unsafe) |
| TFM602-fix-7 | same | differ | `pytree._register_pytree_node`: TorchFix also adds `from torch.utils._ import pytree` (ModuleNotFoundError); we only rename the call (unsafe) |
| TFM602-keep-2 | same | differ | `torch.range(0, n)`: TorchFix writes `torch.arange(0, n + 1)` (int64, and wrong for a float `n`); we report only |
| TFM602-keep-4 | same | differ | `torch.qr(a, some=reduced)`: TorchFix drops the argument (`torch.linalg.qr(a)`, wrong when `reduced` is False); we report only |
| TFM602-keep-9 | differ | same | `norm = torch.norm` is not a call: TorchFix looks at calls and imports only |
| TFM603-fix-0 | differ | differ | `from functorch import vmap, grad as g`: both move the import to `torch.func`; TorchFix also reports the uses and rewrites `g(f)` to `g.torch.func.grad(f)` (AttributeError); we report the import line only, its uses need no change |
| TFM603-fix-1 | differ | differ | `fn = functorch.vmap` is not a call: TorchFix leaves it; we rewrite it too and drop the unused `import functorch` |
| TFM603-fix-2 | same | differ | `ft.hessian(f)` with `import functorch as ft`: TorchFix writes `ft.torch.func.hessian(f)`, which runs only because the functorch package happens to import torch; we write `torch.func.hessian(f)` and add `import torch` |
| TFM603-fix-3 | same | differ | `from functorch import make_functional, vmap`: TorchFix reports `vmap` without a fix; we split the line (and report `make_functional`, which TorchFix's table lacks) |
| TFM603-fix-4 | differ | same | function-level `from functorch import vmap`: TorchFix also reports the use `vmap(f)` |
| TFM603-keep-0 | differ | same | `make_functional` is not in TorchFix's table |
| TFM601-keep-8, TFM602-keep-14, -15, TFM603-keep-5, -6 | differ | same / differ / differ / differ / differ | code kept for older PyTorch (a `hasattr`/version `if`, an `except ImportError` fallback, an import tried first under `try` with the new one in `except ImportError`): TorchFix reports and rewrites it (`from functorch import vmap` becomes `from torch.func import vmap`, which the old versions this code serves lack; the `torch<2.2` branch gets `register_pytree_node` and the broken import); we leave it alone |
"""

from __future__ import annotations

import inspect
import itertools
import re
import shutil
import subprocess
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import ALL_RULES, transform
from rule_helpers import load, torchfix_bin
from torchfix_mod.codemods.deprecated._deprecations import AUTOCAST_PARAMETERS, DEPRECATIONS, REMOVED


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


def test_tfm503_an_argument_broken_over_lines_keeps_its_parentheses_and_its_values():
    """Seen on real code: `Variable(x\n.float())` lost the parentheses its line breaks needed,
    and the output did not compile. The fix keeps a pair; before and after give the same
    tensors, cut from the graph."""
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM503")
    case = next(c for c in rule.fixes if ".mul(2))" in c.before)
    result = transform_source(case.before, Settings(rules=(rule,)))
    assert result.new_source == case.after and not result.errors
    before, after = {}, {}
    quietly(exec, compile(case.before, "before.py", "exec"), before)
    exec(compile(case.after, "after.py", "exec"), after)
    w = torch.randn(5, requires_grad=True)
    x, y = w * 3, np.arange(5)
    (ib, lb), (ia, la) = quietly(before["batch"], x, y), after["batch"](x, y)
    assert torch.equal(ib, ia) and torch.equal(lb, la) and la.dtype == torch.long
    assert ia.grad_fn is None and ib.grad_fn is None and not ia.requires_grad


class _OldTorchModule:
    """A module as a PyTorch release before 1.8 had it: no `register_full_backward_hook`."""

    def __init__(self) -> None:
        self.hooks = []

    def register_backward_hook(self, hook):
        self.hooks.append(hook)
        return "handle"


@pytest.mark.parametrize("marker", ["hasattr(model", "FULL_HOOKS =", "def new_hooks", "except AttributeError"])
def test_code_kept_for_old_releases_is_left_alone_and_still_runs_there(marker):
    """A version gate exists to call the old API where the new one is missing: the rule leaves
    both branches alone (even with --unsafe-fixes), so the code still runs on the old release,
    where the rewrite the rule makes elsewhere would raise AttributeError."""
    from torchfix_mod.engine import Settings, transform_source

    rule = next(r for r in ALL_RULES if r.code == "TFM502")
    source = next(c.source for c in rule.keeps if marker in c.source)
    result = transform_source(source, Settings(rules=(rule,), unsafe_fixes=True))
    assert result.new_source == source and not result.diagnostics
    old = _OldTorchModule()
    namespace: dict = {"__name__": "gated"}
    exec(compile(source, "gated.py", "exec"), namespace)
    if "FULL_HOOKS" in namespace:
        namespace["FULL_HOOKS"] = False  # as evaluated on the old release
    if "new_hooks" in namespace:
        namespace["new_hooks"] = lambda: hasattr(_OldTorchModule, "register_full_backward_hook")
    assert namespace["attach"](old, print) == "handle" and old.hooks == [print]
    rewritten = source.replace("register_backward_hook", "register_full_backward_hook")
    naive: dict = {"__name__": "gated"}
    exec(compile(rewritten, "naive.py", "exec"), naive)
    if "FULL_HOOKS" in naive:
        naive["FULL_HOOKS"] = False
    if "new_hooks" in naive:
        naive["new_hooks"] = lambda: False
    with pytest.raises(AttributeError):
        naive["attach"](_OldTorchModule(), print)


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


# -- TFM601-TFM604 -------------------------------------------------------------------

RULES = {rule.code: rule for rule in ALL_RULES if rule.code.startswith("TFM6")}


def case(example_id: str):
    code, _, index = example_id.split("-")
    return RULES[code].fixes[int(index)]


def rewritten(example_id: str) -> tuple[str, str]:
    """The example's source and what the tool makes of it (its rule alone)."""
    fix = case(example_id)
    code = example_id.split("-")[0]
    result = transform(fix.before, rules=[RULES[code]], unsafe=fix.unsafe)
    assert not result.errors
    assert result.new_source == fix.after
    return fix.before, result.new_source


def run(source: str, **inputs) -> tuple[dict, list[warnings.WarningMessage]]:
    """Executes ``source`` with ``inputs`` bound; its namespace and every warning it gave."""
    namespace = dict(inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(source, "<example>", "exec"), namespace)
    return namespace, list(caught)


def deprecation_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "deprecated" in str(w.message).lower()]


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride() and torch.equal(a, b)


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and same_tensor(a, b)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def spd(n: int, batch: tuple[int, ...] = (), dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, n, generator=g, dtype=dtype)
    return x @ x.mH + n * torch.eye(n, dtype=dtype)


COVERED: set[str] = set()


def covers(*ids: str):
    COVERED.update(ids)
    return lambda fn: fn


# -- TFM601 -------------------------------------------------------------------------


def old_matrix_rank(a: torch.Tensor, symmetric: bool = False) -> torch.Tensor:
    """``torch.matrix_rank`` as documented before its removal: the number of singular values
    (eigenvalue magnitudes when symmetric) above ``σ_max · max(rows, cols) · eps``."""
    s = torch.linalg.eigvalsh(a).abs() if symmetric else torch.linalg.svdvals(a)
    tol = s.max() * max(a.shape) * torch.finfo(a.dtype).eps
    return (s > tol).sum()


@covers("TFM601-fix-0", "TFM601-fix-1")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tfm601_matrix_rank_keeps_the_documented_rule(dtype):
    before, after = rewritten("TFM601-fix-0")
    g = torch.Generator().manual_seed(1)
    for rows, cols, rank in [(6, 6, 3), (8, 5, 5), (5, 8, 2), (7, 7, 7), (4, 4, 0)]:
        a = torch.randn(rows, rank, generator=g, dtype=dtype) @ torch.randn(rank, cols, generator=g, dtype=dtype)
        b = a[:, :1] @ a[:, :1].mT if rank else torch.zeros(4, 4, dtype=dtype)
        with pytest.raises(RuntimeError, match="removed"):
            run(before, a=a, b=b)
        ns, _ = run(after, a=a, b=b)
        assert torch.equal(ns["rank"], old_matrix_rank(a)), (rows, cols, rank)
        assert ns["rank"] == rank
        assert torch.equal(ns["sym"], old_matrix_rank(b, symmetric=True))

    before, after = rewritten("TFM601-fix-1")
    m = torch.randn(5, 2, generator=g, dtype=dtype) @ torch.randn(2, 5, generator=g, dtype=dtype)
    with pytest.raises(RuntimeError, match="removed"):
        run(before)[0]["rank"](m)
    assert run(after)[0]["rank"](m) == 2


def test_tfm601_names_raise_on_current_torch():
    for entry in DEPRECATIONS:
        if entry.rule == REMOVED:
            fn = getattr(torch, entry.short)
            with pytest.raises(RuntimeError, match="removed"):
                fn(torch.eye(2), torch.eye(2)) if entry.short in ("solve", "lstsq") else fn(torch.eye(2))


# -- TFM602 -------------------------------------------------------------------------


@covers("TFM602-fix-0", "TFM602-fix-1")
@pytest.mark.parametrize("flag", [True, False])
def test_tfm602_qr_and_cholesky_are_identical(flag):
    before, after = rewritten("TFM602-fix-0")
    x = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    inputs = dict(a=torch.randn(5, 3, dtype=torch.float64), s=spd(4), x=x, eps=0.1, n=4, flag=flag)
    old, caught_old = run(before, **inputs)
    new, caught_new = run(after, **inputs)
    for name in ("q", "r", "q2", "r2", "q3", "r3", "l", "u", "u2"):
        assert same(old[name], new[name]), name
    assert old["q"].shape == (5, 5), "some=False is the complete QR"
    assert old["q2"].shape == (5, 3)
    assert not deprecation_warnings(caught_new)  # (the old side warns once per process)
    # the argument expression is the one written, not a placeholder
    assert "torch.linalg.cholesky(x @ x.mT + eps * torch.eye(n), upper=True)" in after

    before, after = rewritten("TFM602-fix-1")
    old, _ = run(before, s=spd(4), lower=not flag)
    new, _ = run(after, s=spd(4), lower=not flag)
    assert same(old["u"], new["u"]) and torch.equal(old["u"], old["u"].triu()) == flag


@covers("TFM602-fix-2")
@pytest.mark.parametrize("default", [torch.float32, torch.float64])
def test_tfm602_range_keeps_values_and_dtype(default):
    before, after = rewritten("TFM602-fix-2")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default)
    try:
        old, caught = run(before, dev="cpu")
        new, caught_new = run(after, dev="cpu")
    finally:
        torch.set_default_dtype(previous)
    for name in ("a", "b", "c", "d"):
        assert same(old[name], new[name]), name
    assert old["a"].dtype == default and old["c"].dtype == torch.long
    assert not deprecation_warnings(caught_new)


def test_tfm602_range_sweep():
    """``torch.range(a, b, s)`` against the tool's rewrite for every small integer triple,
    with and without ``dtype=``; integer-dtype ``arange(a, b + s)`` would differ."""
    rule = RULES["TFM602"]
    lines, checked = [], []
    for start, end, step in itertools.product(range(-4, 5), range(-4, 5), (-3, -2, -1, 1, 2, 3)):
        if (end - start) * step < 0:
            continue  # torch.range raises for these
        for dtype in ("", ", dtype=torch.int32", ", dtype=torch.float64"):
            name = f"v{len(checked)}"
            lines.append(f"{name} = torch.range({start}, {end}, {step}{dtype})")
            checked.append(name)
    source = "import torch\n" + "\n".join(lines) + "\n"
    result = transform(source, rules=[rule])
    assert "torch.range" not in result.new_source
    old, _ = run(source)
    new, _ = run(result.new_source)
    for name in checked:
        assert same(old[name], new[name]), name
    assert torch.arange(0, 4).dtype != torch.range(0, 3).dtype  # why integers are written as floats


def test_tfm602_qr_cholesky_sweep():
    g = torch.Generator().manual_seed(3)
    for shape in [(5, 3), (3, 5), (4, 4), (2, 6, 3)]:
        for dtype in (torch.float32, torch.float64, torch.complex64):
            a = torch.randn(*shape, generator=g, dtype=dtype)
            for some, mode in ((True, "reduced"), (False, "complete")):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    old = torch.qr(a, some=some)
                new = torch.linalg.qr(a, mode=mode)
                assert same(tuple(old), tuple(new)), (shape, dtype, some)
    for batch in [(), (3,), (2, 2)]:
        for dtype in (torch.float32, torch.float64, torch.complex128):
            s = spd(5, batch, dtype)
            for upper in (False, True):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    old = torch.cholesky(s, upper=upper)
                assert same(old, torch.linalg.cholesky(s, upper=upper)), (batch, dtype, upper)
                if upper:  # `.mH` of the lower factor: close, in another layout (and not always
                    # bit-identical: LAPACK's upper and lower algorithms may round differently)
                    alternative = torch.linalg.cholesky(s).mH
                    assert torch.allclose(old, alternative) and old.stride() != alternative.stride()


@covers("TFM602-fix-3", "TFM602-fix-6")
def test_tfm602_chain_matmul_and_ger():
    before, after = rewritten("TFM602-fix-3")
    g = torch.Generator().manual_seed(4)
    inputs = dict(
        a=torch.randn(3, 4, generator=g), b=torch.randn(4, 6, generator=g), c=torch.randn(6, 2, generator=g),
        u=torch.randn(3, generator=g), v=torch.arange(4),
    )
    old, caught = run(before, **inputs)
    new, caught_new = run(after, **inputs)
    assert same(old["y"], new["y"]) and same(old["z"], new["z"])
    assert not deprecation_warnings(caught_new)

    before, after = rewritten("TFM602-fix-6")
    for count in (2, 3, 5):
        chain = [torch.randn(2 + i, 3 + i, generator=g) for i in range(count)]
        assert same(run(before, mats=chain)[0]["y"], run(after, mats=chain)[0]["y"])
    # why `*mats` is unsafe: one matrix
    single = [torch.randn(3, 3, generator=g)]
    assert torch.equal(run(before, mats=single)[0]["y"], single[0])
    with pytest.raises(RuntimeError, match="at least 2"):
        run(after, mats=single)


def test_tfm602_chain_matmul_sweep():
    g = torch.Generator().manual_seed(5)
    for count in range(2, 7):
        dims = torch.randint(1, 7, (count + 1,), generator=g).tolist()
        mats = [torch.randn(dims[i], dims[i + 1], generator=g, dtype=torch.float64) for i in range(count)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old = torch.chain_matmul(*mats)
        assert same(old, torch.linalg.multi_dot(mats)), dims


@covers("TFM602-fix-4")
def test_tfm602_from_import_rewrite():
    before, after = rewritten("TFM602-fix-4")
    g = torch.Generator().manual_seed(6)
    a, u, v = torch.randn(5, 3, generator=g), torch.randn(3, generator=g), torch.randn(4, generator=g)
    old, _ = run(before)
    new, _ = run(after)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = new["f"](a, u, v)
    assert same(old["f"](a, u, v), result)
    assert not deprecation_warnings(caught)


@covers("TFM602-fix-5")
def test_tfm602_upsampling_same_forward_other_class():
    before, after = rewritten("TFM602-fix-5")
    old, _ = run(before)
    new, _ = run(after)
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(7))
    for name in ("up", "near"):
        assert same(old[name](x), new[name](x)), name
        assert type(new[name]) is nn.Upsample and type(old[name]) is not nn.Upsample  # why unsafe
        assert old[name].state_dict() == new[name].state_dict() == {}


@covers("TFM602-fix-7")
def test_tfm602_register_pytree_node():
    before, after = rewritten("TFM602-fix-7")
    import torch.utils._pytree as pytree

    def inputs():
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        return dict(Point=Point, flatten=lambda p: ([p.x, p.y], None), unflatten=lambda values, _: Point(*values))

    for source in (before, after):
        env = inputs()
        ns, caught = run(source, **env)
        leaves, spec = pytree.tree_flatten(env["Point"](1, 2))
        assert leaves == [1, 2]
        assert pytree.tree_unflatten([3, 4], spec).y == 4
        assert bool(deprecation_warnings(caught)) == (source is before)
    # why unsafe: registering a type twice
    env = inputs()
    run(before, **env)
    run(before, **env)
    env = inputs()
    run(after, **env)
    with pytest.raises(ValueError, match="already registered"):
        run(after, **env)


# -- TFM603 -------------------------------------------------------------------------


def square_sum(w: torch.Tensor) -> torch.Tensor:
    return (w.sin() * w).sum()


@covers("TFM603-fix-0", "TFM603-fix-1", "TFM603-fix-2", "TFM603-fix-3", "TFM603-fix-4")
@pytest.mark.parametrize("example", ["TFM603-fix-0", "TFM603-fix-1", "TFM603-fix-2", "TFM603-fix-3", "TFM603-fix-4"])
def test_tfm603_torch_func_gives_the_same_results(example):
    pytest.importorskip("functorch")
    before, after = rewritten(example)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    inputs = dict(f=square_sum, x=x, model=model)
    old, caught_old = run(before, **inputs)
    new, caught_new = run(after, **inputs)

    def results(ns):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if "per_sample" in ns:
                out = ns["per_sample"](square_sum, x)
            elif "batched" in ns:
                out = ns["batched"](lambda row: row * 2, x)
            elif "jac" in ns:
                out = (ns["jac"], ns["fn"](square_sum)(x))
            elif "h" in ns:
                out = ns["h"]
            else:
                out = tuple(ns["params"])
        return out, deprecation_warnings(caught)

    (out_old, warned_old), (out_new, warned_new) = results(old), results(new)
    assert same(out_old, out_new)
    if example != "TFM603-fix-3":  # make_functional stays (reported only)
        assert deprecation_warnings(caught_old) + warned_old, "functorch warns"
        assert not deprecation_warnings(caught_new) + warned_new


def test_tfm603_functorch_signatures_match_torch_func():
    functorch = pytest.importorskip("functorch")
    import torch.func

    for entry in DEPRECATIONS:
        if entry.name.startswith("functorch.") and entry.rewrite == "rename":
            old = inspect.signature(getattr(functorch, entry.short)).parameters
            new = inspect.signature(getattr(torch.func, entry.short)).parameters
            assert [(p.name, p.kind, p.default) for p in old.values()] == [
                (p.name, p.kind, p.default) for p in new.values()
            ], entry.name


def test_tfm603_torch_func_side_alone():
    """Without functorch installed, the rewritten side still runs: ``import torch`` is enough
    for ``torch.func``."""
    _, after = rewritten("TFM603-fix-2")
    ns, _ = run(after.replace("import functorch as ft\n", ""), f=square_sum, x=torch.randn(4, dtype=torch.float64))
    assert ns["h"].shape == (4, 4)


# -- TFM604 -------------------------------------------------------------------------


def scaler_state(scaler) -> dict:
    """Everything a GradScaler holds (without CUDA, a "cuda" scaler is disabled and holds
    only its device and the flag)."""
    return {**vars(scaler), "state_dict": scaler.state_dict(), "scale": scaler.get_scale()}


class Probe(nn.Module):
    """A linear layer that records the autocast state it runs under."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 4)
        self.seen = []

    def forward(self, x):
        self.seen.append(
            (
                torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"),
                torch.is_autocast_cache_enabled(),
            )
        )
        return self.fc(x)


@covers("TFM604-fix-0")
def test_tfm604_autocast_and_grad_scaler():
    before, after = rewritten("TFM604-fix-0")
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(9))
    outputs = []
    for source in (before, after):
        ns, caught = run(source, use_amp=True, cache=False)
        probe = Probe()
        with warnings.catch_warnings(record=True) as caught_step:
            warnings.simplefilter("always")
            y = ns["step"](probe, x)
        outputs.append((y, probe.seen, scaler_state(ns["scaler"]), scaler_state(ns["big"])))
        warned = deprecation_warnings(caught) + deprecation_warnings(caught_step)
        assert bool(warned) == (source is before)
    (y_old, seen_old, s_old, b_old), (y_new, seen_new, s_new, b_new) = outputs
    assert same(y_old, y_new) and y_new.dtype == torch.bfloat16, "cpu autocast ran in bfloat16"
    assert seen_old == seen_new
    assert s_old == s_new and b_old == b_new
    assert s_new["_device"] == "cuda"


def test_tfm604_enabled_grad_scaler_keeps_every_setting():
    """A cpu scaler is enabled without CUDA: all its positional settings arrive."""
    source = "import torch\n\nscaler = torch.cpu.amp.GradScaler(2.0**10, 3.0, 0.25, 7, True)\n"
    after = transform(source, rules=[RULES["TFM604"]]).new_source
    assert 'torch.amp.GradScaler("cpu", 2.0**10, 3.0, 0.25, 7, True)' in after
    old, new = scaler_state(run(source)[0]["scaler"]), scaler_state(run(after)[0]["scaler"])
    assert old == new
    assert new["_enabled"] and new["_init_scale"] == 2.0**10 and new["_growth_factor"] == 3.0
    assert new["_backoff_factor"] == 0.25 and new["_growth_interval"] == 7


@covers("TFM604-fix-1")
def test_tfm604_from_import_and_decorator():
    before, after = rewritten("TFM604-fix-1")
    x = torch.randn(3)
    results = []
    for source in (before, after):
        ns, caught = run(source)
        with warnings.catch_warnings(record=True) as caught_call:
            warnings.simplefilter("always")
            out = ns["forward"](x)
        results.append((out, scaler_state(ns["scaler"])))
        assert bool(deprecation_warnings(caught) + deprecation_warnings(caught_call)) == (source is before)
    assert same(results[0][0], results[1][0]) and results[0][1] == results[1][1]


@covers("TFM604-fix-2")
def test_tfm604_custom_fwd_bwd():
    before, after = rewritten("TFM604-fix-2")
    results = []
    for source in (before, after):
        ns, caught = run(source)
        x = torch.arange(3.0, requires_grad=True)
        y = ns["Scale"].apply(x)
        y.sum().backward()
        results.append((y.detach(), x.grad))
        assert bool(deprecation_warnings(caught)) == (source is before)
    assert same(results[0], results[1])


@covers("TFM604-fix-3")
def test_tfm604_global_autocast_dtype_is_why_the_fix_is_unsafe():
    before, after = rewritten("TFM604-fix-3")
    seen = []
    previous = torch.get_autocast_dtype("cuda")
    try:
        for source in (before, after):
            run(source, f=lambda _: seen.append(torch.get_autocast_dtype("cuda")), x=None)
            torch.set_autocast_dtype("cuda", previous)
    finally:
        torch.set_autocast_dtype("cuda", previous)
    assert seen == [torch.float16, torch.bfloat16]


def test_tfm604_signatures():
    """The positional order the rewrites rely on, read off torch."""
    old = list(inspect.signature(torch.cuda.amp.autocast.__init__).parameters)[1:]
    assert tuple(old) == AUTOCAST_PARAMETERS
    assert list(inspect.signature(torch.cpu.amp.autocast.__init__).parameters)[1:] == old
    new = list(inspect.signature(torch.amp.autocast.__init__).parameters)[1:]
    assert new[0] == "device_type" and new[1:] != old  # positional order differs: keywords are written
    for scaler in (torch.cuda.amp.GradScaler, torch.cpu.amp.GradScaler):
        old = list(inspect.signature(scaler.__init__).parameters)[1:]
        new = list(inspect.signature(torch.amp.GradScaler.__init__).parameters)[1:]
        assert new == ["device", *old]  # positional arguments shift by one
    for name in ("custom_fwd", "custom_bwd"):
        params = inspect.signature(getattr(torch.amp, name)).parameters
        assert params["device_type"].kind is inspect.Parameter.KEYWORD_ONLY


def test_tfm604_cuda_autocast_constructs_without_cuda():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for enabled in (True, False):
            old = torch.cuda.amp.autocast(enabled=enabled)
            new = torch.amp.autocast("cuda", enabled=enabled)
            assert (old.device, old.fast_dtype, old._cache_enabled) == (new.device, new.fast_dtype, new._cache_enabled)
            with old, new:
                pass


# -- the table ------------------------------------------------------------------------


def resolve(dotted: str):
    """What ``from a.b import c`` binds for ``a.b.c`` (the qualified names of the table are
    import spellings)."""
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_table_names_exist_in_torch():
    pytest.importorskip("functorch")
    for entry in DEPRECATIONS:
        obj = resolve(entry.name)
        for alias in entry.aliases:
            assert resolve(alias) is obj, alias
        resolve(entry.target)


def test_every_fix_example_has_a_runtime_test():
    ids = {f"{code}-fix-{i}" for code, rule in RULES.items() for i in range(len(rule.fixes))}
    assert ids == COVERED


# -- parity with TorchFix -------------------------------------------------------------

PARITY_RULES = [rule for rule in ALL_RULES if rule.code.startswith("TFM6")]
TORCHFIX_CODES = "TOR001,TOR004,TOR101,TOR103"
FINDING = re.compile(r"^(?P<file>[^:\s]+\.py):(?P<line>\d+):(?P<col>\d+): (?P<code>TOR\d+)")


def examples() -> dict[str, str]:
    """Example id (as in test_rule_examples) -> source."""
    found = {}
    for rule in PARITY_RULES:
        for i, case in enumerate(rule.fixes):
            found[f"{rule.code}-fix-{i}"] = case.before
        for i, case in enumerate(rule.keeps):
            found[f"{rule.code}-keep-{i}"] = case.source
    return found


@lru_cache(maxsize=1)
def compare_all() -> dict[str, tuple[set[int], set[int], str, str, str]]:
    """Example id -> (TorchFix's finding lines, ours, TorchFix's text, ours, the source)."""
    binary = torchfix_bin()
    assert binary is not None
    workdir = Path(tempfile.mkdtemp(prefix="tfm6-parity-"))
    sources = examples()
    for example, source in sources.items():
        (workdir / f"{example}.py").write_text(source, encoding="utf-8")
    done = subprocess.run(
        [binary, "--select", TORCHFIX_CODES, "--fix", "--jobs", "1", "."],
        cwd=workdir, capture_output=True, text=True, timeout=600,
    )
    lines: dict[str, set[int]] = {example: set() for example in sources}
    for row in done.stdout.splitlines():
        match = FINDING.match(row)
        if match:
            lines[Path(match["file"]).stem].add(int(match["line"]))
    result = {}
    for example, source in sources.items():
        ours = transform(source, rules=PARITY_RULES, unsafe=True)
        assert not ours.errors, example
        our_lines = {d.line for d in ours.diagnostics}
        theirs = (workdir / f"{example}.py").read_text(encoding="utf-8")
        result[example] = (lines[example], our_lines, theirs, ours.new_source, source)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


# example -> (same finding lines, same rewritten text), as in the table above
DIFFERENCES: dict[str, tuple[bool, bool]] = {
    "TFM601-fix-0": (True, False),
    "TFM601-fix-1": (True, False),
    "TFM601-keep-4": (False, True),
    "TFM602-fix-0": (True, False),
    "TFM602-fix-1": (False, False),
    "TFM602-fix-2": (True, False),
    "TFM602-fix-3": (True, False),
    "TFM602-fix-4": (True, False),
    "TFM602-fix-5": (True, False),
    "TFM602-fix-6": (True, False),
    "TFM602-fix-7": (True, False),
    "TFM602-keep-2": (True, False),
    "TFM602-keep-4": (True, False),
    "TFM602-keep-9": (False, True),
    "TFM603-fix-0": (False, False),
    "TFM603-fix-1": (False, False),
    "TFM603-fix-2": (True, False),
    "TFM603-fix-3": (True, False),
    "TFM603-fix-4": (False, True),
    "TFM603-keep-0": (False, True),
    "TFM601-keep-8": (False, True),
    "TFM602-keep-14": (False, False),
    "TFM602-keep-15": (False, False),
    "TFM603-keep-5": (False, False),
    "TFM603-keep-6": (False, False),
}

needs_torchfix = pytest.mark.skipif(torchfix_bin() is None, reason="TorchFix is not installed")


@needs_torchfix
def test_differences_are_the_documented_ones():
    found = {}
    for example, (tf_lines, our_lines, tf_text, our_text, _) in compare_all().items():
        verdict = (tf_lines == our_lines, tf_text == our_text)
        if example.startswith("TFM604"):  # not in TorchFix
            assert not tf_lines and tf_text == examples()[example], example
            continue
        if verdict != (True, True):
            found[example] = verdict
    assert found == DIFFERENCES


# -- the TorchFix rewrites the table calls broken, executed -------------------------------

BROKEN = [
    # example, what the rewritten file needs, the error TorchFix's text raises
    ("TFM602-fix-0", "cholesky", TypeError),  # `torch.linalg.qr(input=a)` (and see below)
    ("TFM602-fix-4", "from_import", NameError),  # `torch.linalg.qr` without `import torch`
    ("TFM602-fix-6", "star", TypeError),  # `multi_dot([mats])`
    ("TFM602-fix-7", "pytree", ModuleNotFoundError),  # `from torch.utils._ import pytree`
    ("TFM603-fix-0", "functorch_alias", AttributeError),  # `g.torch.func.grad(f)`
]


def _inputs(kind: str) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, dtype=torch.float64, generator=g)
    if kind == "cholesky":
        return dict(a=torch.randn(5, 3, dtype=torch.float64), s=spd(4), x=x, eps=0.1, n=4, flag=True)
    if kind == "star":
        return dict(mats=[torch.randn(2, 3), torch.randn(3, 4)])
    if kind == "pytree":
        class Point:
            def __init__(self, a, b):
                self.a, self.b = a, b

        return dict(Point=Point, flatten=lambda p: ([p.a, p.b], None), unflatten=lambda v, _: Point(*v))
    return dict(f=square_sum, x=torch.randn(3, 4, dtype=torch.float64))


def _call(namespace: dict, kind: str):
    import torch

    if kind == "from_import":
        return namespace["f"](torch.randn(5, 3), torch.randn(3), torch.randn(4))
    if "per_sample" in namespace:
        return namespace["per_sample"](namespace["f"], namespace["x"])
    return None


@needs_torchfix
@pytest.mark.parametrize(("example", "kind", "error"), BROKEN)
def test_torchfix_output_fails_where_ours_runs(example, kind, error):
    pytest.importorskip("functorch")
    _, _, theirs, ours, _ = compare_all()[example]
    namespace, _ = run(ours, **_inputs(kind))
    _call(namespace, kind)
    with pytest.raises(error):
        namespace, _ = run(theirs, **_inputs(kind))
        _call(namespace, kind)


@needs_torchfix
def test_torchfix_range_changes_dtype_and_length():
    import torch

    source = examples()["TFM602-fix-2"]
    _, _, theirs, ours, _ = compare_all()["TFM602-fix-2"]
    old, _ = run(source, dev="cpu")
    new, _ = run(ours, dev="cpu")
    bad, _ = run(theirs, dev="cpu")
    assert all(same(old[k], new[k]) for k in "abcd")
    assert bad["a"].dtype == torch.int64 != old["a"].dtype
    assert bad["d"].tolist() == [0, 2, 4, 6] and old["d"].tolist() == [0.0, 2.0, 4.0]


@needs_torchfix
def test_torchfix_cholesky_loses_the_argument():
    """The placeholder bug, spelled out: our rewrite keeps the expression and the flag."""
    _, _, theirs, ours, _ = compare_all()["TFM602-fix-0"]
    assert "torch.linalg.cholesky(A).mH" in theirs and "torch.linalg.cholesky(s)\n" in theirs.split("u2 = ")[1]
    assert "torch.linalg.cholesky(x @ x.mT + eps * torch.eye(n), upper=True)" in ours
    assert "torch.linalg.cholesky(s, upper=flag)" in ours
    line = next(row for row in theirs.splitlines() if row.startswith("u = "))
    with pytest.raises(NameError, match="'A'"):
        run("import torch\n" + line + "\n", **_inputs("cholesky"))
    line = next(row for row in ours.splitlines() if row.startswith("u = "))
    assert run("import torch\n" + line + "\n", **_inputs("cholesky"))[0]["u"].shape == (4, 4)
