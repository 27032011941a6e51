"""One reindex per dataset at a time, across processes and machines: a lease held in the
search engine itself (a document per dataset in ``<prefix>.leases``).

The holder creates the document, then a thread renews it every ``RENEW_SECONDS``; each
renewal is a compare-and-set on the document's version, so two runs can never both hold
it. A waiting run watches the version: one that has not moved for ``STALE_SECONDS`` (of
the waiter's own clock; no clocks are compared across machines) belongs to a run that
died, and is taken over by the same compare-and-set. A holder whose renewal is refused
has lost the lease and must not switch any alias.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from annota.errors import ReindexBusyError, SearchEngineError, SearchEngineOverloadedError
from annota.search.engine import SearchEngine, Versioned

RENEW_SECONDS = 2.0
STALE_SECONDS = 10.0


def lease_index(prefix: str) -> str:
    return f"{prefix}.leases"


def live_builds(engine: SearchEngine, among: set[str], watch: float = STALE_SECONDS
                ) -> set[str]:
    """Of the indices ``among``, those running reindexes are building, wherever they run:
    named by a lease whose version moves while it is watched (up to ``watch`` seconds)."""
    name = lease_index(engine.prefix)
    if not among or not engine.indices(name):
        return set()
    leases = {lease_id: body["index"] for lease_id, body in engine.sources(name).items()
              if body.get("index") in among}
    first = {i: engine.get_document(name, i) for i in leases}
    alive: set[str] = set()
    deadline = time.monotonic() + watch
    while time.monotonic() < deadline and len(alive) < len(leases):
        time.sleep(min(0.5, watch))
        for lease_id, index in leases.items():
            now = engine.get_document(name, lease_id)
            # renewed, or released: a build that just ended swapped its index in or left
            # it for inspection; either way not an orphan to delete now
            if now is None or first[lease_id] is None or now[1] != first[lease_id][1]:
                alive.add(index)
    return alive


def _patiently(call: Callable[..., Any], *args: Any) -> Any:
    """A lease operation, sent again while the engine answers 429 (it is a single small
    document; an overloaded engine soon takes it)."""
    for attempt in range(8):
        try:
            return call(*args)
        except SearchEngineOverloadedError:
            time.sleep(min(5.0, 0.2 * 2**attempt))
    return call(*args)


class ReindexLease:
    def __init__(self, engine: SearchEngine, dataset_id: str, *, index: str = "",
                 renew_seconds: float = RENEW_SECONDS, stale_seconds: float = STALE_SECONDS
                 ) -> None:
        self.engine, self.dataset_id = engine, dataset_id
        self.name = lease_index(engine.prefix)
        self.renew_seconds, self.stale_seconds = renew_seconds, stale_seconds
        self.body = {"dataset_id": dataset_id, "owner": uuid.uuid4().hex, "index": index,
                     "host": socket.gethostname(), "pid": os.getpid(),
                     "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.version: Versioned | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    # -- acquiring ------------------------------------------------------------------------
    def acquire(self, timeout: float, on_wait: Callable[[dict], None] = lambda _: None) -> None:
        """Hold the lease, waiting up to ``timeout`` seconds for another run to finish (or
        to be seen dead); ``ReindexBusyError`` after that."""
        deadline = time.monotonic() + timeout
        seen: tuple[Versioned, float] | None = None
        told = False
        while True:
            self.version = _patiently(self.engine.create_document, self.name,
                                      self.dataset_id, self._beat())
            if self.version is not None:
                break
            current = _patiently(self.engine.get_document, self.name, self.dataset_id)
            if current is None:
                continue  # released meanwhile: try again at once
            holder, version = current
            if seen is None or seen[0] != version:
                seen = (version, time.monotonic())
            elif time.monotonic() - seen[1] >= self.stale_seconds:
                self.version = _patiently(self.engine.replace_document, self.name,
                                          self.dataset_id, self._beat(), version)
                if self.version is not None:
                    break  # its holder stopped renewing: taken over
            if time.monotonic() >= deadline:
                raise ReindexBusyError(
                    f"another reindex of dataset {self.dataset_id} is running (on "
                    f"{holder.get('host')}, pid {holder.get('pid')}, since "
                    f"{holder.get('since')}); wait for it, or raise --wait")
            if not told:
                on_wait(holder)
                told = True
            time.sleep(min(0.5, self.renew_seconds / 2))
        self._renewer = threading.Thread(target=self._renew_forever, daemon=True,
                                         name=f"reindex-lease-{self.dataset_id}")
        self._renewer.start()

    def _beat(self, **changes: Any) -> dict:
        self.body.update(changes, beat=time.time())
        return dict(self.body)

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            # an engine hiccup: the next beat tries again (staleness is generous)
            with contextlib.suppress(SearchEngineError):
                self.renew()

    def renew(self, **changes: Any) -> None:
        """One compare-and-set renewal; a refusal means another run took the lease."""
        with self._lock:
            if self.version is None or self.lost.is_set():
                return
            version = _patiently(self.engine.replace_document, self.name, self.dataset_id,
                                 self._beat(**changes), self.version)
            if version is None:
                self.lost.set()
            else:
                self.version = version

    def held(self) -> bool:
        """Still ours (renewed just now, to be sure before an irreversible step)."""
        self.renew()
        return not self.lost.is_set()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        with self._lock:
            if self.version is not None and not self.lost.is_set():
                _patiently(self.engine.delete_document, self.name, self.dataset_id,
                           self.version)
            self.version = None

    def __enter__(self) -> ReindexLease:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
