"""TFM603: the deprecated ``functorch`` transforms -> ``torch.func``."""

from __future__ import annotations

import libcst as cst

from torchfix_mod.codemods._deprecated_api import DeprecatedApiRule, documented
from torchfix_mod.analysis import dotted_name
from torchfix_mod.deprecations import FUNCTORCH, Deprecation, for_rule
from torchfix_mod.legacy_rule import Fix, FixCase, KeepCase

TORCH_FUNC = "torch.func"


@documented
class FunctorchImportRule(DeprecatedApiRule):
    """
    ## What it does
    Finds the deprecated `functorch` transforms (`vmap`, `grad`, `grad_and_value`,
    `vjp`, `jvp`, `jacrev`, `jacfwd`, `hessian`, `functionalize`) and takes them from
    `torch.func` instead: `from functorch import vmap` becomes
    `from torch.func import vmap`, and `functorch.vmap(f)` becomes
    `torch.func.vmap(f)` (using the file's `torch` import, or adding `import torch`;
    `import functorch` is dropped once unused). `functorch.make_functional`,
    `make_functional_with_buffers` and `combine_state_for_ensemble` are reported with
    their `torch.func` replacements.

    ## Why is this bad?
    functorch was merged into PyTorch 2.0 as `torch.func`. The `functorch` functions are
    wrappers that warn on every call (`FutureWarning: ... functorch.vmap is deprecated`)
    and are due for deletion.

    ## Example
    ```python
    from functorch import vmap, grad
    import functorch

    per_sample = functorch.vmap(grad(loss_fn), in_dims=(None, 0))
    ```

    ## Use instead
    ```python
    from torch.func import vmap, grad
    import torch

    per_sample = torch.func.vmap(grad(loss_fn), in_dims=(None, 0))
    ```

    ## Fix safety
    Safe: each `functorch` function only warns and calls its `torch.func` namesake with
    the same arguments (the signatures are identical; the tests compare them on real
    torch). Names imported under another name keep it
    (`from functorch import vmap as v` -> `from torch.func import vmap as v`). An import
    that also takes something else from functorch is split in two lines.

    `make_functional` and friends are reported only: `torch.func.functional_call`
    works differently (it takes the parameters as a dict).

    ## Known problems
    A mixed import line that holds several statements (`import x; from functorch import
    vmap, make_fx`) is reported without a fix.

    Code kept for older PyTorch releases is left alone, since the old API is the right one
    there: an `except ImportError:` / `except AttributeError:` (or `TypeError`, `NameError`,
    `Exception`, bare) fallback, and both branches of an `if` that tests a version
    (`is_torch_version(...)`, `torch.__version__`, `TORCH_VERSION`) or `hasattr`/`getattr`.
    So is an import tried first in a `try:` whose `except ImportError:` has the other
    (`try: from functorch import vmap` / `except ImportError: from torch.func import vmap`).

    ## TorchFix
    TOR103 (the import) and TOR101 (`functorch.vmap(...)`); `grad_and_value` and the
    `make_functional` family are not in TorchFix's table.
    """

    code = "TFM603"
    name = "functorch-import"
    summary = "Deprecated functorch transform; import it from torch.func (TorchFix TOR101/TOR103)"
    report_name_uses = False  # the import line is fixed; its uses need no change
    table = for_rule(FUNCTORCH)

    fixes = (
        FixCase(
            "from functorch import vmap, grad as g\n\n\ndef per_sample(f, x):\n    return vmap(g(f))(x)\n",
            "from torch.func import vmap, grad as g\n\n\ndef per_sample(f, x):\n    return vmap(g(f))(x)\n",
        ),
        FixCase(
            "import torch\nimport functorch\n\njac = functorch.jacrev(f)(x)\nfn = functorch.vmap\n",
            "import torch\n\njac = torch.func.jacrev(f)(x)\nfn = torch.func.vmap\n",
        ),
        FixCase(
            "import functorch as ft\n\nh = ft.hessian(f)(x)\n",
            "import functorch as ft\nimport torch\n\nh = torch.func.hessian(f)(x)\n",
        ),
        FixCase(
            "from functorch import make_functional, vmap  # transforms\n\nfmodel, params = make_functional(model)\n",
            "from functorch import make_functional  # transforms\nfrom torch.func import vmap\n\n"
            "fmodel, params = make_functional(model)\n",
        ),
        FixCase(
            "def batched(f, x):\n    from functorch import vmap\n\n    return vmap(f)(x)\n",
            "def batched(f, x):\n    from torch.func import vmap\n\n    return vmap(f)(x)\n",
        ),
    )
    keeps = (
        KeepCase("from functorch import make_functional\n\nfmodel, params = make_functional(model)\n", reported=True),
        KeepCase("from torch.func import vmap\n\ny = vmap(f)(x)\n"),
        KeepCase("from functorch.compile import aot_function\n\ng = aot_function(f, print)\n"),
        KeepCase("def vmap(f):\n    return f\n\n\ny = vmap(abs)(3)\n"),
        KeepCase("import x; from functorch import vmap, make_functional\n", reported=True),
        KeepCase("try:\n    from torch import vmap\nexcept ImportError:\n    from functorch import vmap\n"),
        KeepCase("try:\n    from functorch import vmap\nexcept ImportError:\n    from torch.func import vmap\n"),
    )

    def report_import(self, statement: cst.ImportFrom, aliases: list[tuple[cst.ImportAlias, Deprecation]]) -> None:
        """One finding for the transforms of an import line (fixed by moving them to
        ``torch.func``), one per other deprecated name (reported only)."""
        moved = [(alias, entry) for alias, entry in aliases if entry.rewrite == "rename"]
        for alias, entry in aliases:
            if entry.rewrite != "rename":
                self.report(alias, self.message(entry, imported=True))
        if not moved:
            return
        names = ", ".join(f"`{entry.name}`" for _, entry in moved)
        verb = "is" if len(moved) == 1 else "are"
        message = f"{names} {verb} deprecated; import from `{TORCH_FUNC}`"
        self.report(statement, message, self._move_fix(statement, [alias for alias, _ in moved]))

    def _move_fix(self, statement: cst.ImportFrom, moved: list[cst.ImportAlias]) -> Fix | None:
        module = cst.parse_expression(TORCH_FUNC)
        if len(moved) == len(statement.names):
            return Fix({statement: lambda updated: updated.with_changes(module=module)})
        line = self.facts.parent(statement)
        if not (isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1):
            return None
        moved_names = {(dotted_name(a.name), a.asname.name.value if a.asname else None) for a in moved}

        def key(alias: cst.ImportAlias):
            return dotted_name(alias.name), alias.asname.name.value if alias.asname else None

        def split(updated: cst.SimpleStatementLine):
            old = updated.body[0]
            kept = [a for a in old.names if key(a) not in moved_names]
            taken = [a for a in old.names if key(a) in moved_names]
            kept[-1] = kept[-1].with_changes(comma=old.names[-1].comma)  # the list's own ending
            new_names = [
                cst.ImportAlias(a.name, a.asname, comma=cst.MaybeSentinel.DEFAULT if i == len(taken) - 1 else cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                for i, a in enumerate(taken)
            ]
            first = updated.with_changes(body=[old.with_changes(names=kept)])
            second = cst.SimpleStatementLine([cst.ImportFrom(module=module, names=new_names)])
            return cst.FlattenSentinel([first, second])

        return Fix({line: split})
