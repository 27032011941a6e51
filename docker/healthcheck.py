"""The image's HEALTHCHECK, for the role the entrypoint noted in ANNOTA_ROLE_FILE.

The server is healthy when its API says it is ready (the database at head). A worker has
no API; it is healthy when the queue it works from, Redis, answers."""

import os
import sys
from pathlib import Path

ROLE = Path(os.environ.get("ANNOTA_ROLE_FILE", "/tmp/annota-role"))


def check() -> None:
    role = ROLE.read_text().strip() if ROLE.exists() else "start"
    if role == "worker":
        from redis import Redis

        Redis.from_url(os.environ["ANNOTA_REDIS_URL"], socket_connect_timeout=3).ping()
        return
    import urllib.request

    port = os.environ.get("ANNOTA_SERVER_PORT", "6900")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/ready", timeout=3) as answer:
        if answer.status != 200:
            raise RuntimeError(f"/api/v1/ready answered {answer.status}")


try:
    check()
except Exception as exc:  # noqa: BLE001 - any failure is "not healthy", said in one line
    print(f"not healthy: {type(exc).__name__}", file=sys.stderr)  # no URL: it may hold a password
    sys.exit(1)
