"""``/admin``: the operator's dashboard, for owners.

Its JSON actions and state are in the OpenAPI schema (tag ``admin``; they take the
session cookie and the CSRF header, not an API key), so Schemathesis fuzzes them too.

Plain server-rendered HTML (Jinja2, autoescaped) and one small script that polls
``/admin/state`` every second and redraws the tables, so the page moves while work runs
without a reload. Nothing is fetched from elsewhere. Login is by an owner's API key, which
gives a signed session cookie (``sessions.py``); every POST carries the session's CSRF
token. Annotators and admins get 403. The actions are the library's, as the command line
runs them: run an async migration, queue (N datasets, one, all), cancel or retry a
backfill, reindex a dataset.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from annota.config import Settings
from annota.server.api import admin_state
from annota.server.api.schemas import BackfillActionIn
from annota.server.api.sessions import COOKIE, MAX_AGE, Sessions, csrf_ok
from annota.server.domain import models as m
from annota.server.domain.users import user_by_api_key

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
BATCH_SIZE = 1000  # a backfill batch's starting size (it adapts to the batch time)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def add_admin(app: FastAPI, settings: Settings, db: sa.Engine, search_engine: Any,
              tasks: Any, reindex_task: Any) -> None:
    sessions = Sessions(settings)

    def owner(request: Request, *, post: bool = False, csrf: str | None = None
              ) -> dict[str, Any]:
        """The session's owner; on a POST, only with the session's CSRF token."""
        session = sessions.read(request.cookies.get(COOKIE))
        if session is None:
            raise _Refused(401, "log in first")
        try:
            user_id = uuid.UUID(str(session["user"]))
        except ValueError:
            raise _Refused(401, "log in first") from None
        with db.connect() as connection:
            user = connection.execute(sa.select(m.User.role, m.User.username).where(
                m.User.id == user_id)).first()
        if user is None:
            raise _Refused(401, "log in first")
        if user.role != "owner":
            raise _Refused(403, f"a {user.role} may not use the dashboard (owners only)")
        if post and not csrf_ok(session, csrf or request.headers.get("x-csrf-token")):
            raise _Refused(403, "missing or wrong CSRF token; reload the page")
        return {"username": user.username, "csrf": session["csrf"]}

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> Response:
        if request.method == "GET" and exc.status == 401:
            return RedirectResponse("/admin/login", status_code=303)
        if request.method == "GET":
            return TEMPLATES.TemplateResponse(request, "refused.html",
                                              {"message": str(exc)}, status_code=exc.status)
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.get("/admin/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(request, "login.html", {"error": None})

    @app.post("/admin/login", include_in_schema=False)
    def login(request: Request, api_key: str = Form(default="")) -> Response:
        with db.connect() as connection:
            user = user_by_api_key(connection, api_key) if api_key else None
        if user is None:
            return TEMPLATES.TemplateResponse(request, "login.html",
                                              {"error": "unknown API key"}, status_code=401)
        if user.role != "owner":
            return TEMPLATES.TemplateResponse(
                request, "refused.html",
                {"message": f"a {user.role} may not use the dashboard (owners only)"},
                status_code=403)
        cookie, _ = sessions.issue(str(user.id))
        response = RedirectResponse("/admin", status_code=303)
        response.set_cookie(COOKIE, cookie, max_age=MAX_AGE, httponly=True,
                            samesite="strict", path="/admin",
                            secure=request.url.scheme == "https")
        return response

    @app.post("/admin/logout", include_in_schema=False)
    def logout(request: Request, csrf: str | None = Form(default=None)) -> Response:
        owner(request, post=True, csrf=csrf)
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(COOKIE, path="/admin")
        return response

    def state() -> dict[str, Any]:
        with db.connect() as connection:
            return {"release": admin_state.release(settings),
                    "async_migrations": admin_state.async_rows(connection),
                    "backfills": admin_state.backfill_rows(connection),
                    "indices": admin_state.indices(settings, search_engine(), tasks)}

    @app.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(request: Request) -> Response:
        who = owner(request)
        from annota.server.jobs.backfills import BACKFILLS

        return TEMPLATES.TemplateResponse(request, "admin.html",
                                          {"user": who["username"], "csrf": who["csrf"],
                                           "state": state(), "backfill_names": list(BACKFILLS)})

    @app.get("/admin/live", response_class=HTMLResponse, include_in_schema=False)
    def live(request: Request) -> Response:
        owner(request)
        return TEMPLATES.TemplateResponse(request, "live.html", {"state": state()})

    @app.get("/admin/state", tags=["admin"])
    def state_json(request: Request) -> dict[str, Any]:
        owner(request)
        return state()

    @app.get("/admin/admin.js", include_in_schema=False)
    def script() -> Response:
        return Response((HERE / "templates" / "admin.js").read_text(),
                        media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})

    @app.post("/admin/async/{name}/run", status_code=202, tags=["admin"])
    def run_async(name: str, request: Request) -> dict[str, Any]:
        owner(request, post=True)
        from annota.server.schema import async_migrations

        def work() -> dict[str, Any]:
            rows = async_migrations.run(db, settings.database_url, name)
            return {"migrations": [{"name": r["name"], "status": r["status"]} for r in rows]}

        return tasks.start("async-migration", name, work).to_dict()

    @app.post("/admin/backfills/{action}", tags=["admin"])
    def backfills(action: Literal["run", "retry", "cancel"], body: BackfillActionIn,
                  request: Request) -> dict[str, Any]:
        owner(request, post=True)
        from annota.server.jobs import backfill_jobs as jobs
        from annota.server.jobs import runner

        jobs.backfill(body.name)  # an unknown backfill: NotFoundError, 404
        dataset = str(body.dataset_id) if body.dataset_id else None
        if action == "cancel":
            with db.begin() as connection:
                return {"canceled": jobs.cancel(connection, body.name, dataset)}
        stale = settings.backfill_stale_seconds

        def retry(connection: sa.Connection) -> Any:  # the failed and canceled, each resumed
            out = jobs.QueueResult()
            for job in jobs.jobs(connection, name=body.name, dataset_id=dataset):
                if job["status"] in (jobs.FAILED, jobs.CANCELED):
                    out.queued += jobs.queue_jobs(connection, body.name,
                                                  dataset_id=str(job["dataset_id"]),
                                                  stale_seconds=stale).queued
            return out

        def run(connection: sa.Connection) -> Any:
            return jobs.queue_jobs(connection, body.name, limit=body.limit,
                                   dataset_id=dataset, stale_seconds=stale)

        queued = runner.dispatch(settings, db, retry if action == "retry" else run,
                                 BATCH_SIZE)
        return {"queued": len(queued.queued)}

    @app.post("/admin/datasets/{dataset_id}/reindex", status_code=202, tags=["admin"])
    def reindex(dataset_id: uuid.UUID, request: Request) -> dict[str, Any]:
        owner(request, post=True)
        return reindex_task(dataset_id).to_dict()
