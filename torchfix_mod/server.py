"""``torchfix-mod server``: a language server (LSP over stdio) with the command line's findings and
fixes, for editors.

Every answer comes from the engine the command line runs: diagnostics are ``torchfix-mod``'s
findings on the editor's text (saved or not), a quick fix is the text ``--write`` would give
with that one finding's fix applied, and "fix all" is exactly ``--write``'s result; the edits
sent are the differences between the two texts (:func:`torchfix_mod.editing.text_edits`).

Settings come from the document's ``pyproject.toml`` (``[tool.torchfix-mod]``, as for the
command line), overridden by the editor's settings (``initializationOptions`` or the
``torchfix-mod`` section of ``workspace/configuration``) as command-line options override
the file. The classes of a workspace folder's other files (the project index of a run) are
read once, in a separate process, and updated when files are saved or change on disk.

Analysis runs off the message loop. A document changed while it is being analysed is analysed
once more, on its newest text, when the running analysis ends; results for a text that is no
longer current are dropped. An internal error is logged (``window/logMessage``) and the
document keeps its last diagnostics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from torchfix_mod import __version__
from torchfix_mod.config import Config, ConfigError, all_prefix, effective_codes, find_config, load_config
from torchfix_mod.editing import Lines, TextEdit, noqa_edit, text_edits
from torchfix_mod.engine import Diagnostic, Settings, SourceError, finding_key, parse_python, transform_source
from torchfix_mod.project import FileSummary, ProjectIndex, build_index, module_name, summarize
from torchfix_mod.rule import Rule, RuleOptions, load_rules

NAME = "torchfix-mod"
FIX_ALL_KIND = "source.fixAll.torchfix-mod"
CONFIGURATION_WAIT = 5.0  # seconds
DOCS_URI = "https://pypi.org/project/torchfix-mod/#rules"
SETTING_KEYS = {
    "select": "select",
    "ignore": "ignore",
    "extendselect": "extend_select",
    "unsafefixes": "unsafe_fixes",
    "bufferpersistent": "buffer_persistent",
}

log = logging.getLogger(__name__)


# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditorSettings:
    """What the editor sets; each overrides the ``pyproject.toml`` value as the matching
    command-line option does (None / empty: not set)."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    unsafe_fixes: bool | None = None
    buffer_persistent: bool | None = None

    @classmethod
    def read(cls, value: Any, known_codes: Iterable[str]) -> tuple[EditorSettings, list[str]]:
        """Settings from a client's JSON (``{"select": [...], "unsafeFixes": true}``, also under a
        ``torchfix-mod`` or ``settings`` key; camelCase, kebab-case or snake_case names), and a
        message for each value that cannot be used (it is left out)."""
        problems: list[str] = []
        if isinstance(value, dict):
            for wrapper in ("torchfix-mod", "torchfixMod", "settings"):
                if isinstance(value.get(wrapper), dict):
                    value = value[wrapper]
                    break
        if not isinstance(value, dict):
            return cls(), ([] if value is None else [f"settings must be an object, not {type(value).__name__}"])
        known = list(known_codes)
        found: dict[str, Any] = {}
        for raw_key, raw in value.items():
            key = SETTING_KEYS.get(str(raw_key).replace("-", "").replace("_", "").lower())
            if key is None:
                problems.append(f"unknown setting {raw_key!r}")
            elif key in ("unsafe_fixes", "buffer_persistent"):
                if raw is None or isinstance(raw, bool):
                    found[key] = raw
                else:
                    problems.append(f"setting {raw_key!r} must be true or false")
            else:
                items = [raw] if isinstance(raw, str) else raw
                if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
                    problems.append(f"setting {raw_key!r} must be a list of rule codes")
                    continue
                codes = []
                for item in items:
                    if not item.strip():
                        problems.append(f"setting {raw_key!r} has an empty rule code")
                        continue
                    code = all_prefix(item.strip().upper())
                    if any(c.startswith(code) for c in known):
                        codes.append(code)
                    else:
                        problems.append(f"setting {raw_key!r}: {item!r} matches no rule")
                found[key] = tuple(codes)
        return cls(**found), problems


def _uri_path(uri: str) -> Path | None:
    if not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    return Path(path) if path else None


# -- the project index of a workspace folder --------------------------------------------------


def _summaries(paths: list[str]) -> list[tuple[str, FileSummary | None]]:
    """(In a worker process.) The project-index summary of each file, None when unreadable."""
    import ast

    from torchfix_mod.files import SourceReadError, decode

    out = []
    for name in paths:
        path = Path(name)
        try:
            text, _ = decode(path.read_bytes())
            summary = summarize(ast.parse(text), path, text)
        except (OSError, SourceReadError, SyntaxError, ValueError, RecursionError, MemoryError):
            summary = None
        out.append((name, summary))
    return out


def _follow_parent(parent: int) -> None:
    """(In a worker process.) Exit as soon as the server that started it is gone, even if it
    was killed without shutting its workers down."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


@dataclass
class FolderIndex:
    root: Path
    summaries: dict[str, FileSummary | None] = field(default_factory=dict)
    index: ProjectIndex | None = None  # None until the first reading of the folder is done

    def rebuild(self) -> None:
        self.index = build_index([s for s in self.summaries.values() if s is not None])


# -- what one analysis of a document gives ------------------------------------------------------


@dataclass
class Item:
    """One diagnostic as published: the engine's diagnostic (lines within ``uri``'s text) and its
    key in the analysed text (the notebook's joined cells for a cell)."""

    uri: str
    diagnostic: Diagnostic
    key: tuple[str, int, int, int, int]
    lsp: lsp.Diagnostic


@dataclass
class Analysis:
    owner: str  # the text document's URI, or the notebook's
    texts: dict[str, str]  # URI -> the text analysed (the cells of a notebook, in order)
    versions: dict[str, int | None]
    settings: Settings | None  # None: nothing analysed (excluded, or not parsable)
    items: list[Item] = field(default_factory=list)
    errors: list[lsp.Diagnostic] = field(default_factory=list)  # syntax errors, by URI below
    error_uris: list[str] = field(default_factory=list)
    notebook_json: str | None = None
    cell_kinds: list[str] = field(default_factory=list)  # notebooks: "code"/"markdown" per cell


def _notebook_json(cells: list[tuple[str, str]]) -> str:
    """An nbformat-4 notebook holding the editor's cells (kind, text) in order."""
    out = []
    for kind, text in cells:
        cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": text}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return json.dumps({"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _cell_sources(notebook_text: str) -> list[str]:
    cells = json.loads(notebook_text)["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]


# -- positions --------------------------------------------------------------------------------


def _units(text: str, encoding: str) -> int:
    if encoding == lsp.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == lsp.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _to_client(lines: Lines, line: int, column: int, encoding: str) -> lsp.Position:
    """A 0-based (line, character) position as the client counts columns."""
    if line >= len(lines.starts):
        line, column = len(lines.starts) - 1, len(lines.line_text(len(lines.starts) - 1))
    text = lines.line_text(line)
    return lsp.Position(line=line, character=_units(text[:column], encoding))


def _from_client(lines: Lines, position: lsp.Position, encoding: str) -> tuple[int, int]:
    line = min(position.line, len(lines.starts) - 1)
    text = lines.line_text(line)
    column, used = 0, 0
    while column < len(text) and used < position.character:
        used += _units(text[column], encoding)
        column += 1
    return line, column


class TorchfixServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            NAME,
            __version__,
            # the whole text with each change: pygls applies incremental changes with
            # str.splitlines, which also breaks lines at form feeds and other separators LSP
            # does not, and the server's copy would drift from the editor's
            text_document_sync_kind=lsp.TextDocumentSyncKind.Full,
            notebook_document_sync=lsp.NotebookDocumentSyncOptions(
                notebook_selector=[
                    lsp.NotebookDocumentFilterWithCells(cells=[lsp.NotebookCellLanguage(language="python")])
                ],
                save=True,
            ),
        )
        self.rules: list[type[Rule]] = load_rules()
        self.codes = [r.code for r in self.rules]
        self.default_codes = [r.code for r in self.rules if r.default_enabled]
        self.by_code = {r.code: r for r in self.rules}
        self.init_settings = EditorSettings()
        self.client_settings = EditorSettings()
        self.analyses: dict[str, Analysis] = {}
        self.running: dict[str, asyncio.Task] = {}
        self.again: set[str] = set()
        self.folders: dict[str, FolderIndex] = {}
        self.configs: dict[str, tuple[float, Config | ConfigError]] = {}
        self.floors: dict[str, tuple] = {}
        self.pool: concurrent.futures.Executor | None = None
        self.shown_problems: set[str] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.configured: asyncio.Event | None = None  # set once the client's settings are known
        self.loop_thread: int | None = None

    # -- messages to the client ------------------------------------------------------------

    def _send(self, function, params) -> None:
        """A notification to the client, sent from the message loop's thread whatever the caller's."""
        loop = self.loop
        if loop is None or threading.get_ident() == self.loop_thread:
            function(params)
        else:
            loop.call_soon_threadsafe(function, params)

    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Info) -> None:
        self._send(self.window_log_message, lsp.LogMessageParams(type=kind, message=f"{NAME}: {message}"))

    def problem(self, message: str) -> None:
        """A setting or configuration file that cannot be used: logged and shown, once."""
        if message not in self.shown_problems:
            self.shown_problems.add(message)
            self.log(message, lsp.MessageType.Warning)
            self._send(self.window_show_message, lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=f"{NAME}: {message}"))

    # -- settings ---------------------------------------------------------------------------

    @property
    def editor(self) -> EditorSettings:
        """Initialization options, with the client's configuration on top where it sets a value."""
        base, top = self.init_settings, self.client_settings
        return EditorSettings(
            select=top.select or base.select,
            ignore=top.ignore or base.ignore,
            extend_select=top.extend_select or base.extend_select,
            unsafe_fixes=base.unsafe_fixes if top.unsafe_fixes is None else top.unsafe_fixes,
            buffer_persistent=base.buffer_persistent if top.buffer_persistent is None else top.buffer_persistent,
        )

    def config_for(self, path: Path | None) -> Config:
        start = path if path is not None else self._workspace_root()
        if start is None:
            return Config()
        try:
            found = find_config([start])
            mtime = found.stat().st_mtime if found is not None else 0.0
        except (ConfigError, OSError) as exc:
            self.problem(f"{exc}; using the defaults")
            return Config()
        if found is None:
            return Config()
        cached = self.configs.get(str(found))
        if cached is None or cached[0] != mtime:
            try:
                value: Config | ConfigError = load_config(found, self.codes)
            except ConfigError as exc:
                value = exc
            cached = self.configs[str(found)] = (mtime, value)
        if isinstance(cached[1], ConfigError):
            self.problem(f"{cached[1]}; using the defaults")
            return Config()
        return cached[1]

    def _workspace_root(self) -> Path | None:
        try:
            root = self.workspace.root_path
        except Exception:
            return None
        return Path(root) if root else None

    def _folder_of(self, path: Path | None) -> FolderIndex | None:
        if path is None:
            return None
        best = None
        for folder in self.folders.values():
            try:
                path.relative_to(folder.root)
            except ValueError:
                continue
            if best is None or len(folder.root.parts) > len(best.root.parts):
                best = folder
        return best

    def settings_for(self, path: Path | None, notebook: bool = False) -> Settings | None:
        """The engine settings for a document (None: the configuration excludes it)."""
        from torchfix_mod.requirements import declared_floors

        config = self.config_for(path)
        if path is not None and config.path is not None and config.excluded(path):
            return None
        editor = self.editor
        codes = set(effective_codes(config, editor.select, editor.ignore, editor.extend_select, self.codes, self.default_codes))
        if path is not None:
            dropped = config.ignored_codes(path)
            codes = {c for c in codes if not any(c.startswith(d) for d in dropped)}
        directory = str(path.parent if path is not None else (self._workspace_root() or Path.cwd()))
        if directory not in self.floors:
            try:
                self.floors[directory] = declared_floors(Path(directory))
            except Exception as exc:  # a requirements file the reader does not expect
                self.problem(f"cannot read the declared torch version under {directory}: {exc}")
                self.floors[directory] = ()
        unsafe = config.unsafe_fixes if editor.unsafe_fixes is None else editor.unsafe_fixes
        persistent = config.buffer_persistent if editor.buffer_persistent is None else editor.buffer_persistent
        module, is_package = module_name(path) if path is not None and path.suffix == ".py" and not notebook else (None, False)
        folder = self._folder_of(path)
        return Settings(
            rules=tuple(r for r in self.rules if r.code in codes),
            unsafe_fixes=bool(unsafe),
            apply_fixes=False,
            rule_options=RuleOptions(buffer_persistent=bool(persistent), requires=self.floors[directory]),
            project=folder.index if folder is not None else None,
            module=module,
            is_package=is_package,
        )

    # -- analysis ----------------------------------------------------------------------------

    def _snapshot(self, owner: str) -> tuple[dict[str, str], dict[str, int | None], list[str]] | None:
        """The texts and versions of a document (or of a notebook's cells), and cell kinds."""
        notebook = self.workspace.notebook_documents.get(owner)
        if notebook is not None:
            texts, versions, kinds = {}, {}, []
            for cell in notebook.cells:
                doc = self.workspace.get_text_document(cell.document)
                texts[cell.document] = doc.source
                versions[cell.document] = doc.version
                kinds.append("code" if cell.kind == lsp.NotebookCellKind.Code else "markdown")
            versions[owner] = notebook.version
            return texts, versions, kinds
        if owner not in self.workspace.text_documents:
            return None
        doc = self.workspace.get_text_document(owner)
        return {owner: doc.source}, {owner: doc.version}, []

    def analyse(self, owner: str, texts: dict[str, str], versions: dict[str, int | None], kinds: list[str]) -> Analysis:
        """(Off the message loop.) The findings on a snapshot of the document."""
        path = _uri_path(owner)
        notebook = bool(kinds)
        settings = self.settings_for(path, notebook)
        analysis = Analysis(owner, texts, versions, settings, cell_kinds=kinds)
        if settings is None:
            return analysis
        encoding = self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16
        if not notebook:
            text = texts[owner]
            tree = parse_python(text)
            if isinstance(tree, SourceError):  # the syntax error, and nothing else
                analysis.errors.append(self._syntax_error(text, tree, encoding))
                analysis.error_uris.append(owner)
                analysis.settings = None
                return analysis
            result = transform_source(text, settings, tree)
            for error in result.errors:
                self.log(f"{owner}:{error.line}: {error.message}", lsp.MessageType.Error)
            for d in result.diagnostics:
                analysis.items.append(self._item(owner, text, d, finding_key(d), encoding))
            return analysis
        from torchfix_mod.notebooks import NotebookError, load_notebook, transform_notebook

        cells = list(texts)
        analysis.notebook_json = _notebook_json(list(zip(kinds, texts.values())))
        try:
            _, diagnostics, errors, skipped = transform_notebook(analysis.notebook_json, settings)
            starts = {c.index: c.start for c in load_notebook(analysis.notebook_json).cells}
        except NotebookError as exc:
            self.log(f"{owner}: {exc}", lsp.MessageType.Error)
            analysis.settings = None
            return analysis
        for _, error in errors:
            self.log(f"{owner}: {error.message}", lsp.MessageType.Error)
        for index, reason in skipped:
            uri = cells[index - 1]
            tree = parse_python(texts[uri])
            if isinstance(tree, SourceError) and reason.startswith("does not parse"):
                # a cell the user is writing: its syntax error, as for a file
                analysis.errors.append(self._syntax_error(texts[uri], tree, encoding))
                analysis.error_uris.append(uri)
            else:  # a magic, a cell magic, a cell that compiles only alone: said in the log
                self.log(f"{owner}: cell {index} not analysed ({reason})")
        for d in diagnostics:
            if d.cell is None or d.cell not in starts:
                continue
            uri = cells[d.cell - 1]
            offset = starts[d.cell] - 1
            key = (d.code, d.line + offset, d.column, d.end_line + offset, d.end_column)
            analysis.items.append(self._item(uri, texts[uri], d, key, encoding))
        return analysis

    def _syntax_error(self, text: str, error: SourceError, encoding: str) -> lsp.Diagnostic:
        start = _to_client(Lines(text), error.line - 1, max(error.column - 1, 0), encoding)
        return lsp.Diagnostic(
            range=lsp.Range(start=start, end=start), message=error.message, severity=lsp.DiagnosticSeverity.Error, source=NAME
        )

    def _item(self, uri: str, text: str, d: Diagnostic, key: tuple, encoding: str) -> Item:
        lines = Lines(text)
        fix = "safe" if d.fix_available else "unsafe" if d.unsafe_fix else None
        diagnostic = lsp.Diagnostic(
            range=lsp.Range(
                start=_to_client(lines, d.line - 1, d.column - 1, encoding),
                end=_to_client(lines, d.end_line - 1, d.end_column - 1, encoding),
            ),
            message=d.message,
            severity=lsp.DiagnosticSeverity.Warning,
            code=d.code,
            code_description=lsp.CodeDescription(href=DOCS_URI),
            source=NAME,
            data={"key": list(key), "fix": fix},
        )
        return Item(uri, d, key, diagnostic)

    def publish(self, analysis: Analysis, previous: Analysis | None = None) -> None:
        """Send the analysis's diagnostics, and empty lists for documents the previous analysis
        of the same owner covered and this one does not (a notebook cell deleted)."""
        by_uri: dict[str, list[lsp.Diagnostic]] = {uri: [] for uri in analysis.texts}
        for uri in previous.texts if previous is not None else ():
            by_uri.setdefault(uri, [])
        for item in analysis.items:
            by_uri.setdefault(item.uri, []).append(item.lsp)
        for uri, error in zip(analysis.error_uris, analysis.errors):
            by_uri.setdefault(uri, []).append(error)
        for uri, diagnostics in by_uri.items():
            version = analysis.versions.get(uri)
            self.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
            )

    def current(self, analysis: Analysis) -> bool:
        snapshot = self._snapshot(analysis.owner)
        return snapshot is not None and snapshot[1] == analysis.versions and snapshot[0] == analysis.texts

    def refresh(self, owner: str) -> None:
        """Analyse the document now, or once more after the analysis that is running."""
        task = self.running.get(owner)
        if task is not None and not task.done():
            self.again.add(owner)
            return
        self.running[owner] = asyncio.get_running_loop().create_task(self._refresh(owner))

    async def _refresh(self, owner: str) -> None:
        try:
            await self.settled()
            while True:
                self.again.discard(owner)
                snapshot = self._snapshot(owner)
                if snapshot is None:
                    return  # closed meanwhile
                try:
                    analysis = await asyncio.to_thread(self.analyse, owner, *snapshot)
                except Exception:
                    self.log(f"internal error analysing {owner}; its diagnostics are kept:\n{traceback.format_exc()}", lsp.MessageType.Error)
                    if owner not in self.again:
                        return
                    continue
                if owner in self.again or not self.current(analysis):
                    continue  # the text changed meanwhile: its newest text is analysed instead
                self.publish(analysis, self.analyses.get(owner))
                self.analyses[owner] = analysis
                return
        finally:
            self.running.pop(owner, None)

    async def settled(self) -> None:
        """Wait (a little at most) for the client's answer to ``workspace/configuration``, so that
        the first diagnostics already follow the editor's settings."""
        if self.configured is not None and not self.configured.is_set():
            try:
                await asyncio.wait_for(self.configured.wait(), CONFIGURATION_WAIT)
            except asyncio.TimeoutError:
                self.log("the client did not answer workspace/configuration; using the other settings", lsp.MessageType.Warning)
                self.configured.set()

    def refresh_all(self) -> None:
        for uri in list(self.workspace.text_documents):
            if self.workspace.get_notebook_document(cell_uri=uri) is None:
                self.refresh(uri)
        for uri in list(self.workspace.notebook_documents):
            self.refresh(uri)

    def owner_of(self, uri: str) -> str:
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        return notebook.uri if notebook is not None else uri

    async def analysis_of(self, uri: str) -> Analysis | None:
        """The analysis of the document's current text (made now if the last one is stale)."""
        owner = self.owner_of(uri)
        analysis = self.analyses.get(owner)
        if analysis is not None and self.current(analysis):
            return analysis
        await self.settled()
        snapshot = self._snapshot(owner)
        if snapshot is None:
            return None
        analysis = await asyncio.to_thread(self.analyse, owner, *snapshot)
        if self.current(analysis):
            self.publish(analysis, self.analyses.get(owner))
            self.analyses[owner] = analysis
        return analysis

    # -- fixes -------------------------------------------------------------------------------

    def fixed_texts(self, analysis: Analysis, settings: Settings) -> dict[str, str]:
        """(Off the message loop.) The text of each document of the analysis under ``settings``."""
        if analysis.notebook_json is None:
            text = analysis.texts[analysis.owner]
            return {analysis.owner: transform_source(text, settings).new_source}
        from torchfix_mod.notebooks import transform_notebook

        new_json, _, _, _ = transform_notebook(analysis.notebook_json, settings)
        return dict(zip(analysis.texts, _cell_sources(new_json)))

    def workspace_edit(self, analysis: Analysis, new_texts: dict[str, str]) -> lsp.WorkspaceEdit | None:
        """The edits from the analysed texts to ``new_texts``. Where the client takes them, they
        name the version of each document they were made for, so that an editor whose text has
        changed since refuses them instead of applying them in the wrong place."""
        encoding = self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16
        changes: dict[str, list[lsp.TextEdit]] = {}
        for uri, new in new_texts.items():
            old = analysis.texts[uri]
            edits = text_edits(old, new)
            if edits:
                changes[uri] = [self._lsp_edit(Lines(old), e, encoding) for e in edits]
        if not changes:
            return None
        return self._versioned(analysis, changes)

    def _versioned(self, analysis: Analysis, changes: dict[str, list[lsp.TextEdit]]) -> lsp.WorkspaceEdit:
        capabilities = self.client_capabilities.workspace
        edit_support = capabilities.workspace_edit if capabilities is not None else None
        if edit_support is None or not edit_support.document_changes:
            return lsp.WorkspaceEdit(changes=changes)
        return lsp.WorkspaceEdit(
            document_changes=[
                lsp.TextDocumentEdit(
                    text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=analysis.versions.get(uri)),
                    edits=edits,
                )
                for uri, edits in changes.items()
            ]
        )

    def _lsp_edit(self, lines: Lines, edit: TextEdit, encoding: str) -> lsp.TextEdit:
        return lsp.TextEdit(
            range=lsp.Range(start=_to_client(lines, *edit.start, encoding), end=_to_client(lines, *edit.end, encoding)),
            new_text=edit.new_text,
        )

    def code_actions(self, analysis: Analysis, uri: str, wanted: lsp.Range, only: list[str] | None) -> list[lsp.CodeAction]:
        """(Off the message loop.) Quick fixes and noqa actions for the findings on the lines of
        ``wanted``, and the fix-all action."""
        actions: list[lsp.CodeAction] = []
        settings = analysis.settings
        if settings is None:
            return actions

        def asked(kind: str) -> bool:
            return only is None or any(kind == k or kind.startswith(k + ".") for k in only)

        lazy = self._resolves_edits()
        if asked(lsp.CodeActionKind.QuickFix):
            for item in analysis.items:
                if item.uri != uri or item.lsp.range.end.line < wanted.start.line or item.lsp.range.start.line > wanted.end.line:
                    continue
                rule = self.by_code[item.diagnostic.code]
                for unsafe in (False, True):
                    if (item.diagnostic.fix_available, item.diagnostic.unsafe_fix)[unsafe]:
                        title = f"{NAME}: fix {rule.code} ({rule.name})" + (" (unsafe fix)" if unsafe else "")
                        action = lsp.CodeAction(
                            title=title,
                            kind=lsp.CodeActionKind.QuickFix,
                            diagnostics=[item.lsp],
                            is_preferred=not unsafe,
                            data={"uri": uri, "key": list(item.key), "unsafe": unsafe, "versions": analysis.versions},
                        )
                        if not lazy:
                            action.edit = self.action_edit(analysis, action.data)
                            if action.edit is None:
                                continue
                        actions.append(action)
                noqa = self._noqa_action(analysis, item, rule)
                if noqa is not None:
                    actions.append(noqa)
        if asked(FIX_ALL_KIND) and any(i.diagnostic.fix_available for i in analysis.items):
            action = lsp.CodeAction(
                title=f"{NAME}: fix all safe fixes", kind=FIX_ALL_KIND, data={"uri": uri, "all": True, "versions": analysis.versions}
            )
            if not lazy:
                action.edit = self.action_edit(analysis, action.data)
            if lazy or action.edit is not None:
                actions.append(action)
        return actions

    def _resolves_edits(self) -> bool:
        """The client asks for an action's edit when the user picks it (``codeAction/resolve``):
        listing the actions then costs no engine run per fix."""
        capabilities = self.client_capabilities.text_document
        code_action = capabilities.code_action if capabilities is not None else None
        resolve = code_action.resolve_support if code_action is not None else None
        return resolve is not None and "edit" in resolve.properties

    def action_edit(self, analysis: Analysis, data: dict) -> lsp.WorkspaceEdit | None:
        """(Off the message loop.) The edit of a fix action: every safe fix, or one finding's."""
        settings = analysis.settings
        if settings is None:
            return None
        if data.get("all"):
            chosen = replace(settings, apply_fixes=True)
        else:
            unsafe = bool(data.get("unsafe"))
            chosen = replace(
                settings, apply_fixes=True, unsafe_fixes=unsafe or settings.unsafe_fixes, fix_only=frozenset({tuple(data["key"])})
            )
        return self.workspace_edit(analysis, self.fixed_texts(analysis, chosen))

    def _noqa_action(self, analysis: Analysis, item: Item, rule: type[Rule]) -> lsp.CodeAction | None:
        d = item.diagnostic
        text = analysis.texts[item.uri]
        lines = (d.line,) if d.line == d.end_line else (d.line, d.end_line)
        found = noqa_edit(text, d.code, lines)
        if found is None:
            return None
        edit, _ = found
        encoding = self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16
        change = self._versioned(analysis, {item.uri: [self._lsp_edit(Lines(text), edit, encoding)]})
        return lsp.CodeAction(
            title=f"{NAME}: disable {rule.code} for this line", kind=lsp.CodeActionKind.QuickFix, diagnostics=[item.lsp], edit=change
        )

    # -- the project index -------------------------------------------------------------------

    def _executor(self) -> concurrent.futures.Executor:
        if self.pool is None:
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_follow_parent,
                initargs=(os.getpid(),),
            )
        return self.pool

    async def index_folder(self, root: Path) -> None:
        """Read every Python file of a workspace folder for the project index, in a separate
        process, then analyse the open documents again."""
        from torchfix_mod.files import discover

        folder = self.folders.setdefault(str(root), FolderIndex(root))
        try:
            config = self.config_for(root / "__init__.py")
            exclude = (lambda p, is_dir: config.excluded(p)) if config.path else None
            files, _ = await asyncio.to_thread(discover, [root], exclude, config.exclude is None)
            names = [str(p) for p in files if p.suffix == ".py"]
            loop = asyncio.get_running_loop()
            chunks = [names[i : i + 200] for i in range(0, len(names), 200)]
            results = await asyncio.gather(*(loop.run_in_executor(self._executor(), _summaries, c) for c in chunks))
        except Exception:
            self.log(f"cannot read the folder {root} for the project index:\n{traceback.format_exc()}", lsp.MessageType.Error)
            return
        for chunk in results:
            folder.summaries.update(chunk)
        await asyncio.to_thread(folder.rebuild)
        self.log(f"project index of {root}: {len(names)} files, {len(folder.index)} nn.Module classes")
        self.refresh_all()

    async def update_files(self, paths: list[Path]) -> None:
        """Files saved or changed on disk: their summaries in the index, then everything again."""
        touched = []
        for path in paths:
            folder = self._folder_of(path)
            if folder is None or folder.index is None or path.suffix != ".py":
                continue
            ((_, summary),) = await asyncio.to_thread(_summaries, [str(path)]) if path.exists() else [(str(path), None)]
            if str(path) not in folder.summaries and summary is None:
                continue
            if summary is None:
                folder.summaries.pop(str(path), None)
            else:
                folder.summaries[str(path)] = summary
            touched.append(folder)
        for folder in {id(f): f for f in touched}.values():
            before = folder.index.fingerprint if folder.index is not None else None
            await asyncio.to_thread(folder.rebuild)
            if folder.index.fingerprint != before:
                self.refresh_all()

    def shutdown_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


def _docs(rule: type[Rule]) -> str:
    return f"**{rule.code}** (`{rule.name}`): {rule.summary}\n\n{rule.docs()}"


def create_server() -> TorchfixServer:
    server = TorchfixServer()

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: TorchfixServer, params: lsp.InitializeParams) -> None:
        try:
            ls.loop, ls.loop_thread = asyncio.get_running_loop(), threading.get_ident()
            ls.configured = asyncio.Event()
        except RuntimeError:
            pass
        ls.init_settings, problems = EditorSettings.read(params.initialization_options, ls.codes)
        for message in problems:
            ls.problem(message)

    @server.feature(lsp.INITIALIZED)
    async def initialized(ls: TorchfixServer, params: lsp.InitializedParams) -> None:
        roots = [to_fs_path(f.uri) for f in (ls.workspace.folders or {}).values()]
        if not roots and ls.workspace.root_path:
            roots = [ls.workspace.root_path]
        for root in roots:
            if root:
                ls.folders.setdefault(str(Path(root)), FolderIndex(Path(root)))
        await _pull_configuration(ls)
        if ls.configured is not None:
            ls.configured.set()
        capabilities = ls.client_capabilities.workspace
        watch = capabilities and capabilities.did_change_watched_files
        if watch and watch.dynamic_registration:
            try:
                await ls.client_register_capability_async(
                    lsp.RegistrationParams(
                        registrations=[
                            lsp.Registration(
                                id="torchfix-mod-files",
                                method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                register_options=lsp.DidChangeWatchedFilesRegistrationOptions(
                                    watchers=[lsp.FileSystemWatcher(glob_pattern="**/*.py"), lsp.FileSystemWatcher(glob_pattern="**/pyproject.toml")]
                                ),
                            )
                        ]
                    )
                )
            except Exception as exc:
                ls.log(f"no file watching ({exc}): files changed outside the editor update the project index when saved in it")
        for root in list(ls.folders):
            asyncio.get_running_loop().create_task(ls.index_folder(Path(root)))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: TorchfixServer, params: lsp.DidChangeConfigurationParams) -> None:
        await _pull_configuration(ls, params.settings)
        ls.refresh_all()

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def did_change_watched_files(ls: TorchfixServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        paths = [p for p in (_uri_path(change.uri) for change in params.changes) if p is not None]
        if any(p.name == "pyproject.toml" for p in paths):
            ls.configs.clear()
            ls.floors.clear()
            ls.refresh_all()
        await ls.update_files([p for p in paths if p.suffix == ".py"])

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TorchfixServer, params: lsp.DidOpenTextDocumentParams) -> None:
        if ls.workspace.get_notebook_document(cell_uri=params.text_document.uri) is None:
            ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TorchfixServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.refresh(ls.owner_of(params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: TorchfixServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.refresh(ls.owner_of(params.text_document.uri))
        path = _uri_path(params.text_document.uri)
        if path is not None:
            if path.name == "pyproject.toml":
                ls.configs.clear()
                ls.floors.clear()
                ls.refresh_all()
            await ls.update_files([path])

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TorchfixServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.analyses.pop(uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_open(ls: TorchfixServer, params: lsp.DidOpenNotebookDocumentParams) -> None:
        ls.refresh(params.notebook_document.uri)

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_change(ls: TorchfixServer, params: lsp.DidChangeNotebookDocumentParams) -> None:
        ls.refresh(params.notebook_document.uri)

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_SAVE)
    def notebook_save(ls: TorchfixServer, params: lsp.DidSaveNotebookDocumentParams) -> None:
        ls.refresh(params.notebook_document.uri)

    @server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_close(ls: TorchfixServer, params: lsp.DidCloseNotebookDocumentParams) -> None:
        analysis = ls.analyses.pop(params.notebook_document.uri, None)
        for cell in params.cell_text_documents:
            ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=cell.uri, diagnostics=[]))
        del analysis

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL_KIND], resolve_provider=True),
    )
    async def code_action(ls: TorchfixServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
        uri = params.text_document.uri
        analysis = await ls.analysis_of(uri)
        if analysis is None:
            return None
        only = [str(k) for k in params.context.only] if params.context.only else None
        return await asyncio.to_thread(ls.code_actions, analysis, uri, params.range, only) or None

    @server.feature(lsp.CODE_ACTION_RESOLVE)
    async def resolve_code_action(ls: TorchfixServer, action: lsp.CodeAction) -> lsp.CodeAction:
        data = action.data if isinstance(action.data, dict) else None
        if action.edit is not None or data is None or "uri" not in data:
            return action
        analysis = await ls.analysis_of(data["uri"])
        if analysis is None or analysis.versions != data.get("versions"):
            return action  # the text changed since the action was listed: no edit for it
        action.edit = await asyncio.to_thread(ls.action_edit, analysis, data)
        return action

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(ls: TorchfixServer, params: lsp.HoverParams) -> lsp.Hover | None:
        analysis = await ls.analysis_of(params.text_document.uri)
        if analysis is None:
            return None
        at = params.position
        for item in analysis.items:
            r = item.lsp.range
            if item.uri == params.text_document.uri and (r.start.line, r.start.character) <= (at.line, at.character) <= (r.end.line, r.end.character):
                rule = ls.by_code[item.diagnostic.code]
                return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=_docs(rule)), range=r)
        return None

    @server.feature(lsp.SHUTDOWN)
    def shutdown(ls: TorchfixServer, params: None) -> None:
        ls.shutdown_pool()

    return server


async def _pull_configuration(ls: TorchfixServer, pushed: Any = None) -> None:
    """The client's ``torchfix-mod`` settings: asked for when it answers ``workspace/configuration``,
    else taken from a ``didChangeConfiguration`` push."""
    value = None
    capabilities = ls.client_capabilities.workspace
    if capabilities is not None and capabilities.configuration:
        try:
            answer = await ls.workspace_configuration_async(
                lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section=NAME)])
            )
            value = answer[0] if answer else None
        except Exception:
            ls.log(f"workspace/configuration failed:\n{traceback.format_exc()}", lsp.MessageType.Warning)
    elif pushed is not None:
        value = pushed
    settings, problems = EditorSettings.read(value, ls.codes)
    for message in problems:
        ls.problem(message)
    ls.client_settings = settings
    ls.configs.clear()


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: torchfix-mod server\n\n"
            "Run the torchfix-mod language server over stdin/stdout (Language Server Protocol).\n"
            "Editors start it; see the README for VS Code, Neovim and Helix."
        )
        return 0
    if argv:
        print(f"torchfix-mod server: unexpected argument {argv[0]!r} (it takes none)", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("TORCHFIX_MOD_LOG", "WARNING").upper(), stream=sys.stderr)
    server = create_server()
    try:
        server.start_io()
    finally:
        server.shutdown_pool()
    return 0
