"""The check every declaration-error table shares: the GraphError names what it must and the user's line."""
from __future__ import annotations

import os

import pytest

from compiler import GraphError


def assert_names_shapes_and_line(declare, fragments) -> None:
    """`declare()` raises a GraphError whose message holds every fragment and the file and line where
    `declare` was written (never a line inside the compiler)."""
    with pytest.raises(GraphError) as info:
        declare()
    message = str(info.value)
    location = f"{os.path.basename(declare.__code__.co_filename)}:{declare.__code__.co_firstlineno}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert location in message, f"{location!r} missing from: {message}"
    assert "compiler" + os.sep not in message.split("declared at")[-1]
