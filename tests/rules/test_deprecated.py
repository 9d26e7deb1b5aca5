"""Runtime proof with real torch for the deprecated-API rules (TFM601-TFM604).

Every fix example of the four rules is rewritten by the tool here, then the code before and
after is executed with the same inputs and the results are compared: values, dtypes and
memory layout for the safe fixes, and the documented difference for the unsafe ones. Property
tests sweep the argument rewrites (``range``, ``qr``, ``cholesky``, ``chain_matmul``) over
many inputs, and the table in ``torchfix_mod.codemods.deprecated._deprecations`` is checked against torch itself.
"""

from __future__ import annotations

import inspect
import itertools
import warnings

import pytest
import torch
import torch.nn as nn

from conftest import ALL_RULES, transform
from torchfix_mod.codemods.deprecated._deprecations import AUTOCAST_PARAMETERS, DEPRECATIONS, REMOVED

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
