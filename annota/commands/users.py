"""``annota server database users``: create and list the server's users."""

from __future__ import annotations

import sys

import click

from annota.commands.common import (
    NONEMPTY,
    echo_json,
    echo_table,
    json_option,
    open_database,
    settings,
)


@click.group()
def users() -> None:
    """Create and list users (owner, admin, annotator).

    \b
    Example:
      annota server database users create --username ana --role owner
    """


@users.command()
@click.option("--username", required=True, type=NONEMPTY, help="The login name.")
@click.option("--role", type=click.Choice(["owner", "admin", "annotator"]), default="annotator",
              show_default=True, help="What the user may do.")
@click.option("--password", help="The password (prompted when not given; avoid on shared "
                                  "machines: it shows in the process list).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--api-key", type=NONEMPTY, help="Use this API key instead of generating one "
                                "(or ANNOTA_NEW_USER_API_KEY).")
@click.option("--workspace", "workspaces", multiple=True, type=NONEMPTY,
              help="A workspace to join (created if missing); repeatable.")
def create(username: str, role: str, password: str | None, password_stdin: bool,
           api_key: str | None, workspaces: tuple[str, ...]) -> None:
    """Create a user; for an existing username, say so and change nothing (exit 0).

    \b
    Example:
      printf '%s' "$PASSWORD" | annota server database users create \\
        --username owner --role owner --password-stdin --workspace default
    """
    from annota.server.domain.users import create_user

    config = settings()
    if api_key is None and config.new_user_api_key:
        api_key = config.new_user_api_key.get_secret_value()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    _, db = open_database()
    try:
        with db.begin() as connection:
            user = create_user(connection, username=username, role=role, password=password,
                               api_key=api_key, workspaces=workspaces)
    finally:
        db.dispose()
    if not user.created:
        click.echo(f"User {username!r} already exists (role {user.role}); nothing changed.")
        return
    click.echo(f"Created {role} {username!r}.")
    if user.api_key:
        click.echo(f"API key (shown once; annota keeps only its digest): {user.api_key}")


@users.command("list")
@json_option
def list_users(as_json: bool) -> None:
    """List users with their roles and workspaces (never their secrets).

    \b
    Example:
      annota server database users list --json
    """
    from annota.server.domain.users import list_users as listing

    _, db = open_database()
    try:
        with db.connect() as connection:
            rows = listing(connection)
    finally:
        db.dispose()
    if as_json:
        echo_json(rows)
    elif rows:
        echo_table(["USERNAME", "ROLE", "WORKSPACES"],
                   [[r["username"], r["role"], ", ".join(r["workspaces"])] for r in rows],
                   indent="")
    else:
        click.echo("No users.")
