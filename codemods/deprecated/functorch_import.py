"""TFM603: the deprecated ``functorch`` transforms -> ``torch.func``."""

from __future__ import annotations

import ast
import tokenize

from torchfix_mod.codemods.deprecated._deprecated_api import Change, DeprecatedApiRule, documented, tokens
from torchfix_mod.codemods.deprecated._deprecations import FUNCTORCH, Deprecation, for_rule
from torchfix_mod.rule import Fix, FixCase, KeepCase

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

    def report_import(self, statement: ast.ImportFrom, aliases: list[tuple[ast.alias, Deprecation]], reference_fix) -> None:
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
        fix, note = self.needs_release(self._move_fix(statement, [alias for alias, _ in moved]), "torch", "2.0", "torch.func")
        self.report(statement, message + note, fix)

    def _move_fix(self, statement: ast.ImportFrom, moved: list[ast.alias]) -> Fix | None:
        if len(moved) == len(statement.names):
            return Fix([self.edit(statement, "ImportFrom", Change("import_from"), TORCH_FUNC)])
        if not self._alone_on_line(statement):
            return None
        keys = tuple((alias.name, alias.asname) for alias in moved)
        # a line with one statement spans as that statement
        return Fix([self.edit(statement, "SimpleStatementLine", Change("split_import"), TORCH_FUNC, keys)])

    def _alone_on_line(self, statement: ast.stmt) -> bool:
        """The statement is the only one of its logical line, which is not the body of a
        compound statement's header (``if x: from ...``)."""
        found = tokens(self.model)
        if found is None:
            return False
        span = self.model.span(statement)
        first = found.index(span.line, span.column)
        if first > 0 and found.types[first - 1] not in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            return False  # after a `;` or a header's `:`
        after = found.index(span.end_line, span.end_column)
        if after < len(found.strings) and found.strings[after] == ";":
            after += 1  # a trailing semicolon belongs to the statement's line
        return after >= len(found.types) or found.types[after] in (tokenize.NEWLINE, tokenize.ENDMARKER)
