"""The benchmark script keeps working: a smoke run on 40 files of timm (no timing is checked)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import benchmark  # noqa: E402

pytestmark = pytest.mark.corpus


def test_quick_benchmark_measures_every_contender(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert benchmark.main(["--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    names = [m["name"] for m in result["measures"]]
    assert names[0].startswith("torchfix-mod cold") and names[1].startswith("torchfix-mod warm")
    assert any(n.startswith("ast.parse floor") for n in names)
    for measure in result["measures"]:
        assert measure["files"] == benchmark.QUICK_FILES
        assert measure["lines"] > 0 and measure["seconds"] > 0
        assert measure["exit_code"] in (0, 1), measure  # 1: the tool found something to fix
    assert result["machine"]["cpus"] >= 1
    printed = capsys.readouterr().out
    assert "| torchfix-mod cold" in printed and "warm / cold" in printed
