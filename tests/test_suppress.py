"""``# noqa`` and ``# torchfix-mod: skip-file``: suppressed findings are neither reported nor fixed."""

from __future__ import annotations

import pytest

from conftest import transform

BUGGY = (
    "import torch\n"
    "import torch.nn as nn\n\n"
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.layers = [nn.Linear(2, 2)]{list_comment}\n"
    "        self.mask = torch.ones(2){mask_comment}\n"
    "\n"
    "    def forward(self, x):\n"
    "        return x * self.mask\n"
)


def run(list_comment="", mask_comment="", prefix=""):
    source = prefix + BUGGY.format(list_comment=list_comment, mask_comment=mask_comment)
    return source, transform(source)


def test_without_comments_both_are_fixed():
    source, result = run()
    assert sorted(d.code for d in result.diagnostics) == ["TFM101", "TFM301"]
    assert "nn.ModuleList" in result.new_source and "register_buffer" in result.new_source


@pytest.mark.parametrize("comment", ["  # noqa: TFM101", "  # NOQA:TFM101,TFM999", "  # noqa: TFM999 TFM101", "  # noqa"])
def test_noqa_suppresses_report_and_fix(comment):
    source, result = run(list_comment=comment)
    assert [d.code for d in result.diagnostics] == ["TFM301"]
    assert "self.layers = [nn.Linear(2, 2)]" + comment in result.new_source
    assert "register_buffer" in result.new_source


def test_noqa_for_another_code_does_not_suppress():
    source, result = run(list_comment="  # noqa: TFM301")
    assert sorted(d.code for d in result.diagnostics) == ["TFM101", "TFM301"]


def test_noqa_inside_a_string_is_not_a_comment():
    source = BUGGY.format(list_comment="", mask_comment="").replace(
        "[nn.Linear(2, 2)]", '[nn.Linear(2, 2)]; note = "# noqa"'
    )
    result = transform(source)
    assert "TFM101" in [d.code for d in result.diagnostics]


def test_noqa_on_last_line_of_a_multiline_statement():
    source = (
        "import torch.nn as nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layers = [\n"
        "            nn.Linear(2, 2),\n"
        "        ]  # noqa: TFM101\n"
    )
    result = transform(source)
    assert result.diagnostics == [] and result.new_source == source


def test_skip_file():
    source, result = run(prefix="# torchfix-mod: skip-file\n")
    assert result.diagnostics == [] and result.new_source == source


@pytest.mark.parametrize(
    "comment, silenced",
    [
        ("  # noqa: TOR106", True),  # TorchFix's code for the same check
        ("  # noqa: TFM705", True),
        ("  # noqa: TOR102", False),  # another TorchFix check
        ("  # noqa: TFM101", False),
        ("", False),
    ],
)
def test_a_torchfix_noqa_silences_the_rule_making_the_same_check(comment, silenced):
    """A TorchFix user's `# noqa: TOR106` carries over: it silences TFM705 (TorchFix's
    TOR106/TOR107), and nothing else."""
    source = f"import torch\n\n\ndef f(x):\n    return torch.log(1 + x){comment}\n"
    result = transform(source)
    reported = [d.code for d in result.diagnostics]
    assert ("TFM705" not in reported) is silenced
    assert (result.new_source == source) is silenced


PRIVATE_IMPORT = (
    "from torch.utils.data._utils.collate import default_collate{comment}\n\n\n"
    "def collate(batch):\n"
    "    return default_collate(batch)\n"
)


@pytest.mark.parametrize("comment", ["", "  # noqa: TOR105"])
def test_a_fix_shared_with_a_silenced_finding_is_not_applied(comment):
    """TFM704 reports the import of a private name and each use of it (TorchFix's TOR105 and
    TOR104); the import's fix is what fixes the uses. A `# noqa` that keeps the import keeps
    its fix out, so the uses are reported without one and the file is unchanged."""
    source = PRIVATE_IMPORT.format(comment=comment)
    result = transform(source)
    found = [(d.line, d.fix_available, d.fixed) for d in result.diagnostics if d.code == "TFM704"]
    if comment:
        assert found == [(5, False, False)]
        assert result.new_source == source
    else:
        assert found == [(1, True, True), (5, True, True)]
        assert result.new_source == source.replace("torch.utils.data._utils.collate", "torch.utils.data")
        namespace: dict = {}
        exec(compile(result.new_source, "fixed.py", "exec"), namespace)
        import torch.utils.data

        assert namespace["default_collate"] is torch.utils.data.default_collate


def test_a_noqa_on_a_use_keeps_the_imports_fix_which_does_not_touch_that_line():
    """A `# noqa` on one use of the private name silences that use only: the import's fix
    leaves the use's line as it is, so the import and the other uses are still fixed."""
    source = (
        "from torch.utils.data._utils.collate import default_collate\n\n\n"
        "def collate(batch):\n"
        "    return default_collate(batch)  # noqa: TFM704\n\n\n"
        "def collate_twice(batch):\n"
        "    return default_collate(default_collate(batch))\n"
    )
    result = transform(source)
    found = [(d.line, d.fixed) for d in result.diagnostics if d.code == "TFM704"]
    assert found == [(1, True), (9, True), (9, True)]
    assert result.new_source == source.replace("torch.utils.data._utils.collate", "torch.utils.data")
    assert "    return default_collate(batch)  # noqa: TFM704\n" in result.new_source
