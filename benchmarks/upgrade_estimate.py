"""How good are `annota server upgrade`'s time estimates? Each part's estimate against its
actual time, on PostgreSQL, from release 1.0 with N records.

    python benchmarks/upgrade_estimate.py [--records 200000] [--engine sqlite|elasticsearch]

Seeds N records (a text field, 0-2 responses each, two annotators) in a PostgreSQL
database at release 1.0, kept as a template. Then, on two copies of it:

  (1) `upgrade` with no rates recorded (a fresh ANNOTA_HOME): every estimate is sampled;
  (2) `upgrade` again with the rates run (1) recorded in that ANNOTA_HOME.

It prints, per part, the estimate, the actual time and their ratio (target: within 2x
either way). PostgreSQL is ANNOTA_BENCH_POSTGRES_URL, else the test services' server
(scripts/services.py); the search engine is the embedded one unless --engine
elasticsearch (ANNOTA_TEST_ELASTICSEARCH_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annota.config import Settings  # noqa: E402
from annota.server.schema.migrate import migrate  # noqa: E402
from annota.urls import DatabaseURL  # noqa: E402

T0 = datetime(2024, 1, 1)


def admin(server: str) -> sa.Engine:
    return sa.create_engine(DatabaseURL.parse(server).sqlalchemy_url,
                            isolation_level="AUTOCOMMIT")


def database(server: str, name: str, template: str | None = None) -> str:
    with admin(server).connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"'
                          + (f' TEMPLATE "{template}"' if template else ""))
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def drop(server: str, name: str) -> None:
    with admin(server).connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, records: int) -> None:
    """Release 1.0's tables, filled: a dataset of ``records`` records with responses."""
    home = Path(tempfile.mkdtemp())
    migrate(Settings.from_env({"ANNOTA_HOME": str(home), "ANNOTA_DATABASE_URL": url}), "1.0")
    engine = sa.create_engine(DatabaseURL.parse(url).sqlalchemy_url)
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    stamp = {"inserted_at": T0, "updated_at": T0}
    users = [uuid.uuid4() for _ in range(2)]
    workspace, dataset = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as c:
        c.execute(t["users"].insert(), [dict(id=u, first_name="u", username=f"u{i}",
                  role="annotator", api_key=f"k{i}", password_hash="-", **stamp)
                  for i, u in enumerate(users)])
        c.execute(t["workspaces"].insert(), [dict(id=workspace, name="ws", **stamp)])
        c.execute(t["datasets"].insert(), [dict(id=dataset, name="ds", status="ready",
                                                workspace_id=workspace, **stamp)])
        c.execute(t["fields"].insert(), [dict(id=uuid.uuid4(), name="text", title="Text",
                  required=True, settings={"type": "text"}, dataset_id=dataset, **stamp)])
        c.execute(t["questions"].insert(), [dict(
            id=uuid.uuid4(), name="label", title="Label", required=True, dataset_id=dataset,
            settings={"type": "label_selection", "options": ["a", "b"]}, **stamp)])
    for start in range(0, records, 10_000):
        recs, resps = [], []
        for i in range(start, min(records, start + 10_000)):
            rid, when = uuid.uuid4(), T0 + timedelta(seconds=i)
            recs.append(dict(id=rid, fields={"text": f"record number {i} " * 4},
                             external_id=f"r{i}", dataset_id=dataset, inserted_at=when,
                             updated_at=when))
            for k, u in enumerate(users[: i % 3]):
                resps.append(dict(id=uuid.uuid4(), values={"label": {"value": "ab"[k]}},
                                  submitted=(i + k) % 4 != 3, record_id=rid, user_id=u,
                                  **stamp))
        with engine.begin() as c:
            c.execute(t["records"].insert(), recs)
            c.execute(t["responses"].insert(), resps)
        print(f"  seeded {min(records, start + 10_000)}", file=sys.stderr, end="\r")
    engine.dispose()
    print(file=sys.stderr)


def upgrade(url: str, home: Path, engine: str) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ANNOTA_")},
           "ANNOTA_HOME": str(home), "ANNOTA_DATABASE_URL": url, "ANNOTA_SEARCH_ENGINE": engine,
           # each run its own search file: the home (and its recorded rates) is shared
           "ANNOTA_SEARCH_PATH": str(home / f"search-{uuid.uuid4().hex[:8]}.db")}
    if engine == "elasticsearch":
        env["ANNOTA_ELASTICSEARCH"] = os.environ["ANNOTA_TEST_ELASTICSEARCH_URL"]
        env["ANNOTA_SEARCH_INDEX_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "annota", "server", "upgrade", "--yes",
                           "--json"], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"upgrade failed: {done.stderr[-3000:]}")
    out = json.loads(done.stdout)
    out["wall"] = time.perf_counter() - started
    return out


def table(label: str, result: dict) -> None:
    estimates = result["plan"]["estimates"]
    print(f"\n{label} (whole run {result['wall']:.1f} s)\n")
    print("| part | estimate s | basis | actual s | estimate / actual |")
    print("| --- | --- | --- | --- | --- |")
    for part, actual in result["seconds"].items():
        guess = estimates.get(part)
        if guess is None:
            print(f"| {part} | - | nothing planned | {actual:.1f} | - |")
            continue
        ratio = f"{guess['seconds'] / actual:.2f}" if actual >= 0.05 else "-"
        print(f"| {part} | {guess['seconds']:.1f} | {guess['basis']} | {actual:.1f} | "
              f"{ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--engine", choices=["sqlite", "elasticsearch"], default="sqlite")
    args = parser.parse_args()
    server = (os.environ.get("ANNOTA_BENCH_POSTGRES_URL")
              or os.environ.get("ANNOTA_TEST_POSTGRES_URL"))
    if not server:
        sys.exit("set ANNOTA_BENCH_POSTGRES_URL (or run scripts/services.py env)")
    tag = uuid.uuid4().hex[:8]
    template, runs = f"estimate_{tag}_seed", [f"estimate_{tag}_1", f"estimate_{tag}_2"]
    try:
        seed(database(server, template), args.records)
        home = Path(tempfile.mkdtemp(prefix="annota-estimate-"))
        results = []
        for name in runs:
            results.append(upgrade(database(server, name, template), home, args.engine))
            drop(server, name)
        print(f"\n{args.records} records from release 1.0 on PostgreSQL, search: "
              f"{args.engine}")
        table("(1) nothing recorded: sampled", results[0])
        table("(2) rates recorded by (1)", results[1])
    finally:
        for name in [template, *runs]:
            drop(server, name)


if __name__ == "__main__":
    main()
