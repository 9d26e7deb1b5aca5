"""TFM201: an in-place ``x += y`` in ``forward`` that autograd cannot survive becomes ``x = x + y``."""

from __future__ import annotations

from dataclasses import dataclass

import ast

import libcst as cst
import libcst.matchers as m

from torchfix_mod.analysis import TENSOR_FACTORIES, FileFacts, class_methods, dotted_name, self_name
from torchfix_mod.containers import self_assignments
from torchfix_mod.legacy_rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.screen import methods, nodes, resolved

# Ops whose backward uses their own result (PITFALLS 4, measured on torch 2.13).
RESULT_KEPT_OPS = frozenset(
    {"sigmoid", "tanh", "exp", "exp2", "expm1", "relu", "softmax", "log_softmax", "sqrt", "rsqrt", "reciprocal", "cumprod"}
)
RESULT_KEPT_MODULES = frozenset({"Sigmoid", "Tanh", "ReLU", "Softmax", "LogSoftmax"})
# Results that share storage with their input.
VIEW_METHODS = frozenset(
    {
        "view", "view_as", "reshape", "reshape_as", "transpose", "permute", "squeeze", "unsqueeze",
        "expand", "expand_as", "narrow", "select", "t", "contiguous", "detach", "flatten", "unflatten",
        "as_strided", "diagonal", "to", "float", "double", "half", "bfloat16", "type", "type_as",
        "cpu", "cuda", "movedim", "swapaxes", "swapdims", "real", "imag", "view_as_real",
    }
)
# torch functions whose result shares storage with an argument.
TORCH_VIEW_FUNCTIONS = frozenset(
    {
        "narrow", "select", "transpose", "permute", "squeeze", "unsqueeze", "reshape", "view_as_real",
        "view_as_complex", "flatten", "unflatten", "diagonal", "t", "as_strided", "movedim", "moveaxis",
        "swapaxes", "swapdims", "split", "chunk", "unbind", "detach", "real", "imag", "broadcast_to",
        "atleast_1d", "atleast_2d", "atleast_3d", "tensor_split", "hsplit", "vsplit", "dsplit", "expand",
        "index_select", "take", "narrow_copy",
    }
)
# Reads that autograd never saves.
METADATA_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "requires_grad", "is_cuda", "layout", "grad_fn"})
METADATA_METHODS = frozenset({"size", "dim", "numel", "stride", "is_contiguous", "is_floating_point", "element_size", "nelement", "get_device"})
METADATA_BUILTINS = frozenset({"len", "isinstance", "type", "id"})
NON_TENSOR_RESULTS = frozenset({"len", "int", "float", "bool", "str", "list", "tuple", "dict", "set", "range", "round", "abs"})
NON_TENSOR_METHODS = frozenset({"item", "tolist", "size", "dim", "numel", "stride", "keys", "items", "values"})
NO_GRAD = frozenset(
    {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
     "torch.autograd.grad_mode.inference_mode"}
)
NON_TENSOR_ANNOTATIONS = frozenset({"int", "float", "bool", "str", "list", "tuple", "dict", "set", "List", "Tuple", "Dict"})

# Methods that give a tensor a dtype of their own choosing.
DTYPE_METHODS = frozenset(
    {"double", "float", "half", "bfloat16", "long", "int", "short", "bool", "byte", "char", "to", "type", "type_as", "new_tensor"}
)
PARAM, FRESH, KEPT, ALIAS, SCALAR, UNKNOWN = "param", "fresh", "kept", "alias", "scalar", "unknown"
TENSOR_KINDS = frozenset({PARAM, FRESH, KEPT})

BINARY_FOR = {
    cst.AddAssign: cst.Add, cst.SubtractAssign: cst.Subtract, cst.MultiplyAssign: cst.Multiply,
    cst.DivideAssign: cst.Divide, cst.MatrixMultiplyAssign: cst.MatrixMultiply,
    cst.FloorDivideAssign: cst.FloorDivide, cst.ModuloAssign: cst.Modulo, cst.PowerAssign: cst.Power,
    cst.BitAndAssign: cst.BitAnd, cst.BitOrAssign: cst.BitOr, cst.BitXorAssign: cst.BitXor,
    cst.LeftShiftAssign: cst.LeftShift, cst.RightShiftAssign: cst.RightShift,
}
PRECEDENCE = {
    cst.BitOr: 1, cst.BitXor: 2, cst.BitAnd: 3, cst.LeftShift: 4, cst.RightShift: 4,
    cst.Add: 5, cst.Subtract: 5, cst.Multiply: 6, cst.Divide: 6, cst.FloorDivide: 6,
    cst.Modulo: 6, cst.MatrixMultiply: 6, cst.Power: 8,
}
CONTAINER_BUILTINS = frozenset({"tuple", "list", "map", "filter", "zip", "reversed", "sorted", "range", "set", "dict", "enumerate", "iter", "str"})
NON_TENSOR_LITERALS = (
    cst.List, cst.Tuple, cst.Dict, cst.Set, cst.ListComp, cst.SetComp, cst.DictComp,
    cst.SimpleString, cst.ConcatenatedString, cst.FormattedString,
)


def out_of_place(aug: cst.AugAssign) -> cst.Assign:
    """``x op= y`` as ``x = x op y``, parenthesizing ``y`` where precedence needs it."""
    op = BINARY_FOR[type(aug.operator)]
    right = aug.value
    needs_parens = isinstance(right, (cst.BooleanOperation, cst.Comparison, cst.IfExp, cst.Lambda, cst.NamedExpr)) or (
        isinstance(right, cst.UnaryOperation) and isinstance(right.operator, cst.Not)
    )
    if isinstance(right, cst.BinaryOperation) and not right.lpar:
        needs_parens = PRECEDENCE[type(right.operator)] <= PRECEDENCE[op]
    if needs_parens and not getattr(right, "lpar", ()):
        right = right.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.Assign(
        targets=[cst.AssignTarget(target=aug.target)],
        value=cst.BinaryOperation(left=aug.target.deep_clone(), operator=op(), right=right),
    )


@dataclass
class NameState:
    kinds: frozenset[str]
    saved: bool = False  # handed to an op that may keep it for backward (``Uses``)
    aliased: bool = False
    # the value may carry a dtype of its own rather than the one forward's inputs bring
    # (`torch.ones(2, 4, dtype=torch.float64)`, `h.double()`, `self.scale`, or computed from such):
    # `x += value` casts back to x's dtype, `x = x + value` promotes
    own_dtype: bool = False


State = dict[str, NameState]


def merge(*states: State) -> State:
    merged: State = {}
    for name in set().union(*states):
        present = [s[name] for s in states if name in s]
        kinds = frozenset().union(*(p.kinds for p in present))
        if len(present) < len(states):
            kinds |= {UNKNOWN}
        merged[name] = NameState(
            kinds,
            any(p.saved for p in present),
            any(p.aliased for p in present),
            any(p.own_dtype for p in present),
        )
    return merged


# Tensor methods and torch functions that compute a new tensor (no view, no in-place).
PURE_OPS = frozenset(
    {
        "sum", "mean", "exp", "exp2", "expm1", "log", "log1p", "log2", "sqrt", "rsqrt", "softmax", "log_softmax",
        "sigmoid", "tanh", "relu", "gelu", "silu", "matmul", "mm", "bmm", "pow", "abs", "neg", "norm", "amax",
        "amin", "argmax", "argmin", "std", "var", "cumsum", "cumprod", "clamp", "clip", "masked_fill", "add",
        "sub", "mul", "div", "linear", "layer_norm", "group_norm", "dropout", "softplus", "elu", "leaky_relu",
        "mish", "hardswish", "hardsigmoid", "normalize", "cat", "stack", "einsum", "where", "reciprocal",
        "sin", "cos", "erf", "square", "outer", "conv1d", "conv2d", "conv3d", "scaled_dot_product_attention",
        "clone", "logsumexp", "prod", "any", "all", "eq", "ne", "gt", "lt", "ge", "le", "isnan", "isinf",
    }
)


# Ops that do not save their tensor inputs for backward (PITFALLS 4: `+`/`-`, reductions,
# concatenation, copies, and the ops that keep their result instead). Everything else, including
# every submodule and function the analysis cannot see into, may save what it is given.
INPUT_FREE_OPS = frozenset(
    {
        "add", "sub", "subtract", "neg", "negative", "sum", "mean", "cat", "concat", "concatenate", "stack",
        "clone", "dropout", "masked_fill", "where", "gather", "sigmoid", "tanh", "relu", "softmax",
        "log_softmax", "exp", "exp2", "expm1", "sqrt", "rsqrt", "reciprocal", "cumprod", "cumsum", "zeros_like",
        "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
    }
)
# Ops whose result is (or may be) their receiver or a view of it: what happens to the result
# happens to the receiver.
PASS_THROUGH_OPS = VIEW_METHODS | TORCH_VIEW_FUNCTIONS


def _constant(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.UnaryOperation):
        node = node.expression
    return isinstance(node, (cst.Integer, cst.Float, cst.Imaginary))


class Uses:
    """How an expression uses each name it reads:

    * ``found``: read, and whether through a possible alias (``skip = h``, ``[h]``,
      ``h.view(...)``, unknown calls): an in-place update is visible through an alias, so
      rewriting it would change values;
    * ``saved``: handed to an op that may keep it for backward (a layer, ``*`` by a tensor, ``@``,
      an unknown call; not ``+``, ``sum``, ``gather``, ``sigmoid``): an in-place update afterwards
      breaks backward ("modified by an inplace operation").

    Each node is visited with whether its value may be aliased and whether it may be kept by
    what consumes it."""

    def __init__(self, facts: FileFacts, self_arg: str) -> None:
        self.facts = facts
        self.self_arg = self_arg
        self.found: dict[str, bool] = {}  # name -> read through a possible alias
        self.saved: set[str] = set()

    def visit(self, node: cst.CSTNode | None, alias: bool, kept: bool) -> None:
        if node is None:
            return
        if isinstance(node, cst.Name):
            self.found[node.value] = self.found.get(node.value, False) or alias
            if kept:
                self.saved.add(node.value)
        elif isinstance(node, cst.BinaryOperation):
            left, right, op = node.left, node.right, node.operator
            if isinstance(op, (cst.Add, cst.Subtract)):
                left_kept = right_kept = False
            elif isinstance(op, cst.Multiply):
                left_kept, right_kept = not _constant(right), not _constant(left)
            elif isinstance(op, cst.Divide):
                left_kept, right_kept = not _constant(right), True
            else:
                left_kept = right_kept = True
            self.visit(left, False, left_kept)
            self.visit(right, False, right_kept)
        elif isinstance(node, cst.UnaryOperation):
            self.visit(node.expression, False, kept and isinstance(node.operator, cst.Plus))
        elif isinstance(node, cst.Comparison):
            identity = all(isinstance(t.operator, (cst.Is, cst.IsNot)) for t in node.comparisons)
            if not (identity and isinstance(node.left, cst.Name)):
                self.visit(node.left, False, False)
            for target in node.comparisons:
                self.visit(target.comparator, False, False)
        elif isinstance(node, cst.IfExp):
            self.visit(node.test, False, False)
            self.visit(node.body, alias, kept)
            self.visit(node.orelse, alias, kept)
        elif isinstance(node, cst.Attribute):
            metadata = node.attr.value in METADATA_ATTRIBUTES
            if not (metadata and isinstance(node.value, cst.Name)):
                self.visit(node.value, True, kept and not metadata)  # `h.data`, `h.T`, ... share storage
        elif isinstance(node, cst.Subscript):
            self.visit(node.value, True, kept)  # indexing may return a view
            for element in node.slice:
                self.children(element, False, False)
        elif isinstance(node, cst.Call):
            self.call(node, kept)
        elif isinstance(node, cst.Lambda):
            self.visit(node.body, True, True)
        else:
            container = isinstance(node, (cst.BaseList, cst.BaseSet, cst.BaseDict, cst.Tuple, cst.BaseComp))
            passes_kept = isinstance(node, (cst.BaseList, cst.Tuple, cst.BaseSet, cst.StarredElement, cst.Element))
            # comprehensions, f-strings, dicts, ...: whatever they read may be kept
            self.children(node, True if container else alias, kept if passes_kept else True)

    def children(self, node: cst.CSTNode, alias: bool, kept: bool) -> None:
        for child in node.children:
            self.visit(child, alias, kept)

    def call(self, node: cst.Call, kept: bool) -> None:
        func = node.func
        args = [arg.value for arg in node.args]
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.attr.value in METADATA_METHODS:
            for arg in args:
                self.visit(arg, False, False)
            return
        if isinstance(func, cst.Name) and func.value in METADATA_BUILTINS:
            for arg in args:
                if not isinstance(arg, cst.Name):
                    self.visit(arg, False, False)
            return
        qnames = self.facts.qualified_names(func) if dotted_name(func) is not None else set()
        if qnames and all(q.startswith("torch.") for q in qnames):
            shorts = {q.rsplit(".", 1)[-1] for q in qnames}
            alias = not shorts <= PURE_OPS
            op = next(iter(shorts)) if len(shorts) == 1 else None
            if op in PASS_THROUGH_OPS and args:  # `torch.reshape(h, ...)` is `h` for what follows
                self.visit(args[0], alias, kept)
                for arg in args[1:]:
                    self.visit(arg, alias, False)
                return
            for arg in args:
                self.visit(arg, alias, op not in INPUT_FREE_OPS)
            return
        if isinstance(func, cst.Attribute):
            receiver, op = func.value, func.attr.value
            if isinstance(receiver, cst.Name) and receiver.value == self.self_arg:
                for arg in args:  # a submodule call computes a new tensor, and may keep its input
                    self.visit(arg, False, True)
                return
            alias = op not in PURE_OPS
            if op in METADATA_METHODS:
                receiver_kept, args_kept = False, False
            elif op in PASS_THROUGH_OPS:
                receiver_kept, args_kept = kept, False
            else:
                receiver_kept = args_kept = op not in INPUT_FREE_OPS
            self.visit(receiver, alias, receiver_kept)
            for arg in args:
                self.visit(arg, alias, args_kept)
            return
        if isinstance(func, cst.Name) and qnames and all("<locals>" in q for q in qnames):
            self.visit(func, False, False)
            for arg in args:  # a local callable (`for layer in self.layers: layer(x)`): a submodule
                self.visit(arg, False, True)
            return
        self.visit(func, True, False)
        for arg in args:
            self.visit(arg, True, True)


def non_tensor_value(value: cst.BaseExpression, facts: FileFacts) -> bool:
    """A right-hand side that is a container, an iterator or a string: the target is not a
    tensor (list ``+=`` accepts any iterable, ``x = x + gen`` raises)."""
    if isinstance(value, (*NON_TENSOR_LITERALS, cst.GeneratorExp)):
        return True
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
        name = value.func.value
        return facts.qualified_names(value.func) == {f"builtins.{name}"} and name in CONTAINER_BUILTINS
    return False


# Ops whose arguments past the tensor are sizes, dims, indices or fill values: the result has the
# tensor's dtype whatever they are (`h.view(self.n, -1)`, `torch.topk(h, self.k)`, `h.masked_fill(m, v)`).
SHAPE_OPS = frozenset(
    {
        "view", "reshape", "expand", "repeat", "repeat_interleave", "permute", "transpose", "flatten",
        "unflatten", "squeeze", "unsqueeze", "narrow", "select", "chunk", "split", "tensor_split", "topk",
        "kthvalue", "sort", "argsort", "sum", "mean", "prod", "std", "var", "amax", "amin", "max", "min",
        "argmax", "argmin", "logsumexp", "softmax", "log_softmax", "cumsum", "cumprod", "gather",
        "index_select", "roll", "flip", "movedim", "tril", "triu", "diagonal", "unfold", "pad", "interpolate",
        "masked_fill", "index_fill", "new_zeros", "new_ones", "new_empty", "new_full", "any", "all", "size",
    }
)
_ARITHMETIC = (cst.BinaryOperation, cst.UnaryOperation, cst.Tuple, cst.List, cst.Element, cst.StarredElement)


def _no_dtype_flow(node: cst.CSTNode, facts: FileFacts) -> bool:
    """A node whose value cannot set the dtype of the expression it is in: an attribute or
    keyword label; what is called (``layer(x)``, ``self.blocks[i](x)``: a module's output has
    the dtype its computation gives it, as ``self.fc(x)`` does); an index; a comparison operand
    (the result is bool); a size, dim or fill value of a ``SHAPE_OPS`` op."""
    parent = facts.parent(node)
    if isinstance(parent, cst.Attribute) and parent.attr is node:
        return True
    if isinstance(parent, cst.Arg) and parent.keyword is node:
        return True
    inner, outer = node, parent
    while isinstance(outer, cst.Subscript) and outer.value is inner:
        inner, outer = outer, facts.parent(outer)
    if isinstance(outer, cst.Call) and outer.func is inner:
        return True
    if (
        isinstance(parent, cst.Attribute)
        and parent.value is node
        and isinstance(outer := facts.parent(parent), cst.Call)
        and outer.func is parent
        and _casts_to_a_names_dtype(outer)
    ):
        return True  # `t.to(h.dtype)`: the result has h's dtype whatever t's was
    inner, outer = node, parent
    while isinstance(outer, _ARITHMETIC):
        inner, outer = outer, facts.parent(outer)
    if isinstance(outer, (cst.Index, cst.Slice, cst.Comparison, cst.ComparisonTarget)):
        return True
    if not isinstance(outer, cst.Arg):
        return False
    call = facts.parent(outer)
    if not isinstance(call, cst.Call):
        return False
    if outer.keyword is None or outer.keyword.value != "dtype":
        if any(arg.keyword is not None and arg.keyword.value == "dtype" for arg in call.args):
            return True  # `torch.ones([self.n, n], dtype=...)`: the keyword alone decides
    qname = facts.torch_qualified(call.func)
    if qname is not None:  # `torch.topk(h, k)`: the first positional argument is the tensor
        return qname.rsplit(".", 1)[-1] in SHAPE_OPS and (outer.keyword is not None or outer is not call.args[0])
    return isinstance(call.func, cst.Attribute) and call.func.attr.value in SHAPE_OPS


def sets_own_dtype(value: cst.BaseExpression, facts: FileFacts, self_arg: str) -> bool:
    """Whether ``value`` may have a dtype of its own rather than the one forward's inputs bring:
    raw parameters or buffers (``self.scale``: float32 under autocast, an explicit float64
    buffer), ``dtype=`` arguments, dtype methods and tensor factories. Containers count too
    (what they hold is not followed). ``x += value`` keeps ``x``'s dtype, ``x + value`` promotes."""
    if non_tensor_value(value, facts):
        return True
    for attribute in m.findall(value, m.Attribute(value=m.Name(self_arg))):
        if not _no_dtype_flow(attribute, facts):
            return True
    for call in m.findall(value, m.Call()):
        if _no_dtype_flow(call, facts):
            continue
        # a tensor whose dtype is set here, not inherited from `x`: `torch.ones(n)` is float32
        # when `x` is float16, `.double()` is float64; `+=` would cast back, `x + value` promotes.
        # `dtype=h.dtype`, `.to(h.dtype)`, `.type_as(h)` and `torch.zeros_like(h)` take `h`'s
        # dtype: `h` is then read like any other name (``own_dtype`` follows it).
        keywords = {arg.keyword.value: arg.value for arg in call.args if arg.keyword is not None}
        if "dtype" in keywords and not _dtype_of_a_name(keywords["dtype"], self_arg):
            return True
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in DTYPE_METHODS and not _keeps_a_names_dtype(call, self_arg):
            return True
        qname = facts.torch_qualified(func)
        if qname is None:
            continue
        short = qname.rsplit(".", 1)[-1]
        if short in TENSOR_FACTORIES and "dtype" not in keywords and not short.endswith("_like"):
            return True
    return False


def _dtype_of_a_name(expr: cst.BaseExpression, self_arg: str) -> bool:
    """``h.dtype`` for a local ``h``."""
    return (
        isinstance(expr, cst.Attribute)
        and expr.attr.value == "dtype"
        and isinstance(expr.value, cst.Name)
        and expr.value.value != self_arg
    )


def _casts_to_a_names_dtype(call: cst.Call) -> bool:
    """``t.to(h.dtype)``, ``t.to(dtype=h.dtype)``, ``t.type_as(h)`` for a name ``h``."""
    func = call.func
    if not isinstance(func, cst.Attribute) or len(call.args) != 1:
        return False
    arg = call.args[0]
    if func.attr.value == "type_as":
        return arg.keyword is None and isinstance(arg.value, cst.Name)
    return func.attr.value == "to" and (arg.keyword is None or arg.keyword.value == "dtype") and _dtype_of_a_name(arg.value, "")


def _keeps_a_names_dtype(call: cst.Call, self_arg: str) -> bool:
    """``.to(h.dtype)``, ``.to(h.device)``, ``.to(device=...)`` and ``.type_as(h)``: the result
    has the receiver's dtype or that of a local ``h``."""
    method = call.func.attr.value
    if method == "type_as":
        return len(call.args) == 1 and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value != self_arg
    if method != "to" or not call.args:
        return False
    for arg in call.args:
        value = arg.value
        if arg.keyword is not None:
            if arg.keyword.value in {"device", "non_blocking", "copy"}:
                continue
            if arg.keyword.value == "dtype" and _dtype_of_a_name(value, self_arg):
                continue
            return False
        if not (
            isinstance(value, cst.Attribute)
            and value.attr.value in {"dtype", "device"}
            and isinstance(value.value, cst.Name)
            and value.value.value != self_arg
        ):
            return False
    return True


_SCREEN_LITERALS = (
    ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.JoinedStr,
)


def _screen_tensor_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names that may hold a tensor as the analysis classifies it: parameters (the analysis
    calls a parameter with a default or a non-tensor annotation a scalar, which is not
    checked here) and names assigned a call or an operation."""
    args = func.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    for node in nodes(func, (ast.Assign, ast.AnnAssign)):
        value = node.value
        if value is None or not isinstance(value, (ast.Call, ast.BinOp, ast.UnaryOp, ast.IfExp)):
            continue
        for target in node.targets if isinstance(node, ast.Assign) else (node.target,):
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


def _screen_value_ok(value: ast.expr) -> bool:
    """The syntactic part of ``non_tensor_value``: no container or string literal."""
    return not (
        isinstance(value, _SCREEN_LITERALS) or (isinstance(value, ast.Constant) and isinstance(value.value, (str, bytes)))
    )


UNBOUND = object()  # a binding after which the analysis knows nothing of the name


def _last_name(func: ast.AST) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _screen_kept_attributes(tree: ast.Module) -> set[str]:
    """Attributes some store gives a module whose backward keeps its output (nn.Sigmoid, ...)."""
    found = set()
    for node in nodes(tree, ast.Assign):
        value = node.value
        if not isinstance(value, ast.Call):
            continue
        names = {_last_name(value.func), *(q.rsplit(".", 1)[-1] for q in resolved(tree, value.func))}
        if names & RESULT_KEPT_MODULES:
            found.update(t.attr for t in node.targets if isinstance(t, ast.Attribute))
    return found


class _ScreenPath:
    """Straight-line reasoning on the ast about one ``name op= value`` in forward, a superset
    of what ``_ForwardAnalysis`` reports: the update is reported only when the name holds the
    result of an op that keeps it, was read after it was bound, or is an argument of forward.
    Anything this cannot follow (loops, branches that bind the name, exception handlers,
    nested functions) counts as "may report"."""

    STRAIGHT = {ast.If: ("body", "orelse"), ast.With: ("body",), ast.AsyncWith: ("body",), ast.Try: ("body",)}

    def __init__(self, tree: ast.Module, method: ast.FunctionDef | ast.AsyncFunctionDef, self_arg: str, kept: set[str]) -> None:
        self.tree = tree
        self.method = method
        self.self_arg = self_arg
        self.kept = kept

    def may_report(self, update: ast.AugAssign) -> bool:
        name = update.target.id
        path = self._path(self.method.body, update)
        if path is None or nodes(update.value, ast.NamedExpr):
            return True
        read = self._loads(update.value, name)
        # innermost block first: the statements before the update, then the header of the
        # statement holding that block, and so on out to forward's body
        for depth in range(len(path) - 1, -1, -1):
            block, index = path[depth]
            for stmt in reversed(block[:index]):
                binding = self._binding(stmt, name)
                if binding is False:
                    read = read or self._loads(stmt, name)
                    continue
                if binding is None:
                    return True  # bound in a way this does not follow
                if binding is UNBOUND:
                    return False
                return self._may_keep(binding) or read
            if depth:
                owner = path[depth - 1][0][path[depth - 1][1]]
                for header in self._headers(owner):
                    if self._binds(header, name):
                        return True
                    read = read or self._loads(header, name)
        args = self.method.args
        return name in {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}

    def _path(self, block: list[ast.stmt], target: ast.stmt) -> list[tuple[list[ast.stmt], int]] | None:
        """(block, index) from forward's body down to the update; None when the way there
        passes anything but straight-line code (if / with / a try body)."""
        for index, stmt in enumerate(block):
            if stmt is target:
                return [(block, index)]
            if not (stmt.lineno <= target.lineno <= (stmt.end_lineno or stmt.lineno)):
                continue
            fields = self.STRAIGHT.get(type(stmt), ())
            for field in fields:
                inner = self._path(getattr(stmt, field), target)
                if inner is not None:
                    return [(block, index), *inner]
            if target in nodes(stmt, ast.AugAssign):
                return None
        return None

    @staticmethod
    def _headers(owner: ast.stmt) -> list[ast.AST]:
        if isinstance(owner, ast.If):
            return [owner.test]
        if isinstance(owner, (ast.With, ast.AsyncWith)):
            return [part for item in owner.items for part in (item.context_expr, item.optional_vars) if part is not None]
        return []

    def _binding(self, stmt: ast.stmt, name: str):
        """False: ``stmt`` does not bind ``name``. The value when it is a plain ``name = value``;
        UNBOUND when a simple statement leaves the name in a state the analysis never reports
        (an unpacking target, ``del``, a walrus, a bare annotation: "unknown"). None for any
        other binding (in a branch, a loop, an import, an augmented assignment...)."""
        if not self._binds(stmt, name):
            return False
        if isinstance(stmt, ast.Assign):
            plain = [t for t in stmt.targets if isinstance(t, ast.Name) and t.id == name]
            others = [t for t in stmt.targets if t not in plain]
            if plain and not any(self._binds(t, name) for t in others) and not self._walrus_binds(stmt.value, name):
                return stmt.value
            if all(isinstance(t, (ast.Tuple, ast.List, ast.Name)) for t in stmt.targets):
                return UNBOUND  # `a, name = ...` (and any walrus) leave it unknown
            return None
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            if stmt.value is None:
                return UNBOUND
            return None if self._walrus_binds(stmt.value, name) else stmt.value
        if (
            isinstance(stmt, ast.AugAssign)
            and isinstance(stmt.target, ast.Name)
            and not _screen_value_ok(stmt.value)
            and not self._binds(stmt.value, name)
        ):
            return False  # refused by `non_tensor_value`: the analysis leaves the name's state as it was
        if isinstance(stmt, ast.Delete) and all(isinstance(t, ast.Name) for t in stmt.targets):
            return UNBOUND
        if isinstance(stmt, (ast.Expr, ast.Return)) and self._walrus_binds(stmt, name):
            return UNBOUND  # the analysis forgets every walrus target of a statement
        return None

    @staticmethod
    def _walrus_binds(node: ast.AST, name: str) -> bool:
        return any(isinstance(w.target, ast.Name) and w.target.id == name for w in nodes(node, ast.NamedExpr))

    @staticmethod
    def _binds(node: ast.AST, name: str) -> bool:
        for found in nodes(node, (ast.Name, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.alias, ast.Global, ast.Nonlocal, ast.ExceptHandler, ast.MatchAs, ast.MatchStar, ast.MatchMapping)):
            if isinstance(found, ast.Name):
                if found.id == name and not isinstance(found.ctx, ast.Load):
                    return True
            elif isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if found.name == name:
                    return True
            elif isinstance(found, ast.alias):
                if (found.asname or found.name).split(".")[0] == name:
                    return True
            elif isinstance(found, (ast.Global, ast.Nonlocal)):
                if name in found.names:
                    return True
            elif getattr(found, "name", None) == name or getattr(found, "rest", None) == name:
                return True
        return False

    @staticmethod
    def _loads(node: ast.AST, name: str) -> bool:
        return any(n.id == name and isinstance(n.ctx, ast.Load) for n in nodes(node, ast.Name))

    def _may_keep(self, value: ast.AST) -> bool:
        """Could ``classify`` call this value KEPT (the result of sigmoid, tanh, exp, ...)?"""
        if isinstance(value, ast.IfExp):
            return self._may_keep(value.body) or self._may_keep(value.orelse)
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        if _last_name(func) in RESULT_KEPT_OPS:
            return True
        if any(q.rsplit(".", 1)[-1] in RESULT_KEPT_OPS for q in resolved(self.tree, func)):
            return True
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id == self.self_arg and func.attr in self.kept:
                return True
            if func.attr in VIEW_METHODS:
                return self._may_keep(func.value)
        return False


class InplaceForwardRule(Rule):
    """
    ## What it does
    Finds augmented assignments (`+=`, `-=`, `*=`, `/=`, `@=`, ...) on a local
    name in `forward` of an nn.Module where the in-place update can break
    autograd, and rewrites them out of place.

    ## Why is this bad?
    `x += y` on a tensor is `x.add_(y)`. When autograd saved the old `x` for
    backward (it was fed to a layer that keeps its input, or it is the result
    of an op whose backward needs its output: `sigmoid`, `tanh`, `exp`, `relu`,
    `softmax`, `log_softmax`, `sqrt`, ...), `backward()` fails with "one of the
    variables needed for gradient computation has been modified by an inplace
    operation". On an argument of `forward` it also changes the caller's tensor.

    ## Example
    ```python
    output_ = self.ffn(output)
    output += output_
    ```

    ## Use instead
    ```python
    output_ = self.ffn(output)
    output = output + output_
    ```

    ## Fix safety
    Safe: for tensors `x = x + y` computes the same values without touching
    the old tensor. It is only offered for names whose every reaching binding
    is a tensor computed in `forward` or an argument of `forward`.

    Unsafe where either side may hold a dtype of its own, because `x += y`
    keeps `x`'s dtype while `x = x + y` promotes (float32 `x` times a float64
    `y` gives float64): a right-hand side or a local that reads a parameter or
    buffer (`x += self.bias`: float32 parameters under autocast, float64
    buffers), sets a dtype (`dtype=`, `.double()`, `.to(...)`, a tensor
    factory), or is computed from such a local. These are reported and fixed
    only with `--unsafe-fixes`. Arguments of `forward` are taken to share one
    dtype.

    ## Known problems
    Left alone: pure accumulators (`out = self.fc(x); out += x`, `total +=
    layer(x)`), which are correct and save memory; names holding numbers, lists
    or strings; aliases of other tensors (`x = self.buf`, `x = y.view(...)`),
    whose in-place update may be intended; attribute and subscript targets
    (`self.w += ...` on a Parameter would raise, `x[0] = x[0] + 1` is still in
    place); code under `torch.no_grad()`/`torch.inference_mode()`; code outside
    `forward`. Module-level tensors read in `forward` are not followed.
    Autograd keeps `h` for `h * y` only when `y` needs grad; the rule cannot
    know that and reports `h` as kept whenever `y` is not a number.
    """

    code = "TFM201"
    name = "inplace-in-forward"
    summary = "In-place update in forward breaks autograd; use an out-of-place op"

    fixes = (
        FixCase(
            "import torch.nn as nn\n\nclass EncoderLayer(nn.Module):\n"
            "    def forward(self, input):\n"
            "        output = self.attention(input)\n"
            "        output = self.layerNorm(output)\n"
            "        output_ = self.ffn(output)\n"
            "        output += output_  # residual\n"
            "        return output\n",
            "import torch.nn as nn\n\nclass EncoderLayer(nn.Module):\n"
            "    def forward(self, input):\n"
            "        output = self.attention(input)\n"
            "        output = self.layerNorm(output)\n"
            "        output_ = self.ffn(output)\n"
            "        output = output + output_  # residual\n"
            "        return output\n",
        ),
        FixCase(
            "import torch\nimport torch.nn.functional as F\n\nclass Gate(torch.nn.Module):\n"
            "    def forward(self, x, a, b):\n"
            "        g = torch.sigmoid(x)\n"
            "        g *= a + b\n"
            "        h = F.softmax(x, dim=-1)\n"
            "        h /= h.sum(-1, keepdim=True)\n"
            "        w = torch.softmax(x, -1).squeeze(-1)\n"
            "        w *= 2\n"
            "        return g, h, w\n",
            "import torch\nimport torch.nn.functional as F\n\nclass Gate(torch.nn.Module):\n"
            "    def forward(self, x, a, b):\n"
            "        g = torch.sigmoid(x)\n"
            "        g = g * (a + b)\n"
            "        h = F.softmax(x, dim=-1)\n"
            "        h = h / h.sum(-1, keepdim=True)\n"
            "        w = torch.softmax(x, -1).squeeze(-1)\n"
            "        w = w * 2\n"
            "        return g, h, w\n",
        ),
        FixCase(
            "from torch import nn\n\nclass Res(nn.Module):\n"
            "    def forward(self, x):\n"
            "        for block in self.blocks:\n"
            "            x -= block(x) * 2\n"
            "        return x\n",
            "from torch import nn\n\nclass Res(nn.Module):\n"
            "    def forward(self, x):\n"
            "        for block in self.blocks:\n"
            "            x = x - block(x) * 2\n"
            "        return x\n",
        ),
        FixCase(
            "from torch import nn\n\nclass Act(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.act = nn.Tanh()\n"
            "    def forward(self, h):\n"
            "        y = self.act(self.proj(h))\n"
            "        y += 1\n"
            "        return y\n",
            "from torch import nn\n\nclass Act(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.act = nn.Tanh()\n"
            "    def forward(self, h):\n"
            "        y = self.act(self.proj(h))\n"
            "        y = y + 1\n"
            "        return y\n",
        ),
        # a parameter or buffer may have a wider dtype (`g * self.scale` would promote `g`), and so
        # may a local that sets a dtype, directly or through another local, or a target that
        # holds one: `+=` casts back, the out-of-place form promotes, so the fix is unsafe
        FixCase(
            "import torch\nimport torch.nn as nn\n\nclass Gate(nn.Module):\n"
            "    def forward(self, x):\n"
            "        g = torch.sigmoid(x)\n"
            "        g *= self.scale\n"
            "        return g\n",
            "import torch\nimport torch.nn as nn\n\nclass Gate(nn.Module):\n"
            "    def forward(self, x):\n"
            "        g = torch.sigmoid(x)\n"
            "        g = g * self.scale\n"
            "        return g\n",
            unsafe=True,
        ),
        FixCase(
            "import torch\nimport torch.nn as nn\n\nclass Gate(nn.Module):\n"
            "    def forward(self, x):\n"
            "        k = torch.ones(2, 4, dtype=torch.float64) * 2\n"
            "        w = k + 1\n"
            "        g = torch.sigmoid(x)\n"
            "        g *= w\n"
            "        h = torch.tanh(x.half())\n"
            "        h += x\n"
            "        for s in self.scales:\n"
            "            e = torch.exp(x)\n"
            "            e *= s\n"
            "        return g, h, e\n",
            "import torch\nimport torch.nn as nn\n\nclass Gate(nn.Module):\n"
            "    def forward(self, x):\n"
            "        k = torch.ones(2, 4, dtype=torch.float64) * 2\n"
            "        w = k + 1\n"
            "        g = torch.sigmoid(x)\n"
            "        g = g * w\n"
            "        h = torch.tanh(x.half())\n"
            "        h = h + x\n"
            "        for s in self.scales:\n"
            "            e = torch.exp(x)\n"
            "            e = e * s\n"
            "        return g, h, e\n",
            unsafe=True,
        ),
        FixCase(
            "import torch\nimport torch.nn as nn\n\nclass Gate(nn.Module):\n"
            "    def forward(self, x):\n"
            "        k = x * 2\n"
            "        g = torch.sigmoid(x)\n"
            "        g *= k\n"
            "        return g\n",
            "import torch\nimport torch.nn as nn\n\nclass Gate(nn.Module):\n"
            "    def forward(self, x):\n"
            "        k = x * 2\n"
            "        g = torch.sigmoid(x)\n"
            "        g = g * k\n"
            "        return g\n",
        ),
        # sizes and indices (`self.n`) carry no dtype, `dtype=x.dtype` and `.to(y.dtype)` follow
        # forward's inputs: these fixes stay safe
        FixCase(
            "import torch\n"
            "import torch.nn as nn\n"
            "\n"
            "class Router(nn.Module):\n"
            "    def forward(self, x, y):\n"
            "        logits = self.gate(x).view(self.n, -1)\n"
            "        w = torch.softmax(logits, dim=-1)\n"
            "        w /= w.sum(dim=-1, keepdim=True)\n"
            "        mask = torch.ones([self.n, self.n], dtype=x.dtype, device=x.device)\n"
            "        x *= mask\n"
            "        prompt = torch.zeros(self.n, device=y.device)\n"
            "        y += prompt.to(y.dtype)\n"
            "        return w, x, y\n",
            "import torch\n"
            "import torch.nn as nn\n"
            "\n"
            "class Router(nn.Module):\n"
            "    def forward(self, x, y):\n"
            "        logits = self.gate(x).view(self.n, -1)\n"
            "        w = torch.softmax(logits, dim=-1)\n"
            "        w = w / w.sum(dim=-1, keepdim=True)\n"
            "        mask = torch.ones([self.n, self.n], dtype=x.dtype, device=x.device)\n"
            "        x = x * mask\n"
            "        prompt = torch.zeros(self.n, device=y.device)\n"
            "        y = y + prompt.to(y.dtype)\n"
            "        return w, x, y\n",
        ),
    )
    keeps = (
        # `skip` aliases `h`: the in-place update is visible through it
        KeepCase(
            "import torch.nn as nn\n\nclass Block(nn.Module):\n"
            "    def forward(self, x):\n"
            "        h = self.fc(x)\n"
            "        skip = h\n"
            "        h += self.proj(x)\n"
            "        return h + skip\n"
        ),
        KeepCase(
            "import torch.nn as nn\n\nclass Block(nn.Module):\n"
            "    def forward(self, x):\n"
            "        out = self.fc(x)\n"
            "        out += x\n"
            "        total = 0\n"
            "        for layer in self.layers:\n"
            "            total += layer(x)\n"
            "        n = x.size(0)\n"
            "        n += 1\n"
            "        feats = []\n"
            "        feats += [out]\n"
            "        return out, total, n, feats\n"
        ),
        KeepCase(
            "import torch\nimport torch.nn as nn\n\nclass Stats(nn.Module):\n"
            "    def forward(self, x):\n"
            "        self.count += 1\n"
            "        x[:, 0] += 1\n"
            "        buf = self.running\n"
            "        print(buf)\n"
            "        buf += x.mean()\n"
            "        with torch.no_grad():\n"
            "            y = torch.sigmoid(x)\n"
            "            y += 1\n"
            "        return x\n"
        ),
        KeepCase(
            "import torch\nimport torch.nn as nn\n\nclass Eval(nn.Module):\n"
            "    @torch.no_grad()\n"
            "    def forward(self, x):\n"
            "        x += 1\n"
            "        return x\n"
            "    def loss(self, x):\n"
            "        y = torch.exp(x)\n"
            "        y += 1\n"
            "        return y\n"
        ),
        KeepCase(
            "import torch\n\nclass NotAModule:\n"
            "    def forward(self, x):\n"
            "        x += 1\n"
            "        return x\n"
        ),
        KeepCase(
            "import torch.nn as nn\n\nclass Scaled(nn.Module):\n"
            "    def forward(self, x, scale: float = 1.0, steps=3):\n"
            "        scale *= 2\n"
            "        steps -= 1\n"
            "        return x * scale\n"
        ),
        # a count (`range()` takes integers) and ops that do not keep their input: `sum`, `gather`,
        # `sigmoid` (it keeps its result), `+`, `*` by a number
        KeepCase(
            "import torch\nimport torch.nn as nn\n\nclass Router(nn.Module):\n"
            "    def forward(self, x, recycles):\n"
            "        if recycles < 0:\n"
            "            recycles = 0\n"
            "        recycles += 1\n"
            "        for _ in range(recycles):\n"
            "            x = self.block(x)\n"
            "        scores = self.gate(x).sigmoid()\n"
            "        weights = scores.gather(1, torch.topk(scores, 2, dim=-1)[1])\n"
            "        denominator = weights.sum(dim=-1, keepdim=True) + 1e-20\n"
            "        weights /= denominator\n"
            "        h = self.norm(x)\n"
            "        _ = h * 2.0 + h\n"
            "        h *= torch.sigmoid(h)\n"
            "        return weights, h\n"
        ),
    )

    @classmethod
    def screen(cls, tree: ast.Module) -> bool:
        kept_attributes = None
        for method, self_arg in methods(tree):
            if method.name != "forward":
                continue
            updates = [n for n in nodes(method, ast.AugAssign) if isinstance(n.target, ast.Name)]
            if not updates:
                continue
            tensors = _screen_tensor_names(method)
            for update in updates:
                if update.target.id not in tensors or not _screen_value_ok(update.value):
                    continue
                if kept_attributes is None:
                    kept_attributes = _screen_kept_attributes(tree)
                if _ScreenPath(tree, method, self_arg, kept_attributes).may_report(update):
                    return True
        return False

    def __init__(self, facts: FileFacts, options) -> None:
        super().__init__(facts, options)
        self.forwards: list[tuple[cst.ClassDef, cst.FunctionDef, str]] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self.facts.is_module_class(node):
            return
        for method in class_methods(node):
            self_arg = self_name(method)
            if method.name.value == "forward" and self_arg is not None and not self._no_grad_decorated(method):
                self.forwards.append((node, method, self_arg))

    def leave_Module(self, original_node: cst.Module) -> None:
        for cls, method, self_arg in self.forwards:
            _ForwardAnalysis(self, cls, method, self_arg).run()

    def _no_grad_decorated(self, func: cst.FunctionDef) -> bool:
        for deco in func.decorators:
            target = deco.decorator.func if isinstance(deco.decorator, cst.Call) else deco.decorator
            if self.facts.qualified_names(target) & NO_GRAD:
                return True
        return False


class _ForwardAnalysis:
    """Walks one ``forward`` in execution order, tracking what each local name holds."""

    def __init__(self, rule: InplaceForwardRule, cls: cst.ClassDef, func: cst.FunctionDef, self_arg: str) -> None:
        self.rule = rule
        self.facts = rule.facts
        self.cls = cls
        self.func = func
        self.self_arg = self_arg
        self.decisions: dict[cst.AugAssign, tuple[str, bool] | None] = {}  # (reason, fix unsafe)
        self.kept_attributes = self._result_kept_attributes()
        self.methods = {
            method.name.value for member in self.facts.class_family(cls) for method in class_methods(member)
        }

    def _result_kept_attributes(self) -> set[str]:
        kept: dict[str, bool] = {}
        for site in self_assignments(self.facts, self.cls):
            qnames = self.facts.qualified_names(site.value.func) if isinstance(site.value, cst.Call) else set()
            is_kept = bool(qnames) and all(q.rsplit(".", 1)[-1] in RESULT_KEPT_MODULES and q.startswith("torch.nn.") for q in qnames)
            kept[site.attr] = kept.get(site.attr, True) and is_kept
        return {name for name, ok in kept.items() if ok}

    def run(self) -> None:
        state: State = {}
        params = self.func.params
        counts = self._range_arguments()
        for param in [*params.posonly_params, *params.params, *params.kwonly_params]:
            name = param.name.value
            if name == self.self_arg:
                continue
            scalar = self._non_tensor_param(param) or name in counts
            state[name] = NameState(frozenset({SCALAR if scalar else PARAM}))
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                state[star.name.value] = NameState(frozenset({UNKNOWN}))
        self.block(self.func.body, state, no_grad=False)
        for aug, decision in self.decisions.items():
            if decision is None:
                continue
            reason, unsafe = decision
            self.rule.report(aug, reason, Fix({aug: lambda updated: out_of_place(updated)}, unsafe=unsafe))

    def _range_arguments(self) -> set[str]:
        """Names ``forward`` passes to ``range()``: integers (``for i in range(steps)``)."""
        found = set()
        for call in m.findall(self.func.body, m.Call(func=m.Name("range"))):
            if self.facts.qualified_names(call.func) == {"builtins.range"}:
                found.update(arg.value.value for arg in call.args if isinstance(arg.value, cst.Name))
        return found

    @staticmethod
    def _non_tensor_param(param: cst.Param) -> bool:
        if param.default is not None and not (isinstance(param.default, cst.Name) and param.default.value == "None"):
            return True
        annotation = param.annotation.annotation if param.annotation else None
        base = annotation.value if isinstance(annotation, cst.Subscript) else annotation
        return isinstance(base, cst.Name) and base.value in NON_TENSOR_ANNOTATIONS

    # -- statements -----------------------------------------------------------
    def block(self, body, state: State, no_grad: bool) -> State:
        statements = body.body if isinstance(body, cst.IndentedBlock) else [body]
        for stmt in statements:
            state = self.statement(stmt, state, no_grad)
        return state

    def statement(self, stmt: cst.CSTNode, state: State, no_grad: bool) -> State:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                state = self.small(small, state, no_grad)
            return state
        if isinstance(stmt, cst.SimpleStatementSuite):
            for small in stmt.body:
                state = self.small(small, state, no_grad)
            return state
        if isinstance(stmt, cst.If):
            self.read(stmt.test, state)
            taken = self.block(stmt.body, dict(state), no_grad)
            other = self.statement(stmt.orelse, dict(state), no_grad) if stmt.orelse else state
            return merge(taken, other)
        if isinstance(stmt, cst.Else):
            return self.block(stmt.body, state, no_grad)
        if isinstance(stmt, (cst.For, cst.While)):
            return self.loop(stmt, state, no_grad)
        if isinstance(stmt, cst.With):
            inner = no_grad or any(self._disables_grad(item.item) for item in stmt.items)
            for item in stmt.items:
                self.read(item.item, state)
                if item.asname is not None:
                    self.bind_targets(item.asname.name, state, UNKNOWN, self.own_dtype(item.item, state))
            return self.block(stmt.body, state, inner)
        if isinstance(stmt, cst.Try):
            after_body = self.block(stmt.body, dict(state), no_grad)
            branches = [after_body]
            for handler in stmt.handlers:
                branches.append(self.block(handler.body, merge(state, after_body), no_grad))
            result = merge(*branches)
            if stmt.orelse:
                result = merge(result, self.block(stmt.orelse.body, dict(after_body), no_grad))
            if stmt.finalbody:
                result = self.block(stmt.finalbody.body, result, no_grad)
            return result
        # nested functions and classes, match statements, ...: a name they mention may be
        # captured or rebound there, so nothing more is known about it
        for node in m.findall(stmt, m.Name()):
            if node.value in state:
                state[node.value] = NameState(frozenset({UNKNOWN}), True, True, True)
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            state[stmt.name.value] = NameState(frozenset({UNKNOWN}), own_dtype=True)
        return state

    def loop(self, stmt: cst.For | cst.While, state: State, no_grad: bool) -> State:
        entry = dict(state)
        if isinstance(stmt, cst.For):
            self.read(stmt.iter, entry)
            self.bind_targets(stmt.target, entry, UNKNOWN, self.own_dtype(stmt.iter, entry))
        else:
            self.read(stmt.test, entry)
        end = self.block(stmt.body, dict(entry), no_grad)
        again = merge(entry, end)
        if isinstance(stmt, cst.For):
            self.bind_targets(stmt.target, again, UNKNOWN, self.own_dtype(stmt.iter, again))
        end = self.block(stmt.body, again, no_grad)  # second pass sees values from the back edge
        result = merge(state, end)
        if stmt.orelse:
            result = self.block(stmt.orelse.body, result, no_grad)
        return result

    def small(self, small: cst.CSTNode, state: State, no_grad: bool) -> State:
        if isinstance(small, cst.Assign):
            own_dtype = self.own_dtype(small.value, state)  # before the targets are rebound
            self.read(small.value, state, alias=True)
            kind = self.classify(small.value, state)
            for target in small.targets:
                self.bind_targets(target.target, state, kind, own_dtype)
        elif isinstance(small, cst.AnnAssign):
            own_dtype = small.value is None or self.own_dtype(small.value, state)
            self.read(small.value, state, alias=True)
            self.bind_targets(small.target, state, self.classify(small.value, state) if small.value else UNKNOWN, own_dtype)
        elif isinstance(small, cst.AugAssign):
            self.augmented(small, state, no_grad)
        elif isinstance(small, cst.Del):
            for node in m.findall(small.target, m.Name()):
                state[node.value] = NameState(frozenset({UNKNOWN}), own_dtype=True)
        else:
            self.read(small, state, alias=isinstance(small, cst.Return))
        return state

    def augmented(self, aug: cst.AugAssign, state: State, no_grad: bool) -> None:
        value_own_dtype = self.own_dtype(aug.value, state)
        self.read(aug.value, state)
        target = aug.target
        if not isinstance(target, cst.Name):
            self.read_target_base(target, state)
            return
        name = target.value
        current = state.get(name)
        reason = None
        if current is not None and not no_grad and not non_tensor_value(aug.value, self.facts):
            reason = self.reason(name, current)
        if reason is None:
            self.decisions[aug] = None
            return
        # `+=` keeps the target's dtype, `x + value` promotes: the fix is safe only where neither
        # side may hold a dtype of its own (a float16 target and a float32 value promote too)
        unsafe = current.own_dtype or value_own_dtype
        if unsafe:
            reason += f" (unsafe fix: `{name} = {name} op y` may promote the dtype that the in-place op keeps)"
        self.decisions[aug] = (reason, unsafe)
        state[name] = NameState(frozenset({FRESH}), own_dtype=unsafe)

    def reason(self, name: str, current: NameState) -> str | None:
        if not current.kinds <= TENSOR_KINDS or current.aliased:
            return None  # an alias would see the in-place update: rewriting changes its value
        if KEPT in current.kinds:
            return (
                f"in-place update of `{name}`, the result of an op whose backward needs its output "
                "(sigmoid, tanh, exp, relu, softmax, ...): backward() fails; use an out-of-place op"
            )
        if current.saved:
            return (
                f"in-place update of `{name}` after it was passed to an op that may keep it for backward "
                "(a layer, `*`, `@`, ...): backward() fails on the modified tensor; use an out-of-place op"
            )
        if PARAM in current.kinds:
            return (
                f"in-place update of `{name}`, an argument of forward: it modifies the caller's tensor "
                "(and fails on a leaf that requires grad); use an out-of-place op"
            )
        return None

    # -- expressions ----------------------------------------------------------
    def read(self, node: cst.CSTNode | None, state: State, alias: bool = False) -> None:
        if node is None:
            return
        uses = Uses(self.facts, self.self_arg)
        if isinstance(node, cst.BaseSmallStatement):  # `return h`, `print(h)`, `assert h.all()`
            uses.children(node, alias, False)
        else:
            uses.visit(node, alias, False)
        for name, aliased in uses.found.items():
            if name in state:
                old = state[name]
                state[name] = NameState(old.kinds, old.saved or name in uses.saved, old.aliased or aliased, old.own_dtype)
        for walrus in m.findall(node, m.NamedExpr()):
            for target in m.findall(walrus.target, m.Name()):
                state[target.value] = NameState(frozenset({UNKNOWN}), True, True, True)

    def read_target_base(self, target: cst.CSTNode, state: State) -> None:
        if isinstance(target, cst.Subscript):
            for element in target.slice:
                self.read(element, state)

    def bind_targets(self, target: cst.CSTNode, state: State, kind: str, own_dtype: bool) -> None:
        if isinstance(target, cst.Name):
            state[target.value] = NameState(frozenset({kind}), own_dtype=own_dtype)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.bind_targets(element.value, state, UNKNOWN, own_dtype)
        elif isinstance(target, cst.StarredElement):
            self.bind_targets(target.value, state, UNKNOWN, own_dtype)
        else:
            self.read_target_base(target, state)

    def own_dtype(self, value: cst.BaseExpression, state: State) -> bool:
        """Whether ``value`` may hold a dtype other than the one forward's inputs bring: set in
        the expression itself (``sets_own_dtype``) or read from a local that holds one."""
        if sets_own_dtype(value, self.facts, self.self_arg):
            return True
        for name in m.findall(value, m.Name()):
            held = state.get(name.value)
            if held is not None and held.own_dtype and not _no_dtype_flow(name, self.facts):
                return True
        return False

    def classify(self, value: cst.BaseExpression, state: State) -> str:
        if isinstance(value, cst.Name):
            if value.value in {"None", "True", "False"}:
                return SCALAR
            return ALIAS
        if isinstance(value, (cst.Attribute, cst.Subscript)):
            return ALIAS
        if isinstance(value, (cst.Integer, cst.Float, cst.Imaginary, *NON_TENSOR_LITERALS, cst.GeneratorExp)):
            return SCALAR
        if isinstance(value, (cst.BinaryOperation, cst.UnaryOperation)):
            return FRESH
        if isinstance(value, cst.IfExp):
            kinds = {self.classify(value.body, state), self.classify(value.orelse, state)}
            return kinds.pop() if len(kinds) == 1 else UNKNOWN
        if isinstance(value, cst.Call):
            return self.classify_call(value, state)
        return UNKNOWN

    def classify_call(self, call: cst.Call, state: State) -> str:
        func = call.func
        # `torch.softmax(x).squeeze()` is a method of the softmax result, not a torch function
        qnames = self.facts.qualified_names(func) if dotted_name(func) is not None else set()
        if isinstance(func, cst.Name) and qnames == {f"builtins.{func.value}"}:
            return SCALAR if func.value in NON_TENSOR_RESULTS else UNKNOWN
        if qnames:
            short = {q.rsplit(".", 1)[-1] for q in qnames}
            torch_op = all(q.startswith("torch.") for q in qnames)
            if torch_op and short & TORCH_VIEW_FUNCTIONS:
                return ALIAS
            if torch_op and short <= RESULT_KEPT_OPS:
                return KEPT
            if torch_op:
                return FRESH
            if any(q.startswith(("math.", "builtins.")) for q in qnames):
                return SCALAR
            if not isinstance(func, cst.Attribute) or not any("<locals>" in q for q in qnames):
                return UNKNOWN
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver = func.value
            if method.endswith("_") and not method.endswith("__"):
                return ALIAS  # in-place methods return their receiver
            if isinstance(receiver, cst.Name) and receiver.value == self.self_arg:
                if method in self.methods:
                    return UNKNOWN  # a helper method may return anything (a list, a tuple)
                return KEPT if method in self.kept_attributes else FRESH
            if method in NON_TENSOR_METHODS:
                return SCALAR
            if method in RESULT_KEPT_OPS:
                return KEPT
            if method in VIEW_METHODS:
                base = self.classify(receiver, state)
                if isinstance(receiver, cst.Name) and receiver.value in state:
                    return ALIAS
                return base if base in {FRESH, KEPT} else ALIAS
            return FRESH
        return UNKNOWN

    def _disables_grad(self, expr: cst.BaseExpression) -> bool:
        target = expr.func if isinstance(expr, cst.Call) else expr
        if self.facts.qualified_names(target) & NO_GRAD:
            return True
        return (
            isinstance(expr, cst.Call)
            and self.facts.qualified_names(expr.func) == {"torch.set_grad_enabled"}
            and bool(expr.args)
            and isinstance(expr.args[0].value, cst.Name)
            and expr.args[0].value.value == "False"
        )
