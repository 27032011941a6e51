"""Batch sizes that follow the database: each backfill batch aims at a transaction time
(``ANNOTA_BACKFILL_BATCH_SECONDS``, 0.1 s by default), short enough that the app's
writers and a cancel never wait long behind it, long enough that a batch's fixed costs
(the job row's update, the commit) stay small."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchSizer:
    size: int  # the next batch's size
    target: float  # seconds per batch transaction
    smallest: int = 10
    largest: int = 50_000

    def measured(self, records: int, seconds: float) -> int:
        """After a batch of ``records`` that took ``seconds``: the next size. A partial
        (final) batch or one too fast to time says nothing; otherwise the size moves
        toward the target, at most halved or doubled per batch (one slow batch, such as a
        checkpoint, does not collapse it)."""
        if records < self.size or seconds <= 0:
            return self.size
        ideal = self.size * self.target / seconds
        bounded = min(2.0 * self.size, max(self.size / 2.0, ideal))
        self.size = int(min(self.largest, max(self.smallest, bounded)))
        return self.size
