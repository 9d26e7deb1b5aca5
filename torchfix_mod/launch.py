"""The ``torchfix-mod`` entry point: answers ``--version`` with nothing imported, and loads the
command line (typer and the engine) only for a real command."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from torchfix_mod import __version__

        print(f"torchfix-mod {__version__}")
        return
    if sys.argv[1:2] == ["server"]:
        _server(sys.argv[2:])
        return
    from torchfix_mod.cli import main as run_command

    run_command()


def _server(argv: list[str]) -> None:
    """``torchfix-mod server``: the language server, from the optional ``server`` extra."""
    try:
        from torchfix_mod.server import main as serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("pygls", "lsprotocol", "cattrs", "attrs"):
            raise
        print(
            f"torchfix-mod server: {exc.name or 'pygls'} is not installed; "
            "install the server extra: pip install 'torchfix-mod[server]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    raise SystemExit(serve(argv))
