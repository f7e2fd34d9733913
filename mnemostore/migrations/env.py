"""Alembic environment: runs revisions on the database named by mnemostore's settings.

Each migration runs in one transaction (PostgreSQL has transactional DDL; on SQLite, batch mode rebuilds tables
when a column changes), so a failed upgrade leaves the schema where it was.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from mnemostore.config import Settings
from mnemostore.migrations._filters import include_object
from mnemostore.store.tables import metadata

config = context.config
settings: Settings = config.attributes.setdefault("settings", Settings())


def run() -> None:
    url = config.get_main_option("sqlalchemy.url") or settings.database_url
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()  # else Alembic joins this transaction and never commits the migration
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_object=include_object,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
