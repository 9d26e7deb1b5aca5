"""TFM801: a training loop that never clears gradients -> ``optimizer.zero_grad()`` before backward."""

from __future__ import annotations

import ast
from torchfix_mod.codemods.training._loops import LOOPS, every_iteration, own_nodes
from torchfix_mod.edits import Deferred
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import dotted

NOT_OPTIMIZERS = ("torch.optim.lr_scheduler.", "torch.optim.swa_utils.")
NOT_OPTIMIZER_WORDS = ("sched", "scaler", "ema", "swa", "warmup", "lr_", "profiler", "pbar", "progress")
STEP_HOOKS = frozenset({"register_step_pre_hook", "register_step_post_hook", "register_optimizer_step_pre_hook", "register_optimizer_step_post_hook"})
INSERT_BEFORE = Deferred("torchfix_mod.codemods.training._training_edits", "insert_before")
GRAD_SCALERS = frozenset({"torch.amp.GradScaler", "torch.cuda.amp.GradScaler", "torch.amp.grad_scaler.GradScaler"})


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

    Reported without a fix as well: a loop stepping two optimizers (a GAN's
    generator and discriminator), where which `zero_grad()` goes before which
    `backward()` is the author's call; an optimizer made anew on each
    iteration over the model's parameters (the gradients still add up on the
    parameters, but an inserted line could run before the optimizer exists).

    ## Known problems
    Left alone, as gradient accumulation or manual gradient handling written on
    purpose, or code the analysis cannot follow:
    - loops that make a new optimizer on each iteration over tensors made in
      the iteration (no gradient carries over, as in a per-step latent
      optimisation);
    - loops whose `step()` is under a condition (accumulation over k batches);
    - loops that call `torch.autograd.grad`, or `step(closure)` (LBFGS-style,
      the closure clears);
    - optimizers other code can reach before the loop ends: given to a
      function or object that is not torch's (a callback, a trainer), or, for
      `self.opt`, when the class hands `self` to one;
    - loops where another unknown object gets `.step()` and no optimizer is
      proven (a scheduler known by name, such as `scheduler`, does not count);
    - gradients cleared anywhere in the enclosing function, in the class (for
      `self` optimizers) or in a function of the file the loop calls, and files
      that take `zero_grad` without calling it (`clear = opt.zero_grad`,
      `functools.partial`, `getattr`) or register optimizer step hooks.
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
            "def train(model, loader, opt_a, agent):\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        opt_a.step()\n"
            "        agent.step()\n"
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
        KeepCase(  # an alias of zero_grad clears
            "import torch\n\n\n"
            "def train(model, loader):\n"
            "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    clear = optimizer.zero_grad\n"
            "    for x in loader:\n"
            "        clear()\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
        ),
        KeepCase(  # a step hook clears
            "import torch\n\n\n"
            "def train(model, loader):\n"
            "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    optimizer.register_step_post_hook(lambda opt, args, kwargs: opt.zero_grad())\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
        ),
        KeepCase(  # a callback that holds the trainer may clear its optimizer
            "import torch\n\n\n"
            "class Trainer:\n"
            "    def __init__(self, model, callbacks):\n"
            "        self.opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "        self.model = model\n"
            "        self.callbacks = callbacks\n"
            "        self.callbacks.attach(self)\n\n"
            "    def fit(self, loader):\n"
            "        for x in loader:\n"
            "            self.model(x).sum().backward()\n"
            "            self.opt.step()\n"
            "            self.callbacks.on_step_end()\n"
        ),
        KeepCase(  # the else of a loop runs once, after the loop: not a training loop
            "import torch\n\n\n"
            "def finish(model, loader, x):\n"
            "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    for batch in loader:\n"
            "        optimizer.zero_grad()\n"
            "        model(batch).sum().backward()\n"
            "    else:\n"
            "        optimizer.step()\n"
        ),
        KeepCase(  # two optimizers (a GAN): reported, no fix
            "import torch\n\n\n"
            "def train(gen, disc, loader):\n"
            "    opt_g = torch.optim.Adam(gen.parameters())\n"
            "    opt_d = torch.optim.Adam(disc.parameters())\n"
            "    for x in loader:\n"
            "        d_loss = disc(x).mean() - disc(gen(x).detach()).mean()\n"
            "        d_loss.backward()\n"
            "        opt_d.step()\n"
            "        g_loss = -disc(gen(x)).mean()\n"
            "        g_loss.backward()\n"
            "        opt_g.step()\n",
            reported=True,
        ),
        KeepCase(  # an optimizer over the model made on each iteration: reported, no fix
            "import torch\n\n\n"
            "def train(model, loader):\n"
            "    for x in loader:\n"
            "        loss = model(x).sum()\n"
            "        loss.backward()\n"
            "        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "        optimizer.step()\n",
            reported=True,
        ),
        KeepCase(  # an optimizer from a factory and a scheduler: reported, no fix
            "def train(model, loader, cfg, scheduler):\n"
            "    optimizer = build_optimizer(cfg, model)\n"
            "    for x in loader:\n"
            "        model(x).sum().backward()\n"
            "        optimizer.step()\n"
            "        scheduler.step()\n",
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
        optimizers, proven = self._optimizers(steps)
        if not optimizers:
            return
        per_iteration = False
        for optimizer in optimizers:
            step = next(c for c in steps if self._is_step_of(c, optimizer))
            if self._receiver_text(step) == optimizer and (step.args or step.keywords):
                return  # step(closure): the closure clears
            if not self._unconditional(step, loop):
                return
            made = self._made_in(loop, step)
            if made == "new tensors":
                return  # a new optimizer over tensors made in the iteration: nothing carries over
            per_iteration = per_iteration or made == "model"
            if self._escapes(loop, optimizer):
                return
        if self._cleared(loop, calls, optimizers):
            return
        backward = backwards[0]
        if len(optimizers) == 1:
            (optimizer,) = optimizers
            message = (
                f"this loop calls `backward()` and `{optimizer}.step()` but never clears the gradients: "
                f"they add up across steps, so each step uses the sum of all past gradients; "
                f"call `{optimizer}.zero_grad()` before `backward()`"
            )
        else:
            shown = ", ".join(f"`{o}`" for o in optimizers)
            message = (
                f"this loop calls `backward()` and steps {shown} but never clears the gradients: "
                f"they add up across steps; call each optimizer's `zero_grad()` before its `backward()`"
            )
        fix = None
        if proven and len(optimizers) == 1 and not per_iteration:
            fix = self._fix(backward, backwards, loop, optimizers[0])
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

    def _made_in(self, loop: ast.AST, step: ast.Call) -> str | None:
        """Whether the optimizer is (re)made inside the loop: "new tensors" when it is made over
        names the loop binds (a per-step latent optimisation: no gradient carries over),
        "model" when over tensors from outside the loop (gradients still add up on them, but
        an inserted ``zero_grad()`` could run before the optimizer exists), None when not."""
        receiver = step.args[0] if self._is_scaler(step.func.value) and step.args else step.func.value
        values = self._stores(receiver) or []
        inside = {id(n) for n in ast.walk(loop)}
        made = [value for value in values if id(value) in inside]
        if not made:
            return None
        bound = {
            n.id
            for node in own_nodes(loop)
            for target in self._targets(node)
            for n in ast.walk(target)
            if isinstance(n, ast.Name)
        }
        bound.discard(dotted(receiver) or "")
        for value in made:
            arguments = [*value.args, *(k.value for k in value.keywords)] if isinstance(value, ast.Call) else [value]
            if any(isinstance(n, ast.Name) and n.id in bound for a in arguments for n in ast.walk(a)):
                return "new tensors"
        return "model"

    @staticmethod
    def _targets(node: ast.AST) -> list[ast.expr]:
        if isinstance(node, ast.Assign):
            return list(node.targets)
        if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            return [node.target]
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            return [node.target]
        if isinstance(node, (ast.With, ast.AsyncWith)):
            return [item.optional_vars for item in node.items if item.optional_vars is not None]
        return []

    # -- which objects are the optimizers ----------------------------------------------------

    def _optimizers(self, steps: list[ast.Call]) -> tuple[list[str], bool]:
        """The spellings of the loop's optimizers, in the order they step, and whether every
        one is proven a ``torch.optim`` optimizer; ([], False) when they cannot be told apart
        from the other things that get ``.step()``."""
        proven: list[str] = []
        named: list[str] = []
        others: list[str] = []
        for call in steps:
            receiver = call.func.value
            if dotted(receiver) is None:
                continue
            if self._is_scaler(receiver):
                if len(call.args) == 1 and dotted(call.args[0]) is not None:
                    receiver = call.args[0]
                    if self._kind(receiver) != "optimizer":
                        named.append(dotted(receiver))  # what a GradScaler steps is an optimizer
                        continue
                else:
                    continue
            text = dotted(receiver)
            kind = self._kind(receiver)
            if kind == "optimizer":
                proven.append(text)
            elif kind == "unknown":
                (named if self._optimizer_name(text) else others).append(text)
        found = list(dict.fromkeys(proven + named))
        if not found or (others and not proven):
            return [], False  # another unknown thing gets .step() too: which is the optimizer?
        return found, not named

    def _kind(self, expr: ast.expr) -> str:
        """"optimizer": only ever set to a ``torch.optim`` optimizer; "other": only to torch
        objects that are not one (a scheduler, a module), or named as a scheduler, scaler or
        averaged model; "unknown": anything else (a parameter, a factory's result)."""
        last = (dotted(expr) or "").rsplit(".", 1)[-1].lower()
        values = self._stores(expr)
        if values:
            qnames = [self.model.torch_qualified(v.func) if isinstance(v, ast.Call) else None for v in values]
            if all(q is not None and q.startswith("torch.optim.") and not q.startswith(NOT_OPTIMIZERS) for q in qnames):
                return "optimizer"
            if all(q is not None and not (q.startswith("torch.optim.") and not q.startswith(NOT_OPTIMIZERS)) for q in qnames):
                return "other"
        if any(word in last for word in NOT_OPTIMIZER_WORDS):
            return "other"
        return "unknown"

    @staticmethod
    def _optimizer_name(text: str) -> bool:
        last = text.rsplit(".", 1)[-1].lower()
        return "optim" in last or last in ("opt", "op") or last.startswith("opt_") or last.endswith("_opt")

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

    def _is_scaler(self, expr: ast.expr) -> bool:
        values = self._stores(expr)
        return bool(values) and all(
            isinstance(v, ast.Call) and self.model.torch_qualified(v.func) in GRAD_SCALERS for v in values
        )

    # -- what clears, what may clear ---------------------------------------------------------

    def _unconditional(self, node: ast.AST, loop: ast.AST) -> bool:
        return every_iteration(self.model, node, loop)

    def _escapes(self, loop: ast.AST, optimizer: str) -> bool:
        """Other code can reach the optimizer, and may clear it: the optimizer, or the object
        holding it (``self`` for ``self.opt``), is given to a call that is not torch's (a
        scheduler, the scaler's ``step``), in the function around the loop before the loop
        ends or, for an attribute of ``self``, anywhere in the class
        (``self.callbacks = Callbacks(self)``)."""
        holder = optimizer.split(".", 1)[0] if "." in optimizer else None
        function = self.model.enclosing_function(loop)
        regions: list[ast.AST] = [function if function is not None else self.model.tree]
        cls_region = None
        if holder == "self":
            cls_region = self.model.enclosing_class(loop)
            if cls_region is not None:
                regions = [cls_region]
        for region in regions:
            for call in self.model.nodes(ast.Call, region):
                if region is not cls_region and call.lineno > loop.end_lineno:
                    continue  # after the loop: it cannot clear during it
                if isinstance(call.func, ast.Attribute) and self._is_scaler(call.func.value):
                    continue
                qname = self.model.torch_qualified(call.func)
                if qname is not None and qname.startswith("torch."):
                    continue
                for value in [*call.args, *(k.value for k in call.keywords)]:
                    if isinstance(value, ast.Starred):
                        value = value.value
                    text = dotted(value)
                    if text is not None and (text == optimizer or text == holder):
                        if text == "self" and isinstance(call.func, ast.Name) and call.func.id == "super":
                            continue
                        return True
        return False

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

    def _may_clear_elsewhere(self) -> bool:
        """The file takes ``zero_grad`` other than by calling it (``clear = opt.zero_grad``,
        ``partial(opt.zero_grad, ...)``, ``getattr(opt, "zero_grad")``) or registers an
        optimizer step hook: gradients may be cleared where the analysis does not look."""
        for node in self.model.nodes(ast.Attribute):
            if node.attr == "zero_grad":
                parent = self.model.parent(node)
                if not (isinstance(parent, ast.Call) and parent.func is node):
                    return True
            elif node.attr in STEP_HOOKS:
                return True
        return any(isinstance(n.value, str) and n.value == "zero_grad" for n in self.model.nodes(ast.Constant))

    @staticmethod
    def _through_grad(expr: ast.expr) -> bool:
        while isinstance(expr, ast.Attribute):
            if expr.attr == "grad":
                return True
            expr = expr.value
        return False

    def _cleared(self, loop: ast.AST, calls: list[ast.Call], optimizers: list[str]) -> bool:
        if self._may_clear_elsewhere():
            return True
        function = self.model.enclosing_function(loop)
        if self._clears(function if function is not None else self.model.tree):
            return True
        if any(optimizer.startswith("self.") for optimizer in optimizers):
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
        """``<optimizer>.zero_grad()`` on a line of its own just before the loop's one backward
        statement, which runs on every iteration and has its line to itself."""
        if len(backwards) != 1:
            return None
        statement = self.model.statement(backward)
        if not isinstance(statement, ast.Expr) or not self._unconditional(statement, loop):
            return None
        if not self.model.alone_on_its_line(statement):
            return None  # `a; loss.backward()`, `for x in xs: loss.backward()`
        call = f"{optimizer}.zero_grad({self._style()})"
        return Fix([self.edit(statement, "SimpleStatementLine", INSERT_BEFORE, call)])

    def _style(self) -> str:
        """The file's own ``zero_grad`` argument, if it writes one."""
        for node in self.model.nodes(ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "zero_grad":
                for keyword in node.keywords:
                    if keyword.arg == "set_to_none" and isinstance(keyword.value, ast.Constant):
                        return f"set_to_none={keyword.value.value!r}"
        return ""
