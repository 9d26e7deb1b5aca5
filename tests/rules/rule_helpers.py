"""What the rule-family tests share: each sample's ``before.py``/``after.py`` imported as a
module, an example rewritten by one rule and executed, one optimizer step, and where TorchFix
is installed (for the parity tests)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@lru_cache(maxsize=None)
def load(rule: str, which: str):
    path = SAMPLES / rule / f"{which}.py"
    spec = importlib.util.spec_from_file_location(f"torchfix_sample_{rule}_{which}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(rule: str, which: str, cls_name: str, *args, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return getattr(load(rule, which), cls_name)(*args, **kwargs)


def sgd_step(model: nn.Module, loss_fn, lr: float = 0.1) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss_fn(model).backward()
    opt.step()


def fixed(source: str, code: str, unsafe: bool = False) -> str:
    """``source`` after rule ``code``'s fixes alone; the rule must rewrite it."""
    from conftest import ALL_RULES, transform

    rule = next(r for r in ALL_RULES if r.code == code)
    result = transform(source, rules=[rule], unsafe=unsafe)
    assert not result.errors
    assert result.new_source != source, f"{code} did not rewrite the example"
    return result.new_source


def run(source: str, name: str = "torchfix_mod_example") -> dict:
    """Execute ``source`` as a module; its namespace."""
    namespace: dict = {"__name__": name}
    exec(compile(source, "<example>", "exec"), namespace)
    return namespace


def torchfix_bin() -> str | None:
    """TorchFix's command: ``$TORCHFIX_BIN``, else ``torchfix`` on ``PATH``; None without it."""
    for candidate in (os.environ.get("TORCHFIX_BIN"), shutil.which("torchfix")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
