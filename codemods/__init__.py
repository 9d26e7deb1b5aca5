"""torchfix-mod's rules, one LibCST codemod per file; the engine discovers them here."""
