"""Helpers shared by the command modules: reusable options and output formatting."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from annota.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

class NonEmpty(click.ParamType):
    """Text that must not be empty or blank: an empty value is never a wildcard."""

    name = "text"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        text = value if isinstance(value, str) else str(value)
        if not text.strip():
            self.fail("must not be empty", param, ctx)
        return text


NONEMPTY = NonEmpty()


class Seconds(click.ParamType):
    """A finite number of seconds, at least 0: ``nan`` and ``inf`` are no durations (a wait
    of ``nan`` never ends, since no comparison with it is true)."""

    name = "seconds"
    LIMIT = 10**7  # about four months: more is a typo, not a wait

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        import math

        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number) or not 0 <= number <= self.LIMIT:
            self.fail(f"{value!r} is not a number of seconds from 0 to {self.LIMIT:g}",
                      param, ctx)
        return number


SECONDS = Seconds()

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON on stdout (messages go to stderr)."
)
yes_option = click.option(
    "--yes", "-y", is_flag=True, help="Consent to destructive steps without asking (scripts)."
)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> None:
    """A plain table; with no rows, just its header line."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        cells = (c.ljust(w) for c, w in zip(line, widths, strict=True))
        click.echo((indent + "  ".join(cells)).rstrip())


def settings() -> Settings:
    """This process's settings, read from the environment once per command line and
    validated at once (a malformed one is exit 2, naming the variable)."""
    root = click.get_current_context().find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings.from_env()
    return root.obj


def open_database(*, at_least: str | None = None) -> tuple[Settings, Engine]:
    """The settings, and a SQLAlchemy engine on their database (dispose it when done),
    once the schema is known to be at this code's head (or at revision ``at_least`` or
    later): on any other database the command stops with one line saying what to run,
    having changed nothing."""
    from annota.server import db
    from annota.server.schema.migrate import ensure_at_head

    config = settings()
    ensure_at_head(config, at_least=at_least)
    return config, db.open_database(config.database_url)
