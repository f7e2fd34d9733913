"""PostgreSQL routines for the chat-history hot path: an append and a history page in one round trip each

An append used to be seven round trips (BEGIN, the tenant binding, the sequence reservation, the usage charge, the
insert, the outbox, COMMIT) and a history page four; on a network each one costs more than the work it carries.
These two PL/pgSQL functions do the same statements, in the same order and under the same row-level security,
inside the one statement the client sends: a single call in autocommit is one atomic transaction.

They are SECURITY INVOKER (the default): they run as the application role, bind the tenant with the same
transaction-local setting as every other transaction, and so see exactly what it may see.

Errors they raise carry SQLSTATEs of their own (``MN404``: no such conversation in the tenant; ``MN429``: a quota
or the tenant's usage row refused the charge), which the store maps to its exceptions. SQLite has no round trips to
save and keeps running the statements from Python.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TENANT_BINDING = "PERFORM set_config('mnemostore.tenant_id', p_tenant::text, true);"

# p_rows: one JSON object per message, in order: id, role, content, model, prompt_tokens, completion_tokens,
# metadata, idempotency_key, bytes (the content's size for the counters) and job_id (the outbox job, when
# p_index). When the conversation already holds any of the idempotency keys, nothing is written: those keys come
# back in ``existing`` (the caller compares the stored messages with the request: a replay, or a key reused for
# another message) and ``last_seq`` is NULL. Otherwise every message is written and ``last_seq`` is the number of
# the last one (the others take the numbers just below it, in order).
APPEND = f"""
CREATE OR REPLACE FUNCTION mnemostore_append_messages(
    p_tenant uuid, p_conversation uuid, p_now timestamptz, p_rows jsonb, p_index boolean,
    OUT last_seq bigint, OUT existing text[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
    v_tokens bigint;
    v_bytes bigint;
BEGIN
    {_TENANT_BINDING}
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(p_rows) r WHERE r->>'idempotency_key' IS NOT NULL) THEN
        -- Lock the conversation before looking for the keys: a concurrent retry of the same append waits here,
        -- then finds ours, so a key is never written twice.
        PERFORM 1 FROM conversations c WHERE c.tenant_id = p_tenant AND c.id = p_conversation FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no conversation % in the tenant', p_conversation USING ERRCODE = 'MN404';
        END IF;
        SELECT array_agg(m.idempotency_key) INTO existing
          FROM messages m
         WHERE m.tenant_id = p_tenant AND m.conversation_id = p_conversation
           AND m.idempotency_key IN (SELECT r->>'idempotency_key' FROM jsonb_array_elements(p_rows) r);
        IF existing IS NOT NULL THEN
            RETURN;
        END IF;
    END IF;
    SELECT count(*), coalesce(sum((r->>'prompt_tokens')::bigint + (r->>'completion_tokens')::bigint), 0),
           coalesce(sum((r->>'bytes')::bigint), 0)
      INTO v_count, v_tokens, v_bytes
      FROM jsonb_array_elements(p_rows) r;
    IF v_count = 0 THEN
        RETURN;
    END IF;
    UPDATE conversations c
       SET last_seq = c.last_seq + v_count, message_count = c.message_count + v_count,
           total_tokens = c.total_tokens + v_tokens, content_bytes = c.content_bytes + v_bytes,
           last_activity_at = p_now
     WHERE c.tenant_id = p_tenant AND c.id = p_conversation
    RETURNING c.last_seq INTO last_seq;
    IF last_seq IS NULL THEN
        RAISE EXCEPTION 'no conversation % in the tenant', p_conversation USING ERRCODE = 'MN404';
    END IF;
    UPDATE tenant_usage u
       SET messages = u.messages + v_count, tokens = u.tokens + v_tokens, storage_bytes = u.storage_bytes + v_bytes
      FROM tenants t
     WHERE u.tenant_id = p_tenant AND t.id = p_tenant
       AND u.messages + v_count <= coalesce(t.max_messages, u.messages + v_count)
       AND u.storage_bytes + v_bytes <= coalesce(t.max_storage_bytes, u.storage_bytes + v_bytes);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the tenant''s usage refused % messages', v_count USING ERRCODE = 'MN429';
    END IF;
    INSERT INTO messages (tenant_id, id, conversation_id, seq, role, content, model, prompt_tokens,
                          completion_tokens, metadata, created_at, idempotency_key)
    SELECT p_tenant, (r->>'id')::uuid, p_conversation, last_seq - v_count + o, r->>'role', r->>'content',
           r->>'model', (r->>'prompt_tokens')::int, (r->>'completion_tokens')::int, r->'metadata', p_now,
           r->>'idempotency_key'
      FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS e(r, o);
    IF p_index THEN
        INSERT INTO index_jobs (tenant_id, id, item_kind, item_id, state, attempts, next_attempt_at, created_at,
                                updated_at)
        SELECT p_tenant, (r->>'job_id')::uuid, 'message', (r->>'id')::uuid, 'pending', 0, p_now, p_now, p_now
          FROM jsonb_array_elements(p_rows) r;
    END IF;
END $$
"""

# A history page: the conversation's last_seq first (read before the messages, so every message up to it is in
# the rows, which is what lets a cache refill trust them), then up to p_limit messages: the newest ones (p_seq
# NULL), the newest below p_seq (p_direction 'before'), or the oldest above it ('after'). Rows of 'newest' and
# 'before' come newest first. A conversation with no messages in range returns one row of NULLs but last_seq.
HISTORY = f"""
CREATE OR REPLACE FUNCTION mnemostore_history(
    p_tenant uuid, p_conversation uuid, p_limit integer, p_direction text, p_seq bigint
) RETURNS TABLE (
    last_seq bigint, id uuid, seq bigint, role varchar, content text, model varchar, prompt_tokens integer,
    completion_tokens integer, metadata jsonb, created_at timestamptz, idempotency_key varchar
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_last bigint;
BEGIN
    {_TENANT_BINDING}
    SELECT c.last_seq INTO v_last FROM conversations c WHERE c.tenant_id = p_tenant AND c.id = p_conversation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no conversation % in the tenant', p_conversation USING ERRCODE = 'MN404';
    END IF;
    IF p_direction = 'after' THEN
        RETURN QUERY SELECT v_last, m.id, m.seq, m.role, m.content, m.model, m.prompt_tokens, m.completion_tokens,
                            m.metadata, m.created_at, m.idempotency_key
                       FROM messages m
                      WHERE m.tenant_id = p_tenant AND m.conversation_id = p_conversation AND m.seq > p_seq
                      ORDER BY m.seq LIMIT p_limit;
    ELSE
        RETURN QUERY SELECT v_last, m.id, m.seq, m.role, m.content, m.model, m.prompt_tokens, m.completion_tokens,
                            m.metadata, m.created_at, m.idempotency_key
                       FROM messages m
                      WHERE m.tenant_id = p_tenant AND m.conversation_id = p_conversation
                        AND (p_seq IS NULL OR m.seq < p_seq)
                      ORDER BY m.seq DESC LIMIT p_limit;
    END IF;
    IF NOT FOUND THEN
        RETURN QUERY SELECT v_last, NULL::uuid, NULL::bigint, NULL::varchar, NULL::text, NULL::varchar,
                            NULL::integer, NULL::integer, NULL::jsonb, NULL::timestamptz, NULL::varchar;
    END IF;
END $$
"""

_SIGNATURES = (
    "mnemostore_append_messages(uuid, uuid, timestamptz, jsonb, boolean)",
    "mnemostore_history(uuid, uuid, integer, text, bigint)",
)


def _app_role() -> str:
    config = op.get_context().config
    settings = config.attributes.get("settings") if config is not None else None
    return settings.pg_app_role if settings is not None else "mnemostore_app"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(APPEND)
    op.execute(HISTORY)
    for signature in _SIGNATURES:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{_app_role()}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature in _SIGNATURES:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
