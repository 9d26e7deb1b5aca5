"""Small LibCST changes that fix intents of several rules use. Each takes the node found at
the intent's position (children already updated) and returns its replacement; none decides
anything. LibCST is imported on first use, so deciding never pays for it."""

from __future__ import annotations

import importlib


class Deferred:
    """The change function ``name`` of the module ``module`` (a rule's LibCST edits), imported
    only when a fix is written: deciding never imports LibCST."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, node, *args):
        return getattr(importlib.import_module(self.module), self.name)(node, *args)

    @property
    def __name__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{self.module.rsplit('.', 1)[-1]}.{self.name}"


def rename_attribute(node, new: str):
    """``a.old`` -> ``a.new`` (an ``Attribute``)."""
    import libcst as cst

    return node.with_changes(attr=cst.Name(new))


def rename_name(node, new: str):
    """``old`` -> ``new`` (a ``Name``)."""
    return node.with_changes(value=new)


def replace_expression(node, code: str):
    """Any expression -> the expression ``code``, keeping the node's parentheses."""
    import libcst as cst

    replacement = cst.parse_expression(code)
    lpar, rpar = getattr(node, "lpar", ()), getattr(node, "rpar", ())
    if lpar and hasattr(replacement, "lpar"):
        replacement = replacement.with_changes(lpar=lpar, rpar=rpar)
    return replacement
