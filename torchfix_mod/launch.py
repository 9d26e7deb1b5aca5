"""The ``torchfix-mod`` entry point: answers ``--version`` with nothing imported, and loads the
command line (typer and the engine) only for a real command."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from torchfix_mod import __version__

        print(f"torchfix-mod {__version__}")
        return
    from torchfix_mod.cli import main as run_command

    run_command()
