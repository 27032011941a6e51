"""The HTTP API: an ASGI app (FastAPI) over the same library the command line uses.

Every endpoint but health and readiness needs ``X-Annota-Api-Key``. Missing or wrong key:
401; a role without the right: 403; bad input: 422 with the location of each problem, and
nothing stored; what exists already: 409; a database or search engine that fails: 503.
No request is a 500: input is checked whole before anything is written.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from annota import __version__
from annota.config import Settings
from annota.errors import (
    AnnotaError,
    ConflictError,
    DatabaseUnreachableError,
    InvalidInputError,
    NotFoundError,
    RedisUnreachableError,
    ReindexBusyError,
    ReindexError,
    SearchEngineError,
)
from annota.server.api.admin import add_admin
from annota.server.api.schemas import (
    BackfillCancelIn,
    BackfillRunIn,
    DatasetIn,
    MetricsIn,
    RecordsIn,
    SearchIn,
    WorkspaceIn,
)
from annota.server.api.tasks import Tasks
from annota.server.db import open_database
from annota.server.domain import datasets
from annota.server.domain import models as m
from annota.server.domain.users import user_by_api_key, workspace_ids_of
from annota.server.domain.validation import DatasetSettings, check_search
from annota.server.schema import migrate as migrations

API = "/api/v1"


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="annota", version=__version__)
    db = open_database(settings.database_url)
    connected: dict[str, Any] = {}
    tasks = Tasks()

    def search_engine():  # noqa: ANN202 - connected lazily, once, then reused
        if "search" not in connected:
            from annota.search import connect

            connected["search"] = connect(settings.search)
        return connected["search"]

    for error, status in ((NotFoundError, 404), (ConflictError, 409),
                          (SearchEngineError, 503), (DatabaseUnreachableError, 503),
                          (RedisUnreachableError, 503),
                          (ReindexBusyError, 503),
                          (AnnotaError, 400)):
        app.add_exception_handler(error, _handler(status))
    app.add_exception_handler(InvalidInputError, _invalid)
    app.add_exception_handler(sa.exc.IntegrityError, _database_handler(
        409, "the request conflicts with data stored meanwhile; nothing was changed"))
    app.add_exception_handler(sa.exc.OperationalError, _database_handler(
        503, "the database is unavailable or busy; nothing was changed, try again"))

    def current_user(x_annota_api_key: str | None = Header(default=None)) -> sa.Row:
        if not x_annota_api_key:
            raise HTTPException(401, "missing X-Annota-Api-Key header")
        with db.connect() as connection:
            user = user_by_api_key(connection, x_annota_api_key)
        if user is None:
            raise HTTPException(401, "invalid API key")
        return user

    def role(*allowed: str):  # noqa: ANN202
        def check(user: sa.Row = Depends(current_user)) -> sa.Row:
            if user.role not in allowed:
                raise HTTPException(403, f"a {user.role} may not do this "
                                         f"(needs {' or '.join(allowed)})")
            return user
        return check

    def visible_dataset(connection: sa.Connection, user: sa.Row, dataset_id: uuid.UUID):  # noqa: ANN202
        dataset = datasets.dataset_row(connection, dataset_id)
        if user.role == "annotator" and dataset.workspace_id not in workspace_ids_of(
                connection, user.id):
            raise NotFoundError(f"no dataset with id {dataset_id}")
        return dataset

    def readiness() -> tuple[bool, dict[str, Any]]:
        report: dict[str, Any] = {"version": __version__}
        try:
            state = migrations.status(settings)
            report["database"] = "ok"
            report["schema"] = {"state": state.state, "revision": state.current,
                                "release": state.current_release}
            ok = state.state == migrations.UP_TO_DATE
        except AnnotaError as exc:
            report["database"], ok = f"unreachable: {exc}", False
        try:
            info = search_engine().info()
            report["search_engine"] = {"status": "ok", "kind": info.kind, "version": info.version}
        except AnnotaError as exc:
            connected.pop("search", None)
            report["search_engine"], ok = {"status": f"unreachable: {exc}"}, False
        return ok, report

    @app.get(f"{API}/health")
    def health() -> JSONResponse:
        """Liveness, with the state of what the server depends on."""
        ok, report = readiness()
        return JSONResponse({"status": "ok" if ok else "degraded", **report})

    @app.get(f"{API}/ready")
    def ready() -> JSONResponse:
        """503 until the database is at this code's head and the search engine answers."""
        ok, report = readiness()
        return JSONResponse({"ready": ok, **report}, status_code=200 if ok else 503)

    @app.get(f"{API}/info")
    def info(user: sa.Row = Depends(current_user)) -> dict[str, Any]:
        state = migrations.status(settings)
        engine_info = search_engine().info()
        return {"version": __version__,
                "schema": {"revision": state.current, "release": state.current_release,
                           "state": state.state},
                "search_engine": {"kind": engine_info.kind, "version": engine_info.version}}

    @app.get(f"{API}/workspaces")
    def list_workspaces(user: sa.Row = Depends(current_user)) -> list[dict[str, Any]]:
        table = m.Workspace.__table__
        with db.connect() as connection:
            query = sa.select(table.c.id, table.c.name).order_by(table.c.name)
            if user.role == "annotator":
                query = query.where(table.c.id.in_(workspace_ids_of(connection, user.id)))
            return [{"id": str(r.id), "name": r.name} for r in connection.execute(query)]

    @app.post(f"{API}/workspaces", status_code=201)
    def create_workspace(body: WorkspaceIn,
                         user: sa.Row = Depends(role("owner", "admin"))) -> dict[str, Any]:
        with db.begin() as connection:
            if connection.execute(sa.select(m.Workspace.id)
                                  .where(m.Workspace.name == body.name)).first():
                raise ConflictError(f"a workspace named {body.name!r} exists already")
            return {"id": str(datasets.create_workspace(connection, body.name)),
                    "name": body.name}

    @app.get(f"{API}/datasets")
    def list_datasets(workspace_id: uuid.UUID | None = None,
                      user: sa.Row = Depends(current_user)) -> list[dict[str, Any]]:
        table = m.Dataset.__table__
        with db.connect() as connection:
            query = sa.select(table.c.id, table.c.name, table.c.workspace_id).order_by(
                table.c.name)
            if workspace_id:
                query = query.where(table.c.workspace_id == workspace_id)
            if user.role == "annotator":
                query = query.where(table.c.workspace_id.in_(workspace_ids_of(connection,
                                                                              user.id)))
            return [{"id": str(r.id), "name": r.name, "workspace_id": str(r.workspace_id)}
                    for r in connection.execute(query)]

    @app.post(f"{API}/datasets", status_code=201)
    def create_dataset(body: DatasetIn,
                       user: sa.Row = Depends(role("owner", "admin"))) -> dict[str, Any]:
        with db.begin() as connection:
            if connection.execute(sa.select(m.Workspace.id)
                                  .where(m.Workspace.id == body.workspace_id)).first() is None:
                raise InvalidInputError(
                    f"no workspace with id {body.workspace_id}",
                    [{"loc": ["body", "workspace_id"], "msg": "no such workspace"}])
            dataset_id = datasets.create_dataset(
                connection, workspace_id=body.workspace_id, name=body.name,
                fields=body.fields, questions=body.questions,
                metadata_properties=body.metadata_properties,
                vector_settings=body.vector_settings, guidelines=body.guidelines,
                min_submitted=body.min_submitted)
        return {"id": str(dataset_id), "name": body.name}

    @app.get(f"{API}/datasets/{{dataset_id}}")
    def get_dataset(dataset_id: uuid.UUID,
                    user: sa.Row = Depends(current_user)) -> dict[str, Any]:
        from annota.search.mapping import load_schema

        with db.connect() as connection:
            dataset = visible_dataset(connection, user, dataset_id)
            schema = load_schema(connection, dataset_id)
        return {"id": str(dataset.id), "name": dataset.name,
                "workspace_id": str(dataset.workspace_id), "guidelines": dataset.guidelines,
                "distribution": dataset.distribution,
                "completed_records": dataset.completed_records,
                "fields": [{"name": n, "type": t} for n, t in schema.fields.items()],
                "questions": [{"name": n, "type": t} for n, t in schema.questions.values()],
                "metadata_properties": [{"name": n, "type": t}
                                        for n, t in schema.metadata.items()],
                "vector_settings": [{"name": n, "dimensions": d}
                                    for n, d in schema.vectors.values()]}

    @app.post(f"{API}/datasets/{{dataset_id}}/records", status_code=201)
    def import_records(dataset_id: uuid.UUID, body: RecordsIn,
                       user: sa.Row = Depends(role("owner", "admin"))) -> dict[str, Any]:
        """All or nothing: the records are written and indexed in one transaction, which
        commits only once the index has them; otherwise nothing is stored (503)."""
        from annota.search.live import imported_and_indexed

        ids, indexed = imported_and_indexed(
            db, search_engine(), dataset_id,
            lambda connection: datasets.import_records(connection, dataset_id, body.records))
        return {"ids": [str(i) for i in ids], "indexed": indexed}

    @app.post(f"{API}/datasets/{{dataset_id}}/records/search")
    def search_records(dataset_id: uuid.UUID, body: SearchIn,
                       user: sa.Row = Depends(current_user)) -> dict[str, Any]:
        from annota.search.searching import answer, item

        with db.connect() as connection:
            visible_dataset(connection, user, dataset_id)
            check_search(DatasetSettings.load(connection, dataset_id), body.terms, body.ranges)
            result = answer(connection, search_engine(), dataset_id, body.query(), ("body",))
        items = [item(h) for h in result.hits]
        return {"items": items, "count": len(items), "total": result.total}

    def filtered(connection: sa.Connection, user: sa.Row, dataset_id: uuid.UUID,
                 body: MetricsIn, metadata: str | None = None):  # noqa: ANN202
        """(the query of ``body``'s filters, the dataset's settings), checked against a
        dataset the user may see (and that has the ``metadata`` property: else 404)."""
        from annota.search.query import SearchQuery, check_query

        visible_dataset(connection, user, dataset_id)
        query = SearchQuery(filters=body.filters)
        dataset = DatasetSettings.load(connection, dataset_id)
        if metadata is not None and metadata not in dataset.metadata:
            raise NotFoundError(f"the dataset has no metadata property {metadata!r}")
        check_query(query, dataset, ("body",))
        return query, dataset

    @app.post(f"{API}/datasets/{{dataset_id}}/metadata/{{name}}/metrics")
    def metadata_metrics(dataset_id: uuid.UUID, name: str, body: MetricsIn,
                         user: sa.Row = Depends(current_user)) -> dict[str, Any]:
        from annota.search.searching import metrics

        with db.connect() as connection:
            query, dataset = filtered(connection, user, dataset_id, body, metadata=name)
        return metrics(search_engine(), dataset_id, query, name, dataset.metadata[name])

    @app.post(f"{API}/datasets/{{dataset_id}}/progress")
    def dataset_progress(dataset_id: uuid.UUID, body: MetricsIn,
                         user: sa.Row = Depends(current_user)) -> dict[str, Any]:
        from annota.search.searching import progress
        from annota.server.domain.record_status import min_submitted

        with db.connect() as connection:
            query, _ = filtered(connection, user, dataset_id, body)
            minimum = min_submitted(connection, dataset_id)
        return progress(search_engine(), dataset_id, query, minimum)

    @app.post(f"{API}/backfills/{{name}}/run", status_code=202)
    def run_backfill(name: str, body: BackfillRunIn,
                     user: sa.Row = Depends(role("owner"))) -> dict[str, Any]:
        from annota.server.jobs import backfill_jobs as jobs
        from annota.server.jobs import runner

        return runner.dispatch(settings, db, lambda connection: jobs.queue_jobs(
            connection, name, force=body.force, limit=body.limit,
            dataset_id=str(body.dataset_id) if body.dataset_id else None,
            stale_seconds=settings.backfill_stale_seconds), body.batch_size).to_dict()

    @app.get(f"{API}/backfills")
    def list_backfills(status: str | None = None, name: str | None = None,
                       dataset_id: uuid.UUID | None = None,
                       user: sa.Row = Depends(role("owner"))) -> dict[str, Any]:
        from annota.server.jobs import backfill_jobs as jobs

        if status is not None and status.upper() not in jobs.STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(jobs.STATUSES)}", [
                {"loc": ["query", "status"], "msg": f"one of {', '.join(jobs.STATUSES)}"}])
        with db.connect() as connection:
            rows = jobs.jobs(connection, name=name, status=status,
                             dataset_id=str(dataset_id) if dataset_id else None)
        totals = {s.lower(): sum(r["status"] == s for r in rows) for s in jobs.STATUSES}
        return {"totals": totals, "jobs": [_job(r) for r in rows]}

    @app.post(f"{API}/backfills/cancel")
    def cancel_backfills(body: BackfillCancelIn,
                         user: sa.Row = Depends(role("owner"))) -> dict[str, Any]:
        from annota.server.jobs import backfill_jobs as jobs

        with db.begin() as connection:
            count = jobs.cancel(connection, body.name,
                                str(body.dataset_id) if body.dataset_id else None)
        return {"canceled": count}

    @app.post(f"{API}/datasets/{{dataset_id}}/reindex", status_code=202)
    def reindex_dataset(dataset_id: uuid.UUID,
                        user: sa.Row = Depends(role("owner"))) -> dict[str, Any]:
        """Rebuild the dataset's index with zero downtime, in the background: a task to
        poll at ``GET /api/v1/tasks/{id}`` (the one already running, if any)."""
        return reindex_task(dataset_id).to_dict()

    @app.get(f"{API}/tasks/{{task_id}}")
    def get_task(task_id: str, user: sa.Row = Depends(role("owner"))) -> dict[str, Any]:
        task = tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id} (tasks live in the server's memory)")
        return task.to_dict()

    def reindex_task(dataset_id: uuid.UUID) -> Any:
        with db.connect() as connection:
            datasets.dataset_row(connection, dataset_id)  # NotFoundError: 404
        running = tasks.running(str(dataset_id))
        if running is not None:
            return running

        def work() -> dict[str, Any]:
            from annota.search.reindex import reindex

            summary = reindex(settings, [str(dataset_id)])
            if summary.failed:
                raise ReindexError(f"the dataset was not reindexed: {summary.failed[0].error}")
            return summary.results[0].to_dict()

        return tasks.start("reindex", str(dataset_id), work)

    add_admin(app, settings, db, search_engine, tasks, reindex_task)
    return app


def _job(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "status", "processed", "total", "attempts", "last_error")
    job = {k: row[k] for k in keep}
    job.update(id=str(row["id"]), dataset_id=str(row["dataset_id"]),
               dataset_name=row["dataset_name"])
    return job


def _handler(status: int):  # noqa: ANN202
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)
    return handle


async def _invalid(request: Request, exc: InvalidInputError) -> JSONResponse:
    """422 in FastAPI's own shape: each problem with its location in the request."""
    problems = [{"loc": ["body", *p["loc"]] if p["loc"] and p["loc"][0] != "body"
                 else p["loc"], "msg": p["msg"], "type": "value_error"}
                for p in exc.problems]
    return JSONResponse({"detail": problems}, status_code=422)


def _database_handler(status: int, message: str):  # noqa: ANN202
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)
    return handle
