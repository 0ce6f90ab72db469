"""Errors raised while declaring graphs, located at the user's line.

A shape error is useless if it points into symprop: every declaration records
the first stack frame outside this package, and messages name it.
"""
from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class GraphError(ValueError):
    """A graph that cannot be built as declared (shape, dtype, name, argument)."""


def user_location() -> str:
    """'file:line' of the innermost stack frame outside the compiler package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def fail(op: str, message: str, location: str | None = None) -> GraphError:
    """Build a GraphError for `op` that names the declaring line."""
    return GraphError(f"{op}: {message} (declared at {location or user_location()})")
