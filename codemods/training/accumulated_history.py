"""TFM803: a running total of losses that keeps every step's graph -> add the detached loss."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.training._loops import LOOPS, every_iteration, own_nodes, under_no_grad
from torchfix_mod.edits import replace_expression
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import dotted

DETACHING = frozenset({"item", "detach", "tolist", "data", "numpy"})
# tensor methods whose result still carries the graph: a chain through them reads on
KEEPS_GRAPH = frozenset({"cpu", "cuda", "to", "float", "double", "half", "mean", "sum", "squeeze", "view", "reshape", "clone", "contiguous", "abs", "sqrt", "exp", "log"})
NUMBER_BUILTINS = frozenset({"float", "int", "bool", "str", "repr", "format"})
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

    A total or list the function returns is fixed too. A caller could only go
    back through it if no step of the loss's graph saved a tensor (a graph
    whose `backward()` already ran raises "Trying to backward through the
    graph a second time" otherwise), and a loss computed through a layer with
    weights always saves one.

    ## Known problems
    Files that do not import torch are not checked (`loss.backward()` of
    another autograd library, such as micrograd, whose values have no
    `detach`). Only a loss whose `backward()` the loop calls (directly or as
    `scaler.scale(loss).backward()`) is known to carry a graph; an evaluation
    loop's running total (no `backward()`) is not checked, and is harmless
    under `torch.no_grad()` anyway, as is `total += loss` written under
    `torch.no_grad()`. A loss read only through `.item()`, `.detach()`,
    `.tolist()`, `.numpy()` (after `.cpu()` or not), `float(...)` or an
    f-string adds no graph and is not reported. A total that is reset inside
    the loop, a value other than the loss itself (`loss * n`: reported without
    a fix), and accumulation through a function call are left as they are.
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
        FixCase(  # AMP: the scaled loss's backward frees the loss's graph; the loss was divided first
            "import torch\n\n\n"
            "def train(model, loader, optimizer, k):\n"
            "    scaler = torch.amp.GradScaler()\n"
            "    total = 0.0\n"
            "    for x in loader:\n"
            "        optimizer.zero_grad()\n"
            "        loss = model(x).mean()\n"
            "        loss = loss / k\n"
            "        scaler.scale(loss).backward()\n"
            "        scaler.step(optimizer)\n"
            "        scaler.update()\n"
            "        total = total + loss\n"
            "    return total\n",
            "import torch\n\n\n"
            "def train(model, loader, optimizer, k):\n"
            "    scaler = torch.amp.GradScaler()\n"
            "    total = 0.0\n"
            "    for x in loader:\n"
            "        optimizer.zero_grad()\n"
            "        loss = model(x).mean()\n"
            "        loss = loss / k\n"
            "        scaler.scale(loss).backward()\n"
            "        scaler.step(optimizer)\n"
            "        scaler.update()\n"
            "        total = total + loss.detach()\n"
            "    return total\n",
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
        KeepCase(  # read through what leaves the graph: numbers, strings, arrays
            "import torch\n\n\n"
            "def train(model, loader, log):\n"
            "    total, seen, arrays = 0.0, [], []\n"
            "    for x in loader:\n"
            "        loss = model(x).mean()\n"
            "        loss.backward()\n"
            "        total += loss.cpu().item()\n"
            "        total += float(loss)\n"
            "        seen.append(f\"{loss:.3f}\")\n"
            "        arrays.append(loss.cpu().detach().numpy())\n"
        ),
        KeepCase(  # added under no_grad: the sum records no graph
            "import torch\n\n\n"
            "def train(model, loader):\n"
            "    total = 0.0\n"
            "    for x in loader:\n"
            "        loss = model(x).mean()\n"
            "        loss.backward()\n"
            "        with torch.no_grad():\n"
            "            total += loss\n"
        ),
        KeepCase(  # the loss is another value where it is added
            "import torch\n\n\n"
            "def train(model, loader):\n"
            "    losses = []\n"
            "    for x in loader:\n"
            "        loss = model(x).mean()\n"
            "        loss.backward()\n"
            "        loss = torch.zeros(())\n"
            "        losses.append(loss)\n"
        ),
    )

    def check(self) -> None:
        from torchfix_mod.codemods.torchfix._api import imports_package

        if not imports_package(self.model, "torch"):
            return  # `loss.backward()` of another autograd library (micrograd's Value has no detach)
        for kind in LOOPS:
            for loop in self.model.nodes(kind):
                self._check_loop(loop)

    def _check_loop(self, loop: ast.AST) -> None:
        nodes = own_nodes(loop)
        backwards = {}
        for node in nodes:
            loss = self._backward_of(node)
            if loss is not None and self._frees_the_graph(node, loop):
                backwards.setdefault(loss.id, node)
        if not backwards:
            return
        # the innermost loop reports
        if any(isinstance(n, LOOPS) and self._has_backward(n) for n in nodes):
            return
        for node in nodes:
            if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
                self._accumulation(loop, nodes, node.target, node.value, backwards, node)
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.value, ast.BinOp)
                and isinstance(node.value.op, ast.Add)
                and dotted(node.targets[0]) is not None
            ):
                held = dotted(node.targets[0])  # total = total + loss, total = loss + total
                value = node.value
                if dotted(value.left) == held:
                    self._accumulation(loop, nodes, node.targets[0], value.right, backwards, node)
                elif dotted(value.right) == held:
                    self._accumulation(loop, nodes, node.targets[0], value.left, backwards, node)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and len(node.args) == 1
                and not node.keywords
            ):
                self._accumulation(loop, nodes, node.func.value, node.args[0], backwards, node)

    def _backward_of(self, node: ast.AST) -> ast.Name | None:
        """The name whose graph ``node`` backpropagates: ``loss`` in ``loss.backward()`` and in
        ``scaler.scale(loss).backward()`` (the scaled loss shares the loss's graph)."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "backward"):
            return None
        value = node.func.value
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "scale"
            and len(value.args) == 1
            and not value.keywords
        ):
            value = value.args[0]
        return value if isinstance(value, ast.Name) else None

    def _has_backward(self, root: ast.AST) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "backward"
            for n in own_nodes(root)
        )

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

    def _same_value(self, nodes: list[ast.AST], name: str, backward: ast.AST, added: ast.AST) -> bool:
        """The ``name`` added is the value backpropagated: both run on every iteration and no
        store of ``name`` in the loop lies between them (``loss = loss / k`` before the
        backward is fine; ``loss = loss.detach()`` between them is another value)."""
        low, high = sorted(((backward.lineno, backward.col_offset), (added.lineno, added.col_offset)))
        for node in nodes:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) else []
            for target in targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name) and n.id == name and low < (n.lineno, n.col_offset) < high:
                        return False
        return True

    def _accumulation(self, loop, nodes, holder: ast.expr, value: ast.expr, backwards: dict[str, ast.AST], node: ast.AST) -> None:
        held = dotted(holder)
        if held is None:
            return
        used = [n for n in ast.walk(value) if isinstance(n, ast.Name) and n.id in backwards]
        if not used:
            return
        if all(self._leaves_graph(n) for n in used):
            return
        if not every_iteration(self.model, node, loop):
            if not self._every_iteration_or_branch(node, loop):
                return
        if any(not self._same_value(nodes, n.id, backwards[n.id], node) for n in used):
            return
        if not isinstance(node, ast.Call) and under_no_grad(self.model, node):
            return  # `total += loss` under no_grad: the sum records no graph
        # the holder outlives the iteration: never rebound inside the loop
        for other in nodes:
            if other is node:
                continue
            targets = other.targets if isinstance(other, ast.Assign) else [other.target] if isinstance(other, ast.AnnAssign) else []
            if isinstance(other, (ast.For, ast.AsyncFor, ast.comprehension)):
                targets = [other.target]
            if any(held == dotted(t) or (isinstance(t, ast.Tuple) and any(held == dotted(e) for e in t.elts)) for t in targets):
                return
        if self._graph_read(holder, held):
            return
        loss = value.id if isinstance(value, ast.Name) and value.id in backwards else None
        verb = "appends" if isinstance(node, ast.Call) else "adds"
        name = used[0].id
        text = self.model.text(value)
        shown = f"`{name}`" if loss else f"`{text if len(text) <= 40 else text[:37] + '...'}`, which holds `{name}`,"
        message = (
            f"`{held}` {verb} {shown} with its autograd graph on every step, so every step's graph stays "
            f"alive and memory grows with the steps; add `{name}.detach()` (or `{name}.item()`)"
        )
        fix = Fix([self.edit(value, "Name", replace_expression, f"{loss}.detach()")]) if loss else None
        self.report(node, message, fix)

    def _every_iteration_or_branch(self, node: ast.AST, loop: ast.AST) -> bool:
        """An accumulation under a branch of the loop (``if i % 10 == 0: losses.append(loss)``)
        still keeps graphs alive, one per taken branch; inner loops and functions do not
        count (they are another loop's business)."""
        parent = self.model.parent(node)
        while parent is not None and parent is not loop:
            if isinstance(parent, LOOPS):
                return False
            parent = self.model.parent(parent)
        return parent is loop

    def _leaves_graph(self, name: ast.Name) -> bool:
        """The loss is only read here through something that leaves the graph: ``loss.item()``,
        ``loss.detach()``, ``loss.cpu().item()``, ``float(loss)``, ``f"{loss}"``, ``loss.data``."""
        node: ast.AST = name
        while True:
            parent = self.model.parent(node)
            if isinstance(parent, ast.FormattedValue):
                return True
            if isinstance(parent, ast.Call) and node in parent.args and isinstance(parent.func, ast.Name):
                return parent.func.id in NUMBER_BUILTINS and self.model.scope(parent).resolve(parent.func.id) == []
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                return False
            if parent.attr in DETACHING:
                return True
            call = self.model.parent(parent)
            if parent.attr in KEEPS_GRAPH and isinstance(call, ast.Call) and call.func is parent:
                node = call  # loss.cpu(), loss.float(), loss.mean(): still the graph; look further
                continue
            return False

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
