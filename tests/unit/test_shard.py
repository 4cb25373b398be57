"""--shard i/N: deterministic, disjoint, complete, even shares."""

from __future__ import annotations

import random

import pytest

from harness.shard import Shard, ShardError

IDS = [f"auth.s{n}[{t}]" for n in range(17) for t in ("prosody", "ejabberd", "jabberd2")]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 60])
def test_shards_are_disjoint_complete_and_even(count: int) -> None:
    shares = [Shard(i, count).keeps(IDS) for i in range(1, count + 1)]
    assert set().union(*shares) == set(IDS)
    assert sum(len(s) for s in shares) == len(IDS)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_a_share_does_not_depend_on_the_order_items_came_in() -> None:
    shuffled = list(IDS)
    random.Random(4).shuffle(shuffled)
    assert Shard(2, 4).keeps(shuffled) == Shard(2, 4).keeps(IDS)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_bad_values_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ShardError, match="--shard"):
        Shard.parse(text)


def test_parse_and_print() -> None:
    assert Shard.parse(" 2/3 ") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
