"""One walk per ``ast`` tree, shared by the project summary, the semantic model and the rules.

Walking a tree costs a fifth of parsing it, so each tree (and each function a rule looks
into) is walked at most once and its nodes are kept by type.
"""

from __future__ import annotations

import ast

_AST = ast.AST


def walk(root: ast.AST) -> list[ast.AST]:
    """Every node under ``root`` (root first, breadth first as ``ast.walk``), computed once."""
    found = root.__dict__.get("_tfm_walk")
    if found is None:
        found = [root]
        append = found.append
        i = 0
        while i < len(found):
            node = found[i]
            i += 1
            for field in node._fields:
                value = getattr(node, field, None)
                if value.__class__ is list:
                    for item in value:
                        if isinstance(item, _AST):
                            append(item)
                elif isinstance(value, _AST):
                    append(value)
        root._tfm_walk = found
    return found


def nodes(root: ast.AST, kind: type | tuple[type, ...]) -> list:
    """The nodes of one kind under ``root`` (root included), in walk order, from the one walk."""
    key = kind if isinstance(kind, tuple) else (kind,)
    memo = root.__dict__.get("_tfm_kinds")
    if memo is None:
        memo = root._tfm_kinds = {}
    found = memo.get(key)
    if found is None:
        by_type = memo.get(None)
        if by_type is None:
            by_type = memo[None] = {}
            for node in walk(root):
                by_type.setdefault(node.__class__, []).append(node)
        matching = [t for t in by_type if issubclass(t, key)]
        if len(matching) == 1:
            found = by_type[matching[0]]
        elif not matching:
            found = []
        else:
            found = [n for n in walk(root) if isinstance(n, key)]
        memo[key] = found
    return found


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))
