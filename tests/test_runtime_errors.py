"""Bad arguments raise TypeError or ValueError naming the argument, the expected and the actual value.

Nothing a caller passes reaches machine code unchecked: the worst cases also
run in a child process, whose exit status proves the interpreter survived.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import compiler as C
from compiler import Input, Param

@pytest.fixture(scope="module")
def fn():
    x = Input("x", ("batch", 3), dtype="float32")
    y = Input("y", ("batch", 1), dtype="float32")
    scale = Param("scale", (3,), dtype="float32")
    return C.compile([C.tanh(x * scale + y), x.sum(axis=0)])


def good(batch=2):
    return {"x": np.ones((batch, 3), np.float32), "y": np.zeros((batch, 1), np.float32),
            "scale": np.full(3, 0.5, np.float32)}


def with_(**changes):
    values = good()
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def raises(fn, error, values, *fragments):
    with pytest.raises(error) as caught:
        fn(**values)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the message: {message}"
    return message


def test_good_call_works(fn):
    out, total = fn(**good())
    np.testing.assert_allclose(out, np.tanh(np.full((2, 3), 0.5)), rtol=1e-6)
    np.testing.assert_array_equal(total, [2.0, 2.0, 2.0])


def test_wrong_name(fn):
    values = good()
    values["why"] = values.pop("y")
    raises(fn, TypeError, values, "missing", "'y'", "(batch, 1)", "unexpected 'why'")


def test_missing_argument(fn):
    raises(fn, TypeError, with_(scale=None), "missing", "'scale'", "(3,)", "float32")


def test_missing_every_argument(fn):
    raises(fn, TypeError, {}, "'x'", "'y'", "'scale'")


def test_extra_argument(fn):
    raises(fn, TypeError, with_(z=np.ones(3, np.float32)), "unexpected", "'z'", "'x'", "'y'", "'scale'")


def test_positional_arguments_are_refused(fn):
    with pytest.raises(TypeError):
        fn(good()["x"], good()["y"], good()["scale"])


@pytest.mark.parametrize("name, value, expected, actual", [
    ("x", np.ones((2, 4), np.float32), "(batch, 3)", "(2, 4)"),
    ("x", np.ones((2, 3, 1), np.float32), "(batch, 3)", "(2, 3, 1)"),
    ("x", np.ones(6, np.float32), "(batch, 3)", "(6,)"),
    ("x", np.float32(1.0) * np.ones((), np.float32), "(batch, 3)", "()"),
    ("scale", np.ones(4, np.float32), "(3,)", "(4,)"),
    ("scale", np.ones((1, 3), np.float32), "(3,)", "(1, 3)"),
    ("y", np.ones((2, 2), np.float32), "(batch, 1)", "(2, 2)"),
])
def test_wrong_shape(fn, name, value, expected, actual):
    raises(fn, ValueError, with_(**{name: value}), repr(name), expected, actual)


def test_inconsistent_batch_between_inputs(fn):
    raises(fn, ValueError, with_(y=np.zeros((5, 1), np.float32)), "argument 'y'", "(5, 1)", "'batch' = 5",
           "argument 'x' of shape (2, 3)", "'batch' = 2")


@pytest.mark.parametrize("dtype", ["float64", "int32", "float16", ">f4", "bool", "complex64", "object"])
def test_wrong_dtype(fn, dtype):
    value = np.ones((2, 3)).astype(dtype)
    raises(fn, TypeError, with_(x=value), "'x'", "float32", str(np.dtype(dtype)))


def test_transposed_view_is_refused(fn):
    view = np.ones((3, 2), np.float32).T
    assert view.shape == (2, 3)
    raises(fn, ValueError, with_(x=view), "'x'", "C-contiguous", "strides (12, 4)", "got strides (4, 8)")


def test_strided_slice_is_refused(fn):
    view = np.ones((2, 6), np.float32)[:, ::2]
    assert view.shape == (2, 3)
    raises(fn, ValueError, with_(x=view), "'x'", "C-contiguous", "strides (12, 4)", "got strides (24, 8)")


def test_fortran_order_is_refused(fn):
    raises(fn, ValueError, with_(x=np.asfortranarray(np.ones((2, 3), np.float32))), "'x'", "C-contiguous")


def test_misaligned_buffer_is_refused(fn):
    raw = np.zeros(2 * 3 * 4 + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, np.float32, 6, offset=1).reshape(2, 3)
    assert not misaligned.flags.aligned
    raises(fn, ValueError, with_(x=misaligned), "'x'", "aligned to its 4-byte elements", hex(misaligned.ctypes.data))


def test_zero_size_batch_is_refused(fn):
    values = with_(x=np.ones((0, 3), np.float32), y=np.ones((0, 1), np.float32))
    raises(fn, ValueError, values, "'x'", "'batch'", "(0, 3)")


@pytest.mark.parametrize("value, type_name", [
    ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "list"),
    (((1.0, 2.0, 3.0),), "tuple"),
    (1.0, "float"),
    (None, "NoneType"),
    ("x", "str"),
])
def test_non_arrays_are_refused(fn, value, type_name):
    values = good()
    values["x"] = value
    raises(fn, TypeError, values, "'x'", "numpy.ndarray", type_name)


def test_a_refused_call_leaves_the_function_usable(fn):
    with pytest.raises(ValueError):
        fn(**with_(y=np.zeros((7, 1), np.float32)))
    out, total = fn(**good(batch=4))
    assert out.shape == (4, 3)
    np.testing.assert_array_equal(total, [4.0, 4.0, 4.0])


def test_read_only_and_subclass_arrays_are_accepted(fn):
    values = good()
    values["x"].setflags(write=False)
    out, _ = fn(**values)
    assert out.shape == (2, 3)


WORST_CASES = textwrap.dedent("""
    import numpy as np
    import compiler as C

    x = C.Input("x", ("batch", 3), dtype="float32")
    y = C.Input("y", ("batch", 1), dtype="float32")
    w = C.Param("w", (3, 2), dtype="float32")
    fn = C.compile([C.tanh(x @ w + y), (x * y).sum()])

    def good(batch=2):
        return {"x": np.ones((batch, 3), np.float32), "y": np.ones((batch, 1), np.float32),
                "w": np.ones((3, 2), np.float32)}

    bad = []
    for name, value in [("x", np.ones((0, 3), np.float32)), ("x", np.ones((3, 2), np.float32).T),
                        ("x", np.ones((2, 6), np.float32)[:, ::2]), ("x", [[1, 2, 3]]), ("x", None),
                        ("x", np.ones((2, 3), np.float64)), ("x", np.ones((10 ** 6, 3), np.float32)[:1]),
                        ("x", np.ones((2, 3), np.float32)[::-1]),
                        ("w", np.ones((2, 3), np.float32)), ("w", np.ones((3, 2), np.float32).T.copy().T),
                        ("y", np.ones((1, 1), np.float32)), ("y", np.ones((2,), np.float32)),
                        ("x", np.frombuffer(np.zeros(25, np.uint8).data, np.float32, 6, 1).reshape(2, 3))]:
        values = good()
        values[name] = value
        bad.append(values)
    bad.append({k: v for k, v in good().items() if k != "w"})
    bad.append({**good(), "extra": np.ones(1)})
    bad.append({})

    refused = 0
    for values in bad:
        try:
            fn(**values)
        except (TypeError, ValueError):
            refused += 1
    out, total = fn(**good(5))
    assert out.shape == (5, 2) and np.allclose(out, np.tanh(4.0)) and np.isclose(total, 15.0)
    print("refused", refused, "of", len(bad))
""")


def test_worst_inputs_never_crash_a_fresh_process():
    result = subprocess.run([sys.executable, "-c", WORST_CASES], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ))
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stderr[-3000:]}"
    refused, total = result.stdout.split()[1], result.stdout.split()[3]
    assert refused == total, result.stdout
