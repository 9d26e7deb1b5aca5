"""The declared torch floor: read from the project's requirements, it makes fixes to a later API unsafe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchfix_mod.requirements import below, declared_floors

TRAIN = "import torch\n\nscaler = torch.cuda.amp.GradScaler(enabled=True)\n"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": '[project]\nname = "a"\ndependencies = ["torch>=1.13.1", "torchvision>0.12"]\n'},
         (("torch", "1.13.1"), ("torchvision", "0.12"))),
        ({"setup.cfg": "[options]\ninstall_requires =\n    numpy\n    torch ~= 2.1\n"}, (("torch", "2.1"),)),
        ({"requirements.txt": "-r base.txt\n# pinned\ntorch==2.0.1  # cpu\n", "requirements-dev.txt": "torch>=1.9\n"},
         (("torch", "1.9"),)),
        ({"pyproject.toml": '[project]\nname = "a"\ndependencies = ["torch", "torch<3"]\n'}, ()),
        ({"pyproject.toml": "not toml ["}, ()),
    ],
)
def test_floors_come_from_the_nearest_project_files(tmp_path, files, expected):
    write(tmp_path, {**files, "src/pkg/m.py": ""})
    assert declared_floors(tmp_path / "src" / "pkg" / "m.py") == expected


def test_below_compares_versions_not_strings():
    floors = (("torch", "2.10"),)
    assert below(floors, "torch", "2.3") is None
    assert below((("torch", "2.2"),), "torch", "2.3") == "2.2"
    assert below(floors, "torchvision", "0.13") is None


@pytest.mark.parametrize(("floor", "fixed"), [("2.2", False), ("2.3", True)])
def test_gradscaler_fix_is_unsafe_below_the_release_that_added_torch_amp_gradscaler(tmp_path, floor, fixed):
    """flair declares torch>=1.13.1 and sentence-transformers torch>=2.2; torch.amp.GradScaler
    arrived in torch 2.3, so the rewritten line raises AttributeError on the releases they allow."""
    write(tmp_path, {"pyproject.toml": f'[project]\nname = "a"\ndependencies = ["torch>={floor}"]\n', "pkg/train.py": TRAIN})
    result = subprocess.run(
        [sys.executable, "-m", "torchfix_mod", "--no-cache", "--write", "pkg/train.py"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    after = (tmp_path / "pkg" / "train.py").read_text(encoding="utf-8")
    if fixed:
        assert 'torch.amp.GradScaler("cuda", enabled=True)' in after, result.stdout
    else:
        assert after == TRAIN
        assert "unsafe fix: the project allows torch 2.2" in result.stdout
        unsafe = subprocess.run(
            [sys.executable, "-m", "torchfix_mod", "--no-cache", "--write", "--unsafe-fixes", "pkg/train.py"],
            cwd=tmp_path, capture_output=True, text=True, check=False,
        )
        assert unsafe.returncode in (0, 1)
        assert "torch.amp.GradScaler" in (tmp_path / "pkg" / "train.py").read_text(encoding="utf-8")
