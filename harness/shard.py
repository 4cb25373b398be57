"""Sharding: a deterministic share of a run's items, so that CI jobs or machines split a matrix.

Shard ``i/N`` takes every N-th item, starting with the i-th, of the items sorted by id (round
robin over the sorted ids keeps the shares even and does not depend on collection order). Every
shard of the same selection gets the same item list to split, so the N shards together run each
item exactly once; ``interop merge`` puts their results back together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORM = re.compile(r"^(\d+)/(\d+)$")


class ShardError(ValueError):
    """A ``--shard`` value that is not ``i/N`` with 1 <= i <= N."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _FORM.match(text.strip())
        if not match:
            raise ShardError(f"--shard {text!r}: write i/N, e.g. 1/4")
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= index <= count:
            raise ShardError(f"--shard {text!r}: i must be between 1 and N")
        return cls(index, count)

    def keeps(self, item_ids: list[str]) -> set[str]:
        """The ids of ``item_ids`` this shard runs."""
        ordered = sorted(set(item_ids))
        return {item for position, item in enumerate(ordered) if position % self.count == self.index - 1}

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
