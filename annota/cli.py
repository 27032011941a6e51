"""The ``annota`` command line: thin click commands over the library.

Only click and annota's light modules are imported at start-up; each command imports
what it needs, so ``annota --help`` and ``annota server database revisions`` stay fast.
Every ``AnnotaError`` becomes one line on stderr and its exit code, here and only here.
"""

from __future__ import annotations

from typing import Any

import click

from annota import __version__
from annota.commands import archive as archive_commands
from annota.commands import database as database_commands
from annota.commands import jobs as job_commands
from annota.commands import search as search_commands
from annota.commands import upgrade as upgrade_commands
from annota.commands import users as user_commands
from annota.commands.common import NONEMPTY
from annota.config import traceback_requested
from annota.errors import AnnotaError


class AnnotaGroup(click.Group):
    """The root group: turns AnnotaError into a one-line message and an exit code; with
    ``--traceback``, and for any other exception (a bug), prints the traceback instead.
    Whatever it prints has every secret of the settings masked."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # one line, like every other error; exit 2
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            message = " ".join(exc.format_message().split())
            click.echo(f"Error: {message} (see '{where} --help')", err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except AnnotaError as exc:
            if ctx.params.get("traceback") or traceback_requested():
                _echo_traceback(ctx, exc)
            else:
                click.echo(f"Error: {_scrub(ctx, str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:  # a bug: its traceback, as Python would, but masked
            _echo_traceback(ctx, exc)
            ctx.exit(1)


def _scrub(ctx: click.Context, text: str) -> str:
    from annota.config import Settings
    from annota.urls import scrub

    settings = ctx.find_root().obj
    return scrub(text, settings.secrets if isinstance(settings, Settings) else [])


def _echo_traceback(ctx: click.Context, exc: BaseException) -> None:
    import traceback

    text = "".join(traceback.format_exception(exc))
    click.echo(_scrub(ctx, text).rstrip("\n"), err=True)


@click.group(cls=AnnotaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="annota")
@click.option(
    "--traceback", is_flag=True,
    help="Show the full traceback instead of a one-line error (or ANNOTA_TRACEBACK=1).",
)
def cli(traceback: bool) -> None:
    """annota: the server side of a data-annotation platform.

    \b
    Example:
      annota server database migrate
    """


@cli.group()
def server() -> None:
    """Run and maintain an annota server: database, search engine, jobs."""


server.add_command(database_commands.database)
database_commands.database.add_command(job_commands.backfills)
database_commands.database.add_command(job_commands.async_migrations)
database_commands.database.add_command(user_commands.users)
for command in (archive_commands.export_command, archive_commands.import_command,
                archive_commands.copy_command, archive_commands.verify_command):
    database_commands.database.add_command(command)
server.add_command(job_commands.worker)
server.add_command(upgrade_commands.upgrade)


@server.command()
@click.option("--host", type=NONEMPTY, help="Interface to listen on (0.0.0.0 for all). "
                             "Default: ANNOTA_SERVER_HOST, else 127.0.0.1.")
@click.option("--port", type=click.IntRange(1, 65535),
              help="TCP port. Default: ANNOTA_SERVER_PORT, else 6900.")
def start(host: str | None, port: int | None) -> None:
    """Start the HTTP API; refuses (exit 3) unless the schema is at this code's head.

    \b
    Example:
      annota server database migrate && annota server start --host 0.0.0.0 --port 6900
    """
    from annota.commands.common import settings
    from annota.server.api.serve import serve

    config = settings()
    serve(config, host or config.server_host, port or config.server_port)
server.add_command(search_commands.search_engine)


def main() -> None:
    cli(prog_name="annota")
