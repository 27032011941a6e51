"""``annota server start``: the HTTP API on uvicorn, only on a schema at this code's head."""

from __future__ import annotations

from annota.config import Settings
from annota.errors import SchemaNotReadyError
from annota.server.schema import migrate as migrations


def serve(settings: Settings, host: str, port: int) -> None:
    state = migrations.status(settings)
    if state.state != migrations.UP_TO_DATE:
        command = ("annota server database migrate" if state.state != migrations.AHEAD
                   else "an annota as new as the database")
        raise SchemaNotReadyError(
            f"not starting: the database schema is {state.summary} "
            f"(at {state.current or 'base'}, this annota needs {state.head}); run `{command}`"
            if state.state != migrations.AHEAD else
            f"not starting: the database is at {state.current}, unknown to annota "
            f"{state.app_version}; run {command}"
        )
    import uvicorn

    from annota.server.api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                proxy_headers=True, server_header=False)
