"""What a kernel reads from a gather: an element of a buffer at a position an integer buffer holds
(``gather_kernels.py`` builds and emits it)."""
from __future__ import annotations

from dataclasses import dataclass

from .access import Access


@dataclass(frozen=True)
class GatherLoad:
    """Element of `source` whose index has one extra axis (axis n of an n-axis loop) set to the id
    `ids` holds at the iteration point; 0 where the id is outside [0, size)."""

    source: Access  # a's buffer, index over the loop axes and the id axis
    ids: Access  # integer buffer, index over the loop axes (its bounds: the read's and the ids' own)
    size: int  # the gathered axis: valid ids are 0 <= id < size
    outer: int  # how many of ids.index.valid are the read's own bounds (their fill is not an id)
    axis: int  # the id's axis in source's index: the number of loop axes

    def reads(self) -> tuple:
        return self.source, self.ids

    def __str__(self):
        return (f"{self.source.describe(self.source.buffer.name)} at i{self.axis} = "
                f"{self.ids.describe(self.ids.buffer.name)} if 0<=i{self.axis}<{self.size}")
