"""TFM708: ``import torchvision.models as models`` -> ``from torchvision import models``."""

from __future__ import annotations

import ast

import libcst as cst

from torchfix_mod.analysis import dotted_name
from torchfix_mod.legacy_rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.syntax import nodes


class TorchvisionSubmoduleImportRule(Rule):
    """
    ## What it does
    Finds `import torchvision.<module> as <module>` (the alias repeating the
    submodule's own name, as in `import torchvision.models as models`) and
    writes `from torchvision import <module>`. TorchFix reports the same as
    TOR203 (for `datasets`, `models` and `transforms`); this rule covers
    every torchvision submodule (`torchvision.transforms.v2 as v2` becomes
    `from torchvision.transforms import v2`).

    ## Why is this bad?
    The alias only repeats the name the `from` form gives by itself; it is
    the longer spelling of the same import (pylint's
    `consider-using-from-import`).

    ## Example
    ```python
    import torchvision.models as models
    ```

    ## Use instead
    ```python
    from torchvision import models
    ```

    ## Fix safety
    Safe: both statements import the submodule and bind the same module object
    to the same name.

    ## Known problems
    Reported without a fix: statements importing several modules
    (`import torchvision.models as models, os`). Aliases that rename
    (`import torchvision.models as tvm`) are left alone.
    """

    code = "TFM708"
    name = "torchvision-submodule-import"
    summary = "import torchvision.X as X; use from torchvision import X (TorchFix TOR203)"

    fixes = (
        FixCase(
            "import torch\nimport torchvision.models as models  # zoo\nimport torchvision.transforms.v2 as v2\n",
            "import torch\nfrom torchvision import models  # zoo\nfrom torchvision.transforms import v2\n",
        ),
        FixCase(
            "def build():\n    import torchvision.datasets as datasets; return datasets\n",
            "def build():\n    from torchvision import datasets; return datasets\n",
        ),
    )
    keeps = (
        KeepCase("from torchvision import models\n"),
        KeepCase("import torchvision.models as tvm\nimport torchvision.models\n"),
        KeepCase("import torch.nn as nn\nimport numpy.linalg as linalg\n"),
        KeepCase("import torchvision.models as models, os\n", reported=True),
    )

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        return any(
            isinstance(node, ast.Import)
            and any(a.name.startswith("torchvision.") and a.asname == a.name.rsplit(".", 1)[1] for a in node.names)
            for node in nodes(tree, ast.Import)
        )

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted_name(alias.name)
            if full is None or not full.startswith("torchvision.") or alias.asname is None:
                continue
            package, _, module = full.rpartition(".")
            if not (isinstance(alias.asname.name, cst.Name) and alias.asname.name.value == module):
                continue
            message = f"`import {full} as {module}`: use `from {package} import {module}`"
            if len(node.names) != 1:
                self.report(node, message)
                continue

            def edit(imp: cst.Import, package=package, module=module) -> cst.ImportFrom:
                return cst.ImportFrom(
                    module=cst.parse_expression(package),
                    names=[cst.ImportAlias(name=cst.Name(module))],
                    semicolon=imp.semicolon,
                )

            self.report(node, message, Fix({node: edit}))
