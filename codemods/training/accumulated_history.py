"""TFM803: a running total of losses that keeps every step's graph -> add the detached loss."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.training._loops import LOOPS, every_iteration, own_nodes
from torchfix_mod.edits import replace_expression
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import dotted

GRAPH_USES = frozenset({"backward", "grad_fn", "requires_grad", "grad", "retain_grad", "register_hook"})


class AccumulatedHistoryRule(Rule):
    """
    ## What it does
    Finds a loop that calls `loss.backward()` and also adds `loss` itself to
    something that outlives the iteration: `total_loss += loss`, or
    `losses.append(loss)`, where the total or the list is made before the loop.
    The fix adds `loss.detach()` instead.

    ## Why is this bad?
    `loss` carries its autograd graph (`loss.grad_fn`). Adding it to a total
    makes the total's graph reach back through every iteration's graph; a list
    holds every iteration's loss and graph. Nothing is freed until the loop
    ends, so memory grows with the number of steps. The PyTorch FAQ ("My model
    reports cuda runtime error(2): out of memory") gives this as its first cause.

    ## Example
    ```python
    total_loss = 0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss
    ```

    ## Use instead
    ```python
    total_loss = 0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach()
    ```

    ## Fix safety
    Safe: `loss.detach()` is a tensor with the same value, dtype and device, so
    the total (or the list) holds the same numbers as before and every use
    that reads them works as before; only the graph is gone. It is not written
    when the file reads the total's or the list's graph anywhere
    (`.backward()`, `.grad_fn`, `.requires_grad`, `.grad`,
    `torch.autograd.grad`): that code relies on the history. `loss.item()`
    would also free the graph, but turns the total into a Python number (and
    waits for the GPU on every step), which a later `total.item()` or
    `total.cpu()` would not accept; the detached tensor keeps the type.

    The loss must get `backward()` on every iteration, without `retain_graph`:
    its graph is then spent, and nothing can go back through it from the total,
    so keeping it is only a cost. Where the backward is conditional
    (`if with_backward: loss.backward()`), the kept losses may be meant for a
    later `sum(losses).backward()`, and the loop is left alone.

    ## Known problems
    Files that do not import torch are not checked (`loss.backward()` of another
    autograd library, such as micrograd, whose values have no `detach`).
    Only a loss whose `backward()` the loop calls is known to carry a graph; an
    evaluation loop's running total (no `backward()`) is not checked, and is
    harmless under `torch.no_grad()` anyway. Files that do not import torch
    are not checked (`loss.backward()` of another autograd library). A total that is reset inside the
    loop, a value other than the loss itself (`loss * n`: reported without a
    fix), and accumulation through a function call are left as they are.
    """

    code = "TFM803"
    name = "accumulated-history"
    summary = "Running total of a loss keeps every step's autograd graph alive; add loss.detach()"

    fixes = (
        FixCase(
            "import torch\n\n\n"
            "def train(model, loader, criterion, optimizer):\n"
            "    total_loss = 0\n"
            "    losses = []\n"
            "    for x, y in loader:\n"
            "        optimizer.zero_grad()\n"
            "        loss = criterion(model(x), y)\n"
            "        loss.backward()\n"
            "        optimizer.step()\n"
            "        total_loss += loss  # running sum\n"
            "        losses.append(loss)\n"
            "    return total_loss / len(loader), sum(losses)\n",
            "import torch\n\n\n"
            "def train(model, loader, criterion, optimizer):\n"
            "    total_loss = 0\n"
            "    losses = []\n"
            "    for x, y in loader:\n"
            "        optimizer.zero_grad()\n"
            "        loss = criterion(model(x), y)\n"
            "        loss.backward()\n"
            "        optimizer.step()\n"
            "        total_loss += loss.detach()  # running sum\n"
            "        losses.append(loss.detach())\n"
            "    return total_loss / len(loader), sum(losses)\n",
        ),
        FixCase(
            "import torch\n\n\n"
            "class Trainer:\n"
            "    def epoch(self, batches):\n"
            "        self.running = 0.0\n"
            "        for batch in batches:\n"
            "            loss = self.step(batch)\n"
            "            loss.backward()\n"
            "            self.running += loss\n",
            "import torch\n\n\n"
            "class Trainer:\n"
            "    def epoch(self, batches):\n"
            "        self.running = 0.0\n"
            "        for batch in batches:\n"
            "            loss = self.step(batch)\n"
            "            loss.backward()\n"
            "            self.running += loss.detach()\n",
        ),
    )
    keeps = (
        KeepCase(  # already a number
            "def train(model, loader, optimizer):\n"
            "    total = 0\n"
            "    for x in loader:\n"
            "        loss = model(x).sum()\n"
            "        loss.backward()\n"
            "        total += loss.item()\n"
        ),
        KeepCase(  # reset in each iteration: nothing outlives it
            "def train(model, loader):\n"
            "    for x in loader:\n"
            "        total = 0\n"
            "        loss = model(x).sum()\n"
            "        loss.backward()\n"
            "        total += loss\n"
        ),
        KeepCase(  # the total's graph is used afterwards
            "def train(model, loader):\n"
            "    total = 0\n"
            "    for x in loader:\n"
            "        loss = model(x).sum()\n"
            "        loss.backward(retain_graph=True)\n"
            "        total += loss\n"
            "    total.backward()\n"
        ),
        KeepCase(  # a conditional backward: the kept losses may be meant for a later backward
            "def loss_of_chunks(chunks, with_backward):\n"
            "    losses = []\n"
            "    for chunk in chunks:\n"
            "        chunk_loss = chunk.sum()\n"
            "        if with_backward:\n"
            "            chunk_loss.backward()\n"
            "            chunk_loss = chunk_loss.detach()\n"
            "        losses.append(chunk_loss)\n"
            "    return sum(losses)\n"
        ),
        KeepCase(  # the loss is rebound after backward
            "def train(model, loader):\n"
            "    losses = []\n"
            "    for x in loader:\n"
            "        loss = model(x).sum()\n"
            "        loss.backward()\n"
            "        loss = loss.detach()\n"
            "        losses.append(loss)\n"
        ),
        KeepCase(  # no backward in the loop: not known to carry a graph
            "def evaluate(model, loader):\n"
            "    total = 0\n"
            "    for x in loader:\n"
            "        total += model(x).sum()\n"
            "    return total\n"
        ),
        KeepCase(  # an expression of the loss: reported, no fix
            "import torch\n\n\n"
            "def train(model, loader):\n"
            "    total = 0\n"
            "    for x in loader:\n"
            "        loss = model(x).mean()\n"
            "        loss.backward()\n"
            "        total += loss * len(x)\n",
            reported=True,
        ),
    )

    def check(self) -> None:
        from torchfix_mod.codemods.torchfix._api import imports_package

        if not imports_package(self.model, "torch"):
            return  # `loss.backward()` of another autograd library (micrograd's Value has no detach)
        for kind in LOOPS:
            for loop in self.model.nodes(kind):
                self._check_loop(loop)

    @staticmethod
    def _own_nodes(root: ast.AST) -> list[ast.AST]:
        return own_nodes(root)

    def _check_loop(self, loop: ast.AST) -> None:
        nodes = self._own_nodes(loop)
        losses = {
            n.func.value.id
            for n in nodes
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "backward"
            and isinstance(n.func.value, ast.Name)
            and self._frees_the_graph(n, loop)
        }
        # a loss bound more than once in the loop (`loss = loss.detach()` after backward) may
        # be another value where it is added
        losses = {name for name in losses if self._stores_in(nodes, name) <= 1}
        if not losses:
            return
        # the innermost loop reports
        if any(isinstance(n, LOOPS) and self._check_inner(n, losses) for n in nodes):
            return
        for node in nodes:
            if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
                self._accumulation(loop, nodes, node.target, node.value, losses, node)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and len(node.args) == 1
                and not node.keywords
            ):
                self._accumulation(loop, nodes, node.func.value, node.args[0], losses, node)

    def _frees_the_graph(self, call: ast.Call, loop: ast.AST) -> bool:
        """``backward()`` runs on every iteration and frees the graph (no ``retain_graph``):
        no one can go back through an added loss's graph afterwards, so keeping it is only
        a cost. A conditional backward (``if with_backward: loss.backward()``) means the
        losses kept may be meant for a later backward."""
        for keyword in call.keywords:
            if keyword.arg in ("retain_graph", "create_graph") and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value in (False, None)
            ):
                return False
            if keyword.arg is None:
                return False
        if len(call.args) > 1:
            return False
        return every_iteration(self.model, call, loop)

    @staticmethod
    def _stores_in(nodes: list[ast.AST], name: str) -> int:
        count = 0
        for node in nodes:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                count += sum(1 for n in ast.walk(target) if isinstance(n, ast.Name) and n.id == name)
        return count

    def _check_inner(self, inner: ast.AST, losses: set[str]) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "backward"
            for n in self._own_nodes(inner)
        )

    def _accumulation(self, loop, nodes, holder: ast.expr, value: ast.expr, losses: set[str], node: ast.AST) -> None:
        held = dotted(holder)
        if held is None:
            return
        names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
        if not names & losses:
            return
        if self._detached(value, losses):
            return
        # the holder outlives the iteration: never rebound inside the loop
        for other in nodes:
            targets = other.targets if isinstance(other, ast.Assign) else [other.target] if isinstance(other, ast.AnnAssign) else []
            if isinstance(other, (ast.For, ast.AsyncFor, ast.comprehension)):
                targets = [other.target]
            if any(held == dotted(t) or (isinstance(t, ast.Tuple) and any(held == dotted(e) for e in t.elts)) for t in targets):
                return
        if self._graph_read(holder, held):
            return
        loss = value.id if isinstance(value, ast.Name) and value.id in losses else None
        verb = "appends" if isinstance(node, ast.Call) else "adds"
        shown = loss or "the loss"
        message = (
            f"`{held}` {verb} `{shown}` with its autograd graph on every step, so every step's graph stays "
            f"alive and memory grows with the steps; add `{shown}.detach()` (or `{shown}.item()`)"
        )
        fix = Fix([self.edit(value, "Name", replace_expression, f"{loss}.detach()")]) if loss else None
        self.report(node, message, fix)

    def _returned(self, loop: ast.AST, held: str) -> bool:
        """The holder leaves the function (a caller may go back through a graph that saved no
        tensors), so the fix is not proven."""
        function = self.model.enclosing_function(loop)
        if function is None:
            return False
        return any(
            isinstance(node, (ast.Return, ast.Yield)) and node.value is not None and any(dotted(n) == held for n in ast.walk(node.value))
            for node in ast.walk(function)
        )

    def _detached(self, value: ast.expr, losses: set[str]) -> bool:
        """Every use of the loss in ``value`` already leaves the graph (``loss.item()``, ...)."""
        for node in ast.walk(value):
            if isinstance(node, ast.Name) and node.id in losses:
                parent = self.model.parent(node)
                if not (isinstance(parent, ast.Attribute) and parent.attr in ("item", "detach", "tolist", "data", "cpu", "numpy")):
                    return False
                if parent.attr == "cpu":
                    return False  # .cpu() keeps the graph
        return True

    def _graph_read(self, holder: ast.expr, held: str) -> bool:
        """The file reads the holder's graph: ``<holder>.backward()``, ``.grad_fn``, ... or the
        holder inside an expression whose graph is read (``torch.stack(losses).backward()``)."""
        for node in self.model.nodes(ast.Attribute):
            if node.attr in GRAPH_USES and any(dotted(n) == held for n in ast.walk(node.value)):
                return True
        for call in self.model.nodes(ast.Call):
            qname = self.model.torch_qualified(call.func)
            if qname in ("torch.autograd.grad", "torch.autograd.backward"):
                if any(dotted(n) == held for arg in call.args for n in ast.walk(arg)):
                    return True
        return False
