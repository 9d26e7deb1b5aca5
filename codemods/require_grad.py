"""TFM703: ``x.require_grad = ...`` (a typo that does nothing) -> ``x.requires_grad = ...``."""

from __future__ import annotations

import ast

import libcst as cst
import libcst.matchers as m

from torchfix_mod.legacy_rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.syntax import nodes

TYPO = "require_grad"


class RequireGradTypoRule(Rule):
    """
    ## What it does
    Finds assignments to an attribute `require_grad` (`p.require_grad =
    False`) and corrects the name to `requires_grad`. TorchFix reports the
    same as TOR002.

    ## Why is this bad?
    Tensors accept any new Python attribute, so `p.require_grad = False` runs
    without an error and changes nothing: the parameter is still trained. The
    classic case is a "frozen" backbone that is in fact fine-tuned:

    ```python
    for p in backbone.parameters():
        p.require_grad = False   # no effect: every p still requires grad
    ```

    ## Example
    ```python
    for p in model.encoder.parameters():
        p.require_grad = False
    ```

    ## Use instead
    ```python
    for p in model.encoder.parameters():
        p.requires_grad = False
    ```

    ## Fix safety
    Safe: it makes the line do what it says. Training changes accordingly (the
    frozen parameters stop receiving gradients) because the line was a bug.
    Setting `requires_grad` is checked by PyTorch where the typo was not: on a
    non-leaf tensor `requires_grad = False` raises, and so does
    `requires_grad = True` on an integer tensor; such a line never worked as
    written.

    ## Known problems
    Left alone, since the name is then the program's own attribute rather
    than a typo: `self.require_grad = ...` (and the first parameter of any
    method), files that read `.require_grad` anywhere, define it in a class
    body, or mention the string `"require_grad"` (`getattr`, configs). Only
    plain `=` assignments are checked. On an `nn.Module`, both spellings are a
    plain attribute; use `module.requires_grad_(False)` to freeze it.
    """

    code = "TFM703"
    name = "require-grad-typo"
    summary = "x.require_grad = ... is a typo that does nothing; use requires_grad (TorchFix TOR002)"

    fixes = (
        FixCase(
            "def freeze(backbone):\n"
            "    for p in backbone.parameters():\n"
            "        p.require_grad = False  # freeze\n",
            "def freeze(backbone):\n"
            "    for p in backbone.parameters():\n"
            "        p.requires_grad = False  # freeze\n",
        ),
        FixCase(
            "import torch\n\nw = torch.zeros(3)\nw.require_grad = True\nmodel.head.weight.require_grad = flag\n",
            "import torch\n\nw = torch.zeros(3)\nw.requires_grad = True\nmodel.head.weight.requires_grad = flag\n",
        ),
    )
    keeps = (
        KeepCase("for p in net.parameters():\n    p.requires_grad = False\n"),
        KeepCase(
            "import torch\n\n"
            "class Adapter:\n"
            "    def __init__(self, require_grad):\n"
            "        self.require_grad = require_grad\n"
        ),
        KeepCase("import torch\n\ncfg.require_grad = True\n\nif cfg.require_grad:\n    unfreeze(model)\n"),
        KeepCase("import torch\n\nopts.require_grad = False\nprint(getattr(opts, 'require_grad'))\n"),
        KeepCase("import torch\n\nclass Options:\n    require_grad = True\n\nopts = Options()\nopts.require_grad = False\n"),
    )

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        return any(
            isinstance(node, ast.Attribute) and node.attr == TYPO and isinstance(node.ctx, ast.Store)
            for node in nodes(tree, ast.Attribute)
        )

    def visit_Module(self, node: cst.Module) -> None:
        self.candidates: list[cst.Attribute] = []

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            attr = target.target
            if isinstance(attr, cst.Attribute) and attr.attr.value == TYPO and not self._is_instance_parameter(attr.value):
                self.candidates.append(attr)

    def leave_Module(self, original_node: cst.Module) -> None:
        # decided once the whole file is seen: a later read makes the attribute the program's own
        if not self.candidates or self._used_as_own_attribute(original_node):
            return
        for attr in self.candidates:
            fix = Fix({attr: lambda a: a.with_changes(attr=cst.Name("requires_grad"))})
            self.report(
                attr,
                "`require_grad` is a typo: this sets a new, unused attribute and leaves `requires_grad` unchanged",
                fix,
            )

    def _used_as_own_attribute(self, module: cst.Module) -> bool:
        """The file reads `.require_grad`, defines it in a class body, or names it in a string."""
        for node in self.facts.attributes.get(TYPO, ()):
            parent = self.facts.parent(node)
            stored = isinstance(parent, cst.AssignTarget) or (
                isinstance(parent, (cst.AnnAssign, cst.AugAssign)) and parent.target is node
            )
            if not stored or isinstance(parent, cst.AugAssign):
                return True  # read (an augmented assignment reads it too)
        for cls in m.findall(module, m.ClassDef()):
            for stmt in cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ():
                if isinstance(stmt, cst.FunctionDef) and stmt.name.value == TYPO:
                    return True
                if m.findall(stmt, m.AssignTarget(target=m.Name(TYPO))) or m.findall(stmt, m.AnnAssign(target=m.Name(TYPO))):
                    return True
        return any(
            isinstance(s, cst.SimpleString) and s.evaluated_value == TYPO for s in m.findall(module, m.SimpleString())
        )

    def _is_instance_parameter(self, receiver: cst.BaseExpression) -> bool:
        """``receiver`` is the first parameter (``self``/``cls``) of the method around it."""
        if not isinstance(receiver, cst.Name):
            return False
        func = self.facts.enclosing_function(receiver)
        if func is None:
            return False
        if not any(isinstance(anc, cst.ClassDef) for anc in self.facts.ancestors(func)):
            return False
        params = func.params.posonly_params or func.params.params
        return bool(params) and params[0].name.value == receiver.value
