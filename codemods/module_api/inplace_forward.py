"""TFM201: an in-place ``x += y`` in ``forward`` that autograd cannot survive becomes ``x = x + y``."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, replace

from torchfix_mod.edits import replace_expression
from torchfix_mod.rule import Fix, FixCase, KeepCase, Rule
from torchfix_mod.semantic import SemanticModel, class_methods, dotted, self_name
from torchfix_mod.codemods._shared._attributes import self_assignments
from torchfix_mod.codemods._shared._tensor_factories import TENSOR_FACTORIES  # a factory sets a dtype of its own
from torchfix_mod.syntax import walk

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
SEQUENTIAL = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential"})
# layers with an `inplace` flag -> its position among the constructor's positional arguments
INPLACE_POSITION = {
    "ReLU": 0, "ReLU6": 0, "SELU": 0, "SiLU": 0, "Mish": 0, "Hardswish": 0, "Hardsigmoid": 0,
    "Dropout": 1, "Dropout1d": 1, "Dropout2d": 1, "Dropout3d": 1, "AlphaDropout": 1, "FeatureAlphaDropout": 1,
    "LeakyReLU": 1, "ELU": 1, "CELU": 1, "Hardtanh": 2, "Threshold": 2, "RReLU": 2,
}
# tensor methods whose result is always a view of the receiver (reshape, flatten and contiguous
# may copy)
ALWAYS_VIEWS = frozenset(
    {"view", "view_as", "transpose", "permute", "squeeze", "unsqueeze", "expand", "expand_as", "narrow", "select", "t", "diagonal", "movedim", "swapaxes", "swapdims", "unflatten"}
)
# torch functions whose result shares storage with an argument.
TORCH_VIEW_FUNCTIONS = frozenset(
    {
        "narrow", "select", "transpose", "permute", "squeeze", "unsqueeze", "reshape", "view_as_real",
        "view_as_complex", "flatten", "unflatten", "diagonal", "t", "as_strided", "movedim", "moveaxis",
        "swapaxes", "swapdims", "split", "chunk", "unbind", "detach", "real", "imag", "broadcast_to",
        "atleast_1d", "atleast_2d", "atleast_3d", "tensor_split", "hsplit", "vsplit", "dsplit", "expand",
    }
)
# Reads that autograd never saves.
METADATA_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "requires_grad", "is_cuda", "layout", "grad_fn"})
METADATA_METHODS = frozenset({"size", "dim", "numel", "stride", "is_contiguous", "is_floating_point", "element_size", "nelement", "get_device"})
METADATA_BUILTINS = frozenset({"len", "isinstance", "type", "id"})
NON_TENSOR_RESULTS = frozenset({"len", "int", "float", "bool", "str", "list", "tuple", "dict", "set", "range"})
# builtins whose result is a Python number whatever they are given (`abs`, `round`, `max` of a
# tensor give a tensor)
NUMBER_BUILTINS = frozenset({"len", "int", "float", "bool"})
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

# LibCST's names for the operators of the fix
BINARY_FOR = {
    "AddAssign": "Add", "SubtractAssign": "Subtract", "MultiplyAssign": "Multiply", "DivideAssign": "Divide",
    "MatrixMultiplyAssign": "MatrixMultiply", "FloorDivideAssign": "FloorDivide", "ModuloAssign": "Modulo",
    "PowerAssign": "Power", "BitAndAssign": "BitAnd", "BitOrAssign": "BitOr", "BitXorAssign": "BitXor",
    "LeftShiftAssign": "LeftShift", "RightShiftAssign": "RightShift",
}
PRECEDENCE = {
    "BitOr": 1, "BitXor": 2, "BitAnd": 3, "LeftShift": 4, "RightShift": 4, "Add": 5, "Subtract": 5,
    "Multiply": 6, "Divide": 6, "FloorDivide": 6, "Modulo": 6, "MatrixMultiply": 6, "Power": 8,
}
CONTAINER_BUILTINS = frozenset({"tuple", "list", "map", "filter", "zip", "reversed", "sorted", "range", "set", "dict", "enumerate", "iter", "str"})
NON_TENSOR_LITERALS = (ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.JoinedStr)


# in-place tensor methods (each has an out-of-place twin without the underscore)
INPLACE_TENSOR_METHODS = frozenset({
    "add_", "sub_", "mul_", "div_", "pow_", "neg_", "abs_", "clamp_", "clamp_min_", "clamp_max_", "masked_fill_",
    "fill_", "zero_", "exp_", "log_", "sqrt_", "sigmoid_", "tanh_", "relu_", "addcmul_", "addcdiv_",
    "unsqueeze_", "squeeze_", "t_", "transpose_", "copy_", "index_fill_", "scatter_", "floor_", "round_",
})


def out_of_place(aug):
    """``x op= y`` as ``x = x op y`` (a LibCST ``AugAssign``), parenthesizing ``y`` where
    precedence needs it."""
    import libcst as cst

    op = getattr(cst, BINARY_FOR[type(aug.operator).__name__])
    right = aug.value
    needs_parens = isinstance(right, (cst.BooleanOperation, cst.Comparison, cst.IfExp, cst.Lambda, cst.NamedExpr)) or (
        isinstance(right, cst.UnaryOperation) and isinstance(right.operator, cst.Not)
    )
    if isinstance(right, cst.BinaryOperation) and not right.lpar:
        needs_parens = PRECEDENCE[type(right.operator).__name__] <= PRECEDENCE[op.__name__]
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
    # other names bound to this very tensor by `alias = name` and not rebound since: an in-place
    # update would show through them (`path = x; path = block(path)` leaves none)
    aliases: frozenset[str] = frozenset()
    # for a name bound by `alias = name`: that statement (a write into the alias may be meant
    # for a copy the statement does not make)
    copied_at: ast.stmt | None = None
    # made only from values no gradient flows through (factories, numbers, detached tensors,
    # metadata, or under no_grad): autograd records nothing for it, in place or not
    grad_free: bool = False


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
            frozenset().union(*(p.aliases for p in present)),
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
        # no gradient at all (integers, booleans), or a backward that keeps only the indices
        "argmin", "argmax", "argsort", "isnan", "isinf", "isfinite", "isneginf", "isposinf", "isclose",
        "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or", "logical_xor",
        "nonzero", "count_nonzero", "sign", "index_select", "take", "take_along_dim",
    }
)
# Ops whose result is (or may be) their receiver or a view of it: what happens to the result
# happens to the receiver.
PASS_THROUGH_OPS = VIEW_METHODS | TORCH_VIEW_FUNCTIONS


# -- the expression shapes the analysis reasons about ----------------------------------


def _tensor_index(target: ast.Subscript) -> bool:
    """An index only a tensor (or an array) takes: several dimensions (``h[:, 0]``) or an
    ellipsis (``h[..., 0]``), not one position or slice that a list takes too."""
    index = target.slice
    if isinstance(index, ast.Tuple):
        return len(index.elts) > 1 or any(isinstance(e, ast.Constant) and e.value is Ellipsis for e in index.elts)
    return isinstance(index, ast.Constant) and index.value is Ellipsis


def _constant(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, complex)


def _name_of(node: ast.AST | None) -> str | None:
    """The identifier of a name; ``True``, ``False`` and ``None`` count as names, as they were
    when the analysis read LibCST trees (where they are ``Name`` nodes)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and (node.value is None or node.value is True or node.value is False):
        return repr(node.value)
    return None


def _is_string(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))


@dataclass(frozen=True)
class Arg:
    """One argument of a call, as a ``name=value``, ``*value``, ``**value`` or plain ``value``."""

    node: ast.AST  # the positional expression (a Starred for `*value`) or the keyword
    keyword: str | None  # None for positional, `*` and `**` arguments
    value: ast.expr


def call_args(call: ast.Call) -> list[Arg]:
    """The arguments in source order (a `*rest` may follow keywords)."""
    found = [Arg(a, None, a.value if isinstance(a, ast.Starred) else a) for a in call.args]
    found += [Arg(k, k.arg, k.value) for k in call.keywords]
    if call.args and call.keywords:
        found.sort(key=lambda a: (a.node.lineno, a.node.col_offset))
    return found


def subscript_elements(model: SemanticModel, sub: ast.Subscript) -> list[ast.expr]:
    """The comma-separated parts of an index: ``x[a, b:c]`` has two, ``x[(a, b)]`` one (a tuple)."""
    index = sub.slice
    if isinstance(index, ast.Tuple) and index.elts and not _parenthesized(model, index):
        return index.elts
    return [index]


def _parenthesized(model: SemanticModel, tup: ast.Tuple) -> bool:
    """Whether a tuple's own parentheses enclose it (``(a), b`` starts and ends with none of its own)."""
    text = model.text(tup)
    if not text.startswith("("):
        return False
    lines = text.split("\n")
    end = (len(lines), len(lines[-1]))
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth -= 1
                if depth == 0:
                    return token.end == end
    except (tokenize.TokenError, SyntaxError):
        pass
    return False


def written_names(root: ast.AST) -> set[str]:
    """Every identifier written under ``root``: names, attribute and keyword labels, parameters,
    def and class names, the parts of imported names, global and nonlocal names, except and
    match captures."""
    found: set[str] = set()
    for node in walk(root):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.keyword, ast.arg)):
            if node.arg:
                found.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            if node.name != "*":
                found.update(node.name.split("."))
            if node.asname:
                found.add(node.asname)
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                found.update(node.module.split("."))
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            found.update(node.names)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
            if node.name:
                found.add(node.name)
        elif isinstance(node, ast.MatchMapping):
            if node.rest:
                found.add(node.rest)
        elif isinstance(node, ast.MatchClass):
            found.update(node.kwd_attrs)
    return found


def qualified_names(model: SemanticModel, node: ast.AST) -> set[str]:
    """The qualified names of an expression, looking through calls and subscripts on the way to
    its root name: ``torch.ones(3).to`` is ``torch.ones.to``, ``self.blocks[0].act`` is
    ``...self.blocks.act``. Where the rule asks this of anything but a dotted name, the verdicts
    were set with LibCST's qualified names, which read an expression this way."""
    parts: list[str] = []
    root = node
    looked_through = False
    while True:
        if isinstance(root, ast.Attribute):
            parts.append(root.attr)
            root = root.value
        elif isinstance(root, ast.Call):
            root, looked_through = root.func, True
        elif isinstance(root, ast.Subscript):
            root, looked_through = root.value, True
        else:
            break
    if not isinstance(root, ast.Name):
        return set()
    if not looked_through:
        return model.qualified_names(node)
    suffix = "".join(f".{part}" for part in reversed(parts))
    return {f"{name}{suffix}" for name in model.qualified_names(root)}


def torch_qualified(model: SemanticModel, node: ast.AST) -> str | None:
    names = qualified_names(model, node)
    if len(names) == 1:
        (name,) = names
        if name == "torch" or name.startswith("torch."):
            return name
    return None


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

    def __init__(
        self, model: SemanticModel, self_arg: str, input_free: frozenset[str] = frozenset(), methods: frozenset[str] = frozenset()
    ) -> None:
        self.model = model
        self.self_arg = self_arg
        self.input_free = input_free  # submodule attributes whose forward keeps no input for backward
        self.methods = methods  # the class's own methods: helpers, not layers
        self.found: dict[str, bool] = {}  # name -> read through a possible alias
        self.saved: set[str] = set()

    def name(self, name: str, alias: bool, kept: bool) -> None:
        self.found[name] = self.found.get(name, False) or alias
        if kept:
            self.saved.add(name)

    def visit(self, node: ast.AST | None, alias: bool, kept: bool) -> None:
        if node is None:
            return
        if isinstance(node, ast.Name):
            self.name(node.id, alias, kept)
        elif isinstance(node, ast.BinOp):
            left, right, op = node.left, node.right, node.op
            if isinstance(op, (ast.Add, ast.Sub)):
                left_kept = right_kept = False
            elif isinstance(op, ast.Mult):
                left_kept, right_kept = not _constant(right), not _constant(left)
            elif isinstance(op, ast.Div):
                left_kept, right_kept = not _constant(right), True
            else:
                left_kept = right_kept = True
            self.visit(left, False, left_kept)
            self.visit(right, False, right_kept)
        elif isinstance(node, ast.UnaryOp):
            self.visit(node.operand, False, kept and isinstance(node.op, ast.UAdd))
        elif isinstance(node, ast.Compare):
            identity = all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops)
            if not (identity and _name_of(node.left) is not None):
                self.visit(node.left, False, False)
            for comparator in node.comparators:
                self.visit(comparator, False, False)
        elif isinstance(node, ast.IfExp):
            self.visit(node.test, False, False)
            self.visit(node.body, alias, kept)
            self.visit(node.orelse, alias, kept)
        elif isinstance(node, ast.Attribute):
            metadata = node.attr in METADATA_ATTRIBUTES
            if not (metadata and _name_of(node.value) is not None):
                self.visit(node.value, True, kept and not metadata)  # `h.data`, `h.T`, ... share storage
        elif isinstance(node, ast.Subscript):
            self.visit(node.value, True, kept)  # indexing may return a view
            for element in subscript_elements(self.model, node):
                self.index(element)
        elif isinstance(node, ast.Call):
            self.call(node, kept, alias)
        elif isinstance(node, ast.Lambda):
            self.visit(node.body, True, True)
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for element in node.elts:
                self.visit(element, True, kept)
        elif isinstance(node, (ast.ListComp, ast.SetComp)):
            self.visit(node.elt, True, kept)
            self.generators(node.generators)
        elif isinstance(node, ast.GeneratorExp):
            self.visit(node.elt, True, True)
            self.generators(node.generators)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                self.visit(key, True, True)
                self.visit(value, True, True)
        elif isinstance(node, ast.DictComp):
            self.visit(node.key, True, True)
            self.visit(node.value, True, True)
            self.generators(node.generators)
        elif isinstance(node, ast.Starred):
            self.visit(node.value, alias, kept)
        else:
            # f-strings, `and`/`or`, walrus, await, ...: whatever they read may be kept
            for child in ast.iter_child_nodes(node):
                self.visit(child, alias, True)

    def generators(self, generators: list[ast.comprehension]) -> None:
        for generator in generators:
            self.visit(generator.target, True, True)
            self.visit(generator.iter, True, True)
            for condition in generator.ifs:
                self.visit(condition, True, True)

    def index(self, element: ast.expr) -> None:
        """One part of an index (``i`` in ``x[i]``, ``a:b``): whatever it reads may be kept."""
        if isinstance(element, ast.Slice):
            for part in (element.lower, element.upper, element.step):
                self.visit(part, False, True)
        elif isinstance(element, ast.Starred):
            self.visit(element.value, False, True)
        else:
            self.visit(element, False, True)

    def statement(self, stmt: ast.stmt, alias: bool) -> None:
        """A simple statement's parts (``return h``, ``print(h)``, ``assert h.all()``)."""
        if isinstance(stmt, (ast.Expr, ast.Return)):
            self.visit(stmt.value, alias, False)
        elif isinstance(stmt, ast.Raise):
            self.visit(stmt.exc, alias, False)
            self.visit(stmt.cause, alias, True)
        elif isinstance(stmt, ast.Assert):
            self.visit(stmt.test, alias, False)
            self.visit(stmt.msg, alias, False)
        elif isinstance(stmt, ast.Import):
            for item in stmt.names:
                self.dotted(item.name.split("."), alias, True)
                if item.asname:
                    self.name(item.asname, alias, True)
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.module:
                self.dotted(stmt.module.split("."), alias, False)
            for item in stmt.names:
                if item.name != "*":
                    self.name(item.name, alias, True)
                if item.asname:
                    self.name(item.asname, alias, True)
        elif isinstance(stmt, (ast.Global, ast.Nonlocal)):
            for name in stmt.names:
                self.name(name, alias, True)

    def dotted(self, parts: list[str], alias: bool, kept: bool) -> None:
        """A dotted module name read as the attribute chain it is spelled as."""
        if len(parts) == 1:
            self.name(parts[0], alias, kept)
            return
        metadata = parts[-1] in METADATA_ATTRIBUTES
        if not (metadata and len(parts) == 2):
            self.dotted(parts[:-1], True, kept and not metadata)

    def call(self, node: ast.Call, kept: bool, result_alias: bool = True) -> None:
        """``result_alias``: whether the call's result may be aliased (stored, returned); a view
        (``h.transpose(1, 2)``) aliases ``h`` only then: handed straight to a layer, only the
        layer holds it, and what the layer keeps is ``kept``."""
        func = node.func
        args = [arg.value for arg in call_args(node)]
        if isinstance(func, ast.Attribute) and _name_of(func.value) is not None and func.attr in METADATA_METHODS:
            for arg in args:
                self.visit(arg, False, False)
            return
        if isinstance(func, ast.Name) and func.id in METADATA_BUILTINS:
            for arg in args:
                if _name_of(arg) is None:
                    self.visit(arg, False, False)
            return
        qnames = self.model.qualified_names(func) if dotted(func) is not None else set()
        if qnames and all(q.startswith("torch.") for q in qnames):
            shorts = {q.rsplit(".", 1)[-1] for q in qnames}
            alias = not shorts <= PURE_OPS
            op = next(iter(shorts)) if len(shorts) == 1 else None
            if op in PASS_THROUGH_OPS and args:  # `torch.reshape(h, ...)` is `h` for what follows
                self.visit(args[0], alias and result_alias, kept)
                for arg in args[1:]:
                    self.visit(arg, alias, False)
                return
            for arg in args:
                self.visit(arg, alias, op not in INPUT_FREE_OPS)
            return
        if isinstance(func, ast.Attribute):
            receiver, op = func.value, func.attr
            if isinstance(receiver, ast.Name) and receiver.id == self.self_arg:
                if op in self.methods:  # a helper of the class: it may store what it gets
                    for arg in args:
                        self.visit(arg, True, False)
                    return
                keeps = op not in self.input_free
                for arg in args:  # a submodule call computes a new tensor, and may keep its input
                    self.visit(arg, False, keeps)
                return
            alias = op not in PURE_OPS
            if op in METADATA_METHODS:
                receiver_kept, args_kept = False, False
            elif op in PASS_THROUGH_OPS:
                receiver_kept, args_kept = kept, False
            else:
                receiver_kept = args_kept = op not in INPUT_FREE_OPS
            self.visit(receiver, alias and (result_alias or op not in PASS_THROUGH_OPS), receiver_kept)
            for arg in args:
                self.visit(arg, alias, args_kept)
            return
        if isinstance(func, ast.Name) and qnames and all("<locals>" in q for q in qnames):
            self.visit(func, False, False)
            for arg in args:  # a local callable (`for layer in self.layers: layer(x)`): a submodule
                self.visit(arg, False, True)
            return
        self.visit(func, True, False)
        for arg in args:
            self.visit(arg, True, True)


def forward_keeps_input(model: SemanticModel, cls: ast.ClassDef) -> bool:
    """Whether the ``forward`` of an nn.Module class of the file may keep its first input for
    backward (True when in doubt). Its statements are read in order until the input's name is
    rebound; a statement that hands the input to an op that may keep it, or aliases it, answers
    True."""
    if not model.is_module_class(cls) or model.class_family_up(cls) != [cls]:
        return True  # an overriding base or subclass chain: not followed
    forward = next((m for m in class_methods(cls) if m.name == "forward"), None)
    self_arg = self_name(forward) if forward is not None else None
    params = forward.args.posonlyargs + forward.args.args if forward is not None else []
    if self_arg is None or len(params) < 2:
        return True
    name = params[1].arg
    for stmt in forward.body:
        uses = Uses(model, self_arg)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            uses.visit(stmt.value, True, False)
            if name in uses.saved or uses.found.get(name, False):
                return True
            if stmt.targets[0].id == name:
                return False  # rebound: what follows works on another tensor
            continue
        if not isinstance(stmt, (ast.Expr, ast.Return, ast.Assert, ast.Pass)):
            return True  # a branch, a loop, a nested block: not followed
        uses.statement(stmt, isinstance(stmt, ast.Return))
        if name in uses.saved or (isinstance(stmt, ast.Return) and uses.found.get(name, False)):
            return True
    return False


def returns_kept_result(model: SemanticModel, cls: ast.ClassDef, depth: int = 0, construction: ast.Call | None = None) -> bool:
    """An nn.Module class of the file whose ``forward`` ends every path in an op whose backward
    keeps its output (``return F.relu(x)``, ``return self.act(x)`` with ``self.act = nn.ReLU()``):
    updating what it returns in place breaks backward, as for the op itself. Given the
    ``construction`` of the instance, the paths its constant arguments rule out do not count
    (``if self.activation == "relu": return F.relu(x)`` built with ``activation="relu"``)."""
    if depth > 2 or not model.is_module_class(cls):
        return False
    forward = next((m for m in class_methods(cls) if m.name == "forward"), None)
    if forward is None:
        return False
    if any(qualified_names(model, d.func if isinstance(d, ast.Call) else d) & NO_GRAD for d in forward.decorator_list) or any(
        qualified_names(model, item.context_expr.func if isinstance(item.context_expr, ast.Call) else item.context_expr) & NO_GRAD
        for w in model.nodes((ast.With, ast.AsyncWith), forward) for item in w.items
    ):
        return False  # computed without a graph: nothing is kept
    self_arg = self_name(forward)
    settings = constructed_settings(model, cls, construction) if construction is not None else {}
    returns = [
        node
        for node in model.nodes(ast.Return, forward)
        if model.enclosing_function(node) is forward and _reachable(model, node, forward, self_arg, settings)
    ]
    if not returns:
        return False
    for ret in returns:
        value = ret.value
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        qnames = qualified_names(model, func) if dotted(func) is not None else set()
        if qnames and all(q.startswith("torch.") and q.rsplit(".", 1)[-1] in RESULT_KEPT_OPS for q in qnames):
            continue
        if isinstance(func, ast.Attribute) and func.attr in RESULT_KEPT_OPS and not (isinstance(func.value, ast.Name) and func.value.id == self_arg):
            continue  # `x.relu()`, `x.sigmoid()`
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == self_arg:
            stores = [
                site.value for member in model.class_family(cls) for site in self_assignments(model, member) if site.attr == func.attr
            ]
            if stores and all(_kept_module_construction(model, v, depth) for v in stores):
                continue
        return False
    return True


def _kept_module_construction(model: SemanticModel, value: ast.expr, depth: int) -> bool:
    if not isinstance(value, ast.Call):
        return False
    qnames = qualified_names(model, value.func)
    if qnames and all(q.startswith("torch.nn.") and q.rsplit(".", 1)[-1] in RESULT_KEPT_MODULES for q in qnames):
        return True
    if qnames and qnames <= SEQUENTIAL and value.args and not value.keywords and not isinstance(value.args[-1], ast.Starred):
        return depth < 3 and _kept_module_construction(model, value.args[-1], depth + 1)  # what its last layer returns
    classes = model.local_classes(value.func)
    return bool(classes) and len(classes) == 1 and returns_kept_result(model, classes[0], depth + 1, value)


_UNKNOWN = object()


def constructed_settings(model: SemanticModel, cls: ast.ClassDef, construction: ast.Call) -> dict[str, object]:
    """``self.<attr>`` -> the constant an instance built by ``construction`` holds there, for
    attributes the class (alone, no bases of the file) sets exactly once, in ``__init__``, to
    one of its parameters, which the construction passes as a literal or leaves at a literal
    default."""
    if model.class_family_up(cls) != [cls] or any(isinstance(a, ast.Starred) for a in construction.args):
        return {}
    if any(k.arg is None for k in construction.keywords):
        return {}
    init = next((m for m in class_methods(cls) if m.name == "__init__"), None)
    if init is None:
        return {}
    positional = [*init.args.posonlyargs, *init.args.args][1:]
    defaults: dict[str, ast.expr] = {}
    for param, default in zip(positional[len(positional) - len(init.args.defaults) :], init.args.defaults):
        defaults[param.arg] = default
    for param, default in zip(init.args.kwonlyargs, init.args.kw_defaults):
        if default is not None:
            defaults[param.arg] = default
    given: dict[str, ast.expr] = {}
    for param, arg in zip(positional, construction.args):
        given[param.arg] = arg
    for keyword in construction.keywords:
        given[keyword.arg] = keyword.value
    self_arg = self_name(init)
    stores: dict[str, list[ast.expr]] = {}
    for site in self_assignments(model, cls):
        stores.setdefault(site.attr, []).append(site.value if site.method is init else None)
    written: dict[str, int] = {}  # stores of an attribute of that name anywhere in the file
    for node in model.nodes(ast.Attribute):
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            written[node.attr] = written.get(node.attr, 0) + 1
    for call in model.nodes(ast.Call):  # setattr(obj, "name", value) anywhere
        if isinstance(call.func, ast.Name) and call.func.id == "setattr" and len(call.args) >= 2:
            name_arg = call.args[1]
            key = name_arg.value if isinstance(name_arg, ast.Constant) and isinstance(name_arg.value, str) else None
            if key is None:
                return {}
            written[key] = written.get(key, 0) + 1
    rebound = {  # parameters __init__ binds again (`if last: activation = "none"`)
        n.id for n in ast.walk(init) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))
    }
    settings: dict[str, object] = {}
    for attr, values in stores.items():
        if len(values) != 1 or written.get(attr) != 1 or not isinstance(values[0], ast.Name) or values[0].id == self_arg:
            continue
        name = values[0].id
        if name in rebound:
            continue
        chosen = given.get(name, defaults.get(name))
        if isinstance(chosen, ast.Constant):
            settings[attr] = chosen.value
    return settings


def _evaluate(test: ast.expr, self_arg: str | None, settings: dict[str, object]) -> object:
    """The value of a branch test on the constructed settings, or ``_UNKNOWN``."""
    if isinstance(test, ast.Attribute) and isinstance(test.value, ast.Name) and test.value.id == self_arg:
        return settings.get(test.attr, _UNKNOWN)
    if isinstance(test, ast.Constant):
        return test.value
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        value = _evaluate(test.operand, self_arg, settings)
        return _UNKNOWN if value is _UNKNOWN else not value
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left = _evaluate(test.left, self_arg, settings)
        right = _evaluate(test.comparators[0], self_arg, settings)
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        op = test.ops[0]
        if isinstance(op, ast.Eq):
            return left == right
        if isinstance(op, ast.NotEq):
            return left != right
        if isinstance(op, ast.Is):
            return left is right
        if isinstance(op, ast.IsNot):
            return left is not right
    return _UNKNOWN


def _reachable(model: SemanticModel, node: ast.AST, forward: ast.AST, self_arg: str | None, settings: dict[str, object]) -> bool:
    """No ``if`` between ``node`` and ``forward`` takes, on the constructed settings, the other
    branch."""
    if not settings:
        return True
    child, parent = node, model.parent(node)
    while parent is not None and parent is not forward:
        if isinstance(parent, ast.If):
            value = _evaluate(parent.test, self_arg, settings)
            if value is not _UNKNOWN:
                in_body = any(child is stmt for stmt in parent.body)
                if bool(value) != in_body:
                    return False
        child, parent = parent, model.parent(parent)
    return True


def non_tensor_value(value: ast.expr, model: SemanticModel) -> bool:
    """A right-hand side that is a container, an iterator or a string: the target is not a
    tensor (list ``+=`` accepts any iterable, ``x = x + gen`` raises)."""
    if isinstance(value, (*NON_TENSOR_LITERALS, ast.GeneratorExp)) or _is_string(value):
        return True
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        name = value.func.id
        return model.qualified_names(value.func) == {f"builtins.{name}"} and name in CONTAINER_BUILTINS
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


def _arithmetic(model: SemanticModel, node: ast.AST | None) -> bool:
    """Operations and displays a value flows through into what holds them (a ``*rest`` handed to
    a call is that call's argument, not a display)."""
    if isinstance(node, ast.Starred):
        return not isinstance(model.parent(node), ast.Call)
    return isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Tuple, ast.List))


def _no_dtype_flow(node: ast.AST, model: SemanticModel) -> bool:
    """A node whose value cannot set the dtype of the expression it is in: what is called
    (``layer(x)``, ``self.blocks[i](x)``: a module's output has the dtype its computation gives
    it, as ``self.fc(x)`` does); an index; a comparison operand (the result is bool); a size,
    dim or fill value of a ``SHAPE_OPS`` op. (Attribute and keyword labels are not values.)"""
    if isinstance(node, ast.arg):
        return False  # a lambda's parameter
    parent = model.parent(node)
    inner, outer = node, parent
    while isinstance(outer, ast.Subscript) and outer.value is inner:
        inner, outer = outer, model.parent(outer)
    if isinstance(outer, ast.Call) and outer.func is inner:
        return True
    if isinstance(parent, ast.Attribute) and parent.value is node:
        call = model.parent(parent)
        if isinstance(call, ast.Call) and call.func is parent and _casts_to_a_names_dtype(call):
            return True  # `t.to(h.dtype)`: the result has h's dtype whatever t's was
    inner, outer = node, parent
    while _arithmetic(model, outer):
        inner, outer = outer, model.parent(outer)
    if isinstance(outer, (ast.Slice, ast.Compare)) or (isinstance(outer, ast.Subscript) and outer.slice is inner):
        return True
    if isinstance(outer, ast.keyword):
        arg, call = outer, model.parent(outer)
    elif isinstance(outer, ast.Starred):
        arg, call = outer, model.parent(outer)
    elif isinstance(outer, ast.Call) and any(a is inner for a in outer.args):
        arg, call = inner, outer
    else:
        return False
    if not isinstance(call, ast.Call):
        return False
    args = call_args(call)
    keyword = arg.arg if isinstance(arg, ast.keyword) else None
    if keyword != "dtype":
        if any(a.keyword == "dtype" for a in args):
            return True  # `torch.ones([self.n, n], dtype=...)`: the keyword alone decides
    qname = torch_qualified(model, call.func)
    if qname is not None:  # `torch.topk(h, k)`: the first positional argument is the tensor
        return qname.rsplit(".", 1)[-1] in SHAPE_OPS and (keyword is not None or arg is not args[0].node)
    return isinstance(call.func, ast.Attribute) and call.func.attr in SHAPE_OPS


def sets_own_dtype(value: ast.expr, model: SemanticModel, self_arg: str) -> bool:
    """Whether ``value`` may have a dtype of its own rather than the one forward's inputs bring:
    raw parameters or buffers (``self.scale``: float32 under autocast, an explicit float64
    buffer), ``dtype=`` arguments, dtype methods and tensor factories. Containers count too
    (what they hold is not followed). ``x += value`` keeps ``x``'s dtype, ``x + value`` promotes."""
    if non_tensor_value(value, model):
        return True
    for attribute in model.nodes(ast.Attribute, value):
        if isinstance(attribute.value, ast.Name) and attribute.value.id == self_arg and not _no_dtype_flow(attribute, model):
            if not _follows_the_module(attribute, model):
                return True
    for call in model.nodes(ast.Call, value):
        if _no_dtype_flow(call, model):
            continue
        # a tensor whose dtype is set here, not inherited from `x`: `torch.ones(n)` is float32
        # when `x` is float16, `.double()` is float64; `+=` would cast back, `x + value` promotes.
        # `dtype=h.dtype`, `.to(h.dtype)`, `.type_as(h)` and `torch.zeros_like(h)` take `h`'s
        # dtype: `h` is then read like any other name (``own_dtype`` follows it).
        keywords = {arg.keyword: arg.value for arg in call_args(call) if arg.keyword is not None}
        if "dtype" in keywords and not _dtype_of_a_name(keywords["dtype"], self_arg):
            return True
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in DTYPE_METHODS and not _keeps_a_names_dtype(call, self_arg):
            return True
        qname = torch_qualified(model, func)
        if qname is None:
            continue
        short = qname.rsplit(".", 1)[-1]
        if short in TENSOR_FACTORIES and "dtype" not in keywords and not short.endswith("_like"):
            return True
    return False


PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})


def _follows_the_module(attribute: ast.Attribute, model: SemanticModel) -> bool:
    """``self.<name>`` read in a method holds no dtype of its own: every store of the name in the
    class is a Python number (which never promotes a tensor), or a parameter or buffer made
    without an explicit dtype (it has the module's dtype, and follows ``.half()``/``.to(dtype)``
    with the rest of the module). A name the class never stores (a base or the caller sets
    it) is not known."""
    cls = next((a for a in model.ancestors(attribute) if isinstance(a, ast.ClassDef)), None)
    if cls is None:
        return False
    stores: list[ast.expr] = [a.value for a in self_assignments(model, cls) if a.attr == attribute.attr]
    for method in class_methods(cls):
        receiver = self_name(method)
        for call in model.nodes(ast.Call, method):
            func = call.func
            if not (
                isinstance(func, ast.Attribute)
                and func.attr in ("register_buffer", "register_parameter")
                and isinstance(func.value, ast.Name)
                and func.value.id == receiver
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and call.args[0].value == attribute.attr
            ):
                continue
            if len(call.args) < 2:
                return False
            stores.append(call.args[1])
    if not stores:
        return False
    for store in stores:
        if _plain_number(store):
            continue
        if isinstance(store, ast.Call) and model.qualified_names(store.func) & PARAMETER_CLASSES and store.args:
            store = store.args[0]
        elif not isinstance(model.parent(store), ast.Call):  # not register_buffer/register_parameter
            return False
        if not _default_dtype_tensor(store, model):
            return False
    return True


# factories whose result has the default dtype unless `dtype=` says otherwise (or an integer
# dtype, which never widens a float tensor); `torch.tensor` only of number literals: of an
# array or a tensor it keeps that dtype (a NumPy float64 array gives float64)
DEFAULT_DTYPE_FACTORIES = frozenset({"zeros", "ones", "empty", "full", "rand", "randn", "arange", "linspace", "logspace", "eye"})
FROM_DATA = frozenset({"tensor", "as_tensor", "scalar_tensor"})
# factories whose result never requires grad (as_tensor/asarray return a tensor argument itself;
# complex/polar compute from their arguments)
GRAD_FREE_FACTORIES = (TENSOR_FACTORIES | DEFAULT_DTYPE_FACTORIES) - {"as_tensor", "asarray", "complex", "polar"}


def _default_dtype_tensor(value: ast.expr, model: SemanticModel) -> bool:
    """A tensor made here by a torch factory without an explicit dtype (``torch.ones(n)``,
    ``torch.tensor(1.0)``, ``torch.randn(n) * 0.02``): anything else (an argument, an array, a
    cast) may carry a dtype of its own."""
    if _plain_number(value):
        return True
    if isinstance(value, ast.BinOp):
        return _default_dtype_tensor(value.left, model) and _default_dtype_tensor(value.right, model)
    if isinstance(value, ast.UnaryOp):
        return _default_dtype_tensor(value.operand, model)
    if not isinstance(value, ast.Call) or _explicit_dtype(value):
        return False
    qname = torch_qualified(model, value.func)
    short = qname.rsplit(".", 1)[-1] if qname is not None else ""
    if short in DEFAULT_DTYPE_FACTORIES:
        return True
    if short in FROM_DATA:
        return all(_number_literal(arg) for arg in value.args)
    return False


def _number_literal(value: ast.expr) -> bool:
    if isinstance(value, (ast.List, ast.Tuple)):
        return all(_number_literal(v) for v in value.elts)
    return _plain_number(value)


def _plain_number(value: ast.expr) -> bool:
    if isinstance(value, ast.BinOp):
        return _plain_number(value.left) and _plain_number(value.right)
    if isinstance(value, ast.UnaryOp):
        return _plain_number(value.operand)
    return isinstance(value, ast.Constant) and type(value.value) in (int, float)


def _explicit_dtype(value: ast.expr) -> bool:
    """A ``dtype=`` argument or a dtype method (``.double()``, ``.to(...)``) anywhere in it."""
    for call in walk(value):
        if not isinstance(call, ast.Call):
            continue
        if any(k.arg == "dtype" for k in call.keywords):
            return True
        if isinstance(call.func, ast.Attribute) and call.func.attr in DTYPE_METHODS:
            return True
    return False


def _dtype_of_a_name(expr: ast.expr, self_arg: str) -> bool:
    """``h.dtype`` for a local ``h``."""
    if not (isinstance(expr, ast.Attribute) and expr.attr == "dtype"):
        return False
    name = _name_of(expr.value)
    return name is not None and name != self_arg


def _casts_to_a_names_dtype(call: ast.Call) -> bool:
    """``t.to(h.dtype)``, ``t.to(dtype=h.dtype)``, ``t.type_as(h)`` for a name ``h``."""
    func = call.func
    args = call_args(call)
    if not isinstance(func, ast.Attribute) or len(args) != 1:
        return False
    arg = args[0]
    if func.attr == "type_as":
        return arg.keyword is None and _name_of(arg.value) is not None
    return func.attr == "to" and (arg.keyword is None or arg.keyword == "dtype") and _dtype_of_a_name(arg.value, "")


def _keeps_a_names_dtype(call: ast.Call, self_arg: str) -> bool:
    """``.to(h.dtype)``, ``.to(h.device)``, ``.to(device=...)`` and ``.type_as(h)``: the result
    has the receiver's dtype or that of a local ``h``."""
    method = call.func.attr
    args = call_args(call)
    if method == "type_as":
        return len(args) == 1 and _name_of(args[0].value) not in (None, self_arg)
    if method != "to" or not args:
        return False
    for arg in args:
        value = arg.value
        if arg.keyword is not None:
            if arg.keyword in {"device", "non_blocking", "copy"}:
                continue
            if arg.keyword == "dtype" and _dtype_of_a_name(value, self_arg):
                continue
            return False
        if not (
            isinstance(value, ast.Attribute)
            and value.attr in {"dtype", "device"}
            and _name_of(value.value) not in (None, self_arg)
        ):
            return False
    return True


# a residual path over a layer of the file whose forward ends in relu (multiresunet's conv2d_bn)
RES_PATH = (
    "import torch.nn as nn\nimport torch.nn.functional as F\n\n"
    "class ConvBn(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
    "        self.conv = nn.Conv2d(c, c, 3, padding=1)\n        self.bn = nn.BatchNorm2d(c)\n"
    "    def forward(self, x):\n        return F.relu(self.bn(self.conv(x)))\n\n"
    "class ResPath(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
    "        self.short = nn.Conv2d(c, c, 1)\n        self.body = ConvBn(c)\n"
    "    def forward(self, x):\n        shortcut = self.short(x)\n        x = self.body(x)\n"
    "        x += shortcut\n        return F.relu(x)\n"
)


# the same with the activation chosen by a constructor argument (multiresunet's Conv2d_batchnorm):
# the instance built with activation="relu" ends in relu, the one built with "none" does not
CHOSEN_ACTIVATION = (
    "import torch.nn as nn\nimport torch.nn.functional as F\n\n"
    "class ConvBn(nn.Module):\n    def __init__(self, c, activation='relu'):\n        super().__init__()\n"
    "        self.activation = activation\n"
    "        self.conv = nn.Conv2d(c, c, 3, padding=1)\n        self.bn = nn.BatchNorm2d(c)\n"
    "    def forward(self, x):\n        x = self.bn(self.conv(x))\n"
    "        if self.activation == 'relu':\n            return F.relu(x)\n        else:\n            return x\n\n"
    "class ResPath(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
    "        self.short = ConvBn(c, activation='none')\n        self.body = ConvBn(c, activation='relu')\n"
    "    def forward(self, x):\n        shortcut = self.short(x)\n        x = self.body(x)\n"
    "        x += shortcut\n        return F.relu(x)\n"
)

# refinenet's chained residual pooling: `path = x` names the relu output a second time, then is
# rebound to each block's output; the relu output itself is updated in place
CHAINED_POOL = (
    "import torch.nn as nn\n\nclass ChainedPool(nn.Module):\n"
    "    def __init__(self, feats):\n        super().__init__()\n"
    "        self.relu = nn.ReLU(inplace=True)\n"
    "        self.blocks = nn.ModuleList(\n"
    "            nn.Sequential(nn.MaxPool2d(5, stride=1, padding=2), nn.Conv2d(feats, feats, 3, padding=1, bias=False))\n"
    "            for _ in range(3)\n        )\n\n"
    "    def forward(self, x):\n        x = self.relu(x)\n        path = x\n"
    "        for block in self.blocks:\n            path = block(path)\n            x += path\n"
    "        return x\n"
)

# wav2vec-style positional convolution: `x = features` names the tensor twice, a view of it goes
# to a convolution (which keeps its input for the weight gradient), then `x += x_conv`; the base
# class comes from a package the run cannot read, the layers it stores show it is a module
POSITIONAL_CONV = (
    "import torch.nn as nn\nfrom fairseq.models import BaseFairseqModel\n\n"
    "class Encoder(BaseFairseqModel):\n    def __init__(self, c):\n        super().__init__()\n"
    "        self.dropout_input = nn.Dropout(0.1)\n        self.pos_conv = nn.Conv1d(c, c, 3, padding=1)\n\n"
    "    def forward(self, features):\n        features = self.dropout_input(features)\n        x = features\n"
    "        x_conv = self.pos_conv(x.transpose(1, 2))\n        x_conv = x_conv.transpose(1, 2)\n"
    "        x += x_conv\n        return x, features\n"
)

# a spatial attention map (RK-Net's USAM, which overrides __call__): the relu output's border is
# zeroed by slice assignment, but relu's backward needs that output
BORDER_ZEROED = (
    "import torch.nn as nn\n\nclass Attention(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n"
    "        self.conv = nn.Conv2d(1, 1, 3, padding=1)\n        self.relu = nn.ReLU()\n\n"
    "    def __call__(self, x):\n        att = self.relu(self.conv(x.sum(1, keepdim=True)))\n"
    "        att[:, :, 0, :] = 0\n        att[:, :, -1, :] = 0\n        return x + att * x\n"
)

# TSAN's CSB: `out = x` then the quadrants are written into `out`, which is the caller's input;
# the caller handed the same tensor to a convolution first, which keeps it for backward
QUADRANTS = (
    "import torch\nimport torch.nn as nn\n\nclass Quadrants(nn.Module):\n"
    "    def __init__(self, c):\n        super().__init__()\n        self.mix = nn.Conv2d(4 * c, 4 * c, 1)\n\n"
    "    def forward(self, x):\n        h, w = x.size(2) // 2, x.size(3) // 2\n"
    "        parts = torch.cat([x[:, :, :h, :w], x[:, :, h:, :w], x[:, :, :h, w:], x[:, :, h:, w:]], 1)\n"
    "        parts = self.mix(parts)\n        c = x.size(1)\n        out = x\n"
    "        out[:, :, :h, :w] = parts[:, :c]\n        out[:, :, h:, :w] = parts[:, c : 2 * c]\n"
    "        out[:, :, :h, w:] = parts[:, 2 * c : 3 * c]\n        out[:, :, h:, w:] = parts[:, 3 * c :]\n"
    "        return out\n\n"
    "class Block(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
    "        self.conv = nn.Conv2d(c, c, 3, padding=1)\n        self.quadrants = Quadrants(c)\n\n"
    "    def forward(self, x):\n        down = self.conv(x)\n        top = self.quadrants(x)\n        return down * top\n"
)

# a classifier head whose in-place dropout follows a relu (bottom-up-attention-vqa's
# SimpleClassifier): the dropout overwrites the output relu keeps for its backward
HEAD = (
    "import torch.nn as nn\n\nclass Head(nn.Module):\n"
    "    def __init__(self, d, p=0.5):\n        super().__init__()\n"
    "        self.main = nn.Sequential(\n            nn.Linear(d, d),\n            nn.ReLU(),\n"
    "            nn.Dropout(p, inplace=True),  # saves memory\n            nn.Linear(d, 2),\n        )\n\n"
    "    def forward(self, x):\n        return self.main(x)\n"
)

# the module's own state (a parameter, a buffer, a number), used in place on kept outputs
OWN_STATE = (
    "import torch\nimport torch.nn as nn\n\nclass Gate(nn.Module):\n"
    "    def __init__(self, n):\n"
    "        super().__init__()\n"
    "        self.scale = nn.Parameter(torch.ones(n))\n"
    "        self.register_buffer(\"shift\", torch.zeros(n))\n"
    "        self.alpha = 0.5\n"
    "    def forward(self, x):\n"
    "        g = torch.sigmoid(x)\n"
    "        g *= self.scale\n"
    "        k = torch.tanh(x)\n"
    "        k += self.shift * self.alpha\n"
    "        return g + k\n"
)


KEPT_RESHAPE = (
    "import torch.nn as nn\n\nclass Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.ReLU())])\n\n"
    "    def forward(self, x):\n        for block in self.blocks:\n            x = block(x).unsqueeze_(1)\n        return x\n"
)


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
    `y` gives float64): a right-hand side or a local that sets a dtype
    (`dtype=`, `.double()`, `.to(...)`, a tensor factory), reads an attribute
    of `self` that the class does not store or stores with a dtype of its own
    (`register_buffer("w", t.double())`), or is computed from such a local.
    These are reported and fixed only with `--unsafe-fixes`. Arguments of
    `forward` are taken to share one dtype.

    The module's own parameters and buffers made without an explicit dtype,
    and attributes holding Python numbers, keep the fix safe: they have the
    module's dtype and follow `.half()`/`.to(dtype)` with it, and a Python
    number never promotes a tensor. One case differs: under autocast, where
    an activation is float16 while the parameters stay float32,
    `x = x * self.scale` is float32 (the same values, in the wider type; the
    next autocast matmul casts back) where `x *= self.scale` stayed float16.

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

    In-place tensor methods are followed on what a call has just returned (or
    a view of it), where that call keeps its result and a gradient can flow
    through it (`layer(x).unsqueeze_(1)` with a layer ending in a ReLU, an
    `nn.Sequential` whose last layer keeps its result, or a loop over a
    `ModuleList` every build of which holds such a layer, in a loop body with no
    `break` and no test or `continue` around or before the call). They are
    reported without a fix: the call may
    return a tensor the code still holds (an in-place ReLU returns its input),
    which the in-place method changes too and its out-of-place twin would not.
    In-place methods called on names are not followed.
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
        # an attribute the class never stores may have a wider dtype (`g * self.scale` would
        # promote `g`), and so may a local that sets a dtype, directly or through another local,
        # or a target that holds one: `+=` casts back, the out-of-place form promotes, so the fix
        # is unsafe
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
        # a layer of the file whose forward ends in relu (multiresunet's conv2d_bn): relu keeps
        # its output for backward, so the sum must not overwrite it
        FixCase(
            RES_PATH,
            RES_PATH.replace("        x += shortcut\n", "        x = x + shortcut\n"),
            unsafe=True,  # `x` comes from a layer whose output dtype the analysis does not follow
        ),
        # the module's own parameter and buffer (no dtype of their own) and a Python number
        # attribute have the module's dtype: the fix stays safe
        FixCase(
            OWN_STATE,
            OWN_STATE.replace("g *= self.scale", "g = g * self.scale").replace("k += self.shift", "k = k + self.shift"),
        ),
        # the activation is chosen by the constructor argument: the body built with "relu"
        # keeps its output
        FixCase(
            CHOSEN_ACTIVATION,
            CHOSEN_ACTIVATION.replace("        x += shortcut\n", "        x = x + shortcut\n"),
            unsafe=True,
        ),
        # an alias made by `path = x` and rebound before the update sees nothing of it
        FixCase(CHAINED_POOL, CHAINED_POOL.replace("            x += path\n", "            x = x + path\n")),
        # an in-place layer right after one that keeps its output, in a Sequential
        FixCase(HEAD, HEAD.replace("inplace=True", "inplace=False")),
    )
    keeps = (
        # a layer of the file that sums its input before anything keeps it (speechbrain's
        # squeeze-excitation block): scaling the residual in place by its output is safe
        KeepCase(
            "import torch\nimport torch.nn as nn\n\n"
            "class SEBlock(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
            "        self.fc = nn.Linear(c, c)\n"
            "    def forward(self, x):\n        count = x.size(2) * x.size(3)\n"
            "        x = torch.sum(x, dim=(2, 3)) / count\n"
            "        return torch.sigmoid(self.fc(x))[:, :, None, None]\n\n"
            "class Block(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(c, c, 3, padding=1)\n        self.se = SEBlock(c)\n"
            "    def forward(self, x):\n        residual = self.conv(x)\n"
            "        residual *= self.se(residual)\n        return x + residual\n"
        ),
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
        # arithmetic on Python numbers is a number (monai's HoVerNet decoder counts blocks down
        # from `len(short_cuts) - 1` while indexing the shortcuts with it)
        KeepCase(
            "import torch.nn as nn\n\nclass Decoder(nn.Module):\n"
            "    def forward(self, x, short_cuts):\n"
            "        block_number = len(short_cuts) - 1\n"
            "        x = x + short_cuts[block_number]\n"
            "        for block in self.blocks:\n"
            "            x = block(x)\n"
            "            block_number -= 1\n"
            "            offset = -block_number * 2\n"
            "            offset += 1\n"
            "        return x\n"
        ),
        # built with activation="none", the layer returns the batch norm's output, which
        # nothing keeps: the in-place sum is fine
        KeepCase(CHOSEN_ACTIVATION.replace("self.body = ConvBn(c, activation='relu')", "self.body = ConvBn(c, activation='none')")),
        # an alias still read after the update: backward fails all the same, but the
        # out-of-place op would leave `path` with the old values: reported, no fix
        KeepCase(
            "import torch.nn as nn\n\nclass Kept(nn.Module):\n"
            "    def __init__(self, c):\n        super().__init__()\n"
            "        self.relu = nn.ReLU()\n        self.block = nn.Conv2d(c, c, 3, padding=1)\n\n"
            "    def forward(self, x):\n        x = self.relu(x)\n        path = x\n"
            "        y = self.block(x)\n        x += y\n        return x, path\n",
            reported=True,
        ),
        # a view handed to a layer that keeps it, under a second name still returned: reported
        # (backward fails), no fix (`features` would keep the old values)
        KeepCase(POSITIONAL_CONV, reported=True),
        # writing into a kept tensor by index: reported once, no fix (where to copy is the
        # author's call); a module whose __call__ replaces forward is read as its forward
        KeepCase(BORDER_ZEROED, reported=True),
        # the same writes into a tensor nothing keeps: fine
        KeepCase(BORDER_ZEROED.replace("self.relu(self.conv(x.sum(1, keepdim=True)))", "self.conv(x.sum(1, keepdim=True)) + 1")),
        # writes into forward's input through a name that reads like a copy: reported, no fix
        KeepCase(QUADRANTS, reported=True),
        # writes into an argument under its own name (a buffer the caller hands over to fill)
        KeepCase(
            "import torch.nn as nn\n\nclass Fill(nn.Module):\n"
            "    def forward(self, x, cache, pos: int = 0):\n        cache[:, pos] = x\n        return cache\n"
        ),
        # an alias rebound to a view of itself still holds the tensor: reported, no fix
        KeepCase(
            "import torch\nimport torch.nn as nn\n\nclass Viewed(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.lin = nn.Linear(4, 4)\n\n"
            "    def forward(self, x):\n        h = torch.sigmoid(self.lin(x))\n        y = h\n"
            "        y = y.view(-1)\n        h += 1\n        return h, y\n",
            reported=True,
        ),
        # __init__ rebinds the argument before storing it: the construction's constant is not
        # what the instance holds, and the path is not known
        KeepCase(
            CHOSEN_ACTIVATION.replace(
                "def __init__(self, c, activation='relu'):\n        super().__init__()\n",
                "def __init__(self, c, activation='relu', last=False):\n        super().__init__()\n"
                "        if last:\n            activation = 'none'\n",
            ).replace("ConvBn(c, activation='relu')", "ConvBn(c, last=True)")
        ),
        # results of kept ops that no gradient flows through (factories, numbers, no_grad)
        KeepCase(
            "import torch\nimport torch.nn as nn\n\nclass Decay(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.gamma = 0.5\n"
            "        self.lin = nn.Linear(4, 4)\n\n"
            "    def forward(self, x):\n        pos = torch.arange(x.size(1), device=x.device, dtype=x.dtype)\n"
            "        decay = torch.exp(-(pos[:, None] - pos[None, :]).abs() * self.gamma)\n"
            "        decay[:, 0] = 0\n        with torch.no_grad():\n            w = torch.softmax(self.lin(x), -1)\n"
            "        w[:, 0] = 0\n        w += 1\n        return self.lin(x) @ decay + w\n"
        ),
        # in-place layers after layers that keep their input (a convolution, a batch norm), not
        # their output: fine
        KeepCase(
            "import torch.nn as nn\n\nclass Stem(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n"
            "        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Dropout(0.1))\n\n"
            "    def forward(self, x):\n        return self.body(x)\n"
        ),
        # an in-place method on what a layer ending in a ReLU returned (zero-restore's SKConv):
        # reported, not fixed (an in-place ReLU returns its input, which the method changes too)
        KeepCase(KEPT_RESHAPE, reported=True),
        KeepCase(KEPT_RESHAPE.replace(".unsqueeze_(1)", ".add_(1)"), reported=True),
        # a loop that picks among its layers, or a graph-free input: left alone
        KeepCase(KEPT_RESHAPE.replace("            x = block(x).unsqueeze_(1)\n",
                                      "            if isinstance(block, nn.Linear):\n                continue\n"
                                      "            x = block(x).unsqueeze_(1)\n")),
        KeepCase(KEPT_RESHAPE.replace("block(x).unsqueeze_(1)", "torch.sigmoid(torch.arange(4.0)).unsqueeze_(1)")
                 .replace("import torch.nn as nn", "import torch\nimport torch.nn as nn")),
        # a linear layer's output is not kept: reshaping it in place is fine
        KeepCase(KEPT_RESHAPE.replace("nn.Sequential(nn.Linear(4, 4), nn.ReLU())", "nn.Linear(4, 4)")),
    )


    def check(self) -> None:
        model = self.model
        self._sequential_inplace()
        for cls, is_module in model.module_classes.items():
            if not (is_module or self._module_from_elsewhere(cls)):
                continue
            methods = list(class_methods(cls))
            # a module that overrides __call__ and has no forward runs __call__ in its place
            runs = "forward" if any(m.name == "forward" for m in methods) else "__call__"
            for method in methods:
                self_arg = self_name(method)
                if method.name == runs and self_arg is not None and not self._no_grad_decorated(method):
                    _ForwardAnalysis(self, cls, method, self_arg).run()

    def _sequential_inplace(self) -> None:
        """``nn.Sequential(..., nn.ReLU(), nn.Dropout(p, inplace=True), ...)``: the in-place
        layer overwrites the output the layer before it keeps for its backward (relu, sigmoid,
        tanh, softmax keep their output), so backward() fails in training. ``inplace=False``
        computes the same values: a safe fix."""
        for call in self.model.nodes(ast.Call):
            if self.model.torch_qualified(call.func) not in SEQUENTIAL:
                continue
            for before, layer in zip(call.args, call.args[1:]):
                if not (isinstance(before, ast.Call) and isinstance(layer, ast.Call)):
                    continue
                kept = self.model.torch_qualified(before.func) or ""
                if not (kept.startswith("torch.nn.") and kept.rsplit(".", 1)[-1] in RESULT_KEPT_MODULES):
                    continue
                if any(k.arg == "inplace" for k in before.keywords) or before.args:
                    continue  # an in-place relu itself keeps what its input was: not followed
                qname = self.model.torch_qualified(layer.func) or ""
                position = INPLACE_POSITION.get(qname.rsplit(".", 1)[-1]) if qname.startswith("torch.nn.") else None
                if position is None:
                    continue
                flag = next((k.value for k in layer.keywords if k.arg == "inplace"), None)
                if flag is None and len(layer.args) > position:
                    flag = layer.args[position]
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    continue
                shown = kept.rsplit(".", 1)[-1]
                self.report(
                    layer,
                    f"this in-place layer overwrites the output of the `{shown}` before it, which `{shown}` keeps "
                    f"for its backward: backward() fails in training; use `inplace=False`",
                    Fix([self.edit(flag, "Name", replace_expression, "False")]),
                )

    def _module_from_elsewhere(self, cls: ast.ClassDef) -> bool:
        """A class whose base comes from another package the run cannot read (fairseq's
        ``BaseFairseqModel``) but which shows it is a module: its ``__init__`` stores torch
        layers on ``self`` and it defines ``forward``."""
        bases = self.model.base_classes(cls)
        if not bases or any(not isinstance(b, str) or b == "?" or b.startswith(("torch.", "builtins.")) for b in bases):
            return False
        methods = {m.name: m for m in class_methods(cls)}
        init = methods.get("__init__")
        if "forward" not in methods or init is None:
            return False
        return any(
            site.method is init and self.model.is_module_construction(site.value)
            for site in self_assignments(self.model, cls)
        )

    def _no_grad_decorated(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        for deco in func.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if qualified_names(self.model, target) & NO_GRAD:
                return True
        return False


class _ForwardAnalysis:
    """Walks one ``forward`` in execution order, tracking what each local name holds."""

    def __init__(
        self, rule: InplaceForwardRule, cls: ast.ClassDef, func: ast.FunctionDef | ast.AsyncFunctionDef, self_arg: str
    ) -> None:
        self.rule = rule
        self.model = rule.model
        self.cls = cls
        self.func = func
        self.self_arg = self_arg
        self.decisions: dict[ast.AugAssign, tuple[str, bool, bool] | None] = {}  # (reason, fix unsafe, fixable)
        self.kept_attributes = self._result_kept_attributes()
        self.method_findings: list[tuple[ast.Call, str, Fix | None]] = []
        self.input_free = self._input_free_attributes()
        self.methods = {method.name for member in self.model.class_family(cls) for method in class_methods(member)}
        self.method_names = frozenset(self.methods)

    def _input_free_attributes(self) -> frozenset[str]:
        """Attributes every ``self.x = ...`` of the class sets to a layer of the file whose
        ``forward`` keeps no reference to its input for backward (a squeeze-excitation block
        that sums its input first)."""
        free: dict[str, bool] = {}
        for member in self.model.class_family(self.cls):
            for site in self_assignments(self.model, member):
                value = site.value
                classes = self.model.local_classes(value.func) if isinstance(value, ast.Call) else None
                ok = bool(classes) and len(classes) == 1 and not forward_keeps_input(self.model, classes[0])
                free[site.attr] = free.get(site.attr, True) and ok
        return frozenset(name for name, ok in free.items() if ok)

    def _result_kept_attributes(self) -> set[str]:
        """Attributes every ``self.x = ...`` of the class sets to a module whose backward keeps
        its output (nn.Sigmoid, nn.Tanh, ...)."""
        kept: dict[str, bool] = {}
        for method in class_methods(self.cls):
            self_arg = self_name(method)
            if self_arg is None:
                continue
            for assign in self.model.nodes(ast.Assign, method):
                if len(assign.targets) != 1 or self.model.enclosing_function(assign) is not method:
                    continue
                target = assign.targets[0]
                if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_arg):
                    continue
                value = assign.value
                qnames = qualified_names(self.model, value.func) if isinstance(value, ast.Call) else set()
                is_kept = bool(qnames) and all(
                    q.rsplit(".", 1)[-1] in RESULT_KEPT_MODULES and q.startswith("torch.nn.") for q in qnames
                )
                if not is_kept and isinstance(value, ast.Call):
                    classes = self.model.local_classes(value.func)
                    is_kept = bool(classes) and len(classes) == 1 and returns_kept_result(self.model, classes[0], construction=value)
                if not is_kept and isinstance(value, ast.Call) and qualified_names(self.model, value.func) <= SEQUENTIAL:
                    is_kept = _kept_module_construction(self.model, value, 0)  # a Sequential ending in such a layer
                kept[target.attr] = kept.get(target.attr, True) and is_kept
        return {name for name, ok in kept.items() if ok}

    def run(self) -> None:
        state: State = {}
        args = self.func.args
        counts = self._range_arguments()
        positional = [*args.posonlyargs, *args.args]
        inputs = [p.arg for p in positional if p.arg != self.self_arg]
        self.first_input = inputs[0] if inputs else None
        defaults: dict[ast.arg, ast.expr | None] = dict.fromkeys(positional)
        defaults.update(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
        defaults.update(zip(args.kwonlyargs, args.kw_defaults))
        for param in [*positional, *args.kwonlyargs]:
            name = param.arg
            if name == self.self_arg:
                continue
            scalar = self._non_tensor_param(param, defaults[param]) or name in counts
            state[name] = NameState(frozenset({SCALAR if scalar else PARAM}))
        for star in (args.vararg, args.kwarg):
            if star is not None:
                state[star.arg] = NameState(frozenset({UNKNOWN}))
        self.block(self.func.body, state, no_grad=False)
        for aug, decision in self.decisions.items():
            if decision is None:
                continue
            reason, unsafe, fixable = decision
            fix = Fix([self.rule.edit(aug, "AugAssign", out_of_place)], unsafe=unsafe) if fixable else None
            self.rule.report(aug, reason, fix)
        seen: set[ast.Call] = set()
        for call, reason, fix in self.method_findings:
            if call not in seen:  # a loop body is walked twice
                seen.add(call)
                self.rule.report(call, reason, fix)

    def _range_arguments(self) -> set[str]:
        """Names ``forward`` passes to ``range()``: integers (``for i in range(steps)``)."""
        found = set()
        for stmt in self.func.body:
            for call in self.model.nodes(ast.Call, stmt):
                func = call.func
                if isinstance(func, ast.Name) and func.id == "range" and self.model.qualified_names(func) == {"builtins.range"}:
                    found.update(name for arg in call_args(call) if (name := _name_of(arg.value)) is not None)
        return found

    @staticmethod
    def _non_tensor_param(param: ast.arg, default: ast.expr | None) -> bool:
        if default is not None and _name_of(default) != "None":
            return True
        annotation = param.annotation
        base = annotation.value if isinstance(annotation, ast.Subscript) else annotation
        return isinstance(base, ast.Name) and base.id in NON_TENSOR_ANNOTATIONS

    # -- statements -----------------------------------------------------------
    def block(self, body: list[ast.stmt], state: State, no_grad: bool) -> State:
        for stmt in body:
            state = self.statement(stmt, state, no_grad)
        return state

    def statement(self, stmt: ast.stmt, state: State, no_grad: bool) -> State:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Return)) and not no_grad:
            self.inplace_on_temporaries(stmt, state)
        if isinstance(stmt, ast.If):
            self.read(stmt.test, state)
            taken = self.block(stmt.body, dict(state), no_grad)
            other = self.block(stmt.orelse, dict(state), no_grad) if stmt.orelse else state
            return merge(taken, other)
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            return self.loop(stmt, state, no_grad)
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            inner = no_grad or any(self._disables_grad(item.context_expr) for item in stmt.items)
            for item in stmt.items:
                self.read(item.context_expr, state)
                if item.optional_vars is not None:
                    self.bind_targets(item.optional_vars, state, UNKNOWN, self.own_dtype(item.context_expr, state))
            return self.block(stmt.body, state, inner)
        if isinstance(stmt, ast.Try):
            after_body = self.block(stmt.body, dict(state), no_grad)
            branches = [after_body]
            for handler in stmt.handlers:
                branches.append(self.block(handler.body, merge(state, after_body), no_grad))
            result = merge(*branches)
            if stmt.orelse:
                result = merge(result, self.block(stmt.orelse, dict(after_body), no_grad))
            if stmt.finalbody:
                result = self.block(stmt.finalbody, result, no_grad)
            return result
        source = self._same_tensor_source(stmt.value, state) if isinstance(stmt, ast.Assign) else None
        if source is not None and all(isinstance(t, ast.Name) for t in stmt.targets):
            # `path = x`, `v = x.view(b, s, -1)`: both names reach one tensor until one is rebound
            if isinstance(stmt.value, ast.Call):
                for arg in [*stmt.value.args, *(k.value for k in stmt.value.keywords)]:
                    self.read(arg, state)
            for target in stmt.targets:
                if target.id == source:
                    continue
                self.bind_targets(target, state, ALIAS, state[source].own_dtype)
                group = state[source].aliases | {source}
                for name in group:  # every name of the tensor now has the new one as an alias too
                    old = state[name]
                    state[name] = replace(old, aliases=old.aliases | {target.id})
                state[target.id] = replace(state[source], aliases=group, copied_at=stmt)  # what it holds, it is
            return state
        if isinstance(stmt, ast.Assign):
            own_dtype = self.own_dtype(stmt.value, state)  # before the targets are rebound
            group = self._groups_read(stmt.value, state)
            grad_free = no_grad or self._grad_free(stmt.value, state)
            self.read(stmt.value, state, alias=True)
            kind = self.classify(stmt.value, state)
            for target in stmt.targets:
                self.indexed_write(stmt, target, state, no_grad)
                self.bind_targets(target, state, kind, own_dtype)
                if grad_free and isinstance(target, ast.Name):
                    state[target.id] = replace(state[target.id], grad_free=True)
                if group and isinstance(target, ast.Name) and kind in (ALIAS, UNKNOWN):
                    # `y = y.view(-1)`, `y = y.detach()`, `y = helper(y)`: still (a view of)
                    # the group's tensor, which an in-place update would change
                    for name in group - {target.id}:
                        if name in state:
                            old = state[name]
                            state[name] = replace(old, aliases=old.aliases | {target.id})
                    old = state[target.id]
                    state[target.id] = replace(old, aliases=old.aliases | (group - {target.id}))
            return state
        if isinstance(stmt, ast.AnnAssign):
            own_dtype = stmt.value is None or self.own_dtype(stmt.value, state)
            self.read(stmt.value, state, alias=True)
            kind = self.classify(stmt.value, state) if stmt.value is not None else UNKNOWN
            self.bind_targets(stmt.target, state, kind, own_dtype)
            return state
        if isinstance(stmt, ast.AugAssign):
            self.augmented(stmt, state, no_grad)
            return state
        if isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                for name in written_names(target):
                    state[name] = NameState(frozenset({UNKNOWN}), own_dtype=True)
            return state
        if isinstance(stmt, _SIMPLE):
            self.read(stmt, state, alias=isinstance(stmt, ast.Return))
            return state
        # nested functions and classes, match statements, try/except*: a name they mention may
        # be captured or rebound there, so nothing more is known about it
        for name in written_names(stmt):
            if name in state:
                state[name] = NameState(frozenset({UNKNOWN}), True, True, True)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            state[stmt.name] = NameState(frozenset({UNKNOWN}), own_dtype=True)
        return state

    def loop(self, stmt: ast.For | ast.AsyncFor | ast.While, state: State, no_grad: bool) -> State:
        entry = dict(state)
        is_for = not isinstance(stmt, ast.While)
        if is_for:
            self.read(stmt.iter, entry)
            self.bind_targets(stmt.target, entry, UNKNOWN, self.own_dtype(stmt.iter, entry))
        else:
            self.read(stmt.test, entry)
        end = self.block(stmt.body, dict(entry), no_grad)
        again = merge(entry, end)
        if is_for:
            self.bind_targets(stmt.target, again, UNKNOWN, self.own_dtype(stmt.iter, again))
        end = self.block(stmt.body, again, no_grad)  # second pass sees values from the back edge
        result = merge(state, end)
        if stmt.orelse:
            result = self.block(stmt.orelse, result, no_grad)
        return result

    def inplace_on_temporaries(self, stmt: ast.stmt, state: State) -> None:
        """``layer(x).unsqueeze_(1)``: an in-place method on what a call just returned (or on a
        view of it that never copies), where that call keeps its result for backward (a layer
        ending in relu/sigmoid/tanh/softmax, such an op itself, a loop over layers one of which
        does) and a gradient can flow through it. The in-place op bumps the kept tensor's
        version and backward() fails. Reported without a fix: the call may return a tensor the
        code still holds (an in-place ReLU returns its input), which the in-place method changes
        too and its out-of-place twin would not."""
        for call in self.model.nodes(ast.Call, stmt):
            func = call.func
            if not (isinstance(func, ast.Attribute) and func.attr in INPLACE_TENSOR_METHODS):
                continue
            if any(isinstance(a, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.comprehension))
                   for a in self.model.ancestors(call) if a is not stmt and stmt in self.model.ancestors(a)):
                continue
            receiver = func.value
            while (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute)
                   and receiver.func.attr in ALWAYS_VIEWS | {"detach"}):
                receiver = receiver.func.value  # a view shares the version counter of its base
            if not isinstance(receiver, ast.Call) or self._grad_free(receiver, state):
                continue
            if isinstance(receiver.func, ast.Attribute) and receiver.func.attr in VIEW_METHODS:
                continue  # `.double()`, `.contiguous()`, `.reshape()` may copy: the kept tensor is not touched
            if self._parameter_free_layer(receiver.func) and all(self._grad_free(a, state) for a in receiver.args):
                continue  # `self.gate(mask)`: nn.Sigmoid on a tensor without a graph builds none
            if self.classify_call(receiver, state) != KEPT and not self._kept_by_a_listed_layer(receiver):
                continue
            shown = self.model.text(receiver)
            if len(shown) > 40:
                shown = shown[:37] + "..."
            reason = (
                f"`.{func.attr}()` changes in place the tensor `{shown}` returned, which autograd keeps for its "
                f"backward: backward() fails with 'modified by an inplace operation'; use `.{func.attr[:-1]}()` "
                "(not fixed: the call may return a tensor the code still holds, which the in-place method changes too)"
            )
            self.method_findings.append((call, reason, None))

    def augmented(self, aug: ast.AugAssign, state: State, no_grad: bool) -> None:
        value_own_dtype = self.own_dtype(aug.value, state)
        self.read(aug.value, state)
        target = aug.target
        if not isinstance(target, ast.Name):
            self.read_target_base(target, state)
            return
        name = target.id
        current = state.get(name)
        reason = None
        if current is not None and not no_grad and not non_tensor_value(aug.value, self.model):
            reason = self.reason(name, current)
        if reason is None:
            self.decisions[aug] = None
            return
        # `+=` keeps the target's dtype, `x + value` promotes: the fix is safe only where neither
        # side may hold a dtype of its own (a float16 target and a float32 value promote too)
        unsafe = current.own_dtype or value_own_dtype
        if unsafe and not current.aliases:
            reason += f" (unsafe fix: `{name} = {name} op y` may promote the dtype that the in-place op keeps)"
        # another name still holds the tensor (`path = x`, read later): the out-of-place op would
        # leave it with the old values; backward still fails, so the finding stands, unfixed
        fixable = not current.aliases
        if not fixable:
            shown = ", ".join(f"`{a}`" for a in sorted(current.aliases))
            reason += f" (no fix: {shown} holds the same tensor and would keep the old values)"
        self.decisions[aug] = (reason, unsafe, fixable)
        state[name] = NameState(frozenset({FRESH}), own_dtype=unsafe)

    def _grad_free(self, node: ast.AST | None, state: State) -> bool:
        """No gradient can flow through ``node``: numbers, torch factories (without
        ``requires_grad=True``), metadata (``x.shape``, ``x.device``), detached values, names
        holding such values, the module's number attributes, and arithmetic of those."""
        if node is None or isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            held = state.get(node.id)
            return held is not None and (held.grad_free or held.kinds == {SCALAR})
        if isinstance(node, ast.Attribute):
            if node.attr in METADATA_ATTRIBUTES or node.attr == "data":
                return True
            if isinstance(node.value, ast.Name) and node.value.id == self.self_arg:
                return self._number_attribute(node.attr)
            return self._grad_free(node.value, state)
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Tuple, ast.List, ast.Slice)):
            return all(self._grad_free(child, state) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
        if isinstance(node, ast.Subscript):
            return self._grad_free(node.value, state)
        if isinstance(node, ast.Call):
            func = node.func
            values = [*node.args, *(k.value for k in node.keywords if k.arg not in ("device", "dtype"))]
            if any(k.arg == "requires_grad" and not (isinstance(k.value, ast.Constant) and k.value.value is False) for k in node.keywords):
                return False
            qnames = self.model.qualified_names(func) if dotted(func) is not None else set()
            if qnames and all(q.startswith("torch.") for q in qnames):
                short = {q.rsplit(".", 1)[-1] for q in qnames}
                if short <= GRAD_FREE_FACTORIES:
                    return True
                return all(self._grad_free(v, state) for v in values)
            if isinstance(func, ast.Attribute):
                if func.attr in ("detach", "item", "tolist") or func.attr in METADATA_METHODS:
                    return True
                if isinstance(func.value, ast.Name) and func.value.id == self.self_arg:
                    return False  # a layer or a helper: may compute with parameters
                return self._grad_free(func.value, state) and all(self._grad_free(v, state) for v in values)
            return False
        return False

    def _number_attribute(self, attr: str) -> bool:
        """The class stores only numbers under ``self.<attr>``."""
        stores = [site.value for member in self.model.class_family(self.cls) for site in self_assignments(self.model, member) if site.attr == attr]
        return bool(stores) and all(_plain_number(v) for v in stores)

    @staticmethod
    def _same_tensor_source(value: ast.expr, state: State) -> str | None:
        """The name whose tensor ``value`` is, or is a view of that never copies: ``x``,
        ``x.view(...)``, ``x.transpose(...)``, ``x.unsqueeze(...)`` (not ``reshape``, which may
        copy)."""
        if isinstance(value, ast.Name):
            return value.id if value.id in state else None
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr in ALWAYS_VIEWS
            and isinstance(value.func.value, ast.Name)
            and value.func.value.id in state
            and state[value.func.value.id].kinds <= TENSOR_KINDS
        ):
            return value.func.value.id
        return None

    @staticmethod
    def _groups_read(value: ast.expr, state: State) -> frozenset[str]:
        """The names of every alias group ``value`` reads a member of (``y`` in ``y.view(-1)``
        where ``y = h`` before)."""
        found: set[str] = set()
        for node in ast.walk(value):
            if isinstance(node, ast.Name) and node.id in state and state[node.id].aliases:
                found |= state[node.id].aliases | {node.id}
        return frozenset(found)

    def indexed_write(self, stmt: ast.stmt, target: ast.expr, state: State, no_grad: bool) -> None:
        """``h[...] = v`` writes into ``h`` in place. Where autograd keeps ``h`` (the result of
        relu, sigmoid, ...; or handed to a layer that keeps its input), backward() fails; the
        rewrite (``h = h.clone()`` before the first write) is the author's call: reported, no
        fix. The caller's tensor written through an argument may be a buffer meant to be
        filled (a cache), so that is left alone."""
        if no_grad or not isinstance(target, ast.Subscript) or not isinstance(target.value, ast.Name):
            return
        name = target.value.id
        current = state.get(name)
        if current is None or stmt in self.decisions or not current.kinds <= TENSOR_KINDS:
            return
        if current.aliased and not (current.kinds == {PARAM} and current.copied_at is not None):
            return
        if current.kinds != {KEPT} and not _tensor_index(target):
            return  # `feats[i] = layer(feats[i])` may update a list: only a tensor takes `h[:, i]`
        if current.grad_free:
            return  # autograd records nothing for it
        if KEPT in current.kinds:
            why = "the result of an op whose backward needs its output (sigmoid, tanh, exp, relu, softmax, ...)"
        elif current.saved:
            why = "after it was passed to an op that may keep it for backward (a layer, `*`, `@`, ...)"
        elif current.kinds == {PARAM} and current.copied_at is not None and self.first_input in current.aliases:
            # `out = x; out[...] = v`: the name reads like a new tensor, the writes change the
            # caller's input (which a caller's graph may keep: its backward then fails)
            self.decisions[stmt] = (
                f"in-place write into `{name}[...]`: `{name}` (line {current.copied_at.lineno}) is forward's input "
                f"`{self.first_input}` itself or a view of it, not a copy, so this changes the caller's tensor "
                f"(backward() fails where a graph keeps it); clone it there (`{self.first_input}.clone()`)",
                False,
                False,
            )
            state[name] = replace(current, copied_at=None)  # one finding for the copy
            return
        else:
            return
        self.decisions[stmt] = (
            f"in-place write into `{name}[...]`, {why}: backward() fails; write into a copy "
            f"(`{name} = {name}.clone()` before the first write) or build the tensor out of place",
            False,
            False,
        )
        # one finding for the tensor: the writes after this one change what is already changed
        state[name] = replace(current, kinds=frozenset({FRESH}), saved=False)

    def reason(self, name: str, current: NameState) -> str | None:
        if not current.kinds <= TENSOR_KINDS or current.aliased:
            return None  # an alias would see the in-place update: rewriting changes its value
        if current.aliases and not (KEPT in current.kinds or current.saved):
            return None  # the update may be meant for the alias too
        if current.grad_free and PARAM not in current.kinds:
            return None  # autograd records nothing for it: nothing kept, nothing to fail
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
    def read(self, node: ast.AST | None, state: State, alias: bool = False) -> None:
        if node is None:
            return
        uses = Uses(self.model, self.self_arg, self.input_free, self.method_names)
        if isinstance(node, ast.stmt):  # `return h`, `print(h)`, `assert h.all()`
            uses.statement(node, alias)
        else:
            uses.visit(node, alias, False)
        self._update(uses, node, state)

    def _update(self, uses: Uses, node: ast.AST, state: State) -> None:
        for name, aliased in uses.found.items():
            if name in state:
                old = state[name]
                state[name] = replace(old, saved=old.saved or name in uses.saved, aliased=old.aliased or aliased)
        if uses.saved:  # an op that keeps `path` keeps the tensor `x` holds too (`path = x`)
            for name, old in list(state.items()):
                if not old.saved and old.aliases & set(uses.saved):
                    state[name] = replace(old, saved=True)
        for walrus in self.model.nodes(ast.NamedExpr, node):
            for target in self.model.nodes(ast.Name, walrus.target):
                state[target.id] = NameState(frozenset({UNKNOWN}), True, True, True)

    def read_target_base(self, target: ast.expr, state: State) -> None:
        if isinstance(target, ast.Subscript):
            for element in subscript_elements(self.model, target):
                uses = Uses(self.model, self.self_arg, self.input_free, self.method_names)
                uses.index(element)
                self._update(uses, element, state)

    def bind_targets(self, target: ast.expr, state: State, kind: str, own_dtype: bool) -> None:
        if isinstance(target, ast.Name):
            for name, old in list(state.items()):
                if target.id in old.aliases:  # the alias now names another value
                    state[name] = replace(old, aliases=old.aliases - {target.id})
            state[target.id] = NameState(frozenset({kind}), own_dtype=own_dtype)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.bind_targets(element, state, UNKNOWN, own_dtype)
        elif isinstance(target, ast.Starred):
            self.bind_targets(target.value, state, UNKNOWN, own_dtype)
        else:
            self.read_target_base(target, state)

    def own_dtype(self, value: ast.expr, state: State) -> bool:
        """Whether ``value`` may hold a dtype other than the one forward's inputs bring: set in
        the expression itself (``sets_own_dtype``) or read from a local that holds one."""
        if sets_own_dtype(value, self.model, self.self_arg):
            return True
        for node in (*self.model.nodes(ast.Name, value), *self.model.nodes(ast.arg, value)):
            held = state.get(node.id if isinstance(node, ast.Name) else node.arg)
            if held is not None and held.own_dtype and not _no_dtype_flow(node, self.model):
                return True
        return False

    def classify(self, value: ast.expr, state: State) -> str:
        if isinstance(value, ast.Name):
            return ALIAS
        if isinstance(value, (ast.Attribute, ast.Subscript)):
            return ALIAS
        if isinstance(value, ast.Constant):
            return UNKNOWN if value.value is Ellipsis else SCALAR
        if isinstance(value, (*NON_TENSOR_LITERALS, ast.GeneratorExp)):
            return SCALAR
        if isinstance(value, (ast.BinOp, ast.UnaryOp)):
            return SCALAR if self.python_number(value, state) else FRESH
        if isinstance(value, ast.IfExp):
            kinds = {self.classify(value.body, state), self.classify(value.orelse, state)}
            return kinds.pop() if len(kinds) == 1 else UNKNOWN
        if isinstance(value, ast.Call):
            return self.classify_call(value, state)
        return UNKNOWN

    def python_number(self, value: ast.expr, state: State) -> bool:
        """Arithmetic on Python numbers only (``len(xs) - 1``, ``2 * n`` with ``n`` such a
        number): the result is a number too, which autograd never sees."""
        if isinstance(value, ast.BinOp):
            return self.python_number(value.left, state) and self.python_number(value.right, state)
        if isinstance(value, ast.UnaryOp):
            return self.python_number(value.operand, state)
        if isinstance(value, ast.Constant):
            return type(value.value) in (int, float, complex, bool)
        if isinstance(value, ast.Name):
            held = state.get(value.id)
            return held is not None and held.kinds == {SCALAR}
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            qnames = self.model.qualified_names(value.func)
            return qnames == {f"builtins.{value.func.id}"} and value.func.id in NUMBER_BUILTINS
        return False

    def _submodule_loop_variable(self, name: ast.Name) -> bool:
        """``name`` is bound only as the variable of ``for name in self.<attr>`` where the class
        stores only module constructions (a ModuleList, a Sequential) under ``<attr>``."""
        bindings = self.model.scope(name).resolve(name.id)
        if not bindings:
            return False
        for binding in bindings:
            attr = self._loop_container(binding.node)
            if attr is None:
                return False
            stores = [
                site.value for member in self.model.class_family(self.cls) for site in self_assignments(self.model, member)
                if site.attr == attr
            ]
            if not stores or not all(self.model.is_module_construction(v) for v in stores):
                return False
        return True

    def _parameter_free_layer(self, func: ast.expr) -> bool:
        """``self.<attr>`` stored only as torch's activations (nn.Sigmoid, nn.ReLU, ...)."""
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == self.self_arg):
            return False
        stores = [site.value for member in self.model.class_family(self.cls) for site in self_assignments(self.model, member)
                  if site.attr == func.attr]
        return bool(stores) and all(
            isinstance(v, ast.Call) and bool(q := qualified_names(self.model, v.func))
            and all(n.startswith("torch.nn.") and n.rsplit(".", 1)[-1] in RESULT_KEPT_MODULES for n in q)
            for v in stores
        )

    def _kept_by_a_listed_layer(self, call: ast.Call) -> bool:
        """``block(x)`` for ``block`` iterating a container of layers one of which keeps its
        result, in a loop body that never picks among the layers: no ``break``, and no test or
        ``continue`` around or before the call (an ``isinstance`` test or an index test may leave
        the kept layer out)."""
        func = call.func
        if not (isinstance(func, ast.Name) and self._submodule_loop_variable(func) and self._kept_loop_element(func)):
            return False
        loop = next((a for a in self.model.ancestors(call) if isinstance(a, (ast.For, ast.AsyncFor))), None)
        if loop is None:
            return False
        here = (call.lineno, call.col_offset)
        enclosing = set(self.model.ancestors(call))
        for node in walk(loop):
            if node is loop or not isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Continue, ast.Break, ast.Match, ast.Try)):
                continue
            if isinstance(node, ast.Break) or node in enclosing or (node.lineno, node.col_offset) < here:
                return False  # it may pick which layers reach the call, or stop before the kept one
        return True

    def _loop_container(self, target: ast.AST) -> str | None:
        """``<attr>`` when ``target`` is bound by ``for target in self.<attr>`` or by
        ``for i, target in enumerate(self.<attr>)``."""
        model = self.model
        loop = model.parent(target)
        iterable = loop.iter if isinstance(loop, ast.For) and loop.target is target else None
        if iterable is None and isinstance(loop, ast.Tuple) and len(loop.elts) == 2 and loop.elts[1] is target:
            outer = model.parent(loop)
            if (isinstance(outer, ast.For) and outer.target is loop and isinstance(outer.iter, ast.Call)
                    and model.qualified_names(outer.iter.func) == {"builtins.enumerate"} and len(outer.iter.args) == 1
                    and not outer.iter.keywords):
                iterable = outer.iter.args[0]
        if isinstance(iterable, ast.Attribute) and isinstance(iterable.value, ast.Name) and iterable.value.id == self.self_arg:
            return iterable.attr
        return None

    def _kept_loop_element(self, name: ast.Name) -> bool:
        """``name`` iterates ``self.<attr>``, and some layer put in that container (in its
        constructor list or by ``self.<attr>.append(...)``, directly or through a local bound
        once to a construction) keeps its result for backward."""
        model = self.model
        attr = self._loop_container(model.scope(name).resolve(name.id)[0].node)
        appended: list[ast.expr] = []
        stores: list[list[ast.expr]] = []
        for member in model.class_family(self.cls):
            for site in self_assignments(model, member):
                if site.attr == attr and isinstance(site.value, ast.Call):
                    listed = []
                    for arg in site.value.args:
                        listed.extend(arg.elts if isinstance(arg, (ast.List, ast.Tuple)) else [])
                    stores.append(listed)
            for call in model.nodes(ast.Call, member):
                func = call.func
                if (isinstance(func, ast.Attribute) and func.attr == "append" and isinstance(func.value, ast.Attribute)
                        and func.value.attr == attr and isinstance(func.value.value, ast.Name) and len(call.args) == 1):
                    method = model.enclosing_function(call)
                    if method is not None and func.value.value.id == self_name(method):
                        appended.append(call.args[0])
        # every way the container is built holds a kept layer (a config may build it without one)
        return bool(stores) and all(any(self._kept_element(e) for e in listed + appended) for listed in stores)

    def _kept_element(self, element: ast.expr) -> bool:
        model = self.model
        if isinstance(element, ast.Name):
            bound = model.scope(element).resolve(element.id)
            holder = model.parent(bound[0].node) if len(bound) == 1 else None
            if not (isinstance(holder, ast.Assign) and len(holder.targets) == 1):
                return False
            element = holder.value
        return _kept_module_construction(model, element, 0)

    def classify_call(self, call: ast.Call, state: State) -> str:
        func = call.func
        # `torch.softmax(x).squeeze()` is a method of the softmax result, not a torch function
        qnames = self.model.qualified_names(func) if dotted(func) is not None else set()
        if isinstance(func, ast.Name) and qnames == {f"builtins.{func.id}"}:
            return SCALAR if func.id in NON_TENSOR_RESULTS else UNKNOWN
        if isinstance(func, ast.Name) and self._submodule_loop_variable(func):
            return FRESH  # `for block in self.blocks: h = block(h)`: a layer, as `self.block(h)` is
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
            if not isinstance(func, ast.Attribute) or not any("<locals>" in q for q in qnames):
                return UNKNOWN
        if isinstance(func, ast.Attribute):
            method = func.attr
            receiver = func.value
            if method.endswith("_") and not method.endswith("__"):
                return ALIAS  # in-place methods return their receiver
            if isinstance(receiver, ast.Name) and receiver.id == self.self_arg:
                if method in self.methods:
                    return UNKNOWN  # a helper method may return anything (a list, a tuple)
                return KEPT if method in self.kept_attributes else FRESH
            if method in NON_TENSOR_METHODS:
                return SCALAR
            if method in RESULT_KEPT_OPS:
                return KEPT
            if method in VIEW_METHODS:
                base = self.classify(receiver, state)
                if isinstance(receiver, ast.Name) and receiver.id in state:
                    return ALIAS
                return base if base in {FRESH, KEPT} else ALIAS
            return FRESH
        return UNKNOWN

    def _disables_grad(self, expr: ast.expr) -> bool:
        target = expr.func if isinstance(expr, ast.Call) else expr
        if qualified_names(self.model, target) & NO_GRAD:
            return True
        if not (isinstance(expr, ast.Call) and qualified_names(self.model, expr.func) == {"torch.set_grad_enabled"}):
            return False
        args = call_args(expr)
        return bool(args) and _name_of(args[0].value) == "False"


# statements that only read
_SIMPLE = (
    ast.Expr, ast.Return, ast.Raise, ast.Assert, ast.Pass, ast.Break, ast.Continue, ast.Import, ast.ImportFrom,
    ast.Global, ast.Nonlocal,
)
