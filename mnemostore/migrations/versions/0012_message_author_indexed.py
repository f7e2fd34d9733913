"""messages: the author (``metadata.author``) is indexed with the text, for full text and for embeddings

A message's author (a speaker's name in a multi-party or imported chat: OpenAI's ``name``, LangChain's ``name``)
is part of what it says: "what did Alice say about the move?" must find Alice's messages. The full-text index of a
message now covers ``"{author}: {content}"`` when ``metadata.author`` is a string, and the indexer embeds the same
text (``mnemostore.store.indexed_message_text``). The stored content is unchanged.

An author sealed by field encryption (``author`` in ``secret_metadata_keys``) is an envelope in the database, and
is left out of both indexes: only the plaintext content is indexed, as before.

* PostgreSQL: ``messages.search_tsv`` is generated from that text. PostgreSQL before 17 cannot change a generated
  column's expression, so the column (and its GIN index) is dropped and added again: this rewrites ``messages``
  and re-indexes every existing row.
* SQLite: a virtual generated column ``messages.search_text`` holds that text, and the FTS5 table
  ``messages_fts`` (external content) indexes it instead of ``content``; its triggers also follow changes of
  ``metadata`` (key rotation seals a plaintext author: it then leaves the index). The table is rebuilt from the
  existing rows.
* Embeddings: every existing message with an author and a vector the store computed gets an index job, so the
  indexer (``mnemostore worker``, or the store's inline indexing) embeds it again with its author.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Spelled out, not imported: a shipped revision must never change when the models do.
ENVELOPE = "enc:v1:"
PG_TEXT = (
    "CASE WHEN jsonb_typeof(metadata -> 'author') = 'string' "
    f"AND left(metadata ->> 'author', {len(ENVELOPE)}) <> '{ENVELOPE}' "
    "THEN (metadata ->> 'author') || ': ' || content ELSE content END"
)
SQLITE_TEXT = (
    "CASE WHEN json_type(metadata, '$.author') = 'text' "
    f"AND substr(json_extract(metadata, '$.author'), 1, {len(ENVELOPE)}) <> '{ENVELOPE}' "
    "THEN json_extract(metadata, '$.author') || ': ' || content ELSE content END"
)
FTS = "messages_fts"
TOKENIZE = "tokenize='porter unicode61'"
# Messages whose stored vector was computed without their author: queued again for the indexer.
TO_REEMBED = (
    "SELECT m.tenant_id, m.id FROM messages m JOIN embeddings e ON e.tenant_id = m.tenant_id "
    "AND e.item_kind = 'message' AND e.item_id = m.id AND NOT e.supplied WHERE {author}"
)
PG_HAS_AUTHOR = (
    "jsonb_typeof(m.metadata -> 'author') = 'string' "
    f"AND left(m.metadata ->> 'author', {len(ENVELOPE)}) <> '{ENVELOPE}'"
)
SQLITE_HAS_AUTHOR = (
    "json_type(m.metadata, '$.author') = 'text' "
    f"AND substr(json_extract(m.metadata, '$.author'), 1, {len(ENVELOPE)}) <> '{ENVELOPE}'"
)


def _pg_search_tsv(text: str) -> None:
    op.execute("ALTER TABLE messages DROP COLUMN search_tsv")  # its GIN index goes with it
    op.execute(
        "ALTER TABLE messages ADD COLUMN search_tsv tsvector "
        f"GENERATED ALWAYS AS (to_tsvector('english'::regconfig, {text})) STORED"
    )
    op.execute("CREATE INDEX ix_messages_search_tsv ON messages USING gin (search_tsv)")


def _sqlite_fts(column: str, *, watch: str) -> None:
    """``messages_fts`` over ``column`` of ``messages``, kept in step by triggers, filled from the rows."""
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS} USING fts5({column}, content='messages', content_rowid='rowid', {TOKENIZE})"
    )
    op.execute(
        f"CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN "
        f"INSERT INTO {FTS}(rowid, {column}) VALUES (new.rowid, new.{column}); END"
    )
    op.execute(
        f"CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN "
        f"INSERT INTO {FTS}({FTS}, rowid, {column}) VALUES ('delete', old.rowid, old.{column}); "
        "DELETE FROM embeddings WHERE tenant_id = old.tenant_id AND item_kind = 'message' "
        "AND item_id = old.id; END"
    )
    op.execute(
        f"CREATE TRIGGER messages_search_update AFTER UPDATE OF {watch} ON messages BEGIN "
        f"INSERT INTO {FTS}({FTS}, rowid, {column}) VALUES ('delete', old.rowid, old.{column}); "
        f"INSERT INTO {FTS}(rowid, {column}) VALUES (new.rowid, new.{column}); END"
    )
    op.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")


def _drop_sqlite_fts() -> None:
    for suffix in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS messages_search_{suffix}")
    op.execute(f"DROP TABLE IF EXISTS {FTS}")


def _queue_reembedding(dialect: str) -> None:
    bind = op.get_bind()
    author = PG_HAS_AUTHOR if dialect == "postgresql" else SQLITE_HAS_AUTHOR
    keys = bind.execute(sa.text(TO_REEMBED.format(author=author)).columns(tenant_id=sa.Uuid(), id=sa.Uuid())).all()
    if not keys:
        return
    now = datetime.now(UTC)
    if dialect == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite keeps naive UTC text (the store's UtcDateTime)
    jobs = sa.table(
        "index_jobs",
        *(sa.column(name, sa.Uuid()) for name in ("tenant_id", "id", "item_id")),
        *(sa.column(name, sa.String()) for name in ("item_kind", "state")),
        sa.column("attempts", sa.Integer()),
        *(sa.column(name, sa.DateTime(timezone=True)) for name in ("next_attempt_at", "created_at", "updated_at")),
    )
    rows = [
        {
            "tenant_id": tenant_id,
            "id": uuid.uuid4(),
            "item_id": item_id,
            "item_kind": "message",
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for tenant_id, item_id in keys
    ]
    for first in range(0, len(rows), 1000):
        bind.execute(sa.insert(jobs), rows[first : first + 1000])


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Transaction-local, like every binding of the store: the admin policy lets the migration see all rows.
        op.execute("SELECT set_config('mnemostore.admin', 'on', true)")
        _pg_search_tsv(PG_TEXT)
    else:
        _drop_sqlite_fts()
        op.execute(f"ALTER TABLE messages ADD COLUMN search_text TEXT GENERATED ALWAYS AS ({SQLITE_TEXT}) VIRTUAL")
        _sqlite_fts("search_text", watch="content, metadata")
    _queue_reembedding(dialect)


def downgrade() -> None:
    # Vectors embedded with their author stay until their items are embedded again (``mnemostore reindex`` with
    # another model, or a new vector): semantic search works either way.
    if op.get_bind().dialect.name == "postgresql":
        _pg_search_tsv("content")
    else:
        _drop_sqlite_fts()
        op.execute("ALTER TABLE messages DROP COLUMN search_text")
        _sqlite_fts("content", watch="content")
