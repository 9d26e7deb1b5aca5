"""``python -m torchfix_mod``."""

from torchfix_mod.launch import main

main()
