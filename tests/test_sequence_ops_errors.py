"""Bad layer_norm, rms_norm and attention declarations fail at declaration, naming the shapes and the line.

Each bad declaration is a one-line lambda; the GraphError's message must name the op, the shapes that
disagree (x's and gamma's or beta's; q's, k's, v's and the mask's) and the lambda's line.
"""

import pytest

import compiler as C
from compiler import Input
from declaration_errors import assert_names_shapes_and_line



def t(*shape, dtype="float64"):
    return Input("t", shape, dtype=dtype)


SDPA = C.scaled_dot_product_attention

CASES = [
    # (id, declaration, fragments the message must contain)
    ("layer_norm_gamma", lambda: C.layer_norm(t(2, 5), t(4), t(5)), ["layer_norm", "(2, 5)", "gamma (4,)", "(5,)"]),
    ("layer_norm_beta", lambda: C.layer_norm(t("batch", 3, 6), t(6), t(6, 1)),
     ["layer_norm", "('batch', 3, 6)", "beta (6, 1)", "(6,)"]),
    ("layer_norm_gamma_dtype", lambda: C.layer_norm(t(2, 5), t(5, dtype="float32")), ["layer_norm", "float32"]),
    ("layer_norm_integer_x", lambda: C.layer_norm(t(2, 5, dtype="int64")), ["layer_norm", "int64", "(2, 5)"]),
    ("layer_norm_scalar_x", lambda: C.layer_norm(t()), ["layer_norm", "x ()"]),
    ("layer_norm_eps", lambda: C.layer_norm(t(2, 5), eps=0), ["layer_norm", "eps"]),
    ("rms_norm_gamma", lambda: C.rms_norm(t(3, 4), t(3)), ["rms_norm", "x (3, 4)", "gamma (3,)", "(4,)"]),
    ("rms_norm_not_a_node", lambda: C.rms_norm(t(3, 4), [1.0] * 4), ["rms_norm", "gamma", "list"]),
    ("attention_features", lambda: SDPA(t(2, 4, 8), t(2, 5, 6), t(2, 5, 3)),
     ["scaled_dot_product_attention", "q (2, 4, 8)", "k (2, 5, 6)", "feature"]),
    ("attention_lengths", lambda: SDPA(t(4, 8), t(5, 8), t(6, 3)),
     ["scaled_dot_product_attention", "k (5, 8)", "v (6, 3)", "sequence length"]),
    ("attention_leading_dims", lambda: SDPA(t(2, 4, 8), t(3, 5, 8), t(3, 5, 2)),
     ["q (2, 4, 8)", "k (3, 5, 8)", "v (3, 5, 2)", "broadcast"]),
    ("attention_rank", lambda: SDPA(t(8), t(5, 8), t(5, 2)), ["q (8,)", "at least 2"]),
    ("attention_dtypes", lambda: SDPA(t(4, 8), t(5, 8, dtype="float32"), t(5, 2)), ["float32", "float64"]),
    ("attention_mask_shape", lambda: SDPA(t(4, 8), t(5, 8), t(5, 2), t(4, 4, dtype="bool")),
     ["q (4, 8)", "k (5, 8)", "mask (4, 4)", "(..., 4, 5)"]),
    ("attention_mask_dtype", lambda: SDPA(t(4, 8), t(5, 8), t(5, 2), t(4, 5, dtype="int64")), ["mask", "int64"]),
    ("attention_causal_symbolic", lambda: SDPA(t("T", 8), t("T", 8), t("T", 2), causal=True), ["causal", "'T'"]),
]


@pytest.mark.parametrize("declare,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_names_the_shapes_and_the_declaring_line(declare, fragments):
    assert_names_shapes_and_line(declare, fragments)