"""Parity of the TFM7xx rules with TorchFix: every example of every TFM7xx rule (its
``fixes`` and ``keeps``) is run through both tools, and the outcomes (reported or not,
and the rewritten text) must agree, except for the differences listed in DIFFERENCES
below, which the test also checks still hold, so this list stays true.

TorchFix is found as ``$TORCHFIX_BIN`` or ``torchfix`` on PATH; without it the module is
skipped. TorchFix runs with
``--fix`` and only the mapped TOR code selected; torchfix-mod with ``--unsafe-fixes``
(TorchFix has no notion of unsafe fixes and applies all of its own).

Rule by rule (TorchFix 0.7.0):

- TFM701 / TOR102 torch.load: the same findings and the same appended ``weights_only=True``.
  TorchFix takes ``pickle_module=None`` for a custom module (no fix) and appends the
  argument after ``**kwargs`` that may already hold it (torchfix-mod: report, no fix).
  In a function that handles ``weights_only`` itself (timm's ``_torch_load`` falls back to
  ``torch.load(path)`` under ``if not weights_only:`` for builds without the argument)
  TorchFix adds ``weights_only=True``, inverting the author's choice; torchfix-mod leaves
  such calls alone. torchfix-mod marks the fix unsafe (on PyTorch < 2.6 it changes what
  loads).
- TFM702 / TOR003 checkpoint: TorchFix does not know ``checkpoint_sequential``, and appends
  ``use_reentrant=False`` after ``**kwargs`` even where the surrounding code puts
  ``use_reentrant`` in them (diffusers' ``ckpt_kwargs`` pattern), which raises "got
  multiple values for keyword argument" at run time.
- TFM703 / TOR002 require_grad: TorchFix renames every ``x.require_grad = ...`` in a file
  that contains the string ``torch``; torchfix-mod reads every file and leaves the name
  alone where it is the program's own attribute (``self.require_grad``, a read of
  ``.require_grad``, a class attribute of that name, the string ``"require_grad"``).
- TFM704 / TOR104, TOR105 private collate: TorchFix points to
  ``torch.utils.data.dataloader.default_collate``, torchfix-mod to the documented
  ``torch.utils.data.default_collate`` (the same function). TorchFix rewrites imports and
  calls only (not ``fallback = <private name>``), reports an import mixing other private
  names without a fix, and turns ``C.default_collate`` (``C`` an alias of the private
  module) into the broken ``C.dataloader.default_collate``.
- TFM705 / TOR106, TOR107: the same findings; TorchFix has no fix.
- TFM706 / TOR201 pretrained: the same weights (both tables are torchvision's legacy
  mapping; ``test_pretrained_table_matches_torchfix`` compares them entry by entry), but
  TorchFix always writes ``models.<Enum>`` and adds ``from torchvision import models``
  (which may shadow a local ``models``), lacks ``keypointrcnn_resnet50_fpn``, fails on a
  file with a non-literal ``pretrained=`` or with ``vit_h_14(pretrained=True)`` (it writes
  ``models.None``), ignores the quantized builders, and takes a new-style positional
  ``weights`` argument for ``pretrained``.
- TFM707 / TOR202 v2.ToTensor: TorchFix reports the import line and attribute uses,
  without a fix; torchfix-mod reports each use (not the import) and has an unsafe fix.
- TFM708 / TOR203: TorchFix only knows ``datasets``, ``models`` and ``transforms`` directly
  under torchvision (not ``torchvision.transforms.v2 as v2``), and looks at the first
  name of an import statement only.
- TFM709 / TOR401: the same pattern; TorchFix also reports calls with ``**kwargs``.
- TFM710 / TOR402: TorchFix 0.7.0 has no TOR402 (later releases report explicit
  ``set_to_none=False`` without a fix, as torchfix-mod does with an unsafe fix).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ALL_RULES, transform


def _torchfix() -> str | None:
    for candidate in (os.environ.get("TORCHFIX_BIN"), shutil.which("torchfix")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


TORCHFIX = _torchfix()
pytestmark = pytest.mark.skipif(TORCHFIX is None, reason="TorchFix is not installed (set TORCHFIX_BIN)")

TOR_CODES = {
    "TFM701": ("TOR102",),
    "TFM702": ("TOR003",),
    "TFM703": ("TOR002",),
    "TFM704": ("TOR104", "TOR105"),
    "TFM705": ("TOR106", "TOR107"),
    "TFM706": ("TOR201",),
    "TFM707": ("TOR202",),
    "TFM708": ("TOR203",),
    "TFM709": ("TOR401",),
    "TFM710": ("TOR402",),
}

# example id -> why the two tools differ on it
DIFFERENCES = {
    "TFM701-fix-1": "layout only: TorchFix writes `weights_only=True)` on the closing parenthesis' line",
    "TFM701-fix-3": "TorchFix takes `pickle_module=None` for a custom pickle module and gives no fix",
    "TFM701-keep-4": "TorchFix appends `weights_only=True` after `**load_kwargs`, which may hold it",
    "TFM701-keep-7": "TorchFix adds `weights_only=True` to the fallback meant for `weights_only=False` on old PyTorch",
    "TFM701-keep-8": "TorchFix appends `weights_only=True` after `**extra` that already holds it (TypeError)",
    "TFM702-fix-1": "TorchFix does not know `checkpoint_sequential`",
    "TFM702-fix-2": "layout only: TorchFix writes `use_reentrant=False)` on the closing parenthesis' line",
    "TFM702-keep-2": "TorchFix appends `use_reentrant=False` after `**ckpt_kwargs` that already hold it (TypeError)",
    "TFM702-keep-3": "TorchFix appends `use_reentrant=False` after `**options`, which may hold it",
    "TFM702-keep-4": "TorchFix appends `use_reentrant=False` in a wrapper that passes its callers' `**kwargs` on",
    "TFM703-fix-0": "TorchFix skips files without the string `torch`",
    "TFM703-keep-1": "TorchFix renames the class's own `self.require_grad` attribute",
    "TFM703-keep-2": "TorchFix renames `cfg.require_grad` although the file reads `cfg.require_grad`",
    "TFM703-keep-3": "TorchFix renames although the file reads the attribute through getattr",
    "TFM703-keep-4": "TorchFix renames although `require_grad` is a class attribute of Options",
    "TFM704-fix-0": "TorchFix imports from torch.utils.data.dataloader instead of torch.utils.data",
    "TFM704-fix-1": "TorchFix rewrites calls only (not `fallback = <private name>`), to torch.utils.data.dataloader",
    "TFM704-fix-2": "TorchFix reports an import mixing private names without a fix",
    "TFM704-keep-4": "TorchFix writes `C.dataloader.default_collate` (no such attribute) and imports `dataloader`",
    "TFM705-fix-0": "TorchFix reports log1p/expm1 without a fix",
    "TFM705-fix-1": "TorchFix reports log1p/expm1 without a fix",
    "TFM705-fix-2": "TorchFix reports log1p/expm1 without a fix",
    "TFM706-fix-0": "TorchFix writes `models.ResNet50_Weights...` and adds `from torchvision import models`",
    "TFM706-fix-1": "TorchFix writes `models.ResNet18_Weights...` and adds `from torchvision import models`",
    "TFM706-keep-1": "TorchFix fails on the file: `pretrained=cfg.pretrained` is not a Name",
    "TFM706-keep-2": "TorchFix writes the invalid `weights=models.None` for vit_h_14 and fails on the file",
    "TFM706-keep-3": "TorchFix ignores quantized builders",
    "TFM706-keep-6": "TorchFix takes a positional new-style `weights` argument for `pretrained`",
    "TFM707-fix-0": "TorchFix reports v2.ToTensor without a fix",
    "TFM707-fix-1": "TorchFix reports v2.ToTensor without a fix (at the import)",
    "TFM708-fix-0": "TorchFix only knows torchvision.{datasets,models,transforms}, not transforms.v2",
    "TFM709-keep-5": "TorchFix reports a DataLoader whose `**loader_kwargs` may set num_workers",
    "TFM710-fix-0": "TorchFix 0.7.0 has no TOR402",
}


def _examples():
    for rule in ALL_RULES:
        if rule.code not in TOR_CODES:
            continue
        for i, case in enumerate(rule.fixes):
            yield f"{rule.code}-fix-{i}", rule, case.before
        for i, case in enumerate(rule.keeps):
            yield f"{rule.code}-keep-{i}", rule, case.source


EXAMPLES = list(_examples())
LINE = re.compile(r"^(?:\./)?(?P<file>ex_\d+\.py):\d+:\d+: (?P<code>TOR\d+)")


def _available_codes() -> set[str]:
    out = subprocess.run([TORCHFIX, "--help"], capture_output=True, text=True, check=False).stdout
    return set(re.findall(r"TOR\d{3}", " ".join(out.split())))


@pytest.fixture(scope="module")
def torchfix_outcomes(tmp_path_factory) -> dict[str, tuple[bool, str]]:
    """example id -> (TorchFix reported it, text after ``torchfix --fix``)."""
    available = _available_codes()
    outcomes: dict[str, tuple[bool, str]] = {}
    for code, tor_codes in TOR_CODES.items():
        examples = [(eid, source) for eid, rule, source in EXAMPLES if rule.code == code]
        selected = [c for c in tor_codes if c in available]
        if not selected:
            outcomes.update({eid: (False, source) for eid, source in examples})
            continue
        workdir = tmp_path_factory.mktemp(code)
        names = {}
        for index, (eid, source) in enumerate(examples):
            name = f"ex_{index}.py"
            (workdir / name).write_text(source, encoding="utf-8")
            names[name] = eid
        result = subprocess.run(
            [TORCHFIX, "--fix", "-j", "1", "--select", ",".join(selected), "."],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        reported = {names[m["file"]] for m in map(LINE.match, result.stdout.splitlines()) if m}
        for name, eid in names.items():
            outcomes[eid] = (eid in reported, (workdir / name).read_text(encoding="utf-8"))
    return outcomes


def ours(rule, source: str) -> tuple[bool, str]:
    result = transform(source, rules=[rule], unsafe=True)
    return any(d.code == rule.code for d in result.diagnostics), result.new_source


@pytest.mark.parametrize(("eid", "rule", "source"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_same_outcome_as_torchfix_or_a_documented_difference(eid, rule, source, torchfix_outcomes):
    theirs = torchfix_outcomes[eid]
    mine = ours(rule, source)
    if eid in DIFFERENCES:
        assert mine != theirs, f"{eid} is listed as a difference but both tools agree: {DIFFERENCES[eid]}"
    else:
        assert mine == theirs, f"{eid}: torchfix-mod {mine!r} vs TorchFix {theirs!r}"


def test_pretrained_table_matches_torchfix():
    """The legacy weights table agrees with TorchFix's, model by model (TorchFix lacks
    keypointrcnn_resnet50_fpn, and has "None" where torchvision has no weights)."""
    python = Path(TORCHFIX).with_name("python")
    if not python.exists():
        pytest.skip("TorchFix's interpreter not found next to its script")
    script = (
        "import json\n"
        "from torchfix.visitors.vision.pretrained import TorchVisionDeprecatedPretrainedVisitor as V\n"
        "print(json.dumps([[k[0], k[1], v] for k, v in V.MODEL_WEIGHTS.items()]))\n"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True, timeout=120).stdout
    import json

    from torchfix_mod.codemods.torchfix.torchvision_pretrained import BUILDERS, MODELS

    theirs = {(model, param): weights for model, param, weights in json.loads(out)}
    mine = {}
    for builder in set(BUILDERS.values()):
        sub = builder.public[len(MODELS) + 1 :]
        model = f"{sub}.{builder.name}" if sub else builder.name
        mine[(model, "pretrained")] = builder.weights or "None"
        if builder.backbone:
            mine[(model, "pretrained_backbone")] = builder.backbone
    extra = {k: v for k, v in mine.items() if k not in theirs}
    assert extra == {
        ("detection.keypointrcnn_resnet50_fpn", "pretrained"): "KeypointRCNN_ResNet50_FPN_Weights.COCO_V1",
        ("detection.keypointrcnn_resnet50_fpn", "pretrained_backbone"): "ResNet50_Weights.IMAGENET1K_V1",
    }
    assert {k: v for k, v in mine.items() if k in theirs} == theirs
