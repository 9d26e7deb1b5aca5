"""Small LibCST changes that fix intents of several rules use. Each takes the node found at
the intent's position (children already updated) and returns its replacement; none decides
anything. LibCST is imported on first use, so deciding never pays for it."""

from __future__ import annotations


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
