"""Maintenance of one tenant: retention of conversations and memories, the memory lifecycle, checkpoint retention."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mnemostore.cache import EventType
from mnemostore.domain import ConversationStatus, MemoryRecord, MemoryTier
from mnemostore.errors import ConversationNotFound
from mnemostore.memory import CheckpointRetentionPolicy, MemoryLifecyclePolicy, RetentionPolicy, TenantMaintenance
from mnemostore.search import ItemKind
from mnemostore.service import _validation as v
from mnemostore.service._agent_async import AsyncAgentRecords
from mnemostore.service._inputs import utc_now
from mnemostore.service._memories_async import AsyncMemories, version_row

EVERYTHING = 2**31 - 1
WORKING, SHORT_TERM, LONG_TERM = (t.value for t in (MemoryTier.WORKING, MemoryTier.SHORT_TERM, MemoryTier.LONG_TERM))


class AsyncMaintenance(AsyncMemories, AsyncAgentRecords):
    """``run_maintenance`` of a tenant: everything that ages."""

    async def run_maintenance(
        self, *, dry_run: bool = False, now: datetime | None = None, batch_size: int = 500
    ) -> TenantMaintenance:
        """Apply the tenant's policies: purge expired memories, archive idle conversations and delete old
        archives (``retention``), move memories between tiers (``memory_lifecycle``), prune agent checkpoints
        (``checkpoint_retention``).

        The ages come from the tenant config (``mnemostore.memory.RetentionPolicy``, ``MemoryLifecyclePolicy``,
        ``CheckpointRetentionPolicy``: the lifecycle and the checkpoint retention apply by default, with their
        defaults; retention of conversations only when configured). Deleting a conversation goes through
        ``delete_conversation`` (usage, cached history); the database cascades to messages, vectors and
        full-text rows. Each batch is its own transaction, so an interrupted run resumes. A memory the lifecycle
        retires expires now, and the next run purges it.

        Args:
            dry_run: count what would be done, change nothing (each step counted on the state before the run).
            now: the moment ages are measured from (default: now).

        Raises:
            TenantNotFound: the tenant does not exist.
            ConfigurationError: a policy of the tenant's config is malformed (nothing is done then).
        """
        v.check_int(batch_size, "batch_size", minimum=1, maximum=10_000)
        now = v.check_time(now, "now") or utc_now()
        config = (await self._tenant_or_raise()).config
        policy = RetentionPolicy.from_config(config)
        lifecycle = MemoryLifecyclePolicy.from_config(config)
        checkpoints = CheckpointRetentionPolicy.from_config(config)
        result = TenantMaintenance(tenant_id=self.tenant_id)
        await self._apply_retention(policy, result, now=now, dry_run=dry_run, batch_size=batch_size)
        if lifecycle.enabled:
            await self._apply_lifecycle(lifecycle, result, now=now, dry_run=dry_run, batch_size=batch_size)
        if checkpoints.enabled:
            result.pruned_checkpoints = await self._prune_all_checkpoints(
                checkpoints, now=now, dry_run=dry_run, batch_size=batch_size
            )
        return result

    async def _apply_retention(
        self, policy: RetentionPolicy, result: TenantMaintenance, *, now: datetime, dry_run: bool, batch_size: int
    ) -> None:
        """Purge expired memories, archive idle conversations, delete old archives."""
        while True:
            async with self._tx(write=not dry_run) as uow:
                expired = await uow.memories.expired(now, limit=EVERYTHING if dry_run else batch_size)
                if not dry_run:
                    await uow.memories.delete_many(expired)
            if not dry_run:
                await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.MEMORY, ids=expired)
            result.expired_memories += len(expired)
            if dry_run or len(expired) < batch_size:
                break
        archive_before, delete_before = policy.archive_before(now), policy.delete_before(now)
        active, archived = ConversationStatus.ACTIVE.value, ConversationStatus.ARCHIVED.value
        if dry_run:
            async with self._tx() as uow:
                if archive_before is not None:
                    idle = await uow.conversations.idle(status=active, before=archive_before, limit=EVERYTHING)
                    result.archived_conversations = len(idle)
                if delete_before is not None:
                    old = await uow.conversations.idle(status=archived, before=delete_before, limit=EVERYTHING)
                    result.deleted_conversations = len(old)
                    if archive_before is not None:
                        # Archived by this run and old enough to go in the same run.
                        soon = min(archive_before, delete_before)
                        gone = await uow.conversations.idle(status=active, before=soon, limit=EVERYTHING)
                        result.deleted_conversations += len(gone)
            return
        while archive_before is not None:
            async with self._tx(write=True) as uow:
                idle = await uow.conversations.idle(status=active, before=archive_before, limit=batch_size)
                for conversation in idle:
                    await uow.conversations.update(conversation.id, {"status": archived})
            for conversation in idle:
                data = {"conversation_id": str(conversation.id), "user_id": str(conversation.user_id)}
                await self._cache.events.publish(self.tenant_id, EventType.CONVERSATION_ARCHIVED, data)
            result.archived_conversations += len(idle)
            if len(idle) < batch_size:
                break
        while delete_before is not None:
            async with self._tx() as uow:
                old = await uow.conversations.idle(status=archived, before=delete_before, limit=batch_size)
            for conversation in old:
                try:
                    await self.delete_conversation(conversation.id)
                except ConversationNotFound:
                    continue  # deleted meanwhile
                result.deleted_conversations += 1
            if len(old) < batch_size:
                break

    async def _apply_lifecycle(
        self,
        policy: MemoryLifecyclePolicy,
        result: TenantMaintenance,
        *,
        now: datetime,
        dry_run: bool,
        batch_size: int,
    ) -> None:
        """Promote, demote and retire memories (``MemoryLifecyclePolicy``), each change kept as a version.

        In order, so that no memory moves twice in one run: what a step changes is changed ``now``, which no
        later step takes for idle. Promotions first (to long term, then working to short term), then
        demotions (long to short, short to working), then retirements.
        """
        since = policy.idle_before(now)  # recalled since: recently; neither changed nor recalled since: idle
        important = policy.important
        steps: list[tuple[str, list[str], str | None, dict[str, Any]]] = [
            (
                "promote",
                [WORKING, SHORT_TERM],
                LONG_TERM,
                {"recalled": (policy.long_term_recalls, since), "important": important},
            ),
            (
                "promote",
                [WORKING],
                SHORT_TERM,
                {
                    "recalled": (policy.short_term_recalls, since),
                    "fewer_recalls_than": policy.long_term_recalls,
                    "below": important,
                },
            ),
            ("demote", [LONG_TERM], SHORT_TERM, {"idle_before": since, "below": important}),
            ("demote", [SHORT_TERM], WORKING, {"idle_before": since, "below": important}),
        ]
        retire_before = policy.retire_before(now)
        if retire_before is not None:
            steps.append(("retire", [WORKING], None, {"idle_before": retire_before, "below": important}))
        for reason, tiers, target, rule in steps:
            changed = await self._lifecycle_step(
                reason, tiers, target, rule, now=now, dry_run=dry_run, batch_size=batch_size
            )
            if reason == "promote":
                result.promoted_memories += changed
            elif reason == "demote":
                result.demoted_memories += changed
            else:
                result.retired_memories += changed

    async def _lifecycle_step(
        self,
        reason: str,
        tiers: list[str],
        target: str | None,
        rule: dict[str, Any],
        *,
        now: datetime,
        dry_run: bool,
        batch_size: int,
    ) -> int:
        """One step of the lifecycle in batches: each batch keeps the versions and changes the tier (or, without
        a ``target``, the expiry) of its memories in one transaction, one INSERT and one UPDATE."""
        changed = 0
        while True:
            async with self._tx(write=not dry_run) as uow:
                found: list[MemoryRecord] = await uow.memories.lifecycle_candidates(
                    tiers=tiers,
                    now=now,
                    limit=EVERYTHING if dry_run else batch_size,
                    **rule,
                )
                if not dry_run and found:
                    await uow.memories.add_versions([version_row(m, now, reason) for m in found])
                    values: dict[str, object] = {"updated_at": now}
                    values.update({"tier": target} if target is not None else {"expires_at": now})
                    await uow.memories.update_many([m.id for m in found], values)
            changed += len(found)
            if dry_run or len(found) < batch_size:
                return changed

    async def _prune_all_checkpoints(
        self, policy: CheckpointRetentionPolicy, *, now: datetime, dry_run: bool, batch_size: int
    ) -> int:
        """Apply checkpoint retention to every conversation that holds more than ``keep_last`` checkpoints:
        ``batch_size`` conversations looked up, and ``batch_size`` checkpoints deleted, per transaction."""
        keep_after = policy.keep_after(now)
        pruned = 0
        after: uuid.UUID | None = None
        while True:
            async with self._tx() as uow:
                crowded = await uow.agent.crowded_conversations(policy.keep_last, after=after, limit=batch_size)
            for conversation_id in crowded:
                while True:
                    async with self._tx(write=not dry_run) as uow:
                        doomed = await uow.agent.expendable_checkpoints(
                            conversation_id,
                            keep_last=policy.keep_last,
                            keep_after=keep_after,
                            limit=EVERYTHING if dry_run else batch_size,
                        )
                        if not dry_run:
                            await uow.agent.delete_checkpoints(doomed)
                    pruned += len(doomed)
                    if dry_run or len(doomed) < batch_size:
                        break
            if len(crowded) < batch_size:
                return pruned
            after = crowded[-1]
