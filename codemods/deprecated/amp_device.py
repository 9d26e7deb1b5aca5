"""TFM604: ``torch.cuda.amp.autocast(...)`` and friends -> ``torch.amp.autocast("cuda", ...)``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.deprecated._deprecated_api import DeprecatedApiRule, Plan, documented
from torchfix_mod.codemods.deprecated._deprecations import AMP, Deprecation, for_rule
from torchfix_mod.rule import FixCase, KeepCase


@documented
class AmpDeviceRule(DeprecatedApiRule):
    """
    ## What it does
    Finds the device-specific AMP entry points deprecated in PyTorch 2.4 and calls the
    device-generic ones:

    - `torch.cuda.amp.autocast(...)` -> `torch.amp.autocast("cuda", ...)`, and
      `torch.cpu.amp.autocast(...)` -> `torch.amp.autocast("cpu", ...)`
    - `torch.cuda.amp.GradScaler(...)` -> `torch.amp.GradScaler("cuda", ...)` (and `cpu`)
    - `@torch.cuda.amp.custom_fwd` / `custom_bwd` ->
      `@torch.amp.custom_fwd(device_type="cuda")` / `custom_bwd`

    in any spelling (`from torch.cuda.amp import autocast`, `import torch.cuda.amp as amp`).

    ## Why is this bad?
    Each of them warns on every use (`FutureWarning: torch.cuda.amp.autocast(args...)
    is deprecated. Please use torch.amp.autocast('cuda', args...) instead.`), and they
    are due for removal.

    ## Example
    ```python
    scaler = torch.cuda.amp.GradScaler()
    with torch.cuda.amp.autocast(True, torch.bfloat16):
        loss = model(x)
    ```

    ## Use instead
    ```python
    scaler = torch.amp.GradScaler("cuda")
    with torch.amp.autocast("cuda", enabled=True, dtype=torch.bfloat16):
        loss = model(x)
    ```

    ## Fix safety
    Safe. The old classes are thin subclasses that pass their arguments on with the
    device type. Argument expressions are kept as written. `autocast`'s positional
    arguments do not line up (the old ones are `enabled, dtype, cache_enabled`, the new
    ones `device_type, dtype, enabled, cache_enabled`), so they become keywords;
    `GradScaler`'s shift by one and stay positional.

    One difference: without `dtype=` / `cache_enabled=`, `torch.amp.autocast` reads the
    global `torch.get_autocast_dtype(device)` / `torch.is_autocast_cache_enabled()`,
    where the old classes passed float16 (cuda) or bfloat16 (cpu) and True. The values
    are the same unless the program changes them, so when the file calls
    `torch.set_autocast_dtype` (or the `gpu`/`cpu` variants) or
    `torch.set_autocast_cache_enabled`, the fix is unsafe.

    Reported without a fix: `*args`/`**kwargs` for `autocast`, unknown arguments, and
    references that are not calls (`class A(torch.cuda.amp.autocast)`).

    ## Known problems
    `isinstance(x, torch.cuda.amp.GradScaler)` elsewhere no longer matches the new
    objects (they are `torch.amp.GradScaler`s); such checks are not looked for.
    `from torch.cuda.amp import autocast as ac` is fixed at the calls but the import
    stays.

    Code kept for older PyTorch releases is left alone, since the old API is the right one
    there: an `except ImportError:` / `except AttributeError:` (or `TypeError`, `NameError`,
    `Exception`, bare) fallback, and both branches of an `if` that tests a version
    (`is_torch_version(...)`, `torch.__version__`, `TORCH_VERSION`) or `hasattr`/`getattr`.

    ## TorchFix
    Not in TorchFix 0.7.0.
    """

    code = "TFM604"
    name = "cuda-amp-autocast"
    summary = "torch.cuda.amp / torch.cpu.amp entry point is deprecated; use torch.amp with a device type"
    table = for_rule(AMP)

    fixes = (
        FixCase(
            "import torch\n\n"
            "scaler = torch.cuda.amp.GradScaler()\n"
            "big = torch.cuda.amp.GradScaler(2.0**16, 2.0, enabled=use_amp)\n\n\n"
            "def step(model, x):\n"
            "    with torch.cuda.amp.autocast():\n"
            "        y = model(x)\n"
            "    with torch.cuda.amp.autocast(False, cache_enabled=cache):\n"
            "        z = model(y)\n"
            "    with torch.cpu.amp.autocast(dtype=torch.bfloat16):\n"
            "        return model(z)\n",
            "import torch\n\n"
            "scaler = torch.amp.GradScaler(\"cuda\")\n"
            "big = torch.amp.GradScaler(\"cuda\", 2.0**16, 2.0, enabled=use_amp)\n\n\n"
            "def step(model, x):\n"
            "    with torch.amp.autocast(\"cuda\"):\n"
            "        y = model(x)\n"
            "    with torch.amp.autocast(\"cuda\", enabled=False, cache_enabled=cache):\n"
            "        z = model(y)\n"
            "    with torch.amp.autocast(\"cpu\", dtype=torch.bfloat16):\n"
            "        return model(z)\n",
        ),
        FixCase(
            "from torch.cuda.amp import GradScaler, autocast\n\n"
            "scaler = GradScaler()\n\n\n"
            "@autocast()\n"
            "def forward(x):\n"
            "    return x\n",
            "import torch\n\n"
            "scaler = torch.amp.GradScaler(\"cuda\")\n\n\n"
            "@torch.amp.autocast(\"cuda\")\n"
            "def forward(x):\n"
            "    return x\n",
        ),
        FixCase(
            "import torch\n\n\n"
            "class Scale(torch.autograd.Function):\n"
            "    @staticmethod\n"
            "    @torch.cuda.amp.custom_fwd(cast_inputs=torch.float32)\n"
            "    def forward(ctx, x):\n"
            "        return x * 2\n\n"
            "    @staticmethod\n"
            "    @torch.cuda.amp.custom_bwd\n"
            "    def backward(ctx, g):\n"
            "        return g * 2\n",
            "import torch\n\n\n"
            "class Scale(torch.autograd.Function):\n"
            "    @staticmethod\n"
            "    @torch.amp.custom_fwd(cast_inputs=torch.float32, device_type=\"cuda\")\n"
            "    def forward(ctx, x):\n"
            "        return x * 2\n\n"
            "    @staticmethod\n"
            "    @torch.amp.custom_bwd(device_type=\"cuda\")\n"
            "    def backward(ctx, g):\n"
            "        return g * 2\n",
        ),
        FixCase(
            "import torch\n\n"
            "torch.set_autocast_dtype(\"cuda\", torch.bfloat16)\n"
            "with torch.cuda.amp.autocast():\n"
            "    y = f(x)\n",
            "import torch\n\n"
            "torch.set_autocast_dtype(\"cuda\", torch.bfloat16)\n"
            "with torch.amp.autocast(\"cuda\"):\n"
            "    y = f(x)\n",
            unsafe=True,
        ),
    )
    keeps = (
        KeepCase("import torch\n\nwith torch.amp.autocast(\"cuda\"):\n    y = f(x)\n"),
        KeepCase("import torch\n\nwith torch.autocast(device_type=\"cpu\"):\n    y = f(x)\n"),
        KeepCase("import torch\n\nwith torch.cuda.amp.autocast(**amp_args):\n    y = f(x)\n", reported=True),
        KeepCase("import torch\n\n\nclass Autocast(torch.cuda.amp.autocast):\n    pass\n", reported=True),
        KeepCase("def autocast():\n    return None\n\n\nautocast()\n"),
        KeepCase("import contextlib\n\nwith contextlib.nullcontext():\n    pass\n"),
        KeepCase(
            "import torch\n\ntry:\n    scaler = torch.amp.GradScaler(device=device)\n"
            "except (AttributeError, TypeError):\n    scaler = torch.cuda.amp.GradScaler()\n"
        ),
    )

    def plan_reference(self, node: ast.AST, entry: Deprecation) -> Plan | str | None:
        """``@torch.cuda.amp.custom_fwd`` used bare as a decorator becomes a call."""
        parent = self.model.parent(node)
        if (
            entry.rewrite == "device_keyword"
            and isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and any(node is decorator for decorator in parent.decorator_list)
        ):
            return Plan("decorator_call", (entry.device,), on_call=False)
        return None
