"""TFM704: ``torch.utils.data._utils.collate.default_collate`` -> ``torch.utils.data.default_collate``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import change, in_source_order, top_level_imports
from torchfix_mod.rule import Fix, FixCase, ImportNeed, KeepCase, Rule
from torchfix_mod.semantic import dotted

PRIVATE_MODULE = "torch.utils.data._utils.collate"
PUBLIC_MODULE = "torch.utils.data"
PUBLIC = frozenset({"default_collate", "default_convert"})
WITH_MODULE = change("with_module")
WITHOUT_NAMES = change("without_names")
SKIP_TWO_ATTRIBUTES = change("skip_two_attributes")


class PrivateCollateRule(Rule):
    """
    ## What it does
    Finds `default_collate` and `default_convert` taken from the private
    module `torch.utils.data._utils.collate`, in imports and in attribute
    uses, and takes them from `torch.utils.data` instead. Each use of a name
    such an import binds is reported on its own line too, and is fixed by the
    import's fix (a `# noqa` on the import keeps the import, and so leaves its
    uses unfixed). TorchFix reports the same as TOR104 (uses) and TOR105
    (imports).

    ## Why is this bad?
    `_utils` is private: PyTorch may move or rename it without a deprecation.
    Both functions are public in `torch.utils.data` since PyTorch 1.11.

    ## Example
    ```python
    from torch.utils.data._utils.collate import default_collate
    ```

    ## Use instead
    ```python
    from torch.utils.data import default_collate
    ```

    ## Fix safety
    Safe: `torch.utils.data.default_collate` is the same function object.

    ## Known problems
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Reported without a fix: an import that also takes other, private names
    from the module and renames a public one (`as`) or is not at the top of
    the module (the public name is added as a new top-level import), attribute uses through
    an alias of the private module (`import torch.utils.data._utils.collate as
    C`), and uses whose public spelling is not reachable. Other names of the
    module (`collate`, `default_collate_fn_map`, used to extend collation)
    have no public home and are left alone.
    """

    code = "TFM704"
    respects_version_gates = True
    name = "private-collate"
    summary = "default_collate/default_convert from private torch.utils.data._utils; use torch.utils.data (TorchFix TOR104/TOR105)"

    fixes = (
        FixCase(
            "from torch.utils.data._utils.collate import default_collate, default_convert as convert\n\n"
            "loader = DataLoader(ds, collate_fn=default_collate)\n",
            "from torch.utils.data import default_collate, default_convert as convert\n\n"
            "loader = DataLoader(ds, collate_fn=default_collate)\n",
        ),
        FixCase(
            "import torch\n\n"
            "def collate(batch):\n"
            "    return torch.utils.data._utils.collate.default_collate(batch)\n"
            "fallback = torch.utils.data._utils.collate.default_convert\n",
            "import torch\n\n"
            "def collate(batch):\n"
            "    return torch.utils.data.default_collate(batch)\n"
            "fallback = torch.utils.data.default_convert\n",
        ),
        FixCase(
            "from torch.utils.data._utils.collate import collate, default_collate_fn_map, default_collate\n",
            "from torch.utils.data._utils.collate import collate, default_collate_fn_map\nfrom torch.utils.data import default_collate\n",
        ),
    )
    keeps = (
        KeepCase("from torch.utils.data import default_collate\n"),
        KeepCase("from torch.utils.data.dataloader import default_collate\n"),
        KeepCase("from torch.utils.data._utils.collate import collate, default_collate_fn_map\n"),
        KeepCase("from mylib.collate import default_collate\n\nx = default_collate(b)\n"),
        KeepCase(
            "import torch.utils.data._utils.collate as C\n\nx = C.default_collate(b)\n",
            reported=True,
        ),
    )

    def check(self) -> None:
        model = self.model
        fixes: dict[ast.ImportFrom, Fix | None] = {}
        for node in in_source_order(model.nodes(ast.ImportFrom)):
            fixes.update(self._check_import(node))
        if fixes:
            self._check_names(fixes)
        for node in model.nodes(ast.Attribute):
            self._check_attribute(node)

    def _check_import(self, node: ast.ImportFrom) -> dict[ast.ImportFrom, Fix | None]:
        if node.level or node.module != PRIVATE_MODULE:
            return {}
        if any(alias.name == "*" for alias in node.names):
            return {}
        private = [alias for alias in node.names if alias.name in PUBLIC]
        if not private:
            return {}
        names = ", ".join(f"`{alias.name}`" for alias in private)
        message = f"{names} imported from the private `{PRIVATE_MODULE}`; import from `{PUBLIC_MODULE}`"
        fix: Fix | None
        if len(private) == len(node.names):
            fix = Fix([self.edit(node, "ImportFrom", WITH_MODULE, PUBLIC_MODULE)])
        elif any(alias.asname is not None for alias in private) or node not in top_level_imports(self.model):
            fix = None
        else:
            needs = tuple(ImportNeed(PUBLIC_MODULE, alias.name) for alias in private)
            fix = Fix([self.edit(node, "ImportFrom", WITHOUT_NAMES, PUBLIC)], imports=needs)
        self.report(node, message, fix)
        return {node: fix}

    def _check_names(self, fixes: dict[ast.ImportFrom, Fix | None]) -> None:
        """Each use of a name those imports bind is reported too, as TorchFix does (TOR104).
        The import's own fix is what fixes it, so the finding shares that fix; a name another
        statement may also bind is reported without one."""
        model = self.model
        for node, fix in fixes.items():
            for binding in model.scope(node).bindings.values():
                for bound in binding:
                    if bound.statement is not node or bound.target is None:
                        continue
                    if bound.target.rpartition(".")[2] not in PUBLIC:
                        continue
                    for use in bound.accesses:
                        if not isinstance(use.ctx, ast.Load):
                            continue
                        alone = all(b.statement is node for b in model.scope(use).resolve(use.id))
                        message = (
                            f"`{use.id}` is `{bound.target}`, from a private module; "
                            f"import it from `{PUBLIC_MODULE}` (line {node.lineno})"
                        )
                        self.report(use, message, fix if alone else None)

    def _check_attribute(self, node: ast.Attribute) -> None:
        model = self.model
        if node.attr not in PUBLIC or dotted(node) is None:
            return
        if model.qualified_names(node) != {f"{PRIVATE_MODULE}.{node.attr}"}:
            return
        message = f"`{dotted(node)}` is private; use `{PUBLIC_MODULE}.{node.attr}`"
        # `<P>._utils.collate.<name>` where <P> is torch.utils.data -> `<P>.<name>`
        collate = node.value
        utils = collate.value if isinstance(collate, ast.Attribute) and collate.attr == "collate" else None
        public = utils.value if isinstance(utils, ast.Attribute) and utils.attr == "_utils" else None
        if public is None or model.qualified_names(public) != {PUBLIC_MODULE}:
            self.report(node, message)
            return
        self.report(node, message, Fix([self.edit(node, "Attribute", SKIP_TWO_ATTRIBUTES)]))
