"""TFM401: an nn.Module subclass whose ``__init__`` never calls ``super().__init__()``."""

from __future__ import annotations

import ast

import libcst as cst
import libcst.matchers as m

from torchfix_mod.analysis import TORCH_MODULE_BASE, class_methods, self_name
from torchfix_mod.legacy_rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.screen import methods, nodes

HEADER = "import torch.nn as nn\n\n"
INIT_CALL = m.Call(func=m.Attribute(attr=m.Name("__init__")))


def calls_an_init(node: cst.CSTNode) -> bool:
    """Any ``X.__init__(...)`` call: ``super().__init__()``, ``Base.__init__(self)``, ..."""
    return bool(m.findall(node, INIT_CALL))


def required_params(func: cst.FunctionDef) -> int:
    """Parameters after ``self`` that have no default."""
    params = [*func.params.posonly_params, *func.params.params][1:]
    required = [p for p in params if p.default is None]
    required += [p for p in func.params.kwonly_params if p.default is None]
    return len(required)


class MissingSuperInitRule(Rule):
    """
    ## What it does
    Finds nn.Module subclasses whose `__init__` never calls the base
    `__init__` (`super().__init__()`, `super(Cls, self).__init__()`,
    `nn.Module.__init__(self)`, `Base.__init__(self, ...)`), and inserts
    `super().__init__()` as its first statement (after the docstring).

    ## Why is this bad?
    `nn.Module.__init__` creates the registries of parameters, buffers and
    submodules. Without it, assigning a layer raises "cannot assign module
    before Module.__init__() call", and calling the module fails.

    ## Example
    ```python
    class LR(nn.Module):
        def __init__(self, d):
            self.linear = nn.Linear(d, 1)
    ```

    ## Use instead
    ```python
    class LR(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.linear = nn.Linear(d, 1)
    ```

    ## Fix safety
    Safe when the base is `nn.Module` itself, or an nn.Module class of the same
    file whose `__init__` needs no arguments. Unsafe otherwise (another torch
    layer such as `nn.Linear`, a base from another file, several bases): the
    base `__init__` may need arguments the fix cannot know.

    ## Known problems
    Left alone: classes that call an `__init__` anywhere in their methods
    (for instance from a helper called by `__init__`), and one-line
    `__init__` bodies (reported without a fix).
    """

    code = "TFM401"
    name = "missing-super-init"
    summary = "nn.Module subclass __init__ never calls super().__init__()"

    fixes = (
        FixCase(
            HEADER + "class LR(nn.Module):\n"
            "    def __init__(self, input_size, output_size):\n"
            '        """Linear regression."""\n'
            "        # the layer\n"
            "        self.linear = nn.Linear(input_size, output_size)\n",
            HEADER + "class LR(nn.Module):\n"
            "    def __init__(self, input_size, output_size):\n"
            '        """Linear regression."""\n'
            "        super().__init__()\n"
            "        # the layer\n"
            "        self.linear = nn.Linear(input_size, output_size)\n",
        ),
        FixCase(
            HEADER + "class Base(nn.Module):\n    def __init__(self, scale=1.0):\n        super().__init__()\n\n"
            "class Child(Base):\n    def __init__(self):\n        self.fc = nn.Linear(2, 2)\n",
            HEADER + "class Base(nn.Module):\n    def __init__(self, scale=1.0):\n        super().__init__()\n\n"
            "class Child(Base):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 2)\n",
        ),
        FixCase(
            HEADER + "class Wide(nn.Linear):\n    def __init__(self):\n        self.extra = 1\n",
            HEADER + "class Wide(nn.Linear):\n    def __init__(self):\n        super().__init__()\n        self.extra = 1\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self):\n        super(A, self).__init__()\n"),
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self):\n        nn.Module.__init__(self)\n"),
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self, x):\n        if x:\n            super().__init__()\n"),
        KeepCase(
            HEADER + "class A(nn.Module):\n    def __init__(self):\n        self._setup()\n"
            "    def _setup(self):\n        super().__init__()\n"
        ),
        KeepCase(HEADER + "class A(nn.Module):\n    pass\n"),
        KeepCase("class Plain:\n    def __init__(self):\n        self.x = 1\n"),
        KeepCase(HEADER + "class A(nn.Module):\n    def __init__(self): self.x = 1\n", reported=True),
    )

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        for method, _ in methods(tree):
            if method.name == "__init__" and not any(
                n.attr == "__init__" for n in nodes(method, ast.Attribute)
            ):
                return True
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self.facts.is_module_class(node):
            return
        init = next((f for f in class_methods(node) if f.name.value == "__init__"), None)
        if init is None or self_name(init) is None:
            return
        if any(calls_an_init(method) for method in class_methods(node)):
            return
        message = (
            "`__init__` never calls `super().__init__()`: assigning layers raises "
            "'cannot assign module before Module.__init__() call' and the module cannot be called"
        )
        if not isinstance(init.body, cst.IndentedBlock):
            self.report(init, message)
            return
        self.report(init, message, Fix({init.body: _insert_super_init}, unsafe=not self._base_init_takes_nothing(node)))

    def _base_init_takes_nothing(self, cls: cst.ClassDef) -> bool:
        bases = self.facts.base_classes(cls)
        if len(bases) != 1:
            return False
        base = bases[0]
        if base == TORCH_MODULE_BASE:
            return True
        if not isinstance(base, cst.ClassDef):
            return False
        for member in self.facts.class_family_up(base):
            init = next((f for f in class_methods(member) if f.name.value == "__init__"), None)
            if init is not None:
                return required_params(init) == 0
        return False


def _insert_super_init(block: cst.IndentedBlock) -> cst.IndentedBlock:
    body = list(block.body)
    index = 0
    if body and m.matches(body[0], m.SimpleStatementLine(body=[m.Expr(value=m.SimpleString() | m.ConcatenatedString())])):
        index = 1  # after the docstring
    call = cst.SimpleStatementLine(body=[cst.Expr(cst.parse_expression("super().__init__()"))])
    body.insert(index, call)
    return block.with_changes(body=body)
