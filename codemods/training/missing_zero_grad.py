"""TFM801: a training loop that never clears gradients -> ``optimizer.zero_grad()`` before backward."""

from __future__ import annotations

import ast
from typing import Any

from torchfix_mod.codemods.training._loops import LOOPS, every_iteration, own_nodes
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import dotted

NOT_OPTIMIZERS = ("torch.optim.lr_scheduler.", "torch.optim.swa_utils.")
GRAD_SCALERS = frozenset({"torch.amp.GradScaler", "torch.cuda.amp.GradScaler", "torch.amp.grad_scaler.GradScaler"})


def _change(name: str):
    def apply(node: Any, *args: Any) -> Any:
        import libcst as cst

        if name == "insert_before":
            (code,) = args
            new_line = cst.SimpleStatementLine([cst.Expr(cst.parse_expression(code))])
            return cst.FlattenSentinel([new_line, node])
        raise ValueError(name)

    apply.__name__ = apply.__qualname__ = name
    return apply


class MissingZeroGradRule(Rule):
    """
    ## What it does
    Finds a loop that calls `<loss>.backward()` and `<optimizer>.step()` on
    every iteration but never clears the gradients: no `<optimizer>.zero_grad()`,
    no `<model>.zero_grad()`, no `p.grad = None` or `p.grad.zero_()`, neither
    in the loop, nor in the function around it, nor in a function or method of
    the file that the loop calls. It inserts `<optimizer>.zero_grad()` in the
    loop, just before the backward call.

    ## Why is this bad?
    `backward()` adds each new gradient to what `.grad` already holds. Without
    clearing, step `n` moves the parameters by the sum of the gradients of all
    the steps so far: the loss curve may still go down for a while, then the
    updates grow and training diverges or stalls, and nothing says why.

    ## Example
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    ```

    ## Fix safety
    Safe when the optimizer is known to be one: the name (or `self` attribute)
    is only ever set to a `torch.optim` optimizer (schedulers excluded), or it is
    what `GradScaler.step(...)` is given. Then `zero_grad()` exists and cannot
    raise, and each step uses the gradient of its own batch only, which is the
    defect removed. It is inserted before the loop's one backward call, which
    must be a statement of its own in the loop. The file's own spelling is
    kept: if the file calls `zero_grad(set_to_none=...)` elsewhere, the same
    argument is written.

    Reported without a fix: an optimizer known only by its name (a function
    parameter called `optimizer`); the fix could raise if it were something
    else.

    ## Known problems
    Left alone, as gradient accumulation or manual gradient handling written on
    purpose, or code the analysis cannot follow:
    - loops that make a new optimizer on each iteration (over tensors made in
      the iteration: no gradient carries over, as in a per-step latent
      optimisation);
    - loops whose `step()` is under a condition (accumulation over k batches);
    - loops that call `torch.autograd.grad`, or `step(closure)` (LBFGS-style,
      the closure clears);
    - loops that hand the optimizer to another function (it may clear there);
    - loops where more than one object gets `.step()` and none is known to be
      the optimizer;
    - files that clear gradients anywhere for that optimizer or any model.
    """

    code = "TFM801"
    name = "missing-zero-grad"
    summary = "Training loop never clears gradients, so they add up across steps; call optimizer.zero_grad()"

    fixes = (
        FixCase(
            "import torch\n\n\n"
            "def train(model, loader, criterion):\n"
            "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    for x, y in loader:\n"
            "        loss = criterion(model(x), y)\n"
            "        # backprop\n"
            "        loss.backward()\n"
            "        optimizer.step()\n",
            "import torch\n\n\n"
            "def train(model, loader, criterion):\n"
            "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    for x, y in loader:\n"
            "        loss = criterion(model(x), y)\n"
            "        optimizer.zero_grad()\n"
            "        # backprop\n"
            "        loss.backward()\n"
            "        optimizer.step()\n",
        ),
        FixCase(
            "import torch\nfrom torch import optim\n\n\n"
            "class Trainer:\n"
            "    def __init__(self, model):\n"
            "        self.model = model\n"
            "        self.opt = optim.Adam(model.parameters())\n"
            "        self.scaler = torch.amp.GradScaler()\n\n"
            "    def fit(self, batches):\n"
            "        for epoch in range(3):\n"
            "            for x in batches:\n"
            "                self.scaler.scale(self.model(x).sum()).backward()\n"
            "                self.scaler.step(self.opt)\n"
            "                self.scaler.update()\n",
            "import torch\nfrom torch import optim\n\n\n"
            "class Trainer:\n"
            "    def __init__(self, model):\n"
            "        self.model = model\n"
            "        self.opt = optim.Adam(model.parameters())\n"
            "        self.scaler = torch.amp.GradScaler()\n\n"
            "    def fit(self, batches):\n"
            "        for epoch in range(3):\n"
            "            for x in batches:\n"
            "                self.opt.zero_grad()\n"
            "                self.scaler.scale(self.model(x).sum()).backward()\n"
            "                self.scaler.step(self.opt)\n"
            "                self.scaler.update()\n",
        ),
    )
    keeps = (
        KeepCase(  # cleared in the loop
            "def train(model, loader, optimizer):\n"
            "    for x in loader:\n"
            "        optimizer.zero_grad()\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
        ),
        KeepCase(  # cleared by the model, after the step
            "def train(model, loader, optimizer):\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
            "        model.zero_grad(set_to_none=True)\n"
        ),
        KeepCase(  # cleared by hand
            "def train(model, loader, optimizer):\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
            "        for p in model.parameters():\n"
            "            p.grad = None\n"
        ),
        KeepCase(  # cleared by hand, old style
            "def train(model, loader, optimizer):\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
            "        for p in model.parameters():\n"
            "            p.grad.data.zero_()\n"
        ),
        KeepCase(  # cleared in a helper the loop calls
            "def clear(model):\n"
            "    for p in model.parameters():\n"
            "        p.grad.zero_()\n\n\n"
            "def train(model, loader, optimizer):\n"
            "    for x in loader:\n"
            "        clear(model)\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
        ),
        KeepCase(  # gradient accumulation: a conditional step
            "def train(model, loader, optimizer, k=4):\n"
            "    for i, x in enumerate(loader):\n"
            "        model(x).sum().backward()\n"
            "        if (i + 1) % k == 0:\n"
            "            optimizer.step()\n"
        ),
        KeepCase(  # LBFGS: the closure clears
            "def train(model, loader, optimizer):\n"
            "    for x in loader:\n"
            "        def closure():\n"
            "            optimizer.zero_grad()\n"
            "            loss = model(x).sum()\n"
            "            loss.backward()\n"
            "            return loss\n"
            "        optimizer.step(closure)\n"
        ),
        KeepCase(  # the optimizer goes to another function, which may clear it
            "def train(model, loader, optimizer, hooks):\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
            "        hooks.after_step(optimizer)\n"
        ),
        KeepCase(  # two things get .step(), neither known to be the optimizer
            "def train(model, loader, opt_a, sched):\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        opt_a.step()\n"
            "        sched.step()\n"
        ),
        KeepCase(  # a new optimizer over a new tensor on each iteration (diffusers' pix2pix-zero)
            "import torch\n\n\n"
            "def guide(unet, latents, steps):\n"
            "    for t in steps:\n"
            "        x = latents.detach().clone().requires_grad_(True)\n"
            "        opt = torch.optim.SGD([x], lr=0.1)\n"
            "        unet(x, t).sum().backward(retain_graph=False)\n"
            "        opt.step()\n"
            "        latents = x.detach()\n"
        ),
        KeepCase(  # an optimizer known by its name only: reported, no fix
            "def train(model, loader, optimizer):\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n",
            reported=True,
        ),
    )

    def check(self) -> None:
        model = self.model
        for loop in model.nodes(ast.For) + model.nodes(ast.AsyncFor) + model.nodes(ast.While):
            self._check_loop(loop)

    # -- the loop ----------------------------------------------------------------------------

    @staticmethod
    def _own_calls(root: ast.AST) -> list[ast.Call]:
        return [node for node in own_nodes(root) if isinstance(node, ast.Call)]

    def _check_loop(self, loop: ast.AST) -> None:
        calls = self._own_calls(loop)
        backwards = [c for c in calls if self._method(c) == "backward" and not c.args]
        steps = [c for c in calls if self._method(c) == "step"]
        if not backwards or not steps:
            return
        # the innermost loop holding both reports; an outer one is left to it
        for inner in (n for n in ast.walk(loop) if n is not loop and isinstance(n, LOOPS)):
            inner_calls = self._own_calls(inner)
            if any(self._method(c) == "backward" for c in inner_calls) and any(self._method(c) == "step" for c in inner_calls):
                return
        if any(self.model.torch_qualified(c.func) in ("torch.autograd.grad", "torch.autograd.backward") for c in calls):
            return
        optimizer, proven = self._optimizer(steps)
        if optimizer is None:
            return
        step = next(c for c in steps if self._is_step_of(c, optimizer))
        if self._receiver_text(step) == optimizer and (step.args or step.keywords):
            return  # step(closure): the closure clears
        if not self._unconditional(step, loop):
            return
        if self._made_in(loop, step):
            return  # a new optimizer (over new tensors) on each iteration: nothing carries over
        for call in calls:
            if self._hands_over(call, optimizer):
                return
        if self._cleared(loop, calls, optimizer):
            return
        backward = backwards[0]
        message = (
            f"this loop calls `backward()` and `{optimizer}.step()` but never clears the gradients: "
            f"they add up across steps, so each step uses the sum of all past gradients; "
            f"call `{optimizer}.zero_grad()` before `backward()`"
        )
        fix = self._fix(backward, backwards, loop, optimizer) if proven else None
        self.report(backward, message, fix)

    @staticmethod
    def _method(call: ast.Call) -> str | None:
        return call.func.attr if isinstance(call.func, ast.Attribute) else None

    @staticmethod
    def _receiver_text(call: ast.Call) -> str | None:
        return dotted(call.func.value) if isinstance(call.func, ast.Attribute) else None

    def _is_step_of(self, call: ast.Call, optimizer: str) -> bool:
        if self._receiver_text(call) == optimizer:
            return True
        return bool(call.args) and dotted(call.args[0]) == optimizer and self._is_scaler(call.func.value)

    def _made_in(self, loop: ast.AST, step: ast.Call) -> bool:
        """The optimizer is (re)made inside the loop: some store of it lies in the loop."""
        receiver = step.args[0] if self._is_scaler(step.func.value) and step.args else step.func.value
        values = self._stores(receiver) or []
        inside = {id(n) for n in ast.walk(loop)}
        return any(id(value) in inside for value in values)

    # -- which object is the optimizer -------------------------------------------------------

    def _optimizer(self, steps: list[ast.Call]) -> tuple[str | None, bool]:
        """The spelling of the loop's optimizer and whether it is proven one; (None, False)
        when it cannot be told apart."""
        proven: list[str] = []
        named: list[str] = []
        others: list[str] = []
        for call in steps:
            receiver = call.func.value
            text = dotted(receiver)
            if text is None:
                continue
            if self._is_scaler(receiver):
                if len(call.args) == 1 and dotted(call.args[0]) is not None:
                    arg = call.args[0]
                    (proven if self._made_by_torch_optim(arg) is not False else named).append(dotted(arg))
                continue
            made = self._made_by_torch_optim(receiver)
            if made is True:
                proven.append(text)
            elif made is None and "optim" in text.rsplit(".", 1)[-1].lower():
                named.append(text)
            elif made is None:
                others.append(text)
        found = set(proven) or set(named)
        if len(found) != 1:
            return None, False
        if not proven and others:
            return None, False  # another thing gets .step() too; which is the optimizer?
        (optimizer,) = found
        return optimizer, bool(proven)

    def _stores(self, expr: ast.expr) -> list[ast.expr] | None:
        """What is ever assigned to ``expr`` (a name, or ``self.x`` in its class); None when
        unknown (a parameter, an import, something bound other than by ``=``)."""
        if isinstance(expr, ast.Name):
            bindings = self.model.scope(expr).resolve(expr.id)
            values = []
            for binding in bindings:
                parent = self.model.parent(binding.node)
                if binding.kind != "assign" or not (isinstance(parent, ast.Assign) and binding.node in parent.targets):
                    return None
                values.append(parent.value)
            return values or None
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "self":
            cls = self.model.enclosing_class(expr)
            if cls is None:
                return None
            values = []
            for node in ast.walk(cls):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr == expr.attr and isinstance(target.value, ast.Name) and target.value.id == "self":
                        if not isinstance(node, ast.Assign):
                            return None
                        values.append(node.value)
            return values or None
        return None

    def _made_by_torch_optim(self, expr: ast.expr) -> bool | None:
        """True: only ever a ``torch.optim`` optimizer; False: something else; None: unknown."""
        values = self._stores(expr)
        if values is None:
            return None
        for value in values:
            qname = self.model.torch_qualified(value.func) if isinstance(value, ast.Call) else None
            if qname is None or not qname.startswith("torch.optim.") or qname.startswith(NOT_OPTIMIZERS):
                return False
        return True

    def _is_scaler(self, expr: ast.expr) -> bool:
        values = self._stores(expr)
        return bool(values) and all(
            isinstance(v, ast.Call) and self.model.torch_qualified(v.func) in GRAD_SCALERS for v in values
        )

    # -- what clears, what may clear ---------------------------------------------------------

    def _unconditional(self, node: ast.AST, loop: ast.AST) -> bool:
        return every_iteration(self.model, node, loop)

    def _hands_over(self, call: ast.Call, optimizer: str) -> bool:
        """The optimizer is given to a call other than the scaler's (which only steps it)."""
        if isinstance(call.func, ast.Attribute) and self._is_scaler(call.func.value):
            return False
        values = [*call.args, *(k.value for k in call.keywords)]
        return any(dotted(v) == optimizer for v in values)

    def _clears(self, root: ast.AST) -> bool:
        for node in ast.walk(root):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("zero_grad", "set_to_none"):
                    return True
                if node.func.attr in ("zero_", "detach_", "fill_", "mul_") and self._through_grad(node.func.value):
                    return True  # p.grad.zero_(), p.grad.data.zero_()
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                if any(isinstance(t, ast.Attribute) and t.attr == "grad" for t in targets):
                    return True
        return False

    @staticmethod
    def _through_grad(expr: ast.expr) -> bool:
        while isinstance(expr, ast.Attribute):
            if expr.attr == "grad":
                return True
            expr = expr.value
        return False

    def _cleared(self, loop: ast.AST, calls: list[ast.Call], optimizer: str) -> bool:
        function = self.model.enclosing_function(loop)
        if self._clears(function if function is not None else self.model.tree):
            return True
        if optimizer.startswith("self."):
            cls = self.model.enclosing_class(loop)
            if cls is not None and self._clears(cls):
                return True
        # helpers the loop calls: functions and methods of this file
        defined: dict[str, list[ast.AST]] = {}
        for node in self.model.nodes(ast.FunctionDef) + self.model.nodes(ast.AsyncFunctionDef):
            defined.setdefault(node.name, []).append(node)
        seen: set[int] = set()
        stack = list(calls)
        while stack:
            call = stack.pop()
            name = call.func.id if isinstance(call.func, ast.Name) else call.func.attr if isinstance(call.func, ast.Attribute) else None
            for helper in defined.get(name or "", ()):
                if id(helper) in seen:
                    continue
                seen.add(id(helper))
                if self._clears(helper):
                    return True
                stack.extend(n for n in ast.walk(helper) if isinstance(n, ast.Call))
        return False

    # -- the fix ------------------------------------------------------------------------------

    def _fix(self, backward: ast.Call, backwards: list[ast.Call], loop: ast.AST, optimizer: str) -> Fix | None:
        if len(backwards) != 1:
            return None
        statement = self.model.parent(backward)
        while statement is not None and not isinstance(statement, ast.stmt):
            statement = self.model.parent(statement)
        if not isinstance(statement, ast.Expr):
            return None
        parent = self.model.parent(statement)
        body = next((getattr(parent, f) for f in ("body", "orelse") if statement in getattr(parent, f, [])), None)
        if body is None or not self._unconditional(statement, loop) and parent is not loop:
            return None
        index = body.index(statement)
        if (index and body[index - 1].end_lineno == statement.lineno) or (
            index + 1 < len(body) and body[index + 1].lineno == statement.end_lineno
        ):
            return None  # `a; loss.backward()`
        if index == 0 and statement.lineno == parent.lineno:
            return None  # `for x in xs: loss.backward()`
        call = f"{optimizer}.zero_grad({self._style()})"
        return Fix([self.edit(statement, "SimpleStatementLine", _change("insert_before"), call)])

    def _style(self) -> str:
        """The file's own ``zero_grad`` argument, if it writes one."""
        for node in self.model.nodes(ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "zero_grad":
                for keyword in node.keywords:
                    if keyword.arg == "set_to_none" and isinstance(keyword.value, ast.Constant):
                        return f"set_to_none={keyword.value.value!r}"
        return ""
