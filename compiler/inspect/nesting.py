"""How deeply a sympy expression nests, measured without recursion.

sympy walks its expressions recursively: printing, ``subs``, ``doit``, even the
``shape`` of a matrix product recurse once per level of nesting. A graph of
1,500 layers written out as one expression is 1,500 (or more) levels deep and
exhausts Python's recursion limit. The mathematics views therefore measure
each intermediate's depth as they build it and, past ``MAX_NESTING`` levels,
write that intermediate as a named symbol with its definition listed, so no
expression they build or print is deeper than about ``MAX_NESTING`` levels
plus the depth of one node's own formula.
"""
from __future__ import annotations

import itertools

MAX_NESTING = 40


class NestingDepth:
    """depth(expr): the number of levels in `expr` (an atom is 1), remembered per subexpression."""

    def __init__(self):
        self._depth = {}

    def __call__(self, expr) -> int:
        known = self._depth
        if expr in known:
            return known[expr]
        stack = [expr]
        while stack:
            top = stack[-1]
            if top in known:
                stack.pop()
                continue
            args = getattr(top, "args", ())
            pending = [a for a in args if a not in known]
            if pending:
                stack.extend(pending)
                continue
            known[top] = 1 + max((known[a] for a in args), default=0)
            stack.pop()
        return known[expr]


def fresh_names(prefix: str, taken):
    """prefix1, prefix2, ... skipping the names in `taken`."""
    taken = set(taken)
    return (name for name in (f"{prefix}{k}" for k in itertools.count(1)) if name not in taken)


def check_max_depth(max_depth):
    if max_depth is not None and (not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < 1):
        raise ValueError(f"max_depth must be a positive integer or None, got {max_depth!r}")
    return max_depth


SHARED_DEPTH = 4
MAX_WIDTH = 16


class TooDeep(Exception):
    """Raised by a first, plain attempt when an intermediate nests too deeply."""


class Namer:
    """Decides which intermediates of a graph become named symbols, by the depth of their expressions.

    A graph whose expressions all stay within `max_depth` levels is written as it
    always was (``deep=False``: nothing is named; ``check`` raises ``TooDeep`` at
    the first expression past the bound, and the caller starts again with
    ``deep=True``). A deep graph (``deep=True``) names every intermediate that
    would nest past the bound, and also every intermediate used by two or more
    nodes once it is more than ``SHARED_DEPTH`` levels deep: a long chain then
    reads as one short definition per layer instead of each layer written out
    again inside every later one (which makes the text grow quadratically). A sum
    (or product) of more than ``MAX_WIDTH`` terms is named too, so a gradient that
    adds one term per layer is a chain of partial sums, not one sum that sympy
    would sort and combine again for every term added.
    """

    def __init__(self, output, order, define, max_depth, deep: bool):
        self.output, self.max_depth, self.deep = output, max_depth, deep
        self.depth = NestingDepth()
        self.users = {}
        if deep:
            for node in order:
                if node not in define:
                    for a in set(node.args):
                        self.users[a] = self.users.get(a, 0) + 1

    def named(self, node, expr, define) -> bool:
        """Whether `node`, whose expression is `expr`, is written as a symbol."""
        if self.max_depth is None or node is self.output or not node.args or node in define:
            return False
        depth = self.depth(expr)
        if not self.deep:
            if depth > self.max_depth:
                raise TooDeep
            return False
        return (depth > self.max_depth or len(getattr(expr, "args", ())) > MAX_WIDTH
                or (self.users.get(node, 0) > 1 and depth > SHARED_DEPTH))


def written_with_names(build, output, order, define, max_depth):
    """``build(namer)``, first plainly; for a graph too deep for that, with a deep Namer."""
    try:
        return build(Namer(output, order, define, max_depth, deep=False))
    except TooDeep:
        return build(Namer(output, order, define, max_depth, deep=True))
