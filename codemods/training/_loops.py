"""What the training-loop rules share about a loop: the nodes that run as part of its body (not
its ``else``, not a function, lambda or class defined inside it), whether a node runs on every
iteration, and whether autograd records anything where it runs."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchfix_mod.semantic import SemanticModel

LOOPS = (ast.For, ast.AsyncFor, ast.While)
NO_GRAD = frozenset({"torch.no_grad", "torch.inference_mode", "torch.autograd.grad_mode.no_grad"})
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


def under_no_grad(model: SemanticModel, node: ast.AST) -> bool:
    """``node`` is inside ``with torch.no_grad():`` (or ``inference_mode``) or a function
    decorated with ``@torch.no_grad()``: autograd records nothing there."""
    for ancestor in model.ancestors(node):
        items: list[ast.expr] = []
        if isinstance(ancestor, (ast.With, ast.AsyncWith)):
            items = [item.context_expr for item in ancestor.items]
        elif isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
            items = list(ancestor.decorator_list)
        for item in items:
            target = item.func if isinstance(item, ast.Call) else item
            if model.torch_qualified(target) in NO_GRAD:
                return True
    return False
