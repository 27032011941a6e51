"""Users: accounts with a role, an argon2 password hash, and an API key kept as a digest.

The API key itself is never stored: ``users.api_key`` holds its SHA-256, which is what a
request's key is looked up by. A key is shown once, when annota generates it.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from annota.errors import InvalidInputError, NotFoundError
from annota.server.domain import models as m

ROLES = ("owner", "admin", "annotator")
USERS, MEMBERS, WORKSPACES = (m.User.__table__, m.WorkspaceUser.__table__,
                              m.Workspace.__table__)


def key_digest(api_key: str) -> str:
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()


def hash_password(password: str) -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import VerificationError

    try:
        return PasswordHasher().verify(password_hash, password)
    except VerificationError:
        return False


@dataclass
class CreatedUser:
    id: uuid.UUID
    username: str
    role: str
    created: bool
    api_key: str | None = None  # only when annota generated it, to be shown once


def create_user(connection: sa.Connection, *, username: str, role: str, password: str,
                api_key: str | None = None, workspaces: tuple[str, ...] = ()) -> CreatedUser:
    """Create a user (and any named workspace it joins). An existing username is not an
    error: nothing changes and ``created`` is False."""
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not username.strip():
        raise InvalidInputError("username must not be empty")
    if len(password) < 8:
        raise InvalidInputError("password must have at least 8 characters")
    existing = _existing(connection, username)
    if existing:
        return existing
    try:
        with connection.begin_nested():  # a savepoint: a concurrent create may win the race
            return _insert(connection, username, role, password, api_key, workspaces)
    except sa.exc.IntegrityError:
        existing = _existing(connection, username)
        if existing is None:
            raise
        return existing


def _existing(connection: sa.Connection, username: str) -> CreatedUser | None:
    row = connection.execute(sa.select(USERS.c.id, USERS.c.role)
                             .where(USERS.c.username == username)).first()
    return CreatedUser(row.id, username, row.role, created=False) if row else None


def _insert(connection: sa.Connection, username: str, role: str, password: str,
            api_key: str | None, workspaces: tuple[str, ...]) -> CreatedUser:
    generated = None
    if not api_key:
        api_key = generated = secrets.token_urlsafe(32)
    now = m.utcnow()
    user_id = uuid.uuid4()
    connection.execute(sa.insert(USERS).values(
        id=user_id, first_name=username, username=username, role=role,
        api_key=key_digest(api_key), password_hash=hash_password(password),
        inserted_at=now, updated_at=now))
    for name in workspaces:
        workspace_id = connection.execute(sa.select(WORKSPACES.c.id)
                                          .where(WORKSPACES.c.name == name)).scalar()
        if workspace_id is None:
            from annota.server.domain.datasets import create_workspace

            workspace_id = create_workspace(connection, name)
        add_member(connection, workspace_id, user_id)
    return CreatedUser(user_id, username, role, created=True, api_key=generated)


def add_member(connection: sa.Connection, workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
    now = m.utcnow()
    connection.execute(sa.insert(MEMBERS).values(id=uuid.uuid4(), workspace_id=workspace_id,
                                                 user_id=user_id, inserted_at=now,
                                                 updated_at=now))


def user_by_api_key(connection: sa.Connection, api_key: str) -> sa.Row | None:
    return connection.execute(sa.select(USERS.c.id, USERS.c.username, USERS.c.role)
                              .where(USERS.c.api_key == key_digest(api_key))).first()


def list_users(connection: sa.Connection) -> list[dict]:
    rows = connection.execute(sa.select(USERS.c.id, USERS.c.username, USERS.c.role,
                                        USERS.c.inserted_at).order_by(USERS.c.username)).all()
    members = connection.execute(sa.select(MEMBERS.c.user_id, WORKSPACES.c.name)
                                 .join(WORKSPACES, WORKSPACES.c.id == MEMBERS.c.workspace_id))
    spaces: dict[uuid.UUID, list[str]] = {}
    for user_id, name in members:
        spaces.setdefault(user_id, []).append(name)
    return [{"id": str(r.id), "username": r.username, "role": r.role,
             "workspaces": sorted(spaces.get(r.id, [])), "inserted_at": r.inserted_at.isoformat()}
            for r in rows]


def workspace_ids_of(connection: sa.Connection, user_id: uuid.UUID) -> list[uuid.UUID]:
    return list(connection.execute(sa.select(MEMBERS.c.workspace_id)
                                   .where(MEMBERS.c.user_id == user_id)).scalars())


def get_user(connection: sa.Connection, username: str) -> sa.Row:
    row = connection.execute(sa.select(USERS).where(USERS.c.username == username)).first()
    if row is None:
        raise NotFoundError(f"no user named {username!r}")
    return row
