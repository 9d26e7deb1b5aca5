"""Walking ``ast`` trees: one pre-order index per parsed file, shared by the semantic model and
the rules, and plain walks for trees outside it.

The index is one walk: every node's parent, its place in pre-order and the end of its subtree,
and the nodes of each type in pre-order. The nodes of a type under any node are then a slice
found by bisection, so a rule that looks into every method never walks a method again.
Nothing is stored on the nodes themselves: a tree holds no reference cycle and is freed as
soon as the model that indexed it is dropped.
"""

from __future__ import annotations

import ast
from bisect import bisect_left
from heapq import merge

_AST = ast.AST
# CPython shares one instance of each context and operator among all the nodes of a tree:
# they have no place, no parent and no children, so the index leaves them out
SHARED_NODE_TYPES = _SHARED = frozenset(
    cls for base in (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop) for cls in base.__subclasses__()
)

# Fields that by Python's grammar (the ASDL in the ``ast`` docs) hold an identifier, a string,
# a number, a constant or a shared singleton, never a node: a walk need not look at them.
_LEAF_FIELDS = frozenset(
    {"ctx", "op", "ops", "id", "attr", "arg", "asname", "name", "module", "level", "simple", "is_async",
     "conversion", "kind", "type_comment", "rest", "kwd_attrs", "tag", "lineno"}
)
_LEAF_FIELDS_OF = {ast.Global: {"names"}, ast.Nonlocal: {"names"}, ast.Constant: {"value"}, ast.MatchSingleton: {"value"}}
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def child_fields(cls: type) -> tuple[str, ...]:
    """The fields of an ``ast`` node class that may hold child nodes, in field order."""
    found = _CHILD_FIELDS.get(cls)
    if found is None:
        skip = _LEAF_FIELDS | _LEAF_FIELDS_OF.get(cls, set())
        found = _CHILD_FIELDS[cls] = tuple(f for f in cls._fields if f not in skip)
    return found


def children(node: ast.AST) -> list[ast.AST]:
    """The direct child nodes of ``node`` in field order, shared singletons left out."""
    found = []
    fields = _CHILD_FIELDS.get(node.__class__) or child_fields(node.__class__)
    for field in fields:
        value = getattr(node, field, None)
        if value.__class__ is list:
            for item in value:
                if isinstance(item, _AST) and item.__class__ not in _SHARED:
                    found.append(item)
        elif isinstance(value, _AST) and value.__class__ not in _SHARED:
            found.append(value)
    return found


def walk(root: ast.AST) -> list[ast.AST]:
    """Every node under ``root``, root first, in pre-order (source order), shared singletons left out."""
    found = []
    stack = [root]
    while stack:
        node = stack.pop()
        found.append(node)
        below = children(node)
        below.reverse()
        stack.extend(below)
    return found


def nodes(root: ast.AST, kind: type | tuple[type, ...]) -> list:
    """The nodes of one kind under ``root`` (root included), in pre-order."""
    return [node for node in walk(root) if isinstance(node, kind)]


class TreeIndex:
    """One pre-order walk of a tree: parents, subtree ranges, and the nodes of each type."""

    def __init__(self, tree: ast.AST) -> None:
        position: dict[ast.AST, int] = {}
        parents: dict[ast.AST, ast.AST] = {}
        by_type: dict[type, list[ast.AST]] = {}
        stack = [tree]
        pop = stack.pop
        shared = _SHARED
        node_type = _AST
        fields_of = _CHILD_FIELDS
        index = 0
        while stack:
            node = pop()
            position[node] = index
            index += 1
            cls = node.__class__
            found = by_type.get(cls)
            if found is None:
                by_type[cls] = [node]
            else:
                found.append(node)
            below = None
            fields = fields_of.get(cls)
            if fields is None:
                fields = child_fields(cls)
            for field in fields:
                value = getattr(node, field, None)
                if value.__class__ is list:
                    for item in value:
                        if isinstance(item, node_type) and item.__class__ not in shared:
                            parents[item] = node
                            if below is None:
                                below = [item]
                            else:
                                below.append(item)
                elif isinstance(value, node_type) and value.__class__ not in shared:
                    parents[value] = node
                    if below is None:
                        below = [value]
                    else:
                        below.append(value)
            if below is not None:
                below.reverse()
                stack.extend(below)
        self.tree = tree
        self.parents = parents
        self.position = position
        self.by_type = by_type
        self._memo: dict[tuple, list] = {}
        self._ends: dict[ast.AST, int] = {}

    def __contains__(self, node: ast.AST) -> bool:
        return node in self.position

    def end(self, root: ast.AST) -> int:
        """One past the pre-order position of the last node under ``root``. Every node on the
        way down to that last node shares it, so all of them are remembered."""
        ends = self._ends
        found = ends.get(root)
        if found is not None:
            return found
        path = [root]
        last = root
        while True:
            found = ends.get(last)
            if found is not None:
                break
            below = children(last)
            if not below:
                found = self.position[last] + 1
                break
            last = below[-1]
            path.append(last)
        for node in path:
            ends[node] = found
        return found

    def nodes(self, kind: type | tuple[type, ...], root: ast.AST | None = None) -> list:
        """The nodes of one kind under ``root`` (the whole tree by default; root included), in
        pre-order. A node from outside the tree is walked on its own."""
        if root is None:
            root = self.tree
        key = (kind, root)
        found = self._memo.get(key)
        if found is not None:
            return found
        position = self.position
        start = position.get(root)
        if start is None:
            found = nodes(root, kind)
        else:
            whole = root is self.tree
            stop = 0 if whole else self.end(root)
            kinds = kind if isinstance(kind, tuple) else (kind,)
            parts = []
            for cls, items in self.by_type.items():
                if issubclass(cls, kinds):
                    if whole:
                        parts.append(items)
                        continue
                    low = bisect_left(items, start, key=position.__getitem__)
                    high = bisect_left(items, stop, low, key=position.__getitem__)
                    if low < high:
                        parts.append(items[low:high])
            if not parts:
                found = []
            elif len(parts) == 1:
                found = parts[0]
            else:
                found = list(merge(*parts, key=position.__getitem__))
        self._memo[key] = found
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


def generic_origin(base: ast.expr) -> ast.expr:
    """A base class as written, without the type arguments of a generic class: in
    ``class Op(Operator[Tensor, Tensor])`` the base is ``Operator`` (what ``__mro_entries__``
    of the alias gives)."""
    return base.value if isinstance(base, ast.Subscript) else base
