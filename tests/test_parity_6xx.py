"""TFM601-TFM604 against TorchFix's deprecated-symbol checks (TOR001, TOR004, TOR101, TOR103).

Every example of the four rules (the fix examples' sources and the leave-alone examples) is
run through both tools: TorchFix with ``--fix`` on a copy of the files, torchfix-mod with
unsafe fixes allowed (the most either tool rewrites). Two things are compared per example:
the lines that get a finding, and the rewritten file. Where they differ, ``DIFFERENCES``
below says why; an example missing from it must give the same lines and the same text, so a
new difference fails until it is explained. Skipped when TorchFix is not installed
(``TORCHFIX_BIN``, or ``torchfix`` on ``PATH``).

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
| TFM601-keep-8, TFM602-keep-14, TFM603-keep-5, -6 | differ | same / differ / differ / differ | code kept for older PyTorch (a `hasattr`/version `if`, an `except ImportError` fallback, an import tried first under `try` with the new one in `except ImportError`): TorchFix reports and rewrites it (`from functorch import vmap` becomes `from torch.func import vmap`, which the old versions this code serves lack; the `torch<2.2` branch gets `register_pytree_node` and the broken import); we leave it alone |
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import ALL_RULES, transform

RULES = [rule for rule in ALL_RULES if rule.code.startswith("TFM6")]
TORCHFIX_CODES = "TOR001,TOR004,TOR101,TOR103"
FINDING = re.compile(r"^(?P<file>[^:\s]+\.py):(?P<line>\d+):(?P<col>\d+): (?P<code>TOR\d+)")


def torchfix_bin() -> str | None:
    for candidate in (os.environ.get("TORCHFIX_BIN"), shutil.which("torchfix")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def examples() -> dict[str, str]:
    """Example id (as in test_rule_examples) -> source."""
    found = {}
    for rule in RULES:
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
        ours = transform(source, rules=RULES, unsafe=True)
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

    from test_deprecated import spd, square_sum

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
    from test_deprecated import run

    _, _, theirs, ours, _ = compare_all()[example]
    namespace, _ = run(ours, **_inputs(kind))
    _call(namespace, kind)
    with pytest.raises(error):
        namespace, _ = run(theirs, **_inputs(kind))
        _call(namespace, kind)


@needs_torchfix
def test_torchfix_range_changes_dtype_and_length():
    import torch

    from test_deprecated import run, same

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
    from test_deprecated import run

    assert "torch.linalg.cholesky(A).mH" in theirs and "torch.linalg.cholesky(s)\n" in theirs.split("u2 = ")[1]
    assert "torch.linalg.cholesky(x @ x.mT + eps * torch.eye(n), upper=True)" in ours
    assert "torch.linalg.cholesky(s, upper=flag)" in ours
    line = next(row for row in theirs.splitlines() if row.startswith("u = "))
    with pytest.raises(NameError, match="'A'"):
        run("import torch\n" + line + "\n", **_inputs("cholesky"))
    line = next(row for row in ours.splitlines() if row.startswith("u = "))
    assert run("import torch\n" + line + "\n", **_inputs("cholesky"))[0]["u"].shape == (4, 4)
