"""The image's HEALTHCHECK: healthy when the API says it is ready (the database at head)."""

import os
import sys
import urllib.request

port = os.environ.get("ANNOTA_SERVER_PORT", "6900")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/ready", timeout=3) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except Exception as exc:  # noqa: BLE001 - any failure is "not healthy", said in one line
    print(f"not ready: {exc}", file=sys.stderr)
    sys.exit(1)
