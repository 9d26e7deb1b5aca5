"""The LibCST changes of the training-loop rules. Each receives the node found at an edit
intent's position (children updated) and returns its replacement; the decisions were made on
the semantic model. Imported only when a fix is written."""

from __future__ import annotations

import libcst as cst


def init_call(call: cst.Call, func: str) -> cst.Call:
    """TFM802: ``w.data.normal_(0, 0.02)`` -> ``<func>(w, 0, 0.02)``: the tensor before ``.data``
    becomes the first argument, the call's own arguments follow unchanged."""
    method = call.func  # w.data.normal_
    tensor = method.value.value  # w
    first = cst.Arg(value=tensor, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if call.args else cst.MaybeSentinel.DEFAULT)
    return call.with_changes(func=cst.parse_expression(func), args=[first, *call.args])


def no_grad_copy(line: cst.SimpleStatementLine, no_grad: str) -> cst.With:
    """TFM802: the line ``w.data.copy_(t)`` -> ``with <no_grad>():`` and ``w.copy_(t)`` inside,
    one level deeper; the line's comments stay with it."""
    (statement,) = line.body
    call = statement.value
    method = call.func  # w.data.copy_
    inner = statement.with_changes(value=call.with_changes(func=method.with_changes(value=method.value.value)))
    body = cst.IndentedBlock(body=[line.with_changes(body=[inner], leading_lines=[])])
    return cst.With(
        items=[cst.WithItem(item=cst.Call(func=cst.parse_expression(no_grad)))],
        body=body,
        leading_lines=line.leading_lines,
    )


def insert_before(statement: cst.SimpleStatementLine, code: str) -> cst.FlattenSentinel:
    """TFM801: the line ``code`` (an expression statement) just before ``statement``, at its
    indentation; the comments above ``statement`` stay above the new line."""
    new_line = cst.SimpleStatementLine([cst.Expr(cst.parse_expression(code))])
    return cst.FlattenSentinel([new_line, statement])
