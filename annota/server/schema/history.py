"""The release-tagged revision history, read without importing Alembic.

Each file in ``annota/alembic/versions`` declares ``revision``, ``down_revision``,
``release`` (the annota release that ships it) and ``data_loss`` (what its downgrade
destroys, or ``None``). A contract revision may also declare its release gate:
``requires_backfills`` and ``requires_async_migrations``, the jobs that must be finished
before the schema moves past it (see ``gates.py``). Their module-level constants are
read with ``ast`` so that listing the history costs milliseconds; a test checks that
Alembic sees the same graph.

A release's tag is the last revision of that release: tags are derived, never listed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from annota.errors import AnnotaError, UnknownRevisionError

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "alembic" / "versions"
_FIELDS = ("revision", "down_revision", "release", "data_loss", "requires_backfills",
           "requires_async_migrations")

# the revision that creates the operational tables (backfill_jobs, async_migrations):
# commands that only read or cancel jobs work from here on, not only at head
JOBS_TABLES_REVISION = "11b5d9c26e5c"
# the revision that creates the last table of JSON documents (suggestions)
DOCUMENTS_REVISION = "85fb5a1c553f"


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    release: str
    description: str
    data_loss: str | None
    path: Path
    requires_backfills: tuple[str, ...] = ()
    requires_async_migrations: tuple[str, ...] = ()
    async_migrations: tuple[str, ...] = ()  # the AsyncMigration(name=...) it declares

    @property
    def gated(self) -> bool:
        return bool(self.requires_backfills or self.requires_async_migrations)


@dataclass(frozen=True)
class ReleaseTag:
    release: str
    revision: str


@dataclass(frozen=True)
class Step:
    """One revision applied in one direction."""

    revision: Revision
    direction: str  # "upgrade" | "downgrade"

    @property
    def loses_data(self) -> bool:
        return self.direction == "downgrade" and self.revision.data_loss is not None


@dataclass(frozen=True)
class Plan:
    current: str | None
    target: str | None
    steps: tuple[Step, ...]

    @property
    def direction(self) -> str:
        if not self.steps:
            return "none"
        return self.steps[0].direction

    @property
    def data_loss(self) -> list[Step]:
        return [s for s in self.steps if s.loses_data]


def _read(path: Path) -> Revision:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in _FIELDS:
                    values[target.id] = ast.literal_eval(node.value)
    missing = [f for f in ("revision", "release") if f not in values]
    if missing:
        raise AnnotaError(f"revision file {path.name} does not declare {', '.join(missing)}")
    doc = (ast.get_docstring(tree) or "").strip().splitlines()
    heavy = tuple(k.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and getattr(node.func, "id", None) == "AsyncMigration"
                  for k in node.keywords if k.arg == "name" and isinstance(k.value, ast.Constant))
    return Revision(
        revision=str(values["revision"]),
        down_revision=values.get("down_revision"),  # type: ignore[arg-type]
        release=str(values["release"]),
        description=doc[0] if doc else "",
        data_loss=values.get("data_loss"),  # type: ignore[arg-type]
        path=path,
        requires_backfills=tuple(values.get("requires_backfills", ())),  # type: ignore[arg-type]
        requires_async_migrations=tuple(
            values.get("requires_async_migrations", ())),  # type: ignore[arg-type]
        async_migrations=heavy,
    )


class History:
    """The linear revision history, oldest first."""

    def __init__(self, revisions: list[Revision]) -> None:
        by_id = {r.revision: r for r in revisions}
        if len(by_id) != len(revisions):
            raise AnnotaError("two revision files declare the same revision id")
        children: dict[str | None, list[Revision]] = {}
        for r in revisions:
            children.setdefault(r.down_revision, []).append(r)
        branched = {k: v for k, v in children.items() if len(v) > 1}
        if branched:
            parent, kids = next(iter(branched.items()))
            raise AnnotaError(
                f"the revision history branches at {parent or 'base'} into "
                f"{', '.join(k.revision for k in kids)}; merge it into one line"
            )
        ordered: list[Revision] = []
        parent: str | None = None
        while parent in children:
            ordered.append(children[parent][0])
            parent = ordered[-1].revision
        if len(ordered) != len(revisions):
            orphans = sorted(set(by_id) - {r.revision for r in ordered})
            raise AnnotaError(f"revisions not connected to the history: {', '.join(orphans)}")
        self.revisions = ordered
        self._index = {r.revision: i for i, r in enumerate(ordered)}

    @classmethod
    def load(cls, directory: Path = VERSIONS_DIR) -> History:
        files = sorted(p for p in directory.glob("*.py") if p.name != "__init__.py")
        return cls([_read(p) for p in files])

    @property
    def head(self) -> Revision:
        return self.revisions[-1]

    @property
    def heads(self) -> list[str]:
        parents = {r.down_revision for r in self.revisions}
        return [r.revision for r in self.revisions if r.revision not in parents]

    @property
    def tags(self) -> list[ReleaseTag]:
        last: dict[str, str] = {}
        for r in self.revisions:
            last[r.release] = r.revision
        return [ReleaseTag(release, rev) for release, rev in last.items()]

    def __contains__(self, revision: object) -> bool:
        return revision in self._index

    def get(self, revision: str) -> Revision:
        return self.revisions[self._index[revision]]

    def position(self, revision: str | None) -> int:
        """0 for base (an empty database), i + 1 for the i-th revision."""
        return 0 if revision is None else self._index[revision] + 1

    def tag_of(self, revision: str) -> str | None:
        return next((t.release for t in self.tags if t.revision == revision), None)

    def resolve(self, target: str) -> str | None:
        """A release tag, revision id or unique prefix, ``head`` or ``base`` -> revision id."""
        target = target.strip()
        if target == "head":
            return self.head.revision
        if target == "base":
            return None
        for tag in self.tags:
            if tag.release == target:
                return tag.revision
        if target in self._index:
            return target
        matches = [r.revision for r in self.revisions if len(target) >= 4 and
                   r.revision.startswith(target)]
        if len(matches) == 1:
            return matches[0]
        known = [t.release for t in self.tags]
        if len(matches) > 1:
            raise UnknownRevisionError(
                f"revision prefix {target!r} is ambiguous: {', '.join(matches)}", known
            )
        raise UnknownRevisionError(
            f"unknown release or revision {target!r}; known releases: {', '.join(known)} "
            "(or a revision id, 'head', 'base')",
            known,
        )

    def plan(self, current: str | None, target: str | None) -> Plan:
        here, there = self.position(current), self.position(target)
        if there >= here:
            steps = [Step(r, "upgrade") for r in self.revisions[here:there]]
        else:
            steps = [Step(r, "downgrade") for r in reversed(self.revisions[there:here])]
        return Plan(current, target, tuple(steps))


@cache
def history() -> History:
    return History.load()
