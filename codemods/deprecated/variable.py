"""TFM503: ``torch.autograd.Variable(t)`` -> the tensor itself."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.deprecated._deprecated_api import chain_qualified_names, import_bound
from torchfix_mod.rule import Fix, FixCase, ImportNeed, KeepCase, Rule
from torchfix_mod.semantic import dotted, keyword

VARIABLE = frozenset({"torch.autograd.Variable", "torch.autograd.variable.Variable"})
# torch factories whose result never carries another tensor's autograd graph
NO_GRAPH_FACTORIES = frozenset(
    {
        "zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "range",
        "linspace", "logspace", "eye", "tensor", "from_numpy", "scalar_tensor", "empty_strided",
        "tril_indices", "triu_indices", "hann_window", "hamming_window", "blackman_window",
        "bartlett_window", "kaiser_window",
    }
)


def unwrap(node, fresh: bool, wants_grad: bool):
    """``Variable(t, requires_grad=g)`` (a ``Call``) -> ``t.detach().requires_grad_(g)``;
    ``.detach()`` is left out when ``t`` is ``fresh``."""
    import libcst as cst

    atomic = (cst.Name, cst.Attribute, cst.Call, cst.Subscript)

    def parenthesized(expr):
        return expr if expr.lpar else expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])

    def receiver(expr):
        # parenthesized when it needs to be
        if isinstance(expr, atomic) and not spans_lines or expr.lpar:
            return expr
        return parenthesized(expr)

    data = next(a for a in node.args if a.keyword is None).value
    # a line break inside the argument may be legal only because `Variable(...)` encloses it
    # (`Variable(x\n.float())`): such an argument keeps a pair of parentheses of its own
    spans_lines = "\n" in cst.Module([]).code_for_node(data.with_changes(lpar=[], rpar=[]))
    if data.lpar and isinstance(data, atomic) and not spans_lines:
        data = data.with_changes(lpar=[], rpar=[])
    expr = parenthesized(data) if spans_lines else data
    if not fresh:
        expr = cst.Call(cst.Attribute(receiver(expr), cst.Name("detach")))
    if wants_grad:
        flag = next(a for a in node.args if a.keyword is not None).value
        expr = cst.Call(cst.Attribute(receiver(expr), cst.Name("requires_grad_")), [cst.Arg(flag)])
    return expr


class VariableRule(Rule):
    """
    ## What it does
    Finds `torch.autograd.Variable(t)` and `Variable(t, requires_grad=...)` and
    replaces them with the tensor itself, dropping the `Variable` import once
    it is unused.

    ## Why is this bad?
    `Variable` has been a deprecated wrapper since PyTorch 0.4: tensors carry
    autograd state themselves. It only adds noise and an import.

    ## Example
    ```python
    inputs = Variable(torch.from_numpy(x_train))
    w = Variable(t, requires_grad=True)
    ```

    ## Use instead
    ```python
    inputs = torch.from_numpy(x_train)
    w = t.detach().requires_grad_(True)
    ```

    ## Fix safety
    Safe, and exact: `Variable(t)` returns a new tensor that shares `t`'s
    storage but is cut from its graph, which is `t.detach()`. When `t` is a
    tensor freshly built by a torch factory from sizes or Python data
    (`torch.zeros(3)`, `torch.from_numpy(a)`: no graph to cut), the fix writes
    `t` alone; `requires_grad=x` becomes `.requires_grad_(x)`.

    ## Known problems
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Reported without a fix: `volatile=`, positional extra arguments and `*args`.
    """

    code = "TFM503"
    respects_version_gates = True
    name = "autograd-variable"
    summary = "torch.autograd.Variable is a deprecated no-op wrapper; use the tensor"

    fixes = (
        FixCase(
            "import torch\nfrom torch.autograd import Variable\n\n"
            "def batch(x_train, y):\n"
            "    inputs = Variable(torch.from_numpy(x_train))\n"
            "    labels = Variable(y)\n"
            "    return inputs, labels\n",
            "import torch\n\n"
            "def batch(x_train, y):\n"
            "    inputs = torch.from_numpy(x_train)\n"
            "    labels = y.detach()\n"
            "    return inputs, labels\n",
        ),
        FixCase(
            "import torch\n\nw = torch.autograd.Variable(torch.zeros(3), requires_grad=True)\n"
            "v = torch.autograd.Variable(a + b, requires_grad=flag)\n",
            "import torch\n\nw = torch.zeros(3).requires_grad_(True)\n"
            "v = (a + b).detach().requires_grad_(flag)\n",
        ),
        FixCase(
            "import torch\n\nv = torch.autograd.Variable(torch.ones(3) * w)\n",
            "import torch\n\nv = (torch.ones(3) * w).detach()\n",
        ),
        FixCase(
            "import torch\nfrom torch.autograd import Variable\n\n"
            "def batch(x, y):\n"
            "    inputs = Variable(x\n"
            "                      .float()\n"
            "                      .mul(2))\n"
            "    labels = Variable(torch.from_numpy(y)\n"
            "                      .long())\n"
            "    return inputs, labels\n",
            "import torch\n\n"
            "def batch(x, y):\n"
            "    inputs = (x\n"
            "                      .float()\n"
            "                      .mul(2)).detach()\n"
            "    labels = (torch.from_numpy(y)\n"
            "                      .long()).detach()\n"
            "    return inputs, labels\n",
        ),
        FixCase(
            "from torch.autograd import Variable as Var\n\ndef f(x):\n    return Var(x)\n",
            "from torch.autograd import Variable as Var\n\ndef f(x):\n    return x.detach()\n",
        ),
    )
    keeps = (
        KeepCase("import torch\n\nv = torch.autograd.Variable(t, volatile=True)\n", reported=True),
        KeepCase("class Variable:\n    pass\n\nv = Variable(3)\n"),
        KeepCase("import torch\n\nv = torch.tensor([1.0])\n"),
    )

    def _has_no_graph(self, data: ast.expr) -> bool:
        """A factory call that builds a tensor from sizes or Python data: nothing to detach.
        (``torch.ones(3) * w`` or ``torch.as_tensor(w)`` may carry ``w``'s graph.)"""
        if not isinstance(data, ast.Call) or dotted(data.func) is None:
            return False
        requires_grad = keyword(data, "requires_grad")
        if requires_grad is not None and not (isinstance(requires_grad.value, ast.Constant) and requires_grad.value.value is False):
            return False
        qnames = chain_qualified_names(self.model, data.func)
        qname = next(iter(qnames)) if len(qnames) == 1 else ""
        return qname.startswith("torch.") and qname.count(".") == 1 and qname.split(".")[1] in NO_GRAPH_FACTORIES

    def check(self) -> None:
        model = self.model
        imported = import_bound(model)
        for call in sorted(model.nodes(ast.Call), key=lambda c: (c.lineno, c.col_offset, -c.end_lineno, -c.end_col_offset)):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr != "Variable" or isinstance(func, ast.Name) and func.id not in imported:
                continue  # `Variable` itself, or a name an import binds
            qnames = chain_qualified_names(model, func) if dotted(func) is not None else set()
            if not qnames or not qnames <= VARIABLE:
                continue
            message = "`Variable` is a deprecated no-op wrapper since PyTorch 0.4; use the tensor itself"
            # LibCST's positional arguments: values, `*args` and `**kwargs`
            positional = [*call.args, *(kw for kw in call.keywords if kw.arg is None)]
            keywords = {kw.arg for kw in call.keywords if kw.arg is not None}
            if len(positional) != 1 or not isinstance(positional[0], ast.expr) or isinstance(positional[0], ast.Starred) or keywords - {"requires_grad"}:
                self.report(call, message)
                continue
            fresh = self._has_no_graph(positional[0])
            wants_grad = "requires_grad" in keywords
            module = next(iter(qnames)).rpartition(".")[0]
            removals = (ImportNeed(module, "Variable"),) if isinstance(func, ast.Name) else ()
            self.report(call, message, Fix([self.edit(call, "Call", unwrap, fresh, wants_grad)], removals=removals))
