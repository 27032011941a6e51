"""Alembic environment for annota.

annota drives Alembic from ``annota.server.schema.migrate``: online runs get an open
connection (already holding the migration lock) in ``config.attributes["connection"]``;
offline runs (``migrate --sql``) get a URL in ``config.attributes["url"]``.
Each revision runs in its own transaction, on SQLite too, so an interrupted migration
stops at the last completed revision and a rerun finishes the job.
"""

from alembic import context

from annota.server.db import dialect_named

config = context.config
common = {
    "transaction_per_migration": True,
    "target_metadata": config.attributes.get("target_metadata"),
    "compare_type": True,
}

if context.is_offline_mode():
    context.configure(
        url=config.attributes["url"],
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **common,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        render_as_batch=dialect_named(connection.dialect.name).render_as_batch,
        # annota's SQLite dialect issues BEGIN itself, so DDL there is transactional too
        transactional_ddl=True,
        on_version_apply=config.attributes.get("on_version_apply", []),
        **common,
    )
    with context.begin_transaction():
        context.run_migrations()
