"""Turning engine errors into one masked line."""

from __future__ import annotations

from typing import Any

from annota.config import SearchSettings
from annota.urls import scrub as scrub_secrets


def scrub(settings: SearchSettings, exc: BaseException) -> str:
    """The first line of an exception, with every secret of ``settings`` masked."""
    lines = str(exc).strip().splitlines()
    return scrub_secrets(lines[0] if lines else type(exc).__name__, settings.secrets)


def describe_error(status: Any, body: Any) -> str:
    """``400 mapper_parsing_exception: failed to parse ...`` from an engine error body."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        cause = (error.get("root_cause") or [error])[0]
        return f"{status} {cause.get('type', 'error')}: {cause.get('reason', '')}".strip()
    return f"{status} {error or body}"
