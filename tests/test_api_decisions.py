"""TFM701-TFM710 decide on ``ast`` what LibCST decided before: spans and fixes where the two
trees differ (parentheses of an argument's own, comments beside an operator, one-line class
bodies, implicitly concatenated strings), and no LibCST import unless a fix is written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ALL_RULES, transform

CASES = [
    pytest.param(
        "TFM706",
        "from torchvision import models as M\n\n"
        "f = M.mobilenet_v3_large((True))\n"
        "g = M.mobilenet_v3_large(pretrained = ( True ))\n",
        "from torchvision import models as M\n\n"
        "f = M.mobilenet_v3_large(weights=M.MobileNet_V3_Large_Weights.IMAGENET1K_V1)\n"
        "g = M.mobilenet_v3_large(weights = M.MobileNet_V3_Large_Weights.IMAGENET1K_V1)\n",
        # a positional argument spans its parentheses, as LibCST's Arg does
        [(3, 26, 3, 32), (4, 26, 4, 47)],
        id="pretrained-in-parentheses",
    ),
    pytest.param(
        "TFM710",
        "opt.zero_grad((False))\nopt.zero_grad(set_to_none=(False))\n",
        "opt.zero_grad(True)\nopt.zero_grad(set_to_none=True)\n",
        [(1, 1, 1, 23), (2, 1, 2, 35)],
        id="set-to-none-in-parentheses",
    ),
    pytest.param(
        "TFM705",
        "import torch\n\n"
        "y = torch.log(1 +  # one\n    x)\n"
        "z = torch.log(1 + (  # x\n    x))\n"
        "w = (  # why\n    torch.exp(h) - 1)\n",
        "import torch\n\n"
        "y = torch.log(1 +  # one\n    x)\n"
        "z = torch.log1p((  # x\n    x))\n"
        "w = (  # why\n    torch.expm1(h))\n",
        [(3, 5, 4, 7), (5, 5, 6, 8), (8, 5, 8, 21)],
        id="comments-beside-operator",
    ),
    pytest.param(
        "TFM703",
        "import torch\n\nclass A: require_grad = True\n\nx = torch.zeros(1)\nx.require_grad = True\n",
        "import torch\n\nclass A: require_grad = True\n\nx = torch.zeros(1)\nx.requires_grad = True\n",
        [(6, 1, 6, 15)],
        id="one-line-class-body",
    ),
    pytest.param(
        "TFM701",
        "import torch\n\n"
        "def f(path):\n    note = 'weights' '_only'\n    return torch.load(path)\n\n"
        "def g(path):\n    note = 'x' 'weights_only'\n    return torch.load(path)\n",
        "import torch\n\n"
        "def f(path):\n    note = 'weights' '_only'\n    return torch.load(path, weights_only=True)\n\n"
        "def g(path):\n    note = 'x' 'weights_only'\n    return torch.load(path)\n",
        [(5, 12, 5, 28)],
        id="concatenated-strings",
    ),
]


@pytest.mark.parametrize(("code", "source", "expected", "spans"), CASES)
def test_decided_as_before(code, source, expected, spans):
    result = transform(source, rules=[r for r in ALL_RULES if r.code == code], unsafe=True)
    assert not result.errors
    assert result.new_source == expected
    assert [(d.line, d.column, d.end_line, d.end_column) for d in result.diagnostics] == spans


def test_deciding_does_not_import_libcst():
    script = (
        "import importlib, sys\n"
        "from torchfix_mod.engine import Settings, transform_source\n"
        "names = ['torch_load', 'checkpoint_reentrant', 'require_grad', 'private_collate', 'log1p_expm1',\n"
        "         'torchvision_pretrained', 'torchvision_to_tensor', 'torchvision_import', 'dataloader_workers',\n"
        "         'zero_grad']\n"
        "rules = []\n"
        "for name in names:\n"
        "    module = importlib.import_module('torchfix_mod.codemods.torchfix.' + name)\n"
        "    rules += [v for v in vars(module).values() if getattr(v, '__module__', None) == module.__name__\n"
        "              and getattr(v, 'code', None)]\n"
        "source = ('import torch\\nimport torchvision\\nfrom torch.utils.checkpoint import checkpoint\\n'\n"
        "          'a = torch.load(p)\\nb = checkpoint(f, x)\\nc = torch.log(1 + x)\\n'\n"
        "          'd = torchvision.models.resnet50(pretrained=True)\\np.require_grad = False\\n')\n"
        "result = transform_source(source, Settings(rules=tuple(rules), apply_fixes=False))\n"
        "assert len({d.code for d in result.diagnostics}) == 5, result.diagnostics\n"
        "assert 'libcst' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
