"""``python -m torchfix_mod``."""

from torchfix_mod.cli import main

main()
