"""Two sides' counts and digests, table by table and dataset by dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annota.server.archive.snapshot import Figures
from annota.server.archive.values import Digest


@dataclass
class Comparison:
    tables: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def differences(self) -> list[str]:
        return ([f"table {t['name']}" for t in self.tables if not t["equal"]]
                + [f"dataset {d['id']}" for d in self.datasets if not d["equal"]])

    @property
    def equal(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {"equal": self.equal, "differences": self.differences, "tables": self.tables,
                "datasets": self.datasets}


def compare(left: Figures, right: Figures, left_name: str, right_name: str) -> Comparison:
    result = Comparison()
    for name in sorted(set(left.tables) | set(right.tables)):
        result.tables.append(_side(name, left.tables.get(name), right.tables.get(name),
                                   left_name, right_name, "name"))
    for key in sorted(set(left.datasets) | set(right.datasets)):
        result.datasets.append(_side(key, left.datasets.get(key), right.datasets.get(key),
                                     left_name, right_name, "id"))
    return result


def _side(key: str, a: Digest | None, b: Digest | None, left: str, right: str,
          label: str) -> dict[str, Any]:
    a, b = a or Digest(), b or Digest()
    return {label: key, f"{left}_rows": a.rows, f"{right}_rows": b.rows,
            f"{left}_digest": a.hex, f"{right}_digest": b.hex, "equal": a == b}
