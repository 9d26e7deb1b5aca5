"""TFM601: calls and imports of torch functions PyTorch has removed (``torch.solve``, ...)."""

from __future__ import annotations

from torchfix_mod.codemods.deprecated._deprecated_api import DeprecatedApiRule, documented
from torchfix_mod.codemods.deprecated._deprecations import REMOVED, for_rule
from torchfix_mod.rule import Applicability, FixCase, KeepCase


@documented
class RemovedFunctionRule(DeprecatedApiRule):
    """
    ## What it does
    Finds calls, imports and other references of the linear-algebra functions PyTorch
    deprecated in 1.9 and has since removed: `torch.solve`, `torch.symeig`,
    `torch.matrix_rank`, `torch.lstsq` and `torch.eig`, in any import spelling
    (`import torch as t; t.solve`, `from torch import solve`). The message names the
    `torch.linalg` replacement and what changed in it.

    ## Why is this bad?
    The names still exist, but only to raise `RuntimeError` when called: the code fails
    on every PyTorch release since the removal.

    ## Example
    ```python
    x, _ = torch.solve(b, A)
    rank = torch.matrix_rank(M)
    ```

    ## Use instead
    ```python
    x = torch.linalg.solve(A, b)
    rank = torch.linalg.matrix_rank(M)
    ```

    ## Fix safety
    Reported without a fix, except `torch.matrix_rank(A)` and
    `torch.matrix_rank(A, symmetric=...)`, rewritten to `torch.linalg.matrix_rank(A)`
    and `hermitian=...`. That fix is unsafe: the old function cannot be run any more to
    compare against. Its documented rule (singular values above
    `σ_max · max(rows, cols) · eps` count) is the new function's default tolerance, which
    the tests check on real torch.

    The others have no mechanical fix: `torch.linalg.solve` and `torch.linalg.lstsq` take
    their arguments in the other order and return other values, `torch.linalg.eigh` reads
    the other triangle, `torch.linalg.eig` returns complex tensors.

    ## Known problems
    Only module-level functions are found; the removed tensor methods (`A.solve(B)`,
    `A.symeig()`) are not, since the type of `A` is unknown.

    Code kept for older PyTorch releases is left alone, since the old API is the right one
    there: an `except ImportError:` / `except AttributeError:` (or `TypeError`, `NameError`,
    `Exception`, bare) fallback, and both branches of an `if` that tests a version
    (`is_torch_version(...)`, `torch.__version__`, `TORCH_VERSION`) or `hasattr`/`getattr`.

    ## TorchFix
    TOR001 (call of a removed function) and TOR004 (its import); `torch.eig` is not in
    TorchFix's table.
    """

    code = "TFM601"
    name = "removed-torch-function"
    summary = "Call or import of a torch function removed from PyTorch; use its torch.linalg replacement (TorchFix TOR001/TOR004)"
    applicability = Applicability.UNSAFE
    state = "was removed from PyTorch (calling it raises RuntimeError)"
    table = for_rule(REMOVED)

    fixes = (
        FixCase(
            "import torch\n\nrank = torch.matrix_rank(a)\nsym = torch.matrix_rank(b, symmetric=True)\n",
            "import torch\n\nrank = torch.linalg.matrix_rank(a)\nsym = torch.linalg.matrix_rank(b, hermitian=True)\n",
            unsafe=True,
        ),
        FixCase(
            "from torch import matrix_rank\n\n\ndef rank(m):\n    return matrix_rank(m)\n",
            "import torch\n\n\ndef rank(m):\n    return torch.linalg.matrix_rank(m)\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("import torch\n\nx, lu = torch.solve(b, A)\n", reported=True),
        KeepCase("import torch as t\n\nw, v = t.symeig(A, eigenvectors=True)\n", reported=True),
        KeepCase("from torch import lstsq\n\nx = lstsq(b, A)\n", reported=True),
        KeepCase("import torch\n\nrank = torch.matrix_rank(a, 1e-3)\n", reported=True),
        KeepCase("import torch\n\nsolver = torch.solve\n", reported=True),
        KeepCase("import torch\n\nx = torch.linalg.solve(A, b)\n"),
        KeepCase("def solve(b, A):\n    return b\n\n\nx = solve(1, 2)\n"),
        KeepCase("import numpy as np\n\nx = np.linalg.solve(A, b)\n"),
        KeepCase(
            "import torch\n\nif hasattr(torch, \"linalg\"):\n    x = torch.linalg.solve(A, b)\n"
            "else:\n    x, _ = torch.solve(b, A)\n"
        ),
    )
