"""Errors at declaration time name the op, the shapes, and the user's file and line.

Each bad declaration is a one-line lambda, so the line that declared it is the
lambda's first line; the message must point there, not into the compiler.
"""
import os

import numpy as np
import pytest

import compiler as C
from compiler import GraphError, Input, Param

THIS_FILE = os.path.basename(__file__)


def declaration_error(declare) -> tuple:
    """(message, 'file:line' of the declaring line) of the GraphError `declare()` raises."""
    with pytest.raises(GraphError) as info:
        declare()
    return str(info.value), f"{THIS_FILE}:{declare.__code__.co_firstlineno}"


CASES = [
    # (id, declaration, fragments the message must contain)
    ("matmul", lambda: Input("x", (3, 4)) @ Param("W", (5, 6)), ["matmul", "(3, 4)", "(5, 6)"]),
    ("matmul_function", lambda: C.matmul(Input("x", (3, 4)), Param("W", (5, 6))), ["matmul", "(3, 4)", "(5, 6)"]),
    ("matmul_vectors", lambda: Input("u", (3,)) @ Input("v", (4,)), ["matmul", "(3,)", "(4,)"]),
    ("matmul_batch", lambda: Input("a", (2, 3, 4)) @ Input("b", (5, 4, 2)), ["matmul", "(2, 3, 4)", "(5, 4, 2)"]),
    ("matmul_scalar", lambda: C.matmul(Input("s", ()), Input("v", (3,))), ["matmul", "()", "(3,)"]),
    ("add", lambda: Input("x", (3,)) + Input("y", (4,)), ["add", "(3,)", "(4,)", "broadcast"]),
    ("mul_matrices", lambda: Input("x", (2, 3)) * Input("y", (3, 2)), ["mul", "(2, 3)", "(3, 2)", "broadcast"]),
    ("sub_symbolic", lambda: Input("x", ("batch", 3)) - Input("y", ("time", 3)), ["sub", "batch", "time"]),
    ("maximum", lambda: C.maximum(Input("x", (3,)), Input("y", (2,))), ["maximum", "(3,)", "(2,)"]),
    ("where", lambda: C.where(Input("c", (3,)) > 0, Input("a", (4,)), 0.0), ["where", "(3,)", "(4,)"]),
    ("user_elementwise", lambda: C.elementwise(lambda a, b: a * b, name="my_op")(Input("x", (3,)), Input("y", (2,))),
     ["my_op", "(3,)", "(2,)"]),
    ("mse", lambda: C.mse(Input("p", (3, 4)), Input("t", (3, 5))), ["(3, 4)", "(3, 5)"]),
    ("broadcast_to", lambda: C.broadcast_to(Input("x", (3,)), (4, 2)), ["broadcast_to", "(3,)", "(4, 2)"]),
    ("broadcast_to_rank", lambda: C.broadcast_to(Input("x", (2, 3)), (3,)), ["broadcast_to", "(2, 3)", "(3,)"]),
    ("reshape", lambda: Input("x", (3, 4)).reshape(5, 3), ["reshape", "(3, 4)", "(5, 3)"]),
    ("reshape_function", lambda: C.reshape(Input("x", (3, 4)), (7,)), ["reshape", "(3, 4)", "(7,)"]),
    ("reshape_infer", lambda: Input("x", (3, 4)).reshape(-1, 5), ["reshape", "(3, 4)", "(-1, 5)"]),
    ("reshape_two_unknowns", lambda: Input("x", (3, 4)).reshape(2, -1, -1), ["reshape", "-1"]),
    ("einsum", lambda: C.einsum("ij,jk->ik", Input("a", (3, 4)), Input("b", (5, 6))), ["einsum", "(3, 4)", "(5, 6)", "'j'"]),
    ("einsum_rank", lambda: C.einsum("ij,jk->ik", Input("a", (3, 4)), Input("b", (4,))), ["einsum", "'jk'", "(4,)"]),
    ("einsum_operand_count", lambda: C.einsum("ij,jk->ik", Input("a", (3, 4))), ["einsum", "operand"]),
    ("einsum_output", lambda: C.einsum("ij->iz", Input("a", (3, 4))), ["einsum", "'iz'"]),
    ("concat", lambda: C.concat([Input("a", (3, 4)), Input("b", (3, 5))], axis=0), ["concat", "(3, 4)", "(3, 5)"]),
    ("stack", lambda: C.stack([Input("a", (3, 4)), Input("b", (3, 5))]), ["stack", "(3, 4)", "(3, 5)"]),
    ("transpose", lambda: Input("x", (3, 4)).transpose(0, 0), ["transpose", "(3, 4)"]),
    ("sum_axis", lambda: Input("x", (3, 4)).sum(axis=2), ["sum", "axis 2"]),
    ("softmax_axis", lambda: C.softmax(Input("x", (3, 4)), axis=5), ["softmax", "axis 5"]),
    ("getitem_range", lambda: Input("x", (3, 4))[3], ["getitem", "3", "size 3"]),
    ("getitem_zero_step", lambda: Input("x", (3, 4))[::0], ["getitem", "step", "zero"]),
    ("getitem_too_many", lambda: Input("x", (3,))[0, 0], ["getitem", "(3,)"]),
    ("cross_entropy_float_labels", lambda: C.cross_entropy(Input("z", (3, 4)), Input("l", (3,))),
     ["cross_entropy", "(3, 4)", "(3,)", "float32"]),
    ("cross_entropy_batch", lambda: C.cross_entropy(Input("z", (3, 4)), Input("l", (4,), dtype="int64")),
     ["cross_entropy", "(3, 4)", "(4,)"]),
    ("input_dtype", lambda: Input("x", (3,), dtype="complex64"), ["Input('x')", "complex64", "float32"]),
    ("param_dtype", lambda: Param("W", (3,), dtype="float16"), ["Param('W')", "float16"]),
    ("astype_dtype", lambda: Input("x", (3,)).astype("complex64"), ["astype", "complex64"]),
    ("const_dtype", lambda: C.const(np.array([1j])), ["const", "complex"]),
    ("input_shape", lambda: Input("x", (3, -1)), ["Input('x')", "-1"]),
    ("input_shape_float", lambda: Input("x", (3.5,)), ["Input('x')", "3.5"]),
    ("param_init", lambda: Param("W", (2,), init="uniformly"), ["Param('W')", "uniformly", "glorot_uniform"]),
    ("param_symbolic", lambda: Param("W", ("batch", 2)), ["Param('W')", "batch"]),
    ("leaf_name", lambda: Input("not a name", (2,)), ["Input", "not a name"]),
]


@pytest.mark.parametrize("declare,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_names_op_shapes_and_the_declaring_line(declare, fragments):
    message, location = declaration_error(declare)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert location in message, f"{location!r} missing from: {message}"
    assert "compiler" + os.sep not in message.split("declared at")[-1]


def test_errors_are_value_errors():
    assert issubclass(GraphError, ValueError)


def test_the_line_is_the_users_even_through_composite_ops():
    def model(x):
        return C.cross_entropy(C.tanh(x @ Param("W_composite", (4, 3))), Input("labels_composite", (4,), dtype="int64"))

    with pytest.raises(GraphError) as info:
        model(Input("x_composite", (5, 4)))
    line = model.__code__.co_firstlineno + 1
    assert f"{THIS_FILE}:{line}" in str(info.value)
    assert "cross_entropy" in str(info.value)


# ---- one name, two leaves -------------------------------------------------------------------------


def _two_leaves_named_dup():
    first = Input("dup_leaf", (3,))
    first_line = _two_leaves_named_dup.__code__.co_firstlineno + 1
    second = Input("dup_leaf", (1,))
    second_line = first_line + 2
    return first + second, first, second, first_line, second_line


@pytest.mark.parametrize("use", ["leaves", "grad", "evaluate", "show_leaves_of_list"])
def test_two_leaves_with_one_name_name_both_declaration_lines(use):
    total, first, second, first_line, second_line = _two_leaves_named_dup()
    actions = {
        "leaves": lambda: C.leaves(total),
        "grad": lambda: C.grad(total.sum(), first),
        "evaluate": lambda: C.evaluate(total, {"dup_leaf": np.zeros(3)}),
        "show_leaves_of_list": lambda: C.leaves([first, second]),
    }
    with pytest.raises(GraphError) as info:
        actions[use]()
    message = str(info.value)
    assert "dup_leaf" in message
    assert f"{THIS_FILE}:{first_line}" in message and f"{THIS_FILE}:{second_line}" in message
    assert "(3,)" in message and "(1,)" in message


def test_an_input_and_a_param_with_one_name_conflict():
    x, w = Input("shared_name", (2,)), Param("shared_name", (2,))
    with pytest.raises(GraphError, match="shared_name"):
        C.leaves(x * w)


def test_same_name_different_dtype_conflicts():
    a, b = Input("dtype_dup", (2,)), Input("dtype_dup", (2,), dtype="float64")
    with pytest.raises(GraphError, match="float32.*float64|float64.*float32"):
        C.evaluate(a + b, {"dtype_dup": np.zeros(2)})


def test_declaring_the_same_leaf_twice_is_one_leaf():
    total = Input("same_leaf", (3,)) + Input("same_leaf", (3,))
    assert C.leaves(total) == [Input("same_leaf", (3,))]


# ---- errors after declaration: grad and evaluate ------------------------------------------------


def test_grad_needs_a_scalar_float_output():
    x = Input("g_x", (3,))
    with pytest.raises(GraphError, match=r"scalar.*\(3,\)"):
        C.grad(x * 2, x)
    with pytest.raises(GraphError, match="float"):
        C.grad(Input("g_i", (3,), dtype="int64").sum(), x)
    with pytest.raises(TypeError):
        C.grad(x.sum(), [3])


def test_evaluate_names_missing_and_misshapen_values():
    x = Input("e_x", (3,))
    with pytest.raises(GraphError, match="e_x"):
        C.evaluate(x + 1, {})
    with pytest.raises(GraphError, match=r"e_x.*\(3,\).*\(4,\)"):
        C.evaluate(x + 1, {"e_x": np.zeros(4)})
    a, b = Input("e_a", ("n",)), Input("e_b", ("n",))
    with pytest.raises(GraphError, match="'n'"):
        C.evaluate(a + b, {"e_a": np.zeros(4), "e_b": np.zeros(3)})
