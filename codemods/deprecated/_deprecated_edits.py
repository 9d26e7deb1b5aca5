"""The LibCST side of the deprecated-API fixes (TFM601-TFM604): the changes their edit intents
make. Imported only when a fix is written; every decision was taken on the semantic model, so
these functions receive what to write (the replacement's spelling, argument indices, literal
values) and write it, keeping the call's other arguments, comments and commas."""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

NO_SPACE = cst.SimpleWhitespace("")
SPACE = cst.SimpleWhitespace(" ")


# -- arguments ------------------------------------------------------------------


def keyword(name: str, value: cst.BaseExpression, comma=cst.MaybeSentinel.DEFAULT) -> cst.Arg:
    return cst.Arg(value=value, keyword=cst.Name(name), equal=cst.AssignEqual(NO_SPACE, NO_SPACE), comma=comma)


def as_keyword(arg: cst.Arg, name: str) -> cst.Arg:
    if arg.keyword is not None:
        return arg
    return arg.with_changes(keyword=cst.Name(name), equal=cst.AssignEqual(NO_SPACE, NO_SPACE))


def as_positional(arg: cst.Arg) -> cst.Arg:
    return arg.with_changes(keyword=None, equal=cst.MaybeSentinel.DEFAULT)


def number(value: int, as_float: bool) -> cst.BaseExpression:
    text = f"{abs(value)}.0" if as_float else str(abs(value))
    literal = cst.Float(text) if as_float else cst.Integer(text)
    return literal if value >= 0 else cst.UnaryOperation(cst.Minus(), literal)


def with_commas(args: list[cst.Arg], original: Sequence[cst.Arg]) -> list[cst.Arg]:
    """Separators after rewriting: each argument but the last has a comma, the last keeps the
    call's original trailing comma (or none)."""
    trailing = original[-1].comma if original else cst.MaybeSentinel.DEFAULT
    result = []
    for index, arg in enumerate(args):
        if index == len(args) - 1:
            result.append(arg.with_changes(comma=trailing))
        elif not isinstance(arg.comma, cst.Comma):
            result.append(arg.with_changes(comma=cst.Comma(whitespace_after=SPACE)))
        else:
            result.append(arg)
    return result


def leading_comma(call: cst.Call) -> cst.Comma:
    """The comma after an argument inserted first: on its own line when the call puts its
    first argument on a new line."""
    if isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        return cst.Comma(whitespace_after=call.whitespace_before_args)
    return cst.Comma(whitespace_after=SPACE)


def _string(text: str) -> cst.SimpleString:
    return cst.SimpleString(f'"{text}"')


# -- references -----------------------------------------------------------------


def replace(node: cst.BaseExpression, func: str) -> cst.BaseExpression:
    """A reference -> the replacement's spelling (the old reference's parentheses go with it)."""
    return cst.parse_expression(func)


def set_func(call: cst.Call, func: str) -> cst.Call:
    return call.with_changes(func=cst.parse_expression(func))


def decorator_call(node: cst.BaseExpression, func: str, device: str) -> cst.Call:
    """``@torch.cuda.amp.custom_fwd`` -> ``@torch.amp.custom_fwd(device_type="cuda")``."""
    return cst.Call(func=cst.parse_expression(func), args=[keyword("device_type", _string(device))])


# -- the argument rewrites --------------------------------------------------------


def qr(call: cst.Call, func: str, some: int | None, complete: bool) -> cst.Call:
    args = list(call.args)
    args[0] = as_positional(args[0])
    if some is not None:  # some=True is the default mode="reduced"
        args[some] = keyword("mode", _string("complete"), args[some].comma) if complete else None
    return call.with_changes(func=cst.parse_expression(func), args=with_commas([a for a in args if a is not None], call.args))


def cholesky(call: cst.Call, func: str, upper: int | None, drop: bool) -> cst.Call:
    args = list(call.args)
    args[0] = as_positional(args[0])
    if upper is not None:
        args[upper] = None if drop else as_keyword(args[upper], "upper")
    return call.with_changes(func=cst.parse_expression(func), args=with_commas([a for a in args if a is not None], call.args))


def arange(call: cst.Call, func: str, start_at: int, end_at: int, start: int, end: int, as_float: bool) -> cst.Call:
    args = list(call.args)
    if as_float:
        args[start_at] = args[start_at].with_changes(value=number(start, True))
    args[end_at] = args[end_at].with_changes(value=number(end, as_float))
    return call.with_changes(func=cst.parse_expression(func), args=args)


def multi_dot(call: cst.Call, func: str, count: int) -> cst.Call:
    args = list(call.args)
    elements = []
    for index, arg in enumerate(args[:count]):
        comma = arg.comma if index < count - 1 else cst.MaybeSentinel.DEFAULT
        if arg.star:
            elements.append(cst.StarredElement(arg.value, comma=comma, whitespace_before_value=arg.whitespace_after_star))
        else:
            elements.append(cst.Element(arg.value, comma=comma))
    matrices = cst.Arg(cst.List(elements), comma=args[count - 1].comma)
    return call.with_changes(func=cst.parse_expression(func), args=with_commas([matrices, *args[count:]], call.args))


def matrix_rank(call: cst.Call, func: str, symmetric: int | None) -> cst.Call:
    args = list(call.args)
    args[0] = as_positional(args[0])
    if symmetric is not None:
        args[symmetric] = args[symmetric].with_changes(keyword=cst.Name("hermitian"), equal=cst.AssignEqual(NO_SPACE, NO_SPACE))
    return call.with_changes(func=cst.parse_expression(func), args=args)


def upsample(call: cst.Call, func: str, bilinear: bool) -> cst.Call:
    extra = [keyword("mode", _string("bilinear" if bilinear else "nearest"))]
    if bilinear:
        extra.append(keyword("align_corners", cst.Name("True")))
    return call.with_changes(func=cst.parse_expression(func), args=with_commas([*call.args, *extra], call.args))


def autocast(call: cst.Call, func: str, device: str, parameters: Sequence[str]) -> cst.Call:
    args = [as_keyword(arg, parameters[i]) if arg.keyword is None else arg for i, arg in enumerate(call.args)]
    first = cst.Arg(_string(device), comma=leading_comma(call) if args else cst.MaybeSentinel.DEFAULT)
    return call.with_changes(func=cst.parse_expression(func), args=[first, *args])


def device_first(call: cst.Call, func: str, device: str) -> cst.Call:
    args = list(call.args)
    first = cst.Arg(_string(device), comma=leading_comma(call) if args else cst.MaybeSentinel.DEFAULT)
    return call.with_changes(func=cst.parse_expression(func), args=[first, *args])


def device_keyword(call: cst.Call, func: str, device: str) -> cst.Call:
    return call.with_changes(
        func=cst.parse_expression(func), args=with_commas([*call.args, keyword("device_type", _string(device))], call.args)
    )


# -- imports (TFM603) ---------------------------------------------------------------


def import_from(statement: cst.ImportFrom, module: str) -> cst.ImportFrom:
    return statement.with_changes(module=cst.parse_expression(module))


def _key(alias: cst.ImportAlias) -> tuple[str, str | None]:
    from libcst.helpers import get_full_name_for_node

    return get_full_name_for_node(alias.name), alias.asname.name.value if alias.asname else None


def split_import(line: cst.SimpleStatementLine, module: str, moved: Sequence[tuple[str, str | None]]):
    """``from functorch import make_functional, vmap`` -> that line without the moved names,
    and a new ``from torch.func import vmap`` line after it."""
    old = line.body[0]
    kept = [a for a in old.names if _key(a) not in moved]
    taken = [a for a in old.names if _key(a) in moved]
    kept[-1] = kept[-1].with_changes(comma=old.names[-1].comma)  # the list's own ending
    new_names = [
        cst.ImportAlias(
            a.name,
            a.asname,
            comma=cst.MaybeSentinel.DEFAULT if i == len(taken) - 1 else cst.Comma(whitespace_after=SPACE),
        )
        for i, a in enumerate(taken)
    ]
    first = line.with_changes(body=[old.with_changes(names=kept)])
    second = cst.SimpleStatementLine([cst.ImportFrom(module=cst.parse_expression(module), names=new_names)])
    return cst.FlattenSentinel([first, second])
