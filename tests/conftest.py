"""Session-wide test setup shared by every test file."""
import os
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_program_cache(tmp_path_factory):
    """Compiled programs go to a fresh directory: tests never read or fill the user's cache."""
    previous = os.environ.get("SYMPROP_CACHE_DIR")
    os.environ["SYMPROP_CACHE_DIR"] = str(tmp_path_factory.mktemp("symprop-cache"))
    yield
    if previous is None:
        os.environ.pop("SYMPROP_CACHE_DIR", None)
    else:
        os.environ["SYMPROP_CACHE_DIR"] = previous


DEFAULT_RECURSION_LIMIT = 1000


@pytest.fixture
def default_recursion_limit():
    """The test runs under (and leaves) Python's default limit: depth must come from loops, not recursion."""
    assert sys.getrecursionlimit() == DEFAULT_RECURSION_LIMIT
    yield
    assert sys.getrecursionlimit() == DEFAULT_RECURSION_LIMIT
