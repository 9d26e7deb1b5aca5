"""TFM602: calls and imports of deprecated torch functions and modules."""

from __future__ import annotations

from torchfix_mod.codemods.deprecated._deprecated_api import DeprecatedApiRule, documented
from torchfix_mod.codemods.deprecated._deprecations import DEPRECATED, for_rule
from torchfix_mod.rule import FixCase, KeepCase


@documented
class DeprecatedFunctionRule(DeprecatedApiRule):
    """
    ## What it does
    Finds calls, imports and other references of deprecated torch APIs (`torch.qr`,
    `torch.cholesky`, `torch.range`, `torch.chain_matmul`, `torch.ger`, `torch.norm`,
    `torch.svd`, `torch.lu`, `nn.UpsamplingBilinear2d`, `torch.nn.utils.weight_norm`,
    ..., listed below) in any import spelling, names the replacement, and rewrites the
    calls whose replacement computes exactly the same thing:

    - `torch.qr(A)` / `torch.qr(A, some=False)` -> `torch.linalg.qr(A)` /
      `torch.linalg.qr(A, mode="complete")`
    - `torch.cholesky(A, upper=u)` -> `torch.linalg.cholesky(A, upper=u)`
    - `torch.range(a, b, s)` -> `torch.arange(a, b + 1, s)` for integer literals
    - `torch.chain_matmul(a, b, c)` -> `torch.linalg.multi_dot([a, b, c])`
    - `torch.ger(u, v)` -> `torch.outer(u, v)`

    ## Why is this bad?
    PyTorch warns on each of them that it will be removed, and several have already
    gone the way of `torch.solve` (TFM601). Some also behave surprisingly: `torch.range`
    includes its end point and returns floats for integer arguments.

    ## Example
    ```python
    q, r = torch.qr(a, some=False)
    u = torch.cholesky(s, upper=True)
    idx = torch.range(0, 9)
    y = torch.chain_matmul(a, b, c)
    ```

    ## Use instead
    ```python
    q, r = torch.linalg.qr(a, mode="complete")
    u = torch.linalg.cholesky(s, upper=True)
    idx = torch.arange(0.0, 10.0)
    y = torch.linalg.multi_dot([a, b, c])
    ```

    ## Fix safety
    The safe fixes give bit-identical results on real torch (the tests run both sides),
    and keep every argument expression as written:

    - `qr`: only with `some` absent or a literal `True`/`False`.
    - `cholesky`: `upper` is passed through as a keyword, literal or not. The result
      matches `torch.cholesky` including its memory layout (appending `.mH` to a lower
      factor, as PyTorch's warning suggests, gives equal values in another layout).
    - `range`: only when `start`, `end` and `step` are integer literals; `end` becomes
      `end + 1` (`end - 1` for a negative step), which keeps the last element whether or
      not `step` divides `end - start` (`end + step` does not: `torch.range(0, 5, 2)` is
      `[0, 2, 4]`, `torch.arange(0, 7, 2)` is `[0, 2, 4, 6]`). `torch.range` returns the default floating dtype even for integers,
      so without `dtype=` the fix writes float literals (`torch.arange(0.0, 10.0)`),
      which keep it; with floats or variables the two functions can differ by one
      element, so those calls are reported only.
    - `chain_matmul`: with two or more matrices. With `*matrices` the fix is unsafe:
      one matrix makes `multi_dot` raise where `chain_matmul` returned a copy.

    Unsafe fixes: `nn.UpsamplingNearest2d(...)` / `nn.UpsamplingBilinear2d(...)` ->
    `nn.Upsample(..., mode="nearest")` / `nn.Upsample(..., mode="bilinear",
    align_corners=True)` compute the same forward, but the module is an `nn.Upsample`
    (type checks, printed model). `torch.utils._pytree._register_pytree_node` ->
    `register_pytree_node` also registers with the C++ pytree and raises for a type
    registered twice.

    Reported only: `torch.norm`, `torch.svd` (returns `V`, the replacement `Vh`),
    `torch.lu`, `torch.lu_solve`, `torch.triangular_solve` (argument order and results
    differ), `torch.testing.assert_allclose` (other defaults),
    `torch.nn.utils.weight_norm` (state_dict keys and attributes change) and
    `torch.backends.cuda.sdp_kernel` (other arguments).

    A name imported with `from torch import qr` is rewritten at each call to
    `torch.linalg.qr` (using the file's `torch` import, adding `import torch` if the
    name is free) and the import is dropped once unused.

    ## Known problems
    Tensor methods (`a.qr()`, `x.norm()`) are not found. Imports under another name
    (`from torch import qr as qr_`) are fixed at the calls but the import stays.

    Code kept for older PyTorch releases is left alone, since the old API is the right one
    there: an `except ImportError:` / `except AttributeError:` (or `TypeError`, `NameError`,
    `Exception`, bare) fallback, and both branches of an `if` that tests a version
    (`is_torch_version(...)`, `torch.__version__`, `TORCH_VERSION`) or `hasattr`/`getattr`.

    ## TorchFix
    TOR101 (call of a deprecated function) and TOR103 (its import).
    """

    code = "TFM602"
    name = "deprecated-torch-function"
    summary = "Deprecated torch function or module; use its documented replacement (TorchFix TOR101/TOR103)"
    table = for_rule(DEPRECATED)

    fixes = (
        FixCase(
            "import torch\n\n"
            "q, r = torch.qr(a, some=False)\n"
            "q2, r2 = torch.qr(a)\n"
            "q3, r3 = torch.qr(input=a, some=True)\n"
            "l = torch.cholesky(s)\n"
            "u = torch.cholesky(x @ x.mT + eps * torch.eye(n), upper=True)\n"
            "u2 = torch.cholesky(s, flag)\n",
            "import torch\n\n"
            "q, r = torch.linalg.qr(a, mode=\"complete\")\n"
            "q2, r2 = torch.linalg.qr(a)\n"
            "q3, r3 = torch.linalg.qr(a)\n"
            "l = torch.linalg.cholesky(s)\n"
            "u = torch.linalg.cholesky(x @ x.mT + eps * torch.eye(n), upper=True)\n"
            "u2 = torch.linalg.cholesky(s, upper=flag)\n",
        ),
        FixCase(
            "import torch\n\nu = torch.cholesky(s, upper=not lower)\n",
            "import torch\n\nu = torch.linalg.cholesky(s, upper=not lower)\n",
        ),
        FixCase(
            "import torch\n\n"
            "a = torch.range(0, 10)\n"
            "b = torch.range(1, 9, 2, device=dev)\n"
            "c = torch.range(10, 0, -1, dtype=torch.long)\n"
            "d = torch.range(0, 5, 2)\n",
            "import torch\n\n"
            "a = torch.arange(0.0, 11.0)\n"
            "b = torch.arange(1.0, 10.0, 2, device=dev)\n"
            "c = torch.arange(10, -1, -1, dtype=torch.long)\n"
            "d = torch.arange(0.0, 6.0, 2)\n",
        ),
        FixCase(
            "import torch as t\n\n"
            "y = t.chain_matmul(a, b, c)\n"
            "z = t.ger(u, v)  # outer product\n",
            "import torch as t\n\n"
            "y = t.linalg.multi_dot([a, b, c])\n"
            "z = t.outer(u, v)  # outer product\n",
        ),
        FixCase(
            "from torch import ger, qr\n\n\n"
            "def f(a, u, v):\n"
            "    q, r = qr(a, some=False)\n"
            "    return ger(u, v)\n",
            "import torch\n\n\n"
            "def f(a, u, v):\n"
            "    q, r = torch.linalg.qr(a, mode=\"complete\")\n"
            "    return torch.outer(u, v)\n",
        ),
        FixCase(
            "import torch.nn as nn\n\n"
            "up = nn.UpsamplingBilinear2d(scale_factor=2)\n"
            "near = nn.UpsamplingNearest2d((8, 8))\n",
            "import torch.nn as nn\n\n"
            "up = nn.Upsample(scale_factor=2, mode=\"bilinear\", align_corners=True)\n"
            "near = nn.Upsample((8, 8), mode=\"nearest\")\n",
            unsafe=True,
        ),
        FixCase(
            "import torch\n\ny = torch.chain_matmul(*mats)\n",
            "import torch\n\ny = torch.linalg.multi_dot([*mats])\n",
            unsafe=True,
        ),
        FixCase(
            "import torch.utils._pytree as pytree\n\n"
            "pytree._register_pytree_node(Point, flatten, unflatten)\n",
            "import torch.utils._pytree as pytree\n\n"
            "pytree.register_pytree_node(Point, flatten, unflatten)\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("import torch\n\nn = torch.norm(x, dim=1)\n", reported=True),
        KeepCase("import torch\n\nu, s, v = torch.svd(a)\n", reported=True),
        KeepCase("import torch\n\nidx = torch.range(0, n)\n", reported=True),
        KeepCase("import torch\n\nts = torch.range(0, 1, 0.1)\n", reported=True),
        KeepCase("import torch\n\nq, r = torch.qr(a, some=reduced)\n", reported=True),
        KeepCase("import torch\n\nm = torch.nn.utils.weight_norm(conv)\n", reported=True),
        KeepCase("from torch.nn.utils import weight_norm\n\nconv = weight_norm(conv)\n", reported=True),
        KeepCase("import torch\n\ntorch.testing.assert_allclose(a, b)\n", reported=True),
        KeepCase(
            "import torch\n\nwith torch.backends.cuda.sdp_kernel(enable_flash=False):\n    y = attn(q, k, v)\n",
            reported=True,
        ),
        KeepCase("import torch\n\nnorm = torch.norm\n", reported=True),
        KeepCase("import torch\n\nq, r = torch.linalg.qr(a)\nn = x.norm(dim=1)\nu = x.cholesky()\n"),
        KeepCase("def qr(a):\n    return a, a\n\n\nq, r = qr(x)\n"),
        KeepCase("import numpy as np\n\nq, r = np.linalg.qr(a)\n"),
        KeepCase("for i in range(0, 10):\n    print(i)\n"),
        KeepCase(
            "import torch.utils._pytree\n\n"
            "if is_torch_version(\"<\", \"2.2\"):\n"
            "    torch.utils._pytree._register_pytree_node(Out, flatten, unflatten)\n"
            "else:\n"
            "    torch.utils._pytree.register_pytree_node(Out, flatten, unflatten)\n"
        ),
        # `hasattr`/`getattr` on an imported module (or nn.Module's own API) tests the release
        KeepCase(
            "import torch\n\n"
            "if hasattr(torch, \"linalg\"):\n"
            "    q, r = torch.linalg.qr(a)\n"
            "else:\n"
            "    q, r = torch.qr(a)\n"
        ),
        # a value of the program probed with `getattr(..., None)` is not a release test
        KeepCase(
            "import torch\n\n\n"
            "def regularise(outputs, p):\n"
            "    if getattr(outputs, \"loss\", None) is not None:\n"
            "        outputs.loss += torch.norm(p @ p.T - 1, p=\"fro\")\n"
            "    return outputs\n",
            reported=True,
        ),
    )
