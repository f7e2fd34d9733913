"""Conversations, messages and history."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mnemostore.cache import EventType
from mnemostore.domain import (
    AppendResult,
    Conversation,
    ConversationStats,
    ConversationStatus,
    HistoryPage,
    Message,
    NewMessage,
    Page,
    Role,
    new_id,
)
from mnemostore.errors import (
    ConflictError,
    ConversationNotFound,
    IdempotencyConflict,
    InvalidInput,
    MessageNotFound,
    UserNotFound,
)
from mnemostore.search import ItemKind
from mnemostore.service import _validation as v
from mnemostore.service._export import to_export
from mnemostore.service._history import page_from_window, window_from_rows
from mnemostore.service._inputs import (
    UNSET,
    Supplied,
    Unset,
    as_id,
    message_differences,
    message_rows,
    utc_now,
)
from mnemostore.service._paging import (
    conversation_cursor,
    decode_conversation_cursor,
    decode_history_cursor,
    history_cursor,
)
from mnemostore.service._scope_async import AsyncTenantScope
from mnemostore.store import UsageRefused, to_message


class AsyncConversations(AsyncTenantScope):
    """Conversations and their messages: appends (idempotent, counted against quotas), history pages, export
    and import.
    """

    async def create_conversation(
        self,
        user_id: uuid.UUID | str,
        *,
        title: str | None = None,
        channel: str | None = None,
        model_override: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
    ) -> Conversation:
        """Start a conversation of one of the tenant's users, counted against the tenant's usage.

        Args:
            external_id: your own key of the conversation (a session or thread id), unique in the tenant:
                ``get_conversation_by_external_id`` finds it.

        Raises:
            UserNotFound: no such user in this tenant.
            QuotaExceeded: the tenant's plan allows no more conversations.
            ModelNotAllowed: ``model_override`` is not a model of the tenant's plan (``Quotas.allowed_models``).
            ConflictError: another conversation of the tenant has this ``external_id``.
        """
        uid = as_id(user_id, "user_id")
        now = utc_now()
        values = {
            "id": new_id(),
            "user_id": uid,
            "external_id": v.check_name(external_id, "external_id", max_len=200, required=external_id is not None),
            "title": v.check_name(title, "title", max_len=500),
            "status": ConversationStatus.ACTIVE.value,
            "channel": v.check_name(channel, "channel", max_len=50),
            "model_override": v.check_name(model_override, "model_override", max_len=200),
            "metadata": self._json(metadata, "metadata"),
            "started_at": now,
            "last_activity_at": now,
            "message_count": 0,
            "total_tokens": 0,
            "content_bytes": 0,
            "last_seq": 0,
        }
        await self._check_models([model_override])
        async with self._tx(write=True) as uow:
            if await uow.users.get(uid) is None:
                raise UserNotFound(uid)
            # Insert, then charge: an insert whose external id is taken waits for a writer of that conversation
            # (an append: conversation row, then the tenant's usage row), so it must not hold the usage row
            # meanwhile, or PostgreSQL finds a deadlock; it then fails with ConflictError, and nothing is charged.
            conversation = await uow.conversations.insert(values)
            await self._charge(uow, conversations=1)
            return conversation

    async def get_conversation(self, conversation_id: uuid.UUID | str) -> Conversation | None:
        """The conversation, or None when the tenant has no conversation with this id."""
        async with self._tx() as uow:
            return await uow.conversations.get(as_id(conversation_id, "conversation_id"))

    async def get_conversation_by_external_id(self, external_id: str) -> Conversation | None:
        """The conversation created with this ``external_id`` (your own key of it), or None."""
        v.check_text(external_id, "external_id")
        async with self._tx() as uow:
            return await uow.conversations.get_by_external_id(external_id)

    async def get_or_create_conversation_by_external_id(
        self, external_id: str, *, user_id: uuid.UUID | str, **fields: Any
    ) -> Conversation:
        """The conversation with this ``external_id``, created for ``user_id`` (with ``fields``, as
        ``create_conversation`` takes them) when there is none; safe under concurrent calls (one is created, the
        others get it).

        Raises:
            UserNotFound: it must be created, and ``user_id`` is no user of this tenant.
        """
        for _attempt in range(3):
            found = await self.get_conversation_by_external_id(external_id)
            if found is not None:
                return found
            try:
                return await self.create_conversation(user_id, external_id=external_id, **fields)
            except ConflictError:
                continue
        raise ConflictError(f"could not create a conversation with external id {external_id!r} after 3 attempts: retry")

    async def get_conversation_or_raise(self, conversation_id: uuid.UUID | str) -> Conversation:
        """The conversation.

        Raises:
            ConversationNotFound: the tenant has no conversation with this id.
        """
        conversation = await self.get_conversation(conversation_id)
        if conversation is None:
            raise ConversationNotFound(conversation_id)
        return conversation

    async def list_conversations(
        self,
        user_id: uuid.UUID | str,
        *,
        status: ConversationStatus | str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Conversation]:
        """A user's conversations, most recently active first."""
        uid = as_id(user_id, "user_id")
        v.check_limit(limit)
        status_value = v.check_enum(ConversationStatus, status).value if status is not None else None
        after = decode_conversation_cursor(cursor) if cursor else None
        async with self._tx() as uow:
            items = await uow.conversations.list_for_user(uid, status=status_value, limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=conversation_cursor(items[-1]) if more else None)

    async def list_active_conversations(self, *, limit: int = 100, cursor: str | None = None) -> Page[Conversation]:
        """The tenant's active conversations across users, most recently active first."""
        v.check_limit(limit)
        after = decode_conversation_cursor(cursor) if cursor else None
        async with self._tx() as uow:
            items = await uow.conversations.list_active(limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=conversation_cursor(items[-1]) if more else None)

    async def update_conversation(
        self,
        conversation_id: uuid.UUID | str,
        *,
        title: str | Unset | None = UNSET,
        status: ConversationStatus | str | Unset = UNSET,
        model_override: str | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
    ) -> Conversation:
        """Change the given fields (pass None to clear title or model_override).

        Raises:
            ConversationNotFound: no such conversation in this tenant.
            ModelNotAllowed: ``model_override`` is not a model of the tenant's plan (``Quotas.allowed_models``).
        """
        cid = as_id(conversation_id, "conversation_id")
        values: dict[str, Any] = {}
        if not isinstance(title, Unset):
            values["title"] = v.check_name(title, "title", max_len=500)
        if not isinstance(status, Unset):
            values["status"] = v.check_enum(ConversationStatus, status).value
        if not isinstance(model_override, Unset):
            values["model_override"] = v.check_name(model_override, "model_override", max_len=200)
            await self._check_models([values["model_override"]])
        if not isinstance(metadata, Unset):
            values["metadata"] = self._json(metadata, "metadata")
        async with self._tx(write=True) as uow:
            conversation = await (uow.conversations.update(cid, values) if values else uow.conversations.get(cid))
        if conversation is None:
            raise ConversationNotFound(cid)
        if values.get("status") == ConversationStatus.ARCHIVED.value:
            data = {"conversation_id": str(cid), "user_id": str(conversation.user_id)}
            await self._cache.events.publish(self.tenant_id, EventType.CONVERSATION_ARCHIVED, data)
        return conversation

    async def archive_conversation(self, conversation_id: uuid.UUID | str) -> Conversation:
        """Mark the conversation archived: it keeps its messages but leaves ``list_active_conversations``."""
        return await self.update_conversation(conversation_id, status=ConversationStatus.ARCHIVED)

    async def delete_conversation(self, conversation_id: uuid.UUID | str) -> None:
        """Delete a conversation with its messages, tool executions, checkpoints, events and metrics."""
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx(write=True) as uow:
            gone = await uow.conversations.delete(cid)
            if gone is None:
                raise ConversationNotFound(cid)
            await self._charge(
                uow,
                conversations=-1,
                messages=-gone.message_count,
                tokens=-gone.total_tokens,
                storage_bytes=-gone.content_bytes,
            )
        await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.MESSAGE, conversation_id=cid)
        await self._cache.context.invalidate(self.tenant_id, [cid], reset=True)

    async def get_conversation_stats(self, conversation_id: uuid.UUID | str) -> ConversationStats:
        """Counts and times of one conversation (messages per role, tokens, first and last message), read in one
        snapshot.

        Raises:
            ConversationNotFound: the tenant has no conversation with this id.
        """
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            return await uow.conversations.stats(conversation)

    async def add_message(
        self,
        conversation_id: uuid.UUID | str,
        *,
        role: Role | str,
        content: str,
        model: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        created_at: datetime | None = None,
        vector: Sequence[float] | None = None,
        vector_model: str | None = None,
    ) -> Message:
        """Append a message; the conversation's counters and last activity move in the same transaction.

        Args:
            idempotency_key: when given, retrying with the same key returns the first message instead of
                appending a copy.
            created_at: when the message was said, for past messages being imported (timezone-aware; default
                now). Search filters and recency use it; the conversation's order stays the append order.
            vector, vector_model: the caller's embedding of the message and the model that computed it (default:
                the store's embedder); the store keeps it instead of embedding the message (``InvalidVector``,
                ``VectorDimensionMismatch`` when it does not fit).

        Raises:
            ConversationNotFound, InvalidInput (and subclasses), QuotaExceeded.
        """
        new = NewMessage(
            role=role,
            content=content,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            metadata=self._json(metadata, "metadata"),
            idempotency_key=idempotency_key,
            created_at=created_at,
            vector=None if vector is None else list(vector),
            vector_model=vector_model,
        )
        return (await self.add_messages(conversation_id, [new]))[0]

    async def add_messages(
        self, conversation_id: uuid.UUID | str, new_messages: Sequence[NewMessage | Mapping[str, Any]]
    ) -> list[Message]:
        """Append several messages in order, in one transaction (all or none).

        Messages whose idempotency key was already used, for the same message, come back as the stored originals
        (``append_messages`` also says which).

        Raises:
            ConversationNotFound, InvalidInput (and subclasses), QuotaExceeded; IdempotencyConflict: a key was
            used for a different message (nothing of the call is written); ModelNotAllowed: a message names a
            model the tenant's plan does not allow (nothing of the call is written).
        """
        return (await self.append_messages(conversation_id, new_messages)).messages

    async def append_messages(
        self, conversation_id: uuid.UUID | str, new_messages: Sequence[NewMessage | Mapping[str, Any]]
    ) -> AppendResult:
        """``add_messages``, saying which messages are replays.

        A message whose idempotency key the conversation already holds is a replay when it is the same message
        (role, content, model, token counts, metadata): it comes back as stored and is not written again. The same
        key with a different message is a client error (``IdempotencyConflict``), found before anything of the
        call is committed. A replay also drops the conversation's cached recent-context window: the first attempt
        may have committed and died before writing the message through, and the retry is the one sign of that, so
        the next history read comes from the database and includes it.
        """
        cid = as_id(conversation_id, "conversation_id")
        prepared = message_rows(
            self.tenant_id,
            cid,
            new_messages,
            max_content_bytes=self._settings.max_content_bytes,
            max_metadata_bytes=self._settings.max_metadata_bytes,
        )
        if not prepared:
            return AppendResult(messages=[], replayed=[])
        await self._check_models(row["model"] for row in prepared)
        keys = [row["idempotency_key"] for row in prepared if row["idempotency_key"] is not None]
        if len(set(keys)) != len(keys):
            raise InvalidInput("two messages in one call share an idempotency_key: give each its own")
        sizes = {row["id"]: row.pop("_bytes") for row in prepared}
        supplied = self._supplied(prepared)
        existing: dict[str, Message] = {}
        fresh = prepared
        # Each pass either writes every remaining message or finds more of their keys already used (a concurrent
        # retry may have written one since): at most one pass per key, and one more to write.
        for _ in range(len(keys) + 1):
            held = await self._append_rows(cid, fresh, sizes, supplied)
            if not held:
                break
            existing.update(await self._replayed(cid, prepared, held, supplied))
            fresh = [row for row in prepared if row["idempotency_key"] not in existing]
            if not fresh:
                break
        else:
            raise ConflictError(
                "the idempotency keys of this append kept being used and deleted by concurrent calls: retry it"
            )
        # Committed: write the new messages through to the recent-context window (and publish them).
        added = [to_message(row) for row in fresh]
        await self._cache.messages_added(self.tenant_id, cid, added)
        if existing:
            await self._cache.context.invalidate(self.tenant_id, [cid])
        by_id = {m.id: m for m in added}
        return AppendResult(
            messages=[
                existing[row["idempotency_key"]] if row["idempotency_key"] in existing else by_id[row["id"]]
                for row in prepared
            ],
            replayed=[row["idempotency_key"] in existing for row in prepared],
        )

    async def _replayed(
        self,
        cid: uuid.UUID,
        prepared: list[dict[str, Any]],
        held: frozenset[str],
        supplied: Supplied,
    ) -> dict[str, Message]:
        """The stored messages of the ``held`` keys, each checked to be the message the request sends again."""
        async with self._tx() as uow:
            stored = await uow.messages.find_by_idempotency_keys(cid, sorted(held))
        for row in prepared:
            original = stored.get(row["idempotency_key"])
            if original is not None:
                differences = message_differences(row, original, said_at=supplied.said_at.get(row["id"]))
                if differences:
                    raise IdempotencyConflict(row["idempotency_key"], original.seq, differences)
        return stored

    async def _append_rows(
        self,
        cid: uuid.UUID,
        rows: list[dict[str, Any]],
        sizes: dict[uuid.UUID, int],
        supplied: Supplied,
    ) -> frozenset[str]:
        """Write ``rows`` all or nothing (they get their ``seq`` and ``created_at``: the time the caller gave, else
        now), or, when the conversation holds any of their idempotency keys, write nothing and return those keys."""
        if supplied:
            # Past messages being imported, or the caller's vectors: not the chat hot path, whose one call stamps
            # every row with now and queues every message for the embedder.
            return await self._append_in_transaction(cid, rows, sizes, supplied)
        try:
            return await self._append_in_one_call(cid, rows, sizes)
        except UsageRefused:
            # Which quota, or no tenant at all: the append statement by statement finds out and says so.
            return await self._append_in_transaction(cid, rows, sizes, supplied)

    async def _append_in_one_call(
        self, cid: uuid.UUID, rows: list[dict[str, Any]], sizes: dict[uuid.UUID, int]
    ) -> frozenset[str]:
        """The append in one call on the driver (on PostgreSQL one round trip: migration 0007's routine)."""
        hot_path = await self._runtime.hot_path()
        now = utc_now()
        indexing = self._settings.embedder != "none"
        outcome = await hot_path.append(
            self.tenant_id,
            cid,
            rows,
            sizes=[sizes[row["id"]] for row in rows],
            now=now,
            job_ids=[new_id() for _ in rows] if indexing else None,
        )
        if outcome.existing:
            return outcome.existing
        assert outcome.last_seq is not None
        for seq, row in enumerate(rows, start=outcome.last_seq - len(rows) + 1):
            row["seq"] = seq
            row["created_at"] = now
        if indexing:
            self._runtime.queued_for_indexing()
            await self._runtime.after_commit()
        return frozenset()

    async def _append_in_transaction(
        self,
        cid: uuid.UUID,
        rows: list[dict[str, Any]],
        sizes: dict[uuid.UUID, int],
        supplied: Supplied,
    ) -> frozenset[str]:
        """The append's statements one by one, in one write transaction: what a refused charge needs to say which
        quota refused it (or that the tenant is gone)."""
        keys = [row["idempotency_key"] for row in rows if row["idempotency_key"] is not None]
        async with self._tx(write=True) as uow:
            if keys:
                # Lock the conversation before looking for the keys: a concurrent retry of the same append
                # waits here, then finds ours, so a key is never written twice.
                if not await uow.conversations.lock(cid):
                    raise ConversationNotFound(cid)
                held = await uow.messages.find_by_idempotency_keys(cid, keys)
                if held:
                    return frozenset(held)
            now = utc_now()
            tokens = sum(row["prompt_tokens"] + row["completion_tokens"] for row in rows)
            size = sum(sizes[row["id"]] for row in rows)
            last = await uow.conversations.reserve(cid, count=len(rows), tokens=tokens, content_bytes=size, now=now)
            if last is None:
                raise ConversationNotFound(cid)
            for seq, row in enumerate(rows, start=last - len(rows) + 1):
                row["seq"] = seq
                row["created_at"] = supplied.said_at.get(row["id"]) or now
            await self._charge(uow, messages=len(rows), tokens=tokens, storage_bytes=size)
            await uow.messages.insert_many(rows)
            by_model: dict[str, list[tuple[uuid.UUID, list[float]]]] = {}
            for row in rows:
                if row["id"] in supplied.vectors:
                    vector, model = supplied.vectors[row["id"]]
                    by_model.setdefault(model, []).append((row["id"], vector))
            for model, vectors in by_model.items():
                await self._put_vectors(uow, ItemKind.MESSAGE, vectors, model, now)
            embed = [row["id"] for row in rows if row["id"] not in supplied.vectors]
            await self._enqueue(uow, ItemKind.MESSAGE, embed, now)
        return frozenset()

    def _supplied(self, rows: list[dict[str, Any]]) -> Supplied:
        """Take out of ``rows`` what the caller gave beyond the messages (their times, their vectors), checked."""
        supplied = Supplied()
        for index, row in enumerate(rows):
            said_at, vector, model = row.pop("_said_at"), row.pop("_vector"), row.pop("_vector_model")
            if said_at is not None:
                supplied.said_at[row["id"]] = said_at
            if vector is not None:
                supplied.vectors[row["id"]] = self._caller_vector(vector, model, field=f"messages[{index}].vector")
            elif model is not None:
                raise InvalidInput(
                    f"messages[{index}].vector_model names the model of a vector: pass the vector too (or drop it)"
                )
        return supplied

    async def get_conversation_history(
        self,
        conversation_id: uuid.UUID | str,
        *,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
    ) -> HistoryPage:
        """Messages of a conversation in order: the newest ``limit`` by default.

        Args:
            before: a cursor from a previous page's ``before``: the ``limit`` messages just older than it.
            after: a cursor from a previous page's ``after``: the ``limit`` messages just newer than it.

        Returns:
            A page whose ``before``/``after`` cursors are None when nothing older/newer exists.
        """
        cid = as_id(conversation_id, "conversation_id")
        v.check_limit(limit)
        if before is not None and after is not None:
            raise InvalidInput("pass either before or after, not both")
        before_seq = decode_history_cursor(before) if before is not None else None
        after_seq = decode_history_cursor(after) if after is not None else None
        context = self._cache.context
        # Read through the recent-context window when it can hold the answer (see mnemostore.service._history).
        default_read = before_seq is None and after_seq is None
        seen: str | None = None
        if context.enabled and (limit <= context.size or not default_read):
            window = await context.read(self.tenant_id, cid, count=limit + 1 if default_read else 0)
            seen = window.version if default_read else None
            if window.messages is not None:
                page = page_from_window(
                    window.messages,
                    window.floor,
                    limit=limit,
                    before=before_seq,
                    after=after_seq,
                    complete=not default_read,
                )
                if page is not None:
                    return page
        fetch = max(limit, context.size) + 1 if seen is not None else limit + 1
        last_seq, rows = await self._history_rows(cid, limit=fetch, before=before_seq, after=after_seq)
        if seen is not None:
            refill = window_from_rows(rows, last_seq=last_seq, fetched_all=len(rows) < fetch, size=context.size)
            if refill is not None:
                await context.refill(self.tenant_id, cid, seen=seen, last=last_seq, floor=refill[1], messages=refill[0])
            rows = rows[-(limit + 1) :]
        older: str | None
        newer: str | None
        if after_seq is not None:
            more_newer, items = len(rows) > limit, rows[:limit]
            newer = history_cursor(items[-1].seq) if more_newer else None
            older = history_cursor(items[0].seq if items else after_seq + 1)
            return HistoryPage(messages=items, before=older, after=newer)
        more_older, items = len(rows) > limit, rows[-limit:] if rows else rows
        older = history_cursor(items[0].seq) if more_older else None
        newer = None if before_seq is None else history_cursor(items[-1].seq if items else before_seq - 1)
        return HistoryPage(messages=items, before=older, after=newer)

    async def _history_rows(
        self, cid: uuid.UUID, *, limit: int, before: int | None, after: int | None
    ) -> tuple[int, list[Message]]:
        """(the conversation's last_seq, read before the messages so that every message up to it is in the rows;
        the page's rows) or ConversationNotFound."""
        hot_path = await self._runtime.hot_path()
        return await hot_path.history(self.tenant_id, cid, limit=limit, before=before, after=after)

    async def count_messages(self, conversation_id: uuid.UUID | str) -> int:
        """How many messages the conversation holds now (a kept counter: no scan).

        Raises:
            ConversationNotFound: the tenant has no conversation with this id.
        """
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            return conversation.message_count

    async def get_message(self, message_id: uuid.UUID | str) -> Message | None:
        """The message, or None when the tenant has no message with this id."""
        async with self._tx() as uow:
            return await uow.messages.get(as_id(message_id, "message_id"))

    async def delete_message(self, message_id: uuid.UUID | str) -> None:
        """Delete one message (its sequence number is not reused)."""
        mid = as_id(message_id, "message_id")
        async with self._tx(write=True) as uow:
            gone = await uow.messages.delete(mid)
            if gone is None:
                raise MessageNotFound(mid)
            size = len(gone.content.encode())
            await uow.conversations.release(
                gone.conversation_id, messages=1, tokens=gone.total_tokens, content_bytes=size
            )
            await self._charge(uow, messages=-1, tokens=-gone.total_tokens, storage_bytes=-size)
        await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.MESSAGE, ids=[mid])
        await self._cache.context.invalidate(self.tenant_id, [gone.conversation_id])

    async def delete_messages(self, conversation_id: uuid.UUID | str) -> int:
        """Delete every message of a conversation in one transaction (a chat's "clear"); returns how many.

        The conversation stays, with its id, title, metadata and agent records (tool executions, checkpoints,
        events); its counters go to zero and its sequence numbers are not reused.

        Raises:
            ConversationNotFound: the tenant has no conversation with this id.
        """
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx(write=True) as uow:
            if not await uow.conversations.lock(cid):
                raise ConversationNotFound(cid)
            conversation = await uow.conversations.get(cid)
            assert conversation is not None  # locked above, in this transaction
            deleted = await uow.messages.delete_all(cid)
            await uow.conversations.release(
                cid,
                messages=conversation.message_count,
                tokens=conversation.total_tokens,
                content_bytes=conversation.content_bytes,
            )
            await self._charge(
                uow,
                messages=-conversation.message_count,
                tokens=-conversation.total_tokens,
                storage_bytes=-conversation.content_bytes,
            )
        # The conversation stays and may get new messages: only the stale vectors of its messages go.
        await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.MESSAGE, conversation_id=cid, sweep=True)
        await self._cache.context.invalidate(self.tenant_id, [cid])
        return deleted

    async def export_conversation(self, conversation_id: uuid.UUID | str) -> dict[str, Any]:
        """The conversation and all its messages as one JSON-ready dict (see ``import_conversation``)."""
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            all_messages = await uow.messages.all(cid)
        return to_export(conversation, all_messages)

    async def import_conversation(
        self, data: Mapping[str, Any], *, user_id: uuid.UUID | str | None = None, new_ids: bool = False
    ) -> Conversation:
        """Recreate an exported conversation in this tenant.

        Args:
            user_id: the owner here (default: the exported owner, who must exist in this tenant).
            new_ids: give the conversation and messages fresh ids (to import a copy next to the original).

        Raises:
            InvalidInput: ``data`` is not an export of this format.
            ConflictError: the conversation id exists already here (pass ``new_ids=True``).
        """
        from mnemostore.service._export import conversation_from_export

        conversation, rows = conversation_from_export(
            data,
            max_content_bytes=self._settings.max_content_bytes,
            max_metadata_bytes=self._settings.max_metadata_bytes,
        )
        if user_id is not None:
            conversation["user_id"] = as_id(user_id, "user_id")
        if new_ids:
            conversation["id"] = new_id()
            for row in rows:
                row["id"] = new_id()
        for row in rows:
            row["conversation_id"] = conversation["id"]
            row["tenant_id"] = self.tenant_id
        try:
            async with self._tx(write=True) as uow:
                if await uow.users.get(conversation["user_id"]) is None:
                    raise UserNotFound(conversation["user_id"], ": pass user_id= to import for another user")
                if await uow.conversations.get(conversation["id"]) is not None:
                    raise ConflictError(
                        f"conversation {conversation['id']} already exists here: pass new_ids=True to import a copy"
                    )
                await self._charge(
                    uow,
                    conversations=1,
                    messages=len(rows),
                    tokens=conversation["total_tokens"],
                    storage_bytes=conversation["content_bytes"],
                )
                result = await uow.conversations.insert(conversation)
                if rows:
                    await uow.messages.insert_many(rows)
                    await self._enqueue(uow, ItemKind.MESSAGE, [row["id"] for row in rows], utc_now())
        except ConflictError as error:
            if "already exists here" in str(error):
                raise
            raise ConflictError(f"import conflicts with existing data ({error}): pass new_ids=True") from error
        # The id may have had a window before (a deleted conversation imported back): start from scratch.
        await self._cache.context.invalidate(self.tenant_id, [result.id], reset=True)
        return result
