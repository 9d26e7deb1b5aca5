"""The LibCST changes of the API rules (TFM7xx): writing call arguments, import statements and
the replacement expressions. Each receives the node found at an edit intent's position (its
children already updated) and returns its replacement; the decisions were made on the
semantic model (:mod:`._api`). Imported only when a fix is written."""

from __future__ import annotations

import libcst as cst

# -- call arguments -------------------------------------------------------------


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def argument(call: cst.Call, name: str, position: int | None) -> cst.Arg | None:
    """The argument bound to parameter ``name``: by keyword, or the ``position``-th plain
    positional argument when no ``*args`` comes before it."""
    found = keyword_arg(call, name)
    if found is not None or position is None:
        return found
    index = 0
    for arg in call.args:
        if arg.star == "*":
            return None  # the position of what follows is unknown
        if arg.keyword is None and not arg.star:
            if index == position:
                return arg
            index += 1
    return None


def _separator(call: cst.Call) -> cst.Comma:
    """The comma to write between two arguments, in the call's own layout."""
    commas = [arg.comma for arg in call.args[:-1] if isinstance(arg.comma, cst.Comma)]
    if commas:
        comma = commas[-1]
        if isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace):  # without its comment
            return comma.with_changes(
                whitespace_after=comma.whitespace_after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
            )
        return comma
    if isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        # one argument per line, the first one on its own line
        return cst.Comma(whitespace_after=call.whitespace_before_args)
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def append_keyword(call: cst.Call, name: str, value: cst.BaseExpression) -> cst.Call:
    """``call`` with ``name=value`` added after its last argument. The existing arguments
    are kept as they are, and a trailing comma or one-argument-per-line layout is followed."""
    new_arg = cst.Arg(
        value=value,
        keyword=cst.Name(name),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    if not call.args:
        return call.with_changes(args=[new_arg])
    args = list(call.args)
    last = args[-1]
    trailing = isinstance(last.comma, cst.Comma)
    # the whitespace before the closing parenthesis: after a trailing comma, or after the argument
    closing = last.comma.whitespace_after if trailing else last.whitespace_after_arg
    separator = _separator(call)
    if isinstance(closing, cst.ParenthesizedWhitespace) and isinstance(separator.whitespace_after, cst.ParenthesizedWhitespace):
        # one argument per line: the old last argument keeps its comment on its own line, the
        # new line gets the arguments' indentation, the closing parenthesis keeps its own
        line = separator.whitespace_after
        own_line = closing.with_changes(indent=line.indent, last_line=line.last_line)
        bare_close = closing.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
        if trailing:
            args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=own_line))
            new_arg = new_arg.with_changes(comma=cst.Comma(whitespace_before=last.comma.whitespace_before, whitespace_after=bare_close))
        else:
            args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=own_line), whitespace_after_arg=cst.SimpleWhitespace(""))
            new_arg = new_arg.with_changes(whitespace_after_arg=bare_close)
    elif trailing:
        # the new argument takes the trailing comma and what follows it
        new_arg = new_arg.with_changes(comma=last.comma)
        args[-1] = last.with_changes(comma=separator)
    else:
        new_arg = new_arg.with_changes(whitespace_after_arg=last.whitespace_after_arg)
        args[-1] = last.with_changes(comma=separator, whitespace_after_arg=cst.SimpleWhitespace(""))
    return call.with_changes(args=[*args, new_arg])


def replace_arg(call: cst.Call, old: cst.Arg, new: cst.Arg) -> cst.Call:
    """``call`` with argument ``old`` (matched by identity, or by position in an updated
    call) replaced by ``new``, which keeps ``old``'s comma and whitespace."""
    args = list(call.args)
    new = new.with_changes(comma=old.comma, whitespace_after_arg=old.whitespace_after_arg)
    for index, arg in enumerate(args):
        if arg is old:
            args[index] = new
            return call.with_changes(args=args)
    raise ValueError("argument not found")


def _bare_equal() -> cst.AssignEqual:
    return cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def _replace_in_args(call: cst.Call, old: cst.Arg, new: cst.Arg) -> cst.Call:
    return call.with_changes(args=[new if arg is old else arg for arg in call.args])


def _spelled(call: cst.Call, spelling: str | int, name: str) -> cst.BaseExpression:
    """The expression naming ``name``: ``spelling`` is its source text, or (an int) how many
    ``.value`` steps lead from the call's function to the module prefix it already spells,
    to which ``.name`` is added."""
    if isinstance(spelling, int):
        prefix = call.func
        for _ in range(spelling):
            prefix = prefix.value
        return cst.Attribute(value=prefix.deep_clone(), attr=cst.Name(name))
    return cst.parse_expression(spelling)


# -- the rules' changes -------------------------------------------------------------


def add_keyword(call: cst.Call, name: str, value: str) -> cst.Call:
    """TFM701, TFM702: ``f(a)`` -> ``f(a, name=value)``."""
    return append_keyword(call, name, cst.parse_expression(value))


def set_argument(call: cst.Call, name: str, position: int | None, value: str) -> cst.Call:
    """TFM710: the argument bound to ``name`` gets the expression ``value``."""
    arg = argument(call, name, position)
    return _replace_in_args(call, arg, arg.with_changes(value=cst.parse_expression(value)))


def rename_argument(
    call: cst.Call, old: str, position: int | None, new: str, spelling: str | int | None, enum: str, member: str
) -> cst.Call:
    """TFM706: the argument bound to ``old`` becomes ``new=<enum>.<member>`` with the enum
    spelled by ``spelling`` (``new=None`` without one), by keyword even when ``old`` was passed
    by position."""
    arg = argument(call, old, position)
    if spelling is None:
        value = cst.Name("None")
    else:
        value = cst.Attribute(value=_spelled(call, spelling, enum), attr=cst.Name(member))
    equal = arg.equal if arg.keyword is not None else _bare_equal()
    return _replace_in_args(call, arg, arg.with_changes(keyword=cst.Name(new), equal=equal, value=value))


def with_module(node: cst.ImportFrom, module: str) -> cst.ImportFrom:
    """TFM704: ``from <private> import a`` -> ``from <module> import a``."""
    return node.with_changes(module=cst.parse_expression(module))


def without_names(node: cst.ImportFrom, names: frozenset[str]) -> cst.ImportFrom:
    """TFM704: the import without the aliases of ``names`` (imported elsewhere)."""
    kept = [alias for alias in node.names if not (isinstance(alias.name, cst.Name) and alias.name.value in names)]
    kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return node.with_changes(names=kept)


def skip_two_attributes(node: cst.Attribute) -> cst.Attribute:
    """TFM704: ``P._utils.collate.name`` -> ``P.name``."""
    return node.with_changes(value=node.value.value.value)


def _has_comment(node: cst.CSTNode) -> bool:
    return "#" in cst.Module([]).code_for_node(node)


def log1p_call(call: cst.Call, func: str | None, name: str, keep_right: bool) -> cst.Call:
    """TFM705: ``log(1 + x)`` -> ``log1p(x)``. ``func`` spells the new function (None: the
    call's own attribute, renamed)."""
    new_func = call.func.with_changes(attr=cst.Name(name)) if func is None else cst.parse_expression(func)
    (old,) = call.args
    value = old.value.right if keep_right else old.value.left
    return call.with_changes(func=new_func, args=[old.with_changes(value=value)])


def expm1_call(binop: cst.BinaryOperation, func: str | None, name: str) -> cst.Call:
    """TFM705: ``exp(x) - 1`` -> ``expm1(x)``."""
    call = binop.left
    new_func = call.func.with_changes(attr=cst.Name(name)) if func is None else cst.parse_expression(func)
    # a call needs no parentheses around it; keep them only if they hold a comment
    keep = any(_has_comment(paren) for paren in (*binop.lpar, *binop.rpar))
    parens = (binop.lpar, binop.rpar) if keep else ((), ())
    return call.with_changes(func=new_func, lpar=parens[0], rpar=parens[1])


def to_image_dtype(call: cst.Call, compose: str | int, to_image: str | int, to_dtype: str | int, dtype: str) -> cst.Call:
    """TFM707: ``ToTensor()`` -> ``Compose([ToImage(), ToDtype(<dtype>, scale=True)])``; each
    name is source text, or 1 for the module the call's ``<module>.ToTensor`` spells."""
    names = {}
    for key, spelling in (("Compose", compose), ("ToImage", to_image), ("ToDtype", to_dtype)):
        names[key] = _spelled(call, spelling, key)
    replacement = cst.Call(
        func=names["Compose"],
        args=[
            cst.Arg(
                cst.List(
                    [
                        cst.Element(cst.Call(func=names["ToImage"])),
                        cst.Element(
                            cst.Call(
                                func=names["ToDtype"],
                                args=[
                                    cst.Arg(cst.parse_expression(dtype)),
                                    cst.Arg(cst.Name("True"), keyword=cst.Name("scale"), equal=_bare_equal()),
                                ],
                            )
                        ),
                    ]
                )
            )
        ],
    )
    return replacement.with_changes(lpar=call.lpar, rpar=call.rpar)


def import_from(node: cst.Import, package: str, module: str) -> cst.ImportFrom:
    """TFM708: ``import <package>.<module> as <module>`` -> ``from <package> import <module>``."""
    return cst.ImportFrom(
        module=cst.parse_expression(package),
        names=[cst.ImportAlias(name=cst.Name(module))],
        semicolon=node.semicolon,
    )
