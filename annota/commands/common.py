"""Helpers shared by the command modules: reusable options and output formatting."""

from __future__ import annotations

import json
from typing import Any

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON on stdout (messages go to stderr)."
)
yes_option = click.option(
    "--yes", "-y", is_flag=True, help="Consent to destructive steps without asking (scripts)."
)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        cells = (c.ljust(w) for c, w in zip(line, widths, strict=True))
        click.echo((indent + "  ".join(cells)).rstrip())


def settings():  # noqa: ANN201 - annota.server.settings.Settings
    from annota.server.settings import Settings

    return Settings.from_env()
