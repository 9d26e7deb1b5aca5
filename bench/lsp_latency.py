"""Editor latency of ``torchfix-mod server``: how long after ``didOpen`` / ``didChange`` the
diagnostics arrive, for one model file, measured by a real LSP client (pytest-lsp) over stdio.

    python -m bench.lsp_latency                      # timm's models/crossvit.py (763 lines)
    python -m bench.lsp_latency --file PATH --workspace DIR --repeats 30

The workspace folder (default: the whole timm package of the corpus) is the server's project
index; the measurements start once the server logs that the index is built. Each didOpen opens
the file under a new URI (a fresh document); each didChange alternately adds a deprecated ``nn.init`` call
to the first ``__init__`` (one more finding) and takes it out again, as a full-text change.
The clock runs from sending the notification to receiving the ``publishDiagnostics`` of that
version. The median and the 90th percentile are printed (milliseconds), with the start-up:
process start to ``initialize`` answered, and to the project index being ready.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import source_dir  # noqa: E402

DEFAULT_FILE = "timm/models/crossvit.py"
BUG = "        nn.init.xavier_uniform(torch.empty(3, 3))\n"  # TFM501: deprecated nn.init


def _with_bug(text: str) -> str:
    """The text with a deprecated call added after the first ``super().__init__()`` line."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if "super().__init__()" in line and line.startswith("        super"):
            return "".join(lines[: i + 1] + [BUG] + lines[i + 1 :])
    raise SystemExit("the file has no `        super().__init__()` line to add a bug after")


async def _published(client, uri: str, version: int) -> list:
    while True:
        params = await client.protocol.wait_for_notification_async("textDocument/publishDiagnostics")
        if params.uri == uri and params.version == version:
            return list(params.diagnostics)


async def measure(path: Path, workspace: Path, repeats: int) -> dict:
    from lsprotocol import types as lsp
    from pygls.uris import from_fs_path
    from pytest_lsp import ClientServerConfig, client_capabilities

    start = time.perf_counter()
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "torchfix_mod", "server"]).start()
    await client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            workspace_folders=[lsp.WorkspaceFolder(uri=from_fs_path(str(workspace)), name=workspace.name)],
        )
    )
    initialized = time.perf_counter() - start
    while not any("project index of" in m.message for m in client.log_messages):
        await asyncio.sleep(0.01)
    indexed = time.perf_counter() - start
    index_message = next(m.message for m in client.log_messages if "project index of" in m.message)
    text = path.read_text(encoding="utf-8")
    buggy = _with_bug(text)
    base_uri = from_fs_path(str(path))
    opens, changes, findings = [], [], set()
    try:
        for n in range(repeats + 1):  # the first of each is a warm-up
            uri = f"{base_uri}?open={n}"  # a new document each time, in the same folder
            t0 = time.perf_counter()
            client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
            await _published(client, uri, 1)
            if n:
                opens.append(time.perf_counter() - t0)
            client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri=uri)))
        uri = base_uri
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        await _published(client, uri, 1)
        for n in range(repeats + 1):
            version = n + 2
            t0 = time.perf_counter()
            client.text_document_did_change(
                lsp.DidChangeTextDocumentParams(
                    text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=buggy if n % 2 == 0 else text)],
                )
            )
            diagnostics = await _published(client, uri, version)
            if n:
                changes.append(time.perf_counter() - t0)
            findings.add(len(diagnostics))
    finally:
        await client.shutdown_session()
        await client.stop()

    def ms(values: list[float]) -> dict:
        ordered = sorted(values)
        return {
            "median_ms": round(statistics.median(ordered) * 1000, 1),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
        }

    return {
        "file": str(path),
        "lines": text.count("\n"),
        "workspace": str(workspace),
        "index": index_message,
        "initialize_s": round(initialized, 2),
        "index_ready_s": round(indexed, 2),
        "did_open": ms(opens),
        "did_change": ms(changes),
        "findings_per_version": sorted(findings),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, help="the model file (default: timm's models/crossvit.py)")
    parser.add_argument("--workspace", type=Path, help="the workspace folder (default: the file's top package)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if args.file is None:
        root = source_dir("timm")
        args.file = root / DEFAULT_FILE
        args.workspace = args.workspace or root / "timm"
    workspace = args.workspace or args.file.parent
    result = asyncio.run(measure(args.file.resolve(), workspace.resolve(), args.repeats))
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
