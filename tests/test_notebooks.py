"""Jupyter notebooks: code cells analysed together, fixed, and written back with their JSON layout."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from conftest import ALL_RULES
from torchfix_mod import notebooks
from torchfix_mod.engine import Diagnostic, FileResult, Settings, SourceError, transform_source
from torchfix_mod.notebooks import (
    NotebookError,
    load_notebook,
    map_diagnostic,
    map_error,
    rebuild,
    transform_notebook,
)

SETTINGS = Settings(rules=ALL_RULES)

IMPORTS = "import torch\nimport torch.nn as nn"

# nbformat stores sources without a trailing newline: this cell has none
MODEL = (
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.layers = [nn.Linear(4, 4) for _ in range(2)]\n"
    "\n"
    "    def forward(self, x):\n"
    "        for layer in self.layers:\n"
    "            x = layer(x)\n"
    "        out = torch.sigmoid(x)\n"
    "        out += x\n"
    "        return out"
)
LIST_LINE = "        self.layers = [nn.Linear(4, 4) for _ in range(2)]\n"
LIST_FIXED = "        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])\n"
INPLACE_LINE = "        out += x\n"
INPLACE_FIXED = "        out = out + x\n"
MODEL_FIXED = MODEL.replace(LIST_LINE, LIST_FIXED).replace(INPLACE_LINE, INPLACE_FIXED)

# a second module; its own attribute names (one attribute name in two classes is not fixed)
OTHER_MODEL = MODEL.replace("Net", "Net2").replace("layers", "blocks").replace("out", "y")
OTHER_FIXED = MODEL_FIXED.replace("Net", "Net2").replace("layers", "blocks").replace("out", "y")

CLEAN = "net = Net()\nprint(sum(p.numel() for p in net.parameters()))"


def buggy_notebook() -> nbformat.NotebookNode:
    """Imports in cell 1, a markdown cell, the buggy module in cell 3, a user of it in cell 4."""
    return new_notebook(
        cells=[
            new_code_cell(
                IMPORTS,
                execution_count=1,
                outputs=[new_output("stream", name="stdout", text="ready\n")],
                metadata={"collapsed": False},
            ),
            new_markdown_cell("## Das Modell\n\nZwei Schichten, Ausgabe ≥ 0 — *ünbedingt* prüfen."),
            new_code_cell(MODEL, execution_count=2, metadata={"tags": ["model"]}),
            new_code_cell(
                CLEAN,
                execution_count=3,
                outputs=[new_output("execute_result", data={"text/plain": "0"}, execution_count=3)],
            ),
        ],
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11.7"},
        },
    )


def _nbformat_file(nb) -> str:
    out = io.StringIO()
    nbformat.write(nb, out)
    return out.getvalue()


def _irregular(nb) -> str:
    """A layout no json.dumps call writes: blank line after the brace, one key without space."""
    text = nbformat.writes(nb).replace("{\n", "{\n\n", 1).replace('"nbformat": 4,', '"nbformat":4,')
    return text + "  \n"


def _on_disk(nb) -> dict:
    """The notebook as nbformat stores it (sources as lists of lines), for other writers."""
    return json.loads(nbformat.writes(nb))


LAYOUTS = {
    "nbformat.writes": nbformat.writes,
    "nbformat.write": _nbformat_file,
    "indent=2, ascii": lambda nb: json.dumps(_on_disk(nb), indent=2) + "\n",
    "indent=4, crlf": lambda nb: json.dumps(_on_disk(nb), indent=4, ensure_ascii=False).replace("\n", "\r\n") + "\r\n",
    "compact": lambda nb: json.dumps(_on_disk(nb), separators=(",", ":"), ensure_ascii=False),
    "irregular": _irregular,
}


def cell_line(text: str, line: int) -> str:
    return text.split("\n")[line - 1]


def sources(text: str) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in json.loads(text)["cells"]]


def virtual_of(text: str) -> str:
    return load_notebook(text).virtual_source


# -- fixing ----------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_module_fixed_in_its_cell_and_nothing_else_changes(layout):
    text = LAYOUTS[layout](buggy_notebook())
    new_text, diagnostics, errors, skipped = transform_notebook(text, SETTINGS)
    assert errors == [] and skipped == []

    by_code = {d.code: d for d in diagnostics}
    assert set(by_code) == {"TFM101", "TFM201"}
    for code, expected in (("TFM101", "self.layers = ["), ("TFM201", "out += x")):
        d = by_code[code]
        assert d.cell == 3 and d.fixed
        assert cell_line(MODEL, d.line)[d.column - 1 :].startswith(expected)
        assert d.end_line == d.line
    assert by_code["TFM101"].end_column - 1 == len(cell_line(MODEL, by_code["TFM101"].line))

    # exactly the two lines of cell 3 changed, in the notebook's own JSON spelling
    ascii_only = text.isascii()

    def spelled(s: str) -> str:
        return json.dumps(s, ensure_ascii=ascii_only)

    assert text.count(spelled(LIST_LINE)) == 1 and text.count(spelled(INPLACE_LINE)) == 1
    expected = text.replace(spelled(LIST_LINE), spelled(LIST_FIXED)).replace(spelled(INPLACE_LINE), spelled(INPLACE_FIXED))
    assert new_text == expected

    # re-serializing with the recognised layout and editing the text in place agree
    nb = load_notebook(text)
    assert (nb.layout() is None) == (layout == "irregular")
    fixed_virtual = transform_source(nb.virtual_source, SETTINGS).new_source
    nb._layout = False  # as if no layout had matched: the in-place edit of the source values
    assert rebuild(nb, fixed_virtual) == new_text

    old, new = json.loads(text), json.loads(new_text)
    assert new["metadata"] == old["metadata"]
    for position, (before, after) in enumerate(zip(old["cells"], new["cells"])):
        if position != 2:
            assert after == before
        else:
            assert {k: v for k, v in after.items() if k != "source"} == {k: v for k, v in before.items() if k != "source"}
            assert after["source"] == MODEL_FIXED.splitlines(keepends=True)


def test_the_irregular_layout_really_takes_the_textual_path():
    nb = load_notebook(_irregular(buggy_notebook()))
    assert nb.layout() is None
    assert load_notebook(nbformat.writes(buggy_notebook())).layout() is not None


def test_second_run_changes_nothing():
    text = nbformat.writes(buggy_notebook())
    fixed, _, _, _ = transform_notebook(text, SETTINGS)
    again, diagnostics, errors, _ = transform_notebook(fixed, SETTINGS)
    assert fixed != text
    assert again == fixed
    assert errors == [] and not any(d.fixed for d in diagnostics)


def test_report_only_settings_leave_the_text_alone():
    text = nbformat.writes(buggy_notebook())
    new_text, diagnostics, _, _ = transform_notebook(text, replace(SETTINGS, apply_fixes=False))
    assert new_text == text
    assert [d.cell for d in diagnostics] == [3, 3] and not any(d.fixed for d in diagnostics)


# -- unchanged notebooks ----------------------------------------------------------


def clean_notebook() -> nbformat.NotebookNode:
    nb = buggy_notebook()
    nb.cells[2].source = MODEL_FIXED
    nb.cells.append(new_code_cell("%timeit net(torch.ones(1, 4))"))
    return nb


HAND_WRITTEN_INDENT_2 = """{
  "cells": [
    {
      "cell_type": "code",
      "execution_count": null,
      "metadata": {},
      "outputs": [],
      "source": [
        "import torch\\n",
        "x = torch.ones(2)  # caf\\u00e9"
      ]
    }
  ],
  "metadata": {},
  "nbformat": 4,
  "nbformat_minor": 5
}
"""


@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_is_byte_identical_when_nothing_changes(layout):
    text = LAYOUTS[layout](clean_notebook())
    nb = load_notebook(text)
    assert rebuild(nb, nb.virtual_source) == text
    new_text, diagnostics, errors, skipped = transform_notebook(text, SETTINGS)
    assert new_text == text
    assert diagnostics == [] and errors == [] and skipped == [(5, "IPython magic on line 1")]


def test_hand_written_indent_2_round_trip():
    nb = load_notebook(HAND_WRITTEN_INDENT_2)
    assert nb.layout() is not None  # the layout is recognised, not only left alone
    assert nb.virtual_source == "import torch\nx = torch.ones(2)  # café\n"
    assert rebuild(nb, nb.virtual_source) == HAND_WRITTEN_INDENT_2
    # an edit keeps the layout: indentation 2, non-ASCII escaped, keys in their order
    edited = rebuild(nb, nb.virtual_source.replace("ones", "zeros"))
    assert edited == HAND_WRITTEN_INDENT_2.replace("ones", "zeros")


# -- magics and cells that are not Python -----------------------------------------


MAGIC_CELLS = {
    "%matplotlib inline": "IPython magic on line 1",
    "!pip install x": "IPython magic on line 1",
    "%%time\nlayers = [nn.Linear(2, 2)]": "cell magic",
    "x = !ls": "IPython magic on line 1",
    "import os\nnn.Linear?": "IPython magic on line 2",
    # a fixable module in a cell with a magic: the whole cell is left alone
    "%load_ext autoreload\n" + MODEL.replace("Net", "Other"): "IPython magic on line 1",
    "for i in range(2):\n    %time f(i)": "IPython magic on line 2",
}


def test_magic_cells_are_skipped_and_left_byte_identical():
    nb = buggy_notebook()
    nb.cells[3:3] = [new_code_cell(source) for source in MAGIC_CELLS]
    text = nbformat.writes(nb)
    new_text, diagnostics, errors, skipped = transform_notebook(text, SETTINGS)
    assert errors == []
    assert skipped == [(4 + i, reason) for i, reason in enumerate(MAGIC_CELLS.values())]
    old, new = json.loads(text), json.loads(new_text)
    for position in range(3, 3 + len(MAGIC_CELLS)):
        assert new["cells"][position] == old["cells"][position]
    # byte-identical: the only edits are the two lines of the model cell
    # (the skipped cell holding a copy of the model comes later: replace the first copy only)
    expected = text.replace(json.dumps(LIST_LINE), json.dumps(LIST_FIXED), 1).replace(
        json.dumps(INPLACE_LINE), json.dumps(INPLACE_FIXED), 1
    )
    assert new_text == expected
    assert sources(new_text)[2] == MODEL_FIXED
    assert {d.cell for d in diagnostics} == {3}


def test_magic_characters_inside_brackets_and_strings_are_python():
    cell = 'report = """\n%d layers\n!important\n"""\nratio = (7\n    % 3)\nquestion = "why?"'
    nb = load_notebook(nbformat.writes(new_notebook(cells=[new_code_cell(cell)])))
    assert nb.skipped_cells == []
    assert nb.virtual_source == cell + "\n"


def test_a_broken_cell_is_skipped_while_the_others_are_fixed():
    nb = buggy_notebook()
    nb.cells.insert(1, new_code_cell("def broken(:\n    pass"))
    nb.cells.append(new_code_cell("from __future__ import annotations"))
    nb.cells.append(new_code_cell("await asyncio.sleep(0)"))
    text = nbformat.writes(nb)
    new_text, diagnostics, errors, skipped = transform_notebook(text, SETTINGS)
    assert errors == []
    assert [index for index, _ in skipped] == [2, 6, 7]
    assert skipped[0][1].startswith("does not parse: ") and skipped[0][1].endswith("(line 1)")
    assert skipped[1][1].startswith("does not compile: ") and "__future__" in skipped[1][1]
    assert skipped[2][1].startswith("does not compile: ") and "await" in skipped[2][1]
    assert sources(new_text)[3] == MODEL_FIXED
    assert sources(new_text)[1] == "def broken(:\n    pass"
    assert {(d.code, d.cell) for d in diagnostics} == {("TFM101", 4), ("TFM201", 4)}


# -- imports a fix adds or removes ------------------------------------------------------

INIT_MODEL = (
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(4, 4)\n"
    "        xavier_uniform(self.fc.weight)"
)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            ["import torch\nfrom torch import nn\nfrom torch.nn.init import xavier_uniform"],
            ["import torch\nfrom torch import nn\nfrom torch.nn.init import xavier_uniform_"],
            id="imports-cell",
        ),
        pytest.param(
            ["SEED = 0", "import torch\nfrom torch import nn\nfrom torch.nn.init import xavier_uniform"],
            ["from torch.nn.init import xavier_uniform_\n\nSEED = 0", "import torch\nfrom torch import nn"],
            id="first-analysed-cell",
        ),
        pytest.param(
            ["from torch.nn.init import xavier_uniform", "import torch\nfrom torch import nn"],
            ["", "import torch\nfrom torch import nn\nfrom torch.nn.init import xavier_uniform_"],
            id="import-cell-emptied",
        ),
    ],
)
def test_added_import_lands_in_an_import_cell_before_its_use(cells, expected):
    nb = new_notebook(cells=[*map(new_code_cell, cells), new_markdown_cell("model"), new_code_cell(INIT_MODEL)])
    text = nbformat.writes(nb)
    new_text, diagnostics, errors, _ = transform_notebook(text, SETTINGS)
    assert errors == []
    assert [(d.code, d.cell, d.line, d.fixed) for d in diagnostics] == [("TFM501", len(cells) + 2, 5, True)]
    assert sources(new_text) == [*expected, "model", INIT_MODEL.replace("xavier_uniform(", "xavier_uniform_(")]
    namespace: dict = {}
    exec(virtual_of(new_text) + "net = Net()\n", namespace)  # the import runs before its use
    assert isinstance(namespace["net"].fc, torch.nn.Linear)


def test_import_merged_into_the_existing_import_of_the_first_cell():
    model = (
        "class Net(Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layers = [Linear(4, 4) for _ in range(2)]"
    )
    nb = new_notebook(cells=[new_code_cell("from torch.nn import Module, Linear"), new_code_cell(model)])
    new_text, diagnostics, errors, _ = transform_notebook(nbformat.writes(nb), SETTINGS)
    assert errors == [] and [(d.code, d.cell, d.fixed) for d in diagnostics] == [("TFM101", 2, True)]
    assert sources(new_text) == [
        "from torch.nn import ModuleList, Module, Linear",
        model.replace("[Linear(4, 4) for _ in range(2)]", "ModuleList([Linear(4, 4) for _ in range(2)])"),
    ]
    namespace: dict = {}
    exec(virtual_of(new_text) + "net = Net()\n", namespace)
    assert len(list(namespace["net"].parameters())) == 4


def test_removed_import_empties_its_cell_and_the_markers_survive():
    variable_model = (
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(2, 2)\n"
        "\n"
        "    def forward(self, x):\n"
        "        return self.fc(Variable(x))\n"
    )
    nb = new_notebook(
        cells=[new_code_cell(IMPORTS), new_code_cell("from torch.autograd import Variable"), new_code_cell(variable_model)]
    )
    new_text, diagnostics, errors, _ = transform_notebook(nbformat.writes(nb), SETTINGS)
    assert errors == []
    assert [(d.code, d.cell, d.line) for d in diagnostics] == [("TFM503", 3, 7)]
    assert sources(new_text) == [IMPORTS, "", variable_model.replace("Variable(x)", "x.detach()")]
    assert json.loads(new_text)["cells"][1]["source"] == []


# -- reading --------------------------------------------------------------------


def test_invalid_json_names_the_position():
    with pytest.raises(NotebookError, match=r"invalid JSON: .* at line 3 column 4"):
        load_notebook('{\n "cells": [\n  {,}\n ]\n}\n')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"metadata": {}}', 'no "cells" list'),
        ("[1, 2]", 'no "cells" list'),
        ('{"cells": {"a": 1}}', 'no "cells" list'),
        ('{"cells": [3]}', "cell 1 is not a JSON object"),
        ('{"cells": [{"cell_type": "markdown", "source": "x"}, {"cell_type": "code", "source": 5}]}', "cell 2: source is neither"),
        ('{"cells": [{"cell_type": "code", "source": ["a\\n", 1]}]}', "cell 1: source is neither"),
    ],
)
def test_what_is_not_a_notebook(text, message):
    with pytest.raises(NotebookError, match=message):
        load_notebook(text)


def test_markdown_and_raw_cells_are_never_read_as_code():
    text = json.dumps(
        {
            "cells": [
                {"cell_type": "markdown", "metadata": {}, "source": 7},  # odd, but not ours to judge
                {"cell_type": "raw", "metadata": {}, "source": "self.layers = []"},
                {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": "   \n"},
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    nb = load_notebook(text)
    assert nb.virtual_source == "" and nb.skipped_cells == []
    assert transform_notebook(text, SETTINGS) == (text, [], [], [])


def test_string_and_list_sources_keep_their_shape_and_final_newline():
    code = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    text = json.dumps(
        {
            "cells": [
                {**code, "source": IMPORTS + "\n"},  # a string with a final newline
                {**code, "source": MODEL},  # a string without one
                {**code, "source": (OTHER_MODEL + "\n").splitlines(keepends=True)},  # a list, final newline
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )
    nb = load_notebook(text)
    assert nb.virtual_source.count(IMPORTS + "\n") == 1
    assert "return out\n'torchfix-mod cell 3 " in nb.virtual_source  # the join added a newline
    new_text, diagnostics, errors, _ = transform_notebook(text, SETTINGS)
    assert errors == [] and len(diagnostics) == 4
    cells = json.loads(new_text)["cells"]
    assert cells[0]["source"] == IMPORTS + "\n"
    assert cells[1]["source"] == MODEL_FIXED  # still a string, still without a final newline
    assert cells[2]["source"] == (OTHER_FIXED + "\n").splitlines(keepends=True)


# -- mapping ---------------------------------------------------------------------


def test_diagnostics_and_errors_map_to_cell_lines():
    nb = load_notebook(nbformat.writes(buggy_notebook()))
    model_start = nb.virtual_source.split("\n").index("class Net(nn.Module):") + 1
    d = Diagnostic("TFM101", "m", model_start + 3, 9, model_start + 3, 58)
    assert map_diagnostic(nb, d) == replace(d, cell=3, line=4, end_line=4)
    assert map_diagnostic(nb, replace(d, line=2, end_line=2)).cell == 1
    cell, error = map_error(nb, SourceError(model_start + 9, 5, "boom"))
    assert (cell, error) == (3, SourceError(10, 5, "boom"))
    assert map_error(nb, SourceError(1, 1, "internal error in rule X")) == (None, SourceError(1, 1, "internal error in rule X"))
    marker_line = model_start - 1
    assert map_error(nb, SourceError(marker_line, 2, "x"))[0] is None


# -- splitting back ----------------------------------------------------------------


def _three_cells() -> notebooks.Notebook:
    nb = buggy_notebook()
    nb.cells.append(new_code_cell("y = 2"))
    return load_notebook(nbformat.writes(nb))


def test_rebuild_refuses_a_virtual_source_whose_markers_moved():
    nb = _three_cells()
    markers = [line for line in nb.virtual_source.split("\n") if nb.token in line]
    assert len(markers) == 3 and markers[0].startswith("'torchfix-mod cell 3 ")
    first, second = markers[0], markers[1]
    broken = {
        "missing": nb.virtual_source.replace(first + "\n", ""),
        "repeated": nb.virtual_source.replace(first + "\n", first + "\n" + first + "\n"),
        "swapped": nb.virtual_source.replace(first, "@@").replace(second, first).replace("@@", second),
        "indented": nb.virtual_source.replace(first, "    " + first),
        "joined to code": nb.virtual_source.replace(first + "\n", first + "; x = 1\n"),
        "stray": nb.virtual_source + f"'{nb.token}'\n",
    }
    for name, virtual in broken.items():
        with pytest.raises(NotebookError, match="cannot split the fixed cells back"):
            rebuild(nb, virtual)
            pytest.fail(name)


def test_rebuild_refuses_a_cell_that_would_not_parse_alone():
    nb = _three_cells()
    virtual = nb.virtual_source.replace("y = 2", "    y = 2")
    with pytest.raises(NotebookError, match="cell 5 would not parse on its own"):
        rebuild(nb, virtual)


def test_transform_reports_and_leaves_the_notebook_when_it_cannot_split(monkeypatch):
    text = nbformat.writes(buggy_notebook())
    real = notebooks.transform_source

    def marker_dropping(source, settings):
        result = real(source, settings)
        kept = "\n".join(line for line in result.new_source.split("\n") if "torchfix-mod cell" not in line)
        return FileResult(result.source, kept, result.diagnostics, result.errors)

    monkeypatch.setattr(notebooks, "transform_source", marker_dropping)
    new_text, diagnostics, errors, _ = transform_notebook(text, SETTINGS)
    assert new_text == text
    assert diagnostics and not any(d.fixed for d in diagnostics)
    assert len(errors) == 1 and errors[0][0] is None and "notebook left unchanged" in errors[0][1].message


def test_marker_token_is_absent_from_the_notebook_and_stable():
    nb = buggy_notebook()
    nb.cells.append(new_code_cell("note = 'torchfix-mod cell 3'"))
    text = nbformat.writes(nb)
    first, second = load_notebook(text), load_notebook(text)
    assert first.token not in text
    assert first.virtual_source == second.virtual_source  # deterministic: results can be cached
    assert sources(transform_notebook(text, SETTINGS)[0])[2] == MODEL_FIXED


# -- the fixed notebook runs ----------------------------------------------------------


def test_fixed_cells_register_the_layers_and_train():
    text = nbformat.writes(buggy_notebook())
    new_text, _, _, _ = transform_notebook(text, SETTINGS)

    def build(notebook_text: str):
        namespace: dict = {}
        exec(compile(virtual_of(notebook_text), "<notebook>", "exec"), namespace)
        return namespace["Net"]()

    torch.manual_seed(0)
    before = build(text)
    assert len(list(before.parameters())) == 0  # the Linear layers hide in a Python list
    x = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="inplace operation"):
        before(x).sum().backward()

    after = build(new_text)
    assert len(list(after.parameters())) == 4  # two weights, two biases
    assert set(after.state_dict()) == {f"layers.{i}.{p}" for i in range(2) for p in ("weight", "bias")}
    after(x).sum().backward()
    assert all(p.grad is not None for p in after.parameters())
