"""TFM707: deprecated ``torchvision.transforms.v2.ToTensor``."""

from __future__ import annotations

import ast

import libcst as cst
import libcst.matchers as m

from torchfix_mod.codemods._api import imports_package, references, reference
from torchfix_mod.analysis import dotted_name
from torchfix_mod.legacy_rule import Applicability, Fix, FixCase, ImportNeed, KeepCase, Rule

V2 = "torchvision.transforms.v2"
TO_TENSOR = frozenset({f"{V2}.ToTensor", f"{V2}._deprecated.ToTensor"})


class TorchvisionToTensorRule(Rule):
    """
    ## What it does
    Finds uses of `torchvision.transforms.v2.ToTensor` and offers its
    documented replacement,
    `v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])`.
    TorchFix reports the same as TOR202 (without a fix).

    ## Why is this bad?
    `v2.ToTensor` is deprecated: it warns when built and will be removed.
    (The v1 `torchvision.transforms.ToTensor` is not deprecated and is left
    alone.)

    ## Example
    ```python
    from torchvision.transforms import v2

    transform = v2.Compose([v2.ToTensor(), v2.Normalize(mean, std)])
    ```

    ## Use instead
    ```python
    transform = v2.Compose([
        v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]),
        v2.Normalize(mean, std),
    ])
    ```

    ## Fix safety
    Unsafe: torchvision calls the output "equivalent up to float precision"
    for PIL images and `uint8` arrays, but the replacement is not the same
    transform. It returns a `tv_tensors.Image` (a tensor subclass) instead of
    a plain tensor; `ToTensor` passed tensors through untouched, while
    `ToImage` + `ToDtype` converts a `uint8` tensor to scaled floats; and a
    `float64` array stays `float64` with `ToTensor` but becomes `float32`.
    Applied only with `--unsafe-fixes`, on calls without arguments; the fix
    names `Compose`, `ToImage` and `ToDtype` through the same `v2` module
    the call uses, or imports them when the file imports torchvision at its
    top (and `torch`, for `torch.float32`, when `torch` is not imported).

    ## Known problems
    Every use is reported, including references that are not calls
    (`isinstance(t, v2.ToTensor)`); those get no fix. The nested `Compose`
    is kept as written rather than spliced into an enclosing one.
    """

    code = "TFM707"
    name = "torchvision-v2-to-tensor"
    summary = "transforms.v2.ToTensor is deprecated; use v2.ToImage() + v2.ToDtype(torch.float32, scale=True) (TorchFix TOR202)"
    applicability = Applicability.UNSAFE

    fixes = (
        FixCase(
            "import torch\nfrom torchvision.transforms import v2\n\n"
            "transform = v2.Compose([v2.ToTensor(), v2.Normalize(mean, std)])\n",
            "import torch\nfrom torchvision.transforms import v2\n\n"
            "transform = v2.Compose([v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]), v2.Normalize(mean, std)])\n",
            unsafe=True,
        ),
        FixCase(
            "from torchvision.transforms.v2 import Compose, ToTensor\n\nt = Compose([ToTensor()])\n",
            "from torchvision.transforms.v2 import ToDtype, ToImage, Compose\nimport torch\n\n"
            "t = Compose([Compose([ToImage(), ToDtype(torch.float32, scale=True)])])\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("from torchvision import transforms\n\nt = transforms.Compose([transforms.ToTensor()])\n"),
        KeepCase("from torchvision.transforms import ToTensor\n\nt = ToTensor()\n"),
        KeepCase("from torchvision.transforms import v2\n\nok = isinstance(t, v2.ToTensor)\n", reported=True),
        KeepCase("class ToTensor:\n    pass\n\nt = ToTensor()\n"),
        KeepCase("from torchvision.transforms.v2 import ToTensor as TT\n\nt = TT(1)\n", reported=True),
    )

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        return references(tree, TO_TENSOR)

    def visit_Module(self, node: cst.Module) -> None:
        # local names that may be ToTensor: its own name and `import ... ToTensor as <alias>`
        self.local_names = {"ToTensor"}
        for alias in m.findall(node, m.ImportAlias(asname=m.AsName())):
            if dotted_name(alias.name) and dotted_name(alias.name).endswith("ToTensor") and isinstance(alias.asname.name, cst.Name):
                self.local_names.add(alias.asname.name.value)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "ToTensor" and dotted_name(node) is not None:
            self._check(node)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value not in self.local_names:
            return
        parent = self.facts.parent(node)
        if isinstance(parent, cst.Attribute) or isinstance(parent, (cst.ImportAlias, cst.AsName)):
            return
        if any(isinstance(anc, (cst.Import, cst.ImportFrom)) for anc in self.facts.ancestors(node)):
            return
        self._check(node)

    def _check(self, node: cst.Name | cst.Attribute) -> None:
        if not self.facts.qualified_names(node) or not self.facts.qualified_names(node) <= TO_TENSOR:
            return
        message = (
            "`v2.ToTensor` is deprecated; use `v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])`"
        )
        call = self.facts.parent(node)
        if not (isinstance(call, cst.Call) and call.func is node and not call.args):
            self.report(node, message)
            return
        fix = self._fix(call, node)
        self.report(node, message, fix)

    def _fix(self, call: cst.Call, func: cst.Name | cst.Attribute) -> Fix | None:
        needs: list[ImportNeed] = []
        names = {}
        for name in ("Compose", "ToImage", "ToDtype"):
            if isinstance(func, cst.Attribute):
                names[name] = cst.Attribute(value=func.value.deep_clone(), attr=cst.Name(name))
                continue
            found = reference(self.facts, call, [V2], name, package="torchvision")
            if found is None:
                return None
            names[name], need = found
            if need is not None:
                needs.append(need)
        dtype = reference(self.facts, call, ["torch"], "float32", package="torch")
        if dtype is None:
            if "torch" in self.facts.names_used or not imports_package(self.facts, "torchvision"):
                return None
            dtype = (cst.parse_expression("torch.float32"), ImportNeed("torch"))
        dtype_expr, need = dtype
        if need is not None:
            needs.append(need)
        replacement = cst.Call(
            func=names["Compose"],
            args=[
                cst.Arg(
                    cst.List(
                        [
                            cst.Element(cst.Call(func=names["ToImage"])),
                            cst.Element(
                                cst.Call(
                                    func=names["ToDtype"],
                                    args=[
                                        cst.Arg(dtype_expr),
                                        cst.Arg(
                                            cst.Name("True"),
                                            keyword=cst.Name("scale"),
                                            equal=cst.AssignEqual(
                                                whitespace_before=cst.SimpleWhitespace(""),
                                                whitespace_after=cst.SimpleWhitespace(""),
                                            ),
                                        ),
                                    ],
                                )
                            ),
                        ]
                    )
                )
            ],
        )
        removals = (ImportNeed(V2, "ToTensor"),) if isinstance(func, cst.Name) and func.value == "ToTensor" else ()
        return Fix(
            {call: lambda c: replacement.with_changes(lpar=c.lpar, rpar=c.rpar)},
            imports=tuple(needs),
            removals=removals,
            unsafe=True,
        )
