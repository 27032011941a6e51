"""What the embedded engine keeps in memory per index (the vector matrices, the columns):
held least recently used first out, and caught up with the index's writes by sequence
number; rows found by record id through a rid -> row map."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

KEPT = 8  # per kind, the structures kept in memory (the least recently used dropped)


class Sequenced(Protocol):
    seq: int  # the index's write sequence the structure has caught up to


T = TypeVar("T", bound=Sequenced)


class Kept(Generic[T]):
    def __init__(self) -> None:
        self._kept: OrderedDict[tuple, T] = OrderedDict()
        self.lock = threading.RLock()

    def get(self, key: tuple, seqs: tuple[int, int], make: Callable[[], T],
            catch_up: Callable[[T], None]) -> T:
        """The structure of ``key``, caught up. ``seqs``: the index's write sequence now,
        and the one below which its log of deletions was pruned (a structure older than
        that is made again, whole). Call with ``lock`` held, and keep it while reading."""
        seq, floor = seqs
        item = self._kept.pop(key, None)
        if item is None or item.seq < floor:
            item = make()
        self._kept[key] = item
        while len(self._kept) > KEPT:
            self._kept.popitem(last=False)
        if item.seq != seq:
            catch_up(item)
            item.seq = seq
        return item


def rid_map(rids: np.ndarray) -> np.ndarray:
    """rid -> its row (-1: none), for rows ``rids``."""
    at = np.full(int(rids.max()) + 1 if len(rids) else 0, -1, dtype=np.int64)
    at[rids] = np.arange(len(rids))
    return at


def rows_of(at: np.ndarray, rids: Any) -> np.ndarray:
    """The rows of ``rids`` that are held (no sort, no search)."""
    wanted = np.asarray(rids, dtype=np.int64)
    found = at[wanted[wanted < len(at)]]
    return found[found >= 0]
