"""What the training-loop rules share about a loop: the nodes that run as part of its body (not
its ``else``, not a function, lambda or class defined inside it), and whether a node runs on every
iteration."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchfix_mod.semantic import SemanticModel

LOOPS = (ast.For, ast.AsyncFor, ast.While)
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
BRANCHES = (ast.If, ast.IfExp, ast.Try, ast.Match, ast.BoolOp, *LOOPS)


def own_nodes(root: ast.AST) -> list[ast.AST]:
    """The nodes under ``root`` outside the functions, lambdas and classes it defines. For a
    loop, only its body's: the ``else`` runs once, after the last iteration, and the iterable
    is evaluated once before the first."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(root.body) if isinstance(root, LOOPS) else list(ast.iter_child_nodes(root))
    while stack:
        node = stack.pop()
        if isinstance(node, SCOPES):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def every_iteration(model: SemanticModel, node: ast.AST, loop: ast.AST) -> bool:
    """``node`` runs on every iteration of ``loop``: it is in the loop's body with no branch,
    ``try`` or inner loop between."""
    child, parent = node, model.parent(node)
    while parent is not None and parent is not loop:
        if isinstance(parent, BRANCHES):
            return False
        child, parent = parent, model.parent(parent)
    return parent is loop and any(child is statement for statement in loop.body)

