"""TFM707: deprecated ``torchvision.transforms.v2.ToTensor``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import change, identifiers, imports_package, in_source_order, reference
from torchfix_mod.rule import Applicability, Fix, FixCase, ImportNeed, KeepCase, Rule
from torchfix_mod.semantic import dotted

V2 = "torchvision.transforms.v2"
TO_TENSOR = frozenset({f"{V2}.ToTensor", f"{V2}._deprecated.ToTensor"})
TO_IMAGE_DTYPE = change("to_image_dtype")


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
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Every use is reported, including references that are not calls
    (`isinstance(t, v2.ToTensor)`); those get no fix. The nested `Compose`
    is kept as written rather than spliced into an enclosing one.
    """

    code = "TFM707"
    respects_version_gates = True
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

    def check(self) -> None:
        model = self.model
        # local names that may be ToTensor: its own name and `import ... ToTensor as <alias>`
        local_names = {"ToTensor"}
        for alias in model.nodes(ast.alias):
            if alias.asname and alias.name.endswith("ToTensor"):
                local_names.add(alias.asname)
        found: list[ast.Name | ast.Attribute] = [
            node for node in model.attributes.get("ToTensor", ()) if dotted(node) is not None
        ]
        for node in model.nodes(ast.Name):
            if node.id in local_names and not isinstance(model.parent(node), ast.Attribute):
                found.append(node)
        for node in in_source_order(found):
            self._check(node)

    def _check(self, node: ast.Name | ast.Attribute) -> None:
        model = self.model
        qnames = model.qualified_names(node)
        if not qnames or not qnames <= TO_TENSOR:
            return
        message = (
            "`v2.ToTensor` is deprecated; use `v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])`"
        )
        call = model.parent(node)
        if not (isinstance(call, ast.Call) and call.func is node and not call.args and not call.keywords):
            self.report(node, message)
            return
        self.report(node, message, self._fix(call, node))

    def _fix(self, call: ast.Call, func: ast.Name | ast.Attribute) -> Fix | None:
        model = self.model
        needs: list[ImportNeed] = []
        names: list[str | int] = []
        for name in ("Compose", "ToImage", "ToDtype"):
            if isinstance(func, ast.Attribute):
                names.append(1)  # through the module the call spells: `v2.ToTensor` -> `v2.<name>`
                continue
            found = reference(model, call, [V2], name, package="torchvision")
            if found is None:
                return None
            spelling, need = found
            names.append(spelling)
            if need is not None:
                needs.append(need)
        dtype = reference(model, call, ["torch"], "float32", package="torch")
        if dtype is None:
            if "torch" in identifiers(model) or not imports_package(model, "torchvision"):
                return None
            dtype = ("torch.float32", ImportNeed("torch"))
        dtype_text, need = dtype
        if need is not None:
            needs.append(need)
        removals = (ImportNeed(V2, "ToTensor"),) if isinstance(func, ast.Name) and func.id == "ToTensor" else ()
        return Fix(
            [self.edit(call, "Call", TO_IMAGE_DTYPE, *names, dtype_text)],
            imports=tuple(needs),
            removals=removals,
            unsafe=True,
        )
