"""Moving a deployment: annota's copy, export and import against PostgreSQL's own tools.

    python benchmarks/move.py [--records 1000000] [--rss-records 250000]

Seeds N records (a text field, metadata, 0-2 responses, a suggestion each) in a SQLite
database at head, runs the backfills on it (a live server's derived data is current),
then in one run measures, on this machine:

  (a) `annota server database copy` SQLite -> PostgreSQL, verification included, against
      `pgloader` on the same file (target: annota faster);
  (b) `annota server database export` from PostgreSQL against `pg_dump -Fc`
      (target: pg_dump's time / ours >= 0.5);
  (c) `annota server database import` into an empty PostgreSQL against `pg_restore`
      (target >= 0.5);
  (d) the export's peak RSS at --rss-records and at N (target: flat).

PostgreSQL is ANNOTA_BENCH_POSTGRES_URL, else the test services' server (scripts/
services.py); pgloader is Debian's package (installed with apt-get when missing).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
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

T0 = datetime(2025, 1, 1)


def seed(url: str, records: int) -> None:
    home = Path(tempfile.mkdtemp())
    migrate(Settings.from_env({"ANNOTA_HOME": str(home), "ANNOTA_DATABASE_URL": url}), "head")
    engine = sa.create_engine(DatabaseURL.parse(url).sqlalchemy_url)
    from annota.server.domain import models

    t = models.Base.metadata.tables
    users = [uuid.uuid4() for _ in range(2)]
    workspace, dataset, question = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stamp = {"inserted_at": T0, "updated_at": T0}
    with engine.begin() as c:
        c.execute(t["users"].insert(), [dict(id=u, first_name="u", username=f"u{i}",
                  role="annotator", api_key=f"k{i}", password_hash="-", **stamp)
                  for i, u in enumerate(users)])
        c.execute(t["workspaces"].insert(), [dict(id=workspace, name="ws", **stamp)])
        c.execute(t["datasets"].insert(), [dict(
            id=dataset, name="ds", status="ready", workspace_id=workspace,
            distribution={"strategy": "overlap", "min_submitted": 1},
            allow_extra_metadata=True, last_activity_at=T0, completed_records=0, **stamp)])
        c.execute(t["questions"].insert(), [dict(
            id=question, name="label", title="Label", required=True, dataset_id=dataset,
            settings={"type": "label_selection", "options": ["a", "b"]}, **stamp)])
    for start in range(0, records, 10_000):
        recs, resps, suggs = [], [], []
        for i in range(start, min(records, start + 10_000)):
            rid = uuid.uuid4()
            when = T0 + timedelta(seconds=i)
            recs.append(dict(id=rid, fields={"text": f"record number {i} " * 4},
                             metadata={"n": i, "score": i / 7}, external_id=f"r{i}",
                             status="pending", dataset_id=dataset, inserted_at=when,
                             updated_at=when))
            for u in users[: i % 3]:
                resps.append(dict(id=uuid.uuid4(), values={"label": {"value": "a"}},
                                  status="submitted", record_id=rid, user_id=u, **stamp))
            suggs.append(dict(id=uuid.uuid4(), value="b", score=0.5, agent="m", type="model",
                              record_id=rid, question_id=question, **stamp))
        with engine.begin() as c:
            c.execute(t["records"].insert(), recs)
            c.execute(t["responses"].insert(), resps)
            c.execute(t["suggestions"].insert(), suggs)
    engine.dispose()


def derive(url: str, home: Path) -> None:
    from annota.server.jobs import runner
    from annota.server.jobs.backfills import BACKFILLS

    settings = Settings.from_env({"ANNOTA_HOME": str(home), "ANNOTA_DATABASE_URL": url})
    for name in BACKFILLS:
        if not runner.run(settings, name, inline=True, poll=0.05).ok:
            sys.exit(f"backfill {name} failed on the seeded database")


def pg_url() -> str:
    url = os.environ.get("ANNOTA_BENCH_POSTGRES_URL") or os.environ.get(
        "ANNOTA_TEST_POSTGRES_URL")
    if not url:
        sys.exit("set ANNOTA_BENCH_POSTGRES_URL (or run scripts/services.py env)")
    return url


def fresh_db(server: str) -> str:
    name = f"move_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(DatabaseURL.parse(server).sqlalchemy_url,
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Seconds, and the child's peak RSS in KiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{args[:4]} failed: {done.stderr[-2000:]}")
    return seconds, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)


def annota(*args: str, url: str) -> list[str]:
    return [sys.executable, "-m", "annota", "server", "database", *args]


def env_for(url: str, home: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ANNOTA_")},
            "ANNOTA_HOME": str(home), "ANNOTA_DATABASE_URL": url}


def peak_rss(records: int, work: Path, server: str, target: str | None = None) -> int:
    """The peak RSS (KiB) of an export of ``records`` records from PostgreSQL (``target``,
    else a database seeded here), measured in a child of its own (ru_maxrss of children
    is the largest child so far)."""
    code = ("import resource,subprocess,sys;subprocess.run(sys.argv[1:],check=True,"
            "capture_output=True);print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    if target is None:
        sqlite = f"sqlite:///{work / f'rss-{records}.db'}"
        seed(sqlite, records)
        target = fresh_db(server)
        subprocess.run(annota("copy", "--to", target, "--yes", url=sqlite), check=True,
                       env=env_for(sqlite, work), capture_output=True)
    out = subprocess.run([sys.executable, "-c", code, *annota(
        "export", "-o", str(work / f"rss-{records}.annota"), url=target)],
        env=env_for(target, work), capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rss-records", type=int, default=250_000)
    parser.add_argument("--source", type=Path,
                        help="a SQLite file this benchmark seeded before (its --records)")
    opts = parser.parse_args()
    if shutil.which("pgloader") is None:
        subprocess.run(["apt-get", "install", "-y", "pgloader"], check=True,
                       capture_output=True)
    server = pg_url()
    work = Path(tempfile.mkdtemp(prefix="annota-move-"))
    source_file = opts.source or work / "source.db"
    source = f"sqlite:///{source_file}"
    if opts.source is None:
        started = time.perf_counter()
        seed(source, opts.records)
        derive(source, work)  # a live server's derived data is current: so is this one's
        print(f"seeded {opts.records} records (derived data computed) in "
              f"{time.perf_counter() - started:.0f}s")
    env = env_for(source, work)

    ours_db = fresh_db(server)
    copy_s, _ = timed(annota("copy", "--to", ours_db, "--yes", url=source), env)
    print(f"    copy: {copy_s:.1f}s", flush=True)
    loader_db = fresh_db(server)
    # SBCL's default 1 GiB heap is exhausted by a million records: give it room
    loader_s, _ = timed(["pgloader", "--dynamic-space-size", "8192",
                         "--with", "prefetch rows = 10000", str(source_file),
                         DatabaseURL.parse(loader_db).sqlalchemy_url.replace(
                             "postgresql+psycopg", "postgresql")])
    print(f"(a) copy SQLite -> PostgreSQL, verified: {copy_s:.1f}s; pgloader: {loader_s:.1f}s;"
          f" pgloader/annota = {loader_s / copy_s:.2f} (target > 1)")

    pg_env = env_for(ours_db, work)
    export_s, _ = timed(annota("export", "-o", str(work / "pg.annota"), url=ours_db), pg_env)
    dump_s, _ = timed(["pg_dump", "-Fc", "-f", str(work / "pg.dump"),
                       DatabaseURL.parse(ours_db).sqlalchemy_url.replace(
                           "postgresql+psycopg", "postgresql")])
    print(f"(b) export from PostgreSQL: {export_s:.1f}s; pg_dump -Fc: {dump_s:.1f}s; "
          f"pg_dump/annota = {dump_s / export_s:.2f} (target >= 0.5)")

    into = fresh_db(server)
    import_s, _ = timed(annota("import", str(work / "pg.annota"), "--no-reindex", url=into),
                        env_for(into, work))
    restore_db = fresh_db(server)
    restore_s, _ = timed(["pg_restore", "-d", DatabaseURL.parse(restore_db).sqlalchemy_url
                          .replace("postgresql+psycopg", "postgresql"), str(work / "pg.dump")])
    print(f"(c) import into PostgreSQL: {import_s:.1f}s; pg_restore: {restore_s:.1f}s; "
          f"pg_restore/annota = {restore_s / import_s:.2f} (target >= 0.5)")

    small = peak_rss(opts.rss_records, work, server)
    large = peak_rss(opts.records, work, server, ours_db)
    print(f"(d) export peak RSS: {small / 1024:.0f} MiB at {opts.rss_records} records, "
          f"{large / 1024:.0f} MiB at {opts.records}; ratio {large / small:.2f} (flat: ~1)")


if __name__ == "__main__":
    main()
