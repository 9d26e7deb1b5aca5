"""TFM703: ``x.require_grad = ...`` (a typo that does nothing) -> ``x.requires_grad = ...``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import has_string, in_source_order
from torchfix_mod.edits import rename_attribute
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule

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

    def check(self) -> None:
        model = self.model
        candidates = [
            target
            for node in in_source_order(model.nodes(ast.Assign))
            for target in node.targets
            if isinstance(target, ast.Attribute) and target.attr == TYPO and not self._is_instance_parameter(target.value)
        ]
        # decided on the whole file: a read anywhere makes the attribute the program's own
        if not candidates or self._used_as_own_attribute():
            return
        for attr in candidates:
            self.report(
                attr,
                "`require_grad` is a typo: this sets a new, unused attribute and leaves `requires_grad` unchanged",
                Fix([self.edit(attr, "Attribute", rename_attribute, "requires_grad")]),
            )

    def _used_as_own_attribute(self) -> bool:
        """The file reads `.require_grad`, defines it in a class body, or names it in a string."""
        model = self.model
        for node in model.attributes.get(TYPO, ()):
            parent = model.parent(node)
            stored = (isinstance(parent, ast.Assign) and any(t is node for t in parent.targets)) or (
                isinstance(parent, ast.AnnAssign) and parent.target is node
            )
            if not stored:
                return True  # read (an augmented assignment, a `for` or tuple target, `del` count too)
        for cls in model.nodes(ast.ClassDef):
            for stmt in cls.body if self._indented_body(cls) else ():
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == TYPO:
                    return True
                for node in model.nodes((ast.Assign, ast.AnnAssign), stmt):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(isinstance(t, ast.Name) and t.id == TYPO for t in targets):
                        return True
        return has_string(model, model.tree, TYPO)

    def _indented_body(self, cls: ast.ClassDef) -> bool:
        """The class body is a block of its own lines (not ``class A: x = 1``, whose body LibCST
        keeps as a one-line suite that the check of class attributes never looked into)."""
        first = cls.body[0]
        decorators = getattr(first, "decorator_list", None)
        if decorators:
            first = min(decorators, key=lambda d: (d.lineno, d.col_offset))
        span = self.model.span(first)
        before = self.model.lines[span.line - 1][: span.column].strip()
        return before in ("", "@") if decorators else not before

    def _is_instance_parameter(self, receiver: ast.AST) -> bool:
        """``receiver`` is the first parameter (``self``/``cls``) of the method around it."""
        if not isinstance(receiver, ast.Name):
            return False
        model = self.model
        func = model.enclosing_function(receiver)
        if func is None:
            return False
        if not any(isinstance(anc, ast.ClassDef) for anc in model.ancestors(func)):
            return False
        params = func.args.posonlyargs or func.args.args
        return bool(params) and params[0].arg == receiver.id
