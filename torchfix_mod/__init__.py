"""torchfix-mod: find and fix the nn.Module mistakes that silently break PyTorch training."""

__version__ = "0.1.0"
