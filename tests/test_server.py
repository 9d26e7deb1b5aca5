"""The language server, driven as an editor drives it: the real ``torchfix-mod server`` process,
a real LSP client over stdio (pytest-lsp), and the edits it returns applied to the text."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types as lsp  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SERVER = [sys.executable, "-m", "torchfix_mod", "server"]
WAIT = 30.0  # seconds: an analysis takes milliseconds; the first one also imports the engine

pytestmark = pytest.mark.asyncio

LIST_OF_LAYERS = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4) for _ in range(3)]  # 🔥 emoji before the fix

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
"""

CLEAN = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
"""


# -- a small editor ------------------------------------------------------------------------------


def _utf16_offset(text: str, position: lsp.Position) -> int:
    """The string offset of an LSP position (UTF-16 columns; lines end at \\r\\n, \\r or \\n)."""
    starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", text))]
    start = starts[position.line] if position.line < len(starts) else len(text)
    line_end = re.compile(r"\r\n|\r|\n").search(text, start)
    end = line_end.start() if line_end else len(text)
    units, offset = 0, start
    while offset < end and units < position.character:
        units += 2 if ord(text[offset]) > 0xFFFF else 1
        offset += 1
    return offset


def apply(text: str, edits: list[lsp.TextEdit]) -> str:
    """Apply LSP text edits as an editor does (all positions refer to the original text)."""
    spans = sorted(((_utf16_offset(text, e.range.start), _utf16_offset(text, e.range.end), e.new_text) for e in edits))
    out, at = [], 0
    for start, end, new in spans:
        assert start >= at, "edits overlap"
        out.append(text[at:start])
        out.append(new)
        at = end
    return "".join(out) + text[at:]


class Editor:
    def __init__(self, client: LanguageClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}

    def uri(self, name: str) -> str:
        return from_fs_path(str(self.root / name))

    async def diagnostics(self, uri: str, until=lambda ds: True, timeout: float = WAIT) -> list[lsp.Diagnostic]:
        """The diagnostics published for ``uri`` once ``until`` holds for them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.client.diagnostics.get(uri)
            if found is not None and until(found):
                return list(found)
            if loop.time() > deadline:
                raise AssertionError(f"no diagnostics for {uri} matched; last: {found}")
            await asyncio.sleep(0.02)

    def open(self, name: str, text: str | None = None) -> str:
        uri = self.uri(name)
        text = (self.root / name).read_text() if text is None else text
        self.texts[uri], self.versions[uri] = text, 1
        self.client.diagnostics.pop(uri, None)
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.diagnostics.pop(uri, None)
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def apply_edit(self, edit: lsp.WorkspaceEdit) -> None:
        """Apply a workspace edit to the open documents and tell the server, as an editor does
        (one made for another version of a document is refused, as editors refuse it)."""
        per_document = dict(edit.changes or {})
        for change in edit.document_changes or ():
            assert change.text_document.version == self.versions[change.text_document.uri], "a stale edit"
            per_document[change.text_document.uri] = list(change.edits)
        for uri, edits in per_document.items():
            self.versions[uri] += 1
            self.texts[uri] = apply(self.texts[uri], edits)
            self.client.diagnostics.pop(uri, None)
            self.client.text_document_did_change(
                lsp.DidChangeTextDocumentParams(
                    text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                    # the server asks for the whole text with each change (full sync)
                    content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=self.texts[uri])],
                )
            )

    async def indexed(self, timeout: float = WAIT) -> None:
        """Wait until the server has read the workspace's classes (it logs when it has)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any("project index of" in m.message for m in self.client.log_messages):
            if loop.time() > deadline:
                raise AssertionError("the project index was never built")
            await asyncio.sleep(0.02)

    async def listed(self, uri: str, line: int = 0, end_line: int | None = None, only: list[str] | None = None) -> list[lsp.CodeAction]:
        """The code actions for the lines as the server lists them (edits not resolved)."""
        end = lsp.Position(line=end_line if end_line is not None else line, character=0)
        result = await self.client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=lsp.Range(start=lsp.Position(line=line, character=0), end=end),
                context=lsp.CodeActionContext(diagnostics=[], only=only),
            )
        )
        return list(result or [])

    async def actions(self, uri: str, line: int = 0, end_line: int | None = None, only: list[str] | None = None) -> list[lsp.CodeAction]:
        """The code actions for the lines, each with its edit (resolved where needed)."""
        actions = []
        for action in await self.listed(uri, line, end_line, only):
            if action.edit is None:  # the edit is computed when the action is picked
                action = await self.client.code_action_resolve_async(action)
            actions.append(action)
        return actions


@asynccontextmanager
async def session(root: Path, init_options=None, configuration=None, capabilities: str = "visual-studio-code"):
    config = ClientServerConfig(server_command=SERVER)
    client = await config.start()
    if configuration is not None:
        client.set_configuration(configuration, section="torchfix-mod")
    try:
        await client.initialize_session(
            lsp.InitializeParams(
                capabilities=client_capabilities(capabilities),
                workspace_folders=[lsp.WorkspaceFolder(uri=from_fs_path(str(root)), name=root.name)],
                root_uri=from_fs_path(str(root)),
                initialization_options=init_options,
            )
        )
        yield Editor(client, root)
        await asyncio.wait_for(client.shutdown_session(), WAIT)
    finally:
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()  # a failed test must not wait for a server that was never told to exit
        await asyncio.wait_for(client.stop(), WAIT)


def codes(diagnostics) -> list[str]:
    return sorted(str(d.code) for d in diagnostics if d.code)


# -- diagnostics and quick fixes --------------------------------------------------------------------


async def test_open_a_buggy_file_fix_it_and_the_diagnostic_clears(tmp_path):
    (tmp_path / "model.py").write_text(LIST_OF_LAYERS)
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        found = await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        assert codes(found) == ["TFM101"]
        d = found[0]
        assert d.source == "torchfix-mod" and d.severity == lsp.DiagnosticSeverity.Warning
        assert (d.range.start.line, d.range.start.character) == (6, 8)  # the assignment, 0-based
        assert d.code_description is not None and d.code_description.href.startswith("https://")
        actions = await editor.actions(uri, 6)
        titles = [a.title for a in actions]
        fix = next(a for a in actions if "fix TFM101" in a.title)
        assert fix.kind == lsp.CodeActionKind.QuickFix and fix.is_preferred, titles
        editor.apply_edit(fix.edit)
        assert "nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])  # 🔥 emoji before the fix" in editor.texts[uri]
        assert await editor.diagnostics(uri) == []


async def test_an_unsaved_edit_that_introduces_a_bug_is_reported(tmp_path):
    (tmp_path / "model.py").write_text(CLEAN)
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        assert await editor.diagnostics(uri) == []
        editor.change(uri, CLEAN.replace("nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])", "[nn.Linear(4, 4) for _ in range(3)]"))
        assert codes(await editor.diagnostics(uri, lambda ds: len(ds) > 0)) == ["TFM101"]
        assert (tmp_path / "model.py").read_text() == CLEAN  # the unsaved text was analysed


async def test_a_syntax_error_is_one_error_diagnostic_and_nothing_else(tmp_path):
    broken = LIST_OF_LAYERS.replace("def forward(self, x):", "def forward(self, x)")
    (tmp_path / "model.py").write_text(broken)
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        found = await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        assert len(found) == 1
        assert found[0].severity == lsp.DiagnosticSeverity.Error and "SyntaxError" in found[0].message
        assert found[0].range.start.line == 8
        assert await editor.actions(uri, 0, 12) == []
        editor.change(uri, LIST_OF_LAYERS)  # repaired: the findings come back
        assert codes(await editor.diagnostics(uri, lambda ds: len(ds) > 0)) == ["TFM101"]


async def test_disable_for_this_line_adds_a_noqa_and_silences_only_that_code(tmp_path):
    source = LIST_OF_LAYERS.replace(
        "        return x\n", "        out = x\n        out += 1\n        return out\n"
    ).replace("self.layers = [", "self.layers = [  # keep\n            ").replace("  # 🔥 emoji before the fix", "")
    (tmp_path / "model.py").write_text(source)
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        found = await editor.diagnostics(uri, lambda ds: len(ds) >= 1)
        assert "TFM101" in codes(found)
        line = next(d.range.start.line for d in found if d.code == "TFM101")
        noqa = next(a for a in await editor.actions(uri, line) if "disable TFM101" in a.title)
        editor.apply_edit(noqa.edit)
        assert "self.layers = [  # keep  # noqa: TFM101\n" in editor.texts[uri]
        left = await editor.diagnostics(uri)
        assert "TFM101" not in codes(left)
        compile(editor.texts[uri], "model.py", "exec")


async def test_fix_all_applies_every_safe_fix(tmp_path):
    source = LIST_OF_LAYERS + "\n\nclass Other(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.heads = {'a': nn.Linear(2, 2)}\n"
    (tmp_path / "model.py").write_text(source)
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        found = await editor.diagnostics(uri, lambda ds: len(ds) >= 2)
        assert codes(found) == ["TFM101", "TFM102"]
        actions = await editor.actions(uri, 0, only=["source.fixAll"])
        assert [a.kind for a in actions] == ["source.fixAll.torchfix-mod"]
        editor.apply_edit(actions[0].edit)
        assert await editor.diagnostics(uri) == []
        assert "nn.ModuleDict({'a': nn.Linear(2, 2)})" in editor.texts[uri]


async def test_hover_on_a_diagnostic_shows_the_rules_documentation(tmp_path):
    (tmp_path / "model.py").write_text(LIST_OF_LAYERS)
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        hover = await editor.client.text_document_hover_async(
            lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=6, character=30))
        )
        assert hover is not None and "TFM101" in hover.contents.value
        from torchfix_mod.rule import load_rules

        docs = next(r for r in load_rules() if r.code == "TFM101").docs()
        assert docs.splitlines()[0] in hover.contents.value
        nothing = await editor.client.text_document_hover_async(
            lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=0, character=0))
        )
        assert nothing is None


HOOK = """import torch.nn as nn


def attach(module, log):
    def hook(mod, grad_input, grad_output):
        log.append(grad_output)

    return module.register_backward_hook(hook)
"""


async def test_an_unsafe_fix_is_offered_apart_and_labelled_and_fix_all_leaves_it(tmp_path):
    (tmp_path / "hooks.py").write_text(HOOK)
    async with session(tmp_path) as editor:
        uri = editor.open("hooks.py")
        (d,) = await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        assert d.code == "TFM502" and d.data["fix"] == "unsafe"
        actions = await editor.actions(uri, d.range.start.line)
        fix = next(a for a in actions if "fix TFM502" in a.title)
        assert fix.title.endswith("(unsafe fix)") and not fix.is_preferred
        assert await editor.actions(uri, 0, only=["source.fixAll"]) == []  # safe fixes only
        editor.apply_edit(fix.edit)
        assert "module.register_full_backward_hook(hook)" in editor.texts[uri]
        assert await editor.diagnostics(uri) == []
    async with session(tmp_path, init_options={"unsafeFixes": True}) as editor:
        uri = editor.open("hooks.py")
        (d,) = await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        assert d.data["fix"] == "safe"  # the user asked for unsafe fixes: it is applied like the others
        (fix_all,) = await editor.actions(uri, 0, only=["source.fixAll.torchfix-mod"])
        editor.apply_edit(fix_all.edit)
        assert "register_full_backward_hook" in editor.texts[uri]


# -- settings ----------------------------------------------------------------------------------------


async def test_settings_come_from_pyproject_and_the_editor_overrides_them(tmp_path):
    source = LIST_OF_LAYERS + "\n\nclass Other(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.heads = {'a': nn.Linear(2, 2)}\n"
    (tmp_path / "model.py").write_text(source)
    (tmp_path / "pyproject.toml").write_text('[tool.torchfix-mod]\nignore = ["TFM101"]\n')
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        assert codes(await editor.diagnostics(uri, lambda ds: len(ds) > 0)) == ["TFM102"]
    async with session(tmp_path, init_options={"ignore": ["TFM102"]}) as editor:
        uri = editor.open("model.py")
        # the editor's ignore is added to the file's, as --ignore is
        assert await editor.diagnostics(uri) == []
    async with session(tmp_path, configuration={"select": ["TFM101"]}) as editor:
        uri = editor.open("model.py")
        # a select names what runs; the file's ignore of TFM101 is as specific and still wins
        assert await editor.diagnostics(uri) == []
    (tmp_path / "pyproject.toml").write_text('[tool.torchfix-mod]\nselect = ["TFM2"]\n')
    async with session(tmp_path, configuration={"select": ["TFM101"]}) as editor:
        uri = editor.open("model.py")
        assert codes(await editor.diagnostics(uri, lambda ds: len(ds) > 0)) == ["TFM101"]


async def test_a_broken_pyproject_is_reported_and_the_defaults_are_used(tmp_path):
    (tmp_path / "model.py").write_text(LIST_OF_LAYERS)
    (tmp_path / "pyproject.toml").write_text('[tool.torchfix-mod]\nselect = "TFM101"\n')
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        assert codes(await editor.diagnostics(uri, lambda ds: len(ds) > 0)) == ["TFM101"]
        messages = [m.message for m in editor.client.log_messages]
        assert any("pyproject.toml" in m and "select" in m for m in messages), messages


# -- notebooks -----------------------------------------------------------------------------------


async def test_a_notebooks_findings_land_on_their_cells_and_fix_there(tmp_path):
    cells = [
        (lsp.NotebookCellKind.Code, "import torch.nn as nn\n"),
        (lsp.NotebookCellKind.Markup, "# The model\n"),
        (lsp.NotebookCellKind.Code, LIST_OF_LAYERS.split("\n", 2)[2]),
    ]
    nb_uri = from_fs_path(str(tmp_path / "model.ipynb"))
    cell_uris = [f"vscode-notebook-cell:{tmp_path / 'model.ipynb'}#cell{i}" for i in range(len(cells))]
    extra = [f"vscode-notebook-cell:{tmp_path / 'model.ipynb'}#cell{i}" for i in (3, 4)]
    async with session(tmp_path) as editor:
        editor.client.notebook_document_did_open(
            lsp.DidOpenNotebookDocumentParams(
                notebook_document=lsp.NotebookDocument(
                    uri=nb_uri,
                    notebook_type="jupyter-notebook",
                    version=1,
                    cells=[lsp.NotebookCell(kind=k, document=u) for (k, _), u in zip(cells, cell_uris)],
                ),
                cell_text_documents=[
                    lsp.TextDocumentItem(uri=u, language_id="python" if k == lsp.NotebookCellKind.Code else "markdown", version=1, text=t)
                    for (k, t), u in zip(cells, cell_uris)
                ],
            )
        )
        found = await editor.diagnostics(cell_uris[2], lambda ds: len(ds) > 0)
        assert codes(found) == ["TFM101"]
        assert found[0].range.start.line == 4  # within the cell
        assert await editor.diagnostics(cell_uris[0]) == []
        editor.texts.update({u: t for (_, t), u in zip(cells, cell_uris)})
        editor.versions.update({u: 1 for u in cell_uris})
        fix = next(a for a in await editor.actions(cell_uris[2], 4) if "fix TFM101" in a.title)
        (change,) = fix.edit.document_changes  # one cell, at the version analysed
        assert change.text_document.uri == cell_uris[2] and change.text_document.version == 1
        fixed = apply(editor.texts[cell_uris[2]], change.edits)
        assert "self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])" in fixed

        # a cell with a syntax error gets it as its one diagnostic; a magic cell is left alone
        editor.client.notebook_document_did_change(
            lsp.DidChangeNotebookDocumentParams(
                notebook_document=lsp.VersionedNotebookDocumentIdentifier(version=2, uri=nb_uri),
                change=lsp.NotebookDocumentChangeEvent(
                    cells=lsp.NotebookDocumentCellChanges(
                        structure=lsp.NotebookDocumentCellChangeStructure(
                            array=lsp.NotebookCellArrayChange(
                                start=3,
                                delete_count=0,
                                cells=[lsp.NotebookCell(kind=lsp.NotebookCellKind.Code, document=u) for u in extra],
                            ),
                            did_open=[
                                lsp.TextDocumentItem(uri=extra[0], language_id="python", version=1, text="x = (1,\n"),
                                lsp.TextDocumentItem(uri=extra[1], language_id="python", version=1, text="%matplotlib inline\n"),
                            ],
                        )
                    )
                ),
            )
        )
        (error,) = await editor.diagnostics(extra[0], lambda ds: len(ds) > 0)
        assert error.severity == lsp.DiagnosticSeverity.Error and "SyntaxError" in error.message
        assert codes(await editor.diagnostics(cell_uris[2], lambda ds: len(ds) > 0)) == ["TFM101"]
        assert await editor.diagnostics(extra[1]) == []

        # deleting the buggy cell clears its diagnostics
        editor.client.diagnostics.pop(cell_uris[2], None)
        editor.client.notebook_document_did_change(
            lsp.DidChangeNotebookDocumentParams(
                notebook_document=lsp.VersionedNotebookDocumentIdentifier(version=3, uri=nb_uri),
                change=lsp.NotebookDocumentChangeEvent(
                    cells=lsp.NotebookDocumentCellChanges(
                        structure=lsp.NotebookDocumentCellChangeStructure(
                            array=lsp.NotebookCellArrayChange(start=2, delete_count=1),
                            did_close=[lsp.TextDocumentIdentifier(uri=cell_uris[2])],
                        )
                    )
                ),
            )
        )
        assert await editor.diagnostics(cell_uris[2]) == []


# -- cross-file knowledge --------------------------------------------------------------------------


async def test_a_class_of_another_file_of_the_workspace_is_known(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "blocks.py").write_text(
        "import torch.nn as nn\n\n\nclass Block(nn.Sequential):\n    def __init__(self):\n        super().__init__(nn.Linear(4, 4))\n"
    )
    model = (
        "import torch.nn as nn\n\nfrom .blocks import Block\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.blocks = []\n"
        "        for _ in range(3):\n            self.blocks.append(Block())\n\n"
        "    def forward(self, x):\n        for b in self.blocks:\n            x = b(x)\n        return x\n"
    )
    (package / "model.py").write_text(model)
    # the command line on the file alone reads what it imports from its package: the same fix
    alone = subprocess.run(
        [sys.executable, "-m", "torchfix_mod", "--diff", "--no-cache", str(package / "model.py")], capture_output=True, text=True
    )
    assert "+        self.blocks = nn.ModuleList()" in alone.stdout, alone.stderr
    async with session(tmp_path) as editor:
        uri = editor.open("pkg/model.py")
        # once the workspace's classes are read, Block is known to be an nn.Module: a safe fix
        found = await editor.diagnostics(uri, lambda ds: [d.data.get("fix") for d in ds] == ["safe"])
        assert codes(found) == ["TFM101"]
        fix = next(a for a in await editor.actions(uri, 8) if "fix TFM101" in a.title)
        editor.apply_edit(fix.edit)
        assert "self.blocks = nn.ModuleList()" in editor.texts[uri]


# -- the editor and the command line agree ---------------------------------------------------------


async def test_fix_all_on_every_sample_equals_what_write_produces(tmp_path):
    work = tmp_path / "samples"
    shutil.copytree(SAMPLES, work)
    befores = sorted(work.glob("*/before.py"))
    assert len(befores) >= 10
    expected_dir = tmp_path / "expected"
    shutil.copytree(work, expected_dir)
    subprocess.run([sys.executable, "-m", "torchfix_mod", "--write", "--no-cache", "-q", str(expected_dir)], capture_output=True)
    changed = 0
    async with session(work) as editor:
        await editor.indexed()
        for before in befores:
            name = str(before.relative_to(work))
            uri = editor.open(name)
            await editor.diagnostics(uri, lambda ds: len(ds) > 0)
            actions = await editor.actions(uri, 0, only=["source.fixAll.torchfix-mod"])
            if actions:
                editor.apply_edit(actions[0].edit)
                changed += 1
            assert editor.texts[uri] == (expected_dir / name).read_text(), name
    assert changed >= len(befores) - 2  # every sample but the unsafe ones is rewritten

async def test_quick_fixes_one_at_a_time_on_every_sample_end_where_write_does(tmp_path):
    work = tmp_path / "samples"
    shutil.copytree(SAMPLES, work)
    expected_dir = tmp_path / "expected"
    shutil.copytree(work, expected_dir)
    subprocess.run([sys.executable, "-m", "torchfix_mod", "--write", "--no-cache", "-q", str(expected_dir)], capture_output=True)
    async with session(work) as editor:
        await editor.indexed()
        for before in sorted(work.glob("*/before.py")):
            name = str(before.relative_to(work))
            uri = editor.open(name)
            for _ in range(50):  # each round: the first fixable diagnostic's quick fix
                found = await editor.diagnostics(uri)
                fixable = [d for d in found if d.data and d.data.get("fix") == "safe"]
                if not fixable:
                    break
                line = fixable[0].range.start.line
                fix = next(a for a in await editor.actions(uri, line) if a.title.startswith(f"torchfix-mod: fix {fixable[0].code}"))
                editor.apply_edit(fix.edit)
            assert editor.texts[uri] == (expected_dir / name).read_text(), name


# -- robustness ------------------------------------------------------------------------------------


async def test_an_internal_error_is_logged_and_the_document_keeps_its_last_diagnostics(monkeypatch):
    """The refresh policy itself, in process: an analysis that raises publishes nothing, logs the
    traceback, and the last good analysis stays the document's."""
    from torchfix_mod import server as srv

    ls = srv.TorchfixServer()
    published, logged = [], []
    monkeypatch.setattr(ls, "_snapshot", lambda owner: ({owner: "x = 1\n"}, {owner: 1}, []))
    monkeypatch.setattr(ls, "publish", lambda analysis, previous=None: published.append(analysis))
    monkeypatch.setattr(ls, "log", lambda message, kind=None: logged.append((message, kind)))
    good = srv.Analysis("file:///m.py", {"file:///m.py": "x = 1\n"}, {"file:///m.py": 1}, None)
    monkeypatch.setattr(ls, "analyse", lambda owner, texts, versions, kinds: good)
    await ls._refresh("file:///m.py")
    assert published == [good] and ls.analyses["file:///m.py"] is good

    def broken(owner, texts, versions, kinds):
        raise RuntimeError("a rule's bug")

    monkeypatch.setattr(ls, "analyse", broken)
    await ls._refresh("file:///m.py")
    assert published == [good]  # nothing new was sent: the editor keeps the last diagnostics
    assert ls.analyses["file:///m.py"] is good
    (message, kind), = logged
    assert "internal error" in message and "a rule's bug" in message and kind == lsp.MessageType.Error


async def test_an_action_listed_for_an_older_text_gets_no_edit(tmp_path):
    (tmp_path / "model.py").write_text(LIST_OF_LAYERS)
    async with session(tmp_path) as editor:
        uri = editor.open("model.py")
        await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        listed = await editor.listed(uri, 6)
        fix = next(a for a in listed if "fix TFM101" in a.title)
        assert fix.edit is None  # this client resolves edits when an action is picked
        editor.change(uri, "# a header line\n" + LIST_OF_LAYERS)
        await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        resolved = await editor.client.code_action_resolve_async(fix)
        assert resolved.edit is None  # its positions belong to the old text
        fresh = next(a for a in await editor.actions(uri, 7) if "fix TFM101" in a.title)
        editor.apply_edit(fresh.edit)
        assert editor.texts[uri].startswith("# a header line\n") and "nn.ModuleList(" in editor.texts[uri]


async def test_a_client_that_does_not_resolve_gets_the_edits_at_once(tmp_path):
    (tmp_path / "model.py").write_text(LIST_OF_LAYERS)
    async with session(tmp_path, capabilities="emacs") as editor:
        uri = editor.open("model.py")
        await editor.diagnostics(uri, lambda ds: len(ds) > 0)
        result = await editor.listed(uri, 6)
        assert result and all(a.edit is not None for a in result)
        editor.apply_edit(next(a for a in result if "fix TFM101" in a.title).edit)
        assert await editor.diagnostics(uri) == []


async def test_a_pyproject_that_is_not_toml_and_an_empty_code_are_reported_not_fatal(tmp_path):
    (tmp_path / "model.py").write_text(LIST_OF_LAYERS)
    (tmp_path / "pyproject.toml").write_text("[tool.torchfix-mod\nselect = [\n")
    async with session(tmp_path, init_options={"ignore": [""]}) as editor:
        uri = editor.open("model.py")
        # the defaults apply, and the empty code ignores nothing
        assert codes(await editor.diagnostics(uri, lambda ds: len(ds) > 0)) == ["TFM101"]
        fix = next(a for a in await editor.actions(uri, 6) if "fix TFM101" in a.title)
        assert fix.edit is not None
        messages = [m.message for m in editor.client.log_messages]
        assert any("pyproject.toml" in m for m in messages), messages
        assert any("empty rule code" in m for m in messages), messages
        assert not any("internal error" in m for m in messages), messages
