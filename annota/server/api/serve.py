"""``annota server start``: the HTTP API on uvicorn, only on a schema at this code's head."""

from __future__ import annotations

from annota.config import Settings
from annota.errors import AnnotaError
from annota.server.schema import migrate as migrations


def serve(settings: Settings, host: str, port: int) -> None:
    try:
        migrations.ensure_at_head(settings)
    except AnnotaError as exc:
        exc.args = (f"not starting: {exc}",)
        raise
    import uvicorn

    from annota.server.api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                proxy_headers=True, server_header=False)
