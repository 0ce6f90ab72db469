"""Bad convolutions and poolings fail at declaration, naming the shapes involved and the user's line.

Each bad declaration is a one-line lambda, so the line that declared it is the lambda's first line;
the GraphError's message must name it (this file and that line), the op, and the shapes that
disagree: x's and w's for a convolution, x's and the kernel's for a pooling.
"""
import os

import pytest

import compiler as C
from compiler import GraphError, Input
from declaration_errors import assert_names_shapes_and_line

THIS_FILE = os.path.basename(__file__)


def x(*shape):
    return Input("x", shape, dtype="float64")


def w(*shape):
    return Input("w", shape, dtype="float64")


CASES = [
    # (id, declaration, fragments the message must contain)
    # channels
    ("conv2d_channels", lambda: C.conv2d(x(2, 3, 8, 8), w(4, 2, 3, 3)), ["conv2d", "(2, 3, 8, 8)", "(4, 2, 3, 3)", "channels"]),
    ("conv2d_channels_groups", lambda: C.conv2d(x(2, 4, 8, 8), w(6, 1, 3, 3), groups=2),
     ["conv2d", "(2, 4, 8, 8)", "(6, 1, 3, 3)", "channels"]),
    ("conv1d_channels", lambda: C.conv1d(x(2, 5, 9), w(4, 3, 3)), ["conv1d", "(2, 5, 9)", "(4, 3, 3)", "channels"]),
    ("conv2d_channels_symbolic_batch", lambda: C.conv2d(x("batch", 1, 8, 8), w(4, 3, 3, 3)),
     ["conv2d", "('batch', 1, 8, 8)", "(4, 3, 3, 3)"]),
    # kernel larger than the padded input
    ("conv2d_kernel_too_large", lambda: C.conv2d(x(1, 1, 4, 4), w(1, 1, 5, 5)), ["conv2d", "(1, 1, 4, 4)", "(1, 1, 5, 5)"]),
    ("conv2d_kernel_too_large_padded", lambda: C.conv2d(x(1, 1, 3, 7), w(1, 1, 6, 3), padding=1),
     ["conv2d", "(1, 1, 3, 7)", "(1, 1, 6, 3)", "padded"]),
    ("conv2d_dilated_kernel_too_large", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), dilation=3),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)"]),
    ("conv1d_kernel_too_large", lambda: C.conv1d(x(1, 2, 3), w(1, 2, 4)), ["conv1d", "(1, 2, 3)", "(1, 2, 4)"]),
    ("max_pool2d_kernel_too_large", lambda: C.max_pool2d(x(1, 1, 2, 5), 3), ["max_pool2d", "(1, 1, 2, 5)", "3"]),
    ("avg_pool2d_kernel_too_large", lambda: C.avg_pool2d(x(1, 1, 5, 2), (2, 5), padding=(0, 1)),
     ["avg_pool2d", "(1, 1, 5, 2)", "5"]),
    # groups
    ("conv2d_groups_input_channels", lambda: C.conv2d(x(1, 3, 5, 5), w(4, 1, 3, 3), groups=2),
     ["conv2d", "(1, 3, 5, 5)", "(4, 1, 3, 3)", "groups"]),
    ("conv2d_groups_output_channels", lambda: C.conv2d(x(1, 4, 5, 5), w(3, 2, 3, 3), groups=2),
     ["conv2d", "(1, 4, 5, 5)", "(3, 2, 3, 3)", "groups"]),
    ("conv1d_groups", lambda: C.conv1d(x(1, 6, 5), w(6, 1, 3), groups=4), ["conv1d", "(1, 6, 5)", "(6, 1, 3)", "groups"]),
    ("conv2d_groups_zero", lambda: C.conv2d(x(1, 4, 5, 5), w(4, 4, 3, 3), groups=0),
     ["conv2d", "(1, 4, 5, 5)", "(4, 4, 3, 3)", "groups"]),
    ("conv2d_groups_float", lambda: C.conv2d(x(1, 4, 5, 5), w(4, 2, 3, 3), groups=2.0),
     ["conv2d", "(1, 4, 5, 5)", "(4, 2, 3, 3)", "groups"]),
    # stride, padding, dilation values
    ("conv2d_stride_zero", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), stride=0),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "stride"]),
    ("conv2d_stride_three_values", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), stride=(1, 2, 1)),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "stride"]),
    ("conv2d_dilation_zero", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), dilation=(1, 0)),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "dilation"]),
    ("conv2d_padding_negative", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), padding=-1),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "padding"]),
    ("conv2d_padding_word", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), padding="full"),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "'full'"]),
    ("conv2d_padding_float", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), padding=1.5),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "padding"]),
    ("conv2d_same_with_stride", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), stride=2, padding="same"),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "same", "stride"]),
    ("conv2d_stride_float", lambda: C.conv2d(x(1, 2, 5, 5), w(3, 2, 3, 3), stride=1.5),
     ["conv2d", "(1, 2, 5, 5)", "(3, 2, 3, 3)", "stride"]),
    ("max_pool2d_kernel_float", lambda: C.max_pool2d(x(1, 1, 4, 4), 2.5), ["max_pool2d", "(1, 1, 4, 4)", "kernel"]),
    ("conv1d_padding_pair", lambda: C.conv1d(x(1, 2, 5), w(3, 2, 3), padding=(1, 1)),
     ["conv1d", "(1, 2, 5)", "(3, 2, 3)", "padding"]),
    ("max_pool2d_stride_zero", lambda: C.max_pool2d(x(1, 1, 4, 4), 2, stride=0), ["max_pool2d", "(1, 1, 4, 4)", "stride"]),
    ("max_pool2d_kernel_zero", lambda: C.max_pool2d(x(1, 1, 4, 4), (2, 0)), ["max_pool2d", "(1, 1, 4, 4)", "kernel"]),
    ("max_pool2d_padding_over_half", lambda: C.max_pool2d(x(1, 1, 4, 4), 2, padding=2),
     ["max_pool2d", "(1, 1, 4, 4)", "padding", "(2, 2)"]),
    ("avg_pool2d_padding_negative", lambda: C.avg_pool2d(x(1, 1, 4, 4), 3, padding=-1),
     ["avg_pool2d", "(1, 1, 4, 4)", "padding"]),
    # ranks and symbolic sizes
    ("conv2d_x_rank", lambda: C.conv2d(x(3, 8, 8), w(4, 3, 3, 3)), ["conv2d", "(3, 8, 8)", "(4, 3, 3, 3)"]),
    ("conv2d_w_rank", lambda: C.conv2d(x(1, 3, 8, 8), w(4, 3, 3)), ["conv2d", "(1, 3, 8, 8)", "(4, 3, 3)"]),
    ("conv1d_x_rank", lambda: C.conv1d(x(1, 3, 8, 8), w(4, 3, 3)), ["conv1d", "(1, 3, 8, 8)", "(4, 3, 3)"]),
    ("conv1d_w_rank", lambda: C.conv1d(x(1, 3, 8), w(4, 3, 3, 3)), ["conv1d", "(1, 3, 8)", "(4, 3, 3, 3)"]),
    ("conv2d_bias_shape", lambda: C.conv2d(x(1, 3, 8, 8), w(4, 3, 3, 3), Input("b", (3,), dtype="float64")),
     ["conv2d", "(1, 3, 8, 8)", "(4, 3, 3, 3)", "(3,)"]),
    ("conv2d_symbolic_channels", lambda: C.conv2d(x("batch", "c", 8, 8), w(4, 3, 3, 3)),
     ["conv2d", "('batch', 'c', 8, 8)", "(4, 3, 3, 3)"]),
    ("max_pool2d_x_rank", lambda: C.max_pool2d(x(3, 8, 8), 2), ["max_pool2d", "(3, 8, 8)"]),
    ("avg_pool2d_x_rank", lambda: C.avg_pool2d(x(2, 1, 3, 8, 8), 2), ["avg_pool2d", "(2, 1, 3, 8, 8)"]),
    ("flatten_order", lambda: C.flatten(x(2, 3, 4), 2, 1), ["flatten", "(2, 3, 4)"]),
    ("flatten_axis", lambda: C.flatten(x(2, 3), 3), ["flatten", "axis 3", "rank 2"]),
]


PARAMS = [pytest.param(*c[1:], id=c[0]) for c in CASES]


@pytest.mark.parametrize("declare,fragments", PARAMS)
def test_error_names_the_shapes_and_the_declaring_line(declare, fragments):
    assert_names_shapes_and_line(declare, fragments)


def test_the_line_is_the_users_through_a_helper():
    """A model function that declares the convolution: its line is the one named."""
    def model(inputs):
        hidden = C.relu(C.conv2d(inputs, w(8, 1, 3, 3), padding=1))
        return C.conv2d(hidden, w(4, 3, 3, 3))  # 8 channels, w expects 3

    with pytest.raises(GraphError) as info:
        model(x("batch", 1, 8, 8))
    line = model.__code__.co_firstlineno + 2
    assert f"{THIS_FILE}:{line}" in str(info.value)
    assert "('batch', 8, 8, 8)" in str(info.value) and "(4, 3, 3, 3)" in str(info.value)
