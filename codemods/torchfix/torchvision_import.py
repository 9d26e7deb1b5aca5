"""TFM708: ``import torchvision.models as models`` -> ``from torchvision import models``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import change, in_source_order
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule

IMPORT_FROM = change("import_from")


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

    def check(self) -> None:
        for node in in_source_order(self.model.nodes(ast.Import)):
            self._check(node)

    def _check(self, node: ast.Import) -> None:
        for alias in node.names:
            full = alias.name
            if not full.startswith("torchvision.") or alias.asname is None:
                continue
            package, _, module = full.rpartition(".")
            if alias.asname != module:
                continue
            message = f"`import {full} as {module}`: use `from {package} import {module}`"
            if len(node.names) != 1:
                self.report(node, message)
                continue
            self.report(node, message, Fix([self.edit(node, "Import", IMPORT_FROM, package, module)]))
