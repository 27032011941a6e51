"""The dashboard's sessions: an owner logs in with an API key and gets a signed cookie.

The cookie holds the user's id and a CSRF token, signed with this deployment's key
(``ANNOTA_SECRET_KEY``, else one made once in ``$ANNOTA_HOME/secret-key``, readable by
its owner only), so a cookie another server signed is refused. It is HttpOnly and
SameSite=Strict, and lasts ``MAX_AGE``; every request checks the user is still an owner.
Every POST must carry the CSRF token (a form field or the ``X-CSRF-Token`` header).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from annota.config import Settings

COOKIE = "annota_admin"
MAX_AGE = 8 * 3600
KEY_FILE = "secret-key"


def secret_key(settings: Settings) -> str:
    """The signing key: the setting, else the home's own (made on first use)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(settings.home) / KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: theirs is the key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip()


class Sessions:
    def __init__(self, settings: Settings) -> None:
        self._signer = URLSafeTimedSerializer(secret_key(settings), salt="annota-admin")

    def issue(self, user_id: str) -> tuple[str, str]:
        """(the cookie's value, its CSRF token) for a user just logged in."""
        csrf = secrets.token_urlsafe(24)
        return self._signer.dumps({"user": user_id, "csrf": csrf}), csrf

    def read(self, cookie: str | None) -> dict[str, Any] | None:
        """The session in a cookie, or None: absent, expired, or not signed here."""
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie, max_age=MAX_AGE)
        except BadSignature:  # SignatureExpired is one too
            return None
        return data if isinstance(data, dict) and "user" in data and "csrf" in data else None


def csrf_ok(session: dict[str, Any], given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(str(session["csrf"]), str(given))
