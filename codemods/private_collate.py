"""TFM704: ``torch.utils.data._utils.collate.default_collate`` -> ``torch.utils.data.default_collate``."""

from __future__ import annotations

import ast

import libcst as cst

from torchfix_mod.codemods._api import references, top_level_imports
from torchfix_mod.analysis import dotted_name
from torchfix_mod.legacy_rule import Fix, FixCase, ImportNeed, KeepCase, Rule

PRIVATE_MODULE = "torch.utils.data._utils.collate"
PUBLIC_MODULE = "torch.utils.data"
PUBLIC = frozenset({"default_collate", "default_convert"})


class PrivateCollateRule(Rule):
    """
    ## What it does
    Finds `default_collate` and `default_convert` taken from the private
    module `torch.utils.data._utils.collate`, in imports and in attribute
    uses, and takes them from `torch.utils.data` instead. TorchFix reports
    the same as TOR104 (uses) and TOR105 (imports).

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
    Reported without a fix: an import that also takes other, private names
    from the module and renames a public one (`as`) or is not at the top of
    the module (the public name is added as a new top-level import), attribute uses through
    an alias of the private module (`import torch.utils.data._utils.collate as
    C`), and uses whose public spelling is not reachable. Other names of the
    module (`collate`, `default_collate_fn_map`, used to extend collation)
    have no public home and are left alone.
    """

    code = "TFM704"
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

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        return references(tree, {f"{PRIVATE_MODULE}.{name}" for name in PUBLIC})

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or dotted_name(node.module) != PRIVATE_MODULE:
            return
        if isinstance(node.names, cst.ImportStar):
            return
        private = [alias for alias in node.names if isinstance(alias.name, cst.Name) and alias.name.value in PUBLIC]
        if not private:
            return
        names = ", ".join(f"`{alias.name.value}`" for alias in private)
        message = f"{names} imported from the private `{PRIVATE_MODULE}`; import from `{PUBLIC_MODULE}`"
        if len(private) == len(node.names):
            new_module = cst.parse_expression(PUBLIC_MODULE)
            self.report(node, message, Fix({node: lambda imp: imp.with_changes(module=new_module)}))
            return
        if any(alias.asname is not None for alias in private) or node not in top_level_imports(self.facts.module):
            self.report(node, message)
            return
        def split(imp: cst.ImportFrom) -> cst.ImportFrom:
            names = [alias for alias in imp.names if not (isinstance(alias.name, cst.Name) and alias.name.value in PUBLIC)]
            names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return imp.with_changes(names=names)

        needs = tuple(ImportNeed(PUBLIC_MODULE, alias.name.value) for alias in private)
        self.report(node, message, Fix({node: split}, imports=needs))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value not in PUBLIC or dotted_name(node) is None:
            return
        qnames = self.facts.qualified_names(node)
        if qnames != {f"{PRIVATE_MODULE}.{node.attr.value}"}:
            return
        message = f"`{dotted_name(node)}` is private; use `{PUBLIC_MODULE}.{node.attr.value}`"
        # `<P>._utils.collate.<name>` where <P> is torch.utils.data -> `<P>.<name>`
        collate = node.value
        utils = collate.value if isinstance(collate, cst.Attribute) and collate.attr.value == "collate" else None
        public = utils.value if isinstance(utils, cst.Attribute) and utils.attr.value == "_utils" else None
        if public is None or self.facts.qualified_names(public) != {PUBLIC_MODULE}:
            self.report(node, message)
            return
        self.report(node, message, Fix({node: lambda a: a.with_changes(value=a.value.value.value)}))
