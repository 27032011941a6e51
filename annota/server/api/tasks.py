"""Work the server runs in the background for a request, polled by id: a dataset's
reindex (``POST /api/v1/datasets/{id}/reindex``, the dashboard's Reindex button).

A task runs in a thread of the server process; the reindex itself is the command's
(zero downtime, under its lease, so two tasks or a task and the command on the same
dataset do not both build: the second waits for the first). Tasks are kept in memory,
the newest ``KEEP``: a restarted server forgets them, not the indices they built.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from annota.errors import AnnotaError

KEEP = 200


@dataclass
class Task:
    id: str
    kind: str
    dataset_id: str
    status: str = "queued"  # queued | running | finished | failed
    queued_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "dataset_id": self.dataset_id,
                "status": self.status, "queued_at": self.queued_at,
                "finished_at": self.finished_at, "result": self.result, "error": self.error}


class Tasks:
    def __init__(self) -> None:
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, kind: str, dataset_id: str, work: Callable[[], dict[str, Any]]) -> Task:
        task = Task(uuid.uuid4().hex, kind, dataset_id)
        with self._lock:
            self._tasks[task.id] = task
            while len(self._tasks) > KEEP:
                self._tasks.popitem(last=False)

        def run() -> None:
            task.status = "running"
            try:
                task.result = work()
                task.status = "finished"
            except AnnotaError as exc:
                task.error, task.status = str(exc), "failed"
            except Exception as exc:  # noqa: BLE001 - a task's failure is reported, not raised
                task.error, task.status = f"{type(exc).__name__}: {exc}", "failed"
            task.finished_at = time.time()

        threading.Thread(target=run, name=f"annota-{kind}-{dataset_id}", daemon=True).start()
        return task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def running(self, dataset_id: str) -> Task | None:
        with self._lock:
            return next((t for t in reversed(self._tasks.values())
                         if t.dataset_id == dataset_id and t.status in ("queued", "running")),
                        None)
