"""Memory lifecycle (recall counts, tiers that move), checkpoint retention and allowed models, on both backends.

Maintenance takes its clock as ``now``: each test writes at the real time, then runs maintenance days later.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from mnemostore import (
    AsyncMnemoStore,
    CheckpointRetentionPolicy,
    ConfigurationError,
    MemoryLifecyclePolicy,
    MemoryTier,
    MnemoStore,
    ModelNotAllowed,
    Quotas,
    Settings,
    TenantStore,
)
from mnemostore.client._errors import error_from_answer
from tests.fix_api import ApiTenant, admin_headers, make_tenant

LIFECYCLE = {"short_term_recalls": 2, "long_term_recalls": 3, "idle_days": 10, "retire_after_days": 20}


def _recall(t: TenantStore, agent: str, times: int) -> None:
    for _ in range(times):
        assert len(t.retrieve_memories(agent_id=agent).items) == 1


def _tier(t: TenantStore, memory_id: uuid.UUID) -> MemoryTier:
    return t.get_memory_or_raise(memory_id).tier


# -- recall counts ------------------------------------------------------------------------------------------------


def test_retrieval_and_search_count_recalls(tenant: TenantStore) -> None:
    before = datetime.now(UTC)
    kept = tenant.store_memory("the user likes green tea", agent_id="a", dedup=False)
    other = tenant.store_memory("the user lives in Lisbon", agent_id="b", dedup=False)
    assert (kept.recall_count, kept.last_recalled_at) == (0, None)
    tenant.retrieve_memories(agent_id="a")
    tenant.retrieve_memories(agent_id="a")
    hits = tenant.search("green tea", mode="fulltext", kinds=["memories"])
    assert [h.id for h in hits] == [kept.id]
    recalled = tenant.get_memory_or_raise(kept.id)
    assert recalled.recall_count == 3
    assert recalled.last_recalled_at is not None and recalled.last_recalled_at >= before
    assert recalled.updated_at == kept.updated_at  # a recall is no change of the memory
    assert tenant.get_memory_or_raise(other.id).recall_count == 0
    # Reading one memory by id is no recall; neither is a search that finds messages only.
    tenant.get_memory(other.id)
    tenant.search("Lisbon", mode="fulltext", kinds=["messages"])
    assert tenant.get_memory_or_raise(other.id).recall_count == 0


def test_recall_tracking_can_be_turned_off(database_url: str) -> None:
    with MnemoStore(settings=Settings(database_url=database_url, memory_recall_tracking=False)) as store:
        t = store.tenant(store.create_tenant(f"norecall-{uuid.uuid4().hex[:8]}").id)
        memory = t.store_memory("quiet", agent_id="q")
        _recall(t, "q", 2)
        assert t.get_memory_or_raise(memory.id).recall_count == 0


# -- the memory lifecycle -----------------------------------------------------------------------------------------


def test_lifecycle_promotes_demotes_and_retires_by_recall_importance_and_age(
    store: MnemoStore, tenant: TenantStore
) -> None:
    store.update_tenant_config(tenant.tenant_id, config={"memory_lifecycle": LIFECYCLE})
    start = datetime.now(UTC)

    def memory(agent: str, tier: MemoryTier, importance: float = 0.5) -> uuid.UUID:
        return tenant.store_memory(f"memory {agent}", agent_id=agent, tier=tier, importance=importance).id

    w1 = memory("w1", MemoryTier.WORKING)  # recalled twice: to short term
    s1 = memory("s1", MemoryTier.SHORT_TERM)  # recalled three times: to long term
    w3 = memory("w3", MemoryTier.WORKING)  # recalled three times: straight to long term
    imp = memory("imp", MemoryTier.WORKING, importance=0.9)  # important: long term, and never down again
    l1 = memory("l1", MemoryTier.LONG_TERM)  # never recalled: down, a tier per idle period
    w2 = memory("w2", MemoryTier.WORKING)  # never recalled: retired after 20 days
    _recall(tenant, "w1", 2)
    _recall(tenant, "s1", 3)
    _recall(tenant, "w3", 3)

    dry = tenant.run_maintenance(now=start + timedelta(days=1), dry_run=True)
    assert (dry.promoted_memories, dry.demoted_memories, dry.retired_memories) == (4, 0, 0)
    assert _tier(tenant, w1) is MemoryTier.WORKING  # a dry run changes nothing
    day1 = tenant.run_maintenance(now=start + timedelta(days=1))
    assert (day1.promoted_memories, day1.demoted_memories, day1.retired_memories) == (4, 0, 0)
    tiers = {name: _tier(tenant, mid) for name, mid in (("w1", w1), ("s1", s1), ("w3", w3), ("imp", imp))}
    assert tiers == {
        "w1": MemoryTier.SHORT_TERM,
        "s1": MemoryTier.LONG_TERM,
        "w3": MemoryTier.LONG_TERM,
        "imp": MemoryTier.LONG_TERM,
    }
    again = tenant.run_maintenance(now=start + timedelta(days=1))
    assert (again.promoted_memories, again.demoted_memories) == (0, 0)  # nothing moves twice

    # Day 10.5: l1 idle 10.5 days goes down a tier; those promoted on day 1 changed only 9.5 days ago.
    day10 = tenant.run_maintenance(now=start + timedelta(days=10.5))
    assert (day10.promoted_memories, day10.demoted_memories, day10.retired_memories) == (0, 1, 0)
    assert _tier(tenant, l1) is MemoryTier.SHORT_TERM
    # Day 25: everything but the important one idle for 10 days more goes down a tier; w2, idle 25 days, retires.
    day25 = tenant.run_maintenance(now=start + timedelta(days=25))
    assert (day25.demoted_memories, day25.retired_memories) == (4, 1)
    assert [_tier(tenant, mid) for mid in (w1, s1, w3, imp, l1)] == [
        MemoryTier.WORKING,
        MemoryTier.SHORT_TERM,
        MemoryTier.SHORT_TERM,
        MemoryTier.LONG_TERM,
        MemoryTier.WORKING,
    ]
    retired = tenant.get_memory_or_raise(w2)
    assert retired.expires_at == start + timedelta(days=25)
    # (Retrieval measures expiry by the real clock, so it still shows w2 here: maintenance's clock is ahead.)
    assert tenant.run_maintenance(now=start + timedelta(days=26)).expired_memories == 1
    assert tenant.get_memory(w2) is None

    # Every change is a version: the tier before it and why it changed.
    assert [(v.tier, v.reason) for v in tenant.get_memory_history(w1)] == [
        (MemoryTier.WORKING, "promote"),
        (MemoryTier.SHORT_TERM, "demote"),
    ]
    assert [(v.tier, v.reason) for v in tenant.get_memory_history(l1)] == [
        (MemoryTier.LONG_TERM, "demote"),
        (MemoryTier.SHORT_TERM, "demote"),
    ]
    assert [(v.tier, v.reason) for v in tenant.get_memory_history(imp)] == [(MemoryTier.WORKING, "promote")]


def test_lifecycle_defaults_and_off(store: MnemoStore, tenant: TenantStore) -> None:
    start = datetime.now(UTC)
    kept = tenant.store_memory("left alone", tier=MemoryTier.SHORT_TERM)
    store.update_tenant_config(tenant.tenant_id, config={"memory_lifecycle": {"enabled": False}})
    off = tenant.run_maintenance(now=start + timedelta(days=400))
    assert (off.demoted_memories, off.retired_memories) == (0, 0)
    store.update_tenant_config(tenant.tenant_id, config={})
    # Defaults: down a tier after 30 idle days, never retired.
    assert tenant.run_maintenance(now=start + timedelta(days=29)).demoted_memories == 0
    assert tenant.run_maintenance(now=start + timedelta(days=31)).demoted_memories == 1
    assert tenant.run_maintenance(now=start + timedelta(days=400)).retired_memories == 0
    assert _tier(tenant, kept.id) is MemoryTier.WORKING


def test_policies_refuse_malformed_config() -> None:
    assert MemoryLifecyclePolicy.from_config({}) == MemoryLifecyclePolicy()
    assert CheckpointRetentionPolicy.from_config(None) == CheckpointRetentionPolicy(keep_last=20, keep_days=7)
    for bad in (
        {"memory_lifecycle": {"idle_days": -1}},
        {"memory_lifecycle": {"important": 2}},
        {"memory_lifecycle": {"short_term_recalls": 5, "long_term_recalls": 2}},
        {"memory_lifecycle": {"promote": 1}},
        {"checkpoint_retention": {"keep_last": 0}},
        {"checkpoint_retention": {"enabled": "no"}},
        {"checkpoint_retention": []},
    ):
        with pytest.raises(ConfigurationError, match="tenant config"):
            MemoryLifecyclePolicy.from_config(bad)
            CheckpointRetentionPolicy.from_config(bad)


def test_a_malformed_policy_is_reported_per_tenant(store: MnemoStore, tenant: TenantStore) -> None:
    store.update_tenant_config(tenant.tenant_id, config={"checkpoint_retention": {"keep_last": "all"}})
    with pytest.raises(ConfigurationError, match="keep_last"):
        tenant.run_maintenance()


# -- checkpoint retention -----------------------------------------------------------------------------------------


def test_checkpoint_retention_keeps_the_newest_the_young_and_every_kept_parent(
    store: MnemoStore, tenant: TenantStore
) -> None:
    store.update_tenant_config(tenant.tenant_id, config={"checkpoint_retention": {"keep_last": 2, "keep_days": 7}})
    user = tenant.create_user(display_name="agent owner").id
    a, b = (tenant.create_conversation(user).id for _ in range(2))
    chain = [tenant.create_checkpoint(a, iteration=i, state={"i": i}).id for i in range(1, 6)]  # c1 <- ... <- c5
    fork = tenant.create_checkpoint(a, iteration=6, state={"i": 6}, parent_id=chain[0]).id  # c6 continues c1
    elsewhere = tenant.create_checkpoint(b, iteration=1, state={}, parent_id=chain[1]).id  # b's continues c2
    start = datetime.now(UTC)

    # Younger than 7 days: all kept, however many.
    assert tenant.run_maintenance(now=start + timedelta(days=1)).pruned_checkpoints == 0
    later = start + timedelta(days=8)
    assert tenant.run_maintenance(now=later, dry_run=True).pruned_checkpoints == 1
    assert tenant.run_maintenance(now=later, batch_size=1).pruned_checkpoints == 1
    # Kept: the newest two (c6, c5), their parents (c1, c4), and c2, the parent of b's checkpoint.
    left = {c.id for c in tenant.list_checkpoints(a).items}
    assert left == {fork, chain[4], chain[0], chain[3], chain[1]}
    assert {c.id for c in tenant.list_checkpoints(b).items} == {elsewhere}
    assert tenant.run_maintenance(now=later).pruned_checkpoints == 0  # stable

    # Once b's checkpoint is gone, nothing holds c2 any more.
    tenant.delete_conversation(b)
    assert tenant.run_maintenance(now=later).pruned_checkpoints == 1
    assert {c.id for c in tenant.list_checkpoints(a).items} == {fork, chain[4], chain[0], chain[3]}

    store.update_tenant_config(tenant.tenant_id, config={"checkpoint_retention": {"enabled": False, "keep_last": 1}})
    assert tenant.run_maintenance(now=later).pruned_checkpoints == 0


def test_store_maintenance_reports_the_lifecycle_and_checkpoint_counts(store: MnemoStore, tenant: TenantStore) -> None:
    store.update_tenant_config(tenant.tenant_id, config={"checkpoint_retention": {"keep_last": 1, "keep_days": 0}})
    conversation = tenant.create_conversation(tenant.create_user().id).id
    for i in range(3):
        tenant.create_checkpoint(conversation, iteration=i, state={})
    tenant.store_memory("important", importance=0.95, tier=MemoryTier.WORKING)
    report = store.run_maintenance(tenant.tenant_id, now=datetime.now(UTC) + timedelta(seconds=1))
    assert (report.pruned_checkpoints, report.promoted_memories) == (1, 1)  # the newest and its parent stay


async def test_async_maintenance_runs_the_lifecycle(database_url: str) -> None:
    async with AsyncMnemoStore(database_url) as store:
        tid = (await store.create_tenant(f"async-lifecycle-{uuid.uuid4().hex[:8]}")).id
        t = store.tenant(tid)
        memory = await t.store_memory("recalled a lot", agent_id="x", tier=MemoryTier.WORKING)
        for _ in range(10):
            await t.retrieve_memories(agent_id="x")
        result = await t.run_maintenance(now=datetime.now(UTC) + timedelta(days=1))
        assert result.promoted_memories == 1
        assert (await t.get_memory_or_raise(memory.id)).tier is MemoryTier.LONG_TERM
        await store.delete_tenant(tid)


# -- allowed models and default quotas ----------------------------------------------------------------------------


def test_allowed_models_are_enforced_where_a_model_is_named(store: MnemoStore) -> None:
    name = f"plan-{uuid.uuid4().hex[:8]}"
    tenant = store.create_tenant(name, quotas=Quotas(allowed_models=("gpt-4o", "gpt-4o", "claude-3-5-haiku")))
    assert tenant.quotas.allowed_models == ("gpt-4o", "claude-3-5-haiku")
    t = store.tenant(tenant.id)
    user = t.create_user().id
    with pytest.raises(ModelNotAllowed, match=r"'o1-pro' is not allowed .* 'gpt-4o', 'claude-3-5-haiku'") as refused:
        t.create_conversation(user, model_override="o1-pro")
    assert (refused.value.model, refused.value.allowed) == ("o1-pro", ("gpt-4o", "claude-3-5-haiku"))
    conversation = t.create_conversation(user, model_override="gpt-4o").id
    with pytest.raises(ModelNotAllowed):
        t.update_conversation(conversation, model_override="o1-pro")
    assert t.update_conversation(conversation, model_override=None).model_override is None
    # The append (PostgreSQL's one-call routine included) writes nothing of a call naming a refused model.
    with pytest.raises(ModelNotAllowed, match="o1-pro"):
        t.add_messages(
            conversation,
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "model": "o1-pro"}],
        )
    assert t.count_messages(conversation) == 0
    t.add_message(conversation, role="user", content="no model named")
    t.add_message(conversation, role="assistant", content="allowed", model="gpt-4o")
    # A change of plan is seen at once, both ways.
    store.update_tenant_config(tenant.id, quotas=Quotas(allowed_models=("o1-pro",)))
    t.add_message(conversation, role="assistant", content="now allowed", model="o1-pro")
    with pytest.raises(ModelNotAllowed):
        t.add_message(conversation, role="assistant", content="taken away", model="gpt-4o")
    store.update_tenant_config(tenant.id, quotas=Quotas(allowed_models=()))
    with pytest.raises(ModelNotAllowed, match=r"\(allowed: none\)"):
        t.add_message(conversation, role="assistant", content="none at all", model="o1-pro")
    store.update_tenant_config(tenant.id, quotas=Quotas())
    t.add_message(conversation, role="assistant", content="any model", model="anything")
    assert t.count_messages(conversation) == 4
    store.delete_tenant(tenant.id)


def test_new_tenants_get_the_default_quotas_of_the_settings(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        default_max_messages=100,
        default_max_users=5,
        default_allowed_models="gpt-4o, claude-3-5-haiku",  # type: ignore[arg-type]
    )
    assert settings.default_allowed_models == ["gpt-4o", "claude-3-5-haiku"]
    assert Settings(database_url=database_url, default_allowed_models="").default_allowed_models is None  # type: ignore[arg-type]
    assert Settings(database_url=database_url, default_allowed_models="[]").default_allowed_models == []  # type: ignore[arg-type]
    with MnemoStore(settings=settings) as store:
        defaulted = store.create_tenant(f"defaults-{uuid.uuid4().hex[:8]}")
        assert defaulted.quotas == Quotas(max_users=5, max_messages=100, allowed_models=("gpt-4o", "claude-3-5-haiku"))
        assert store.get_tenant_or_raise(defaulted.id).quotas == defaulted.quotas
        unlimited = store.create_tenant(f"unlimited-{uuid.uuid4().hex[:8]}", quotas=Quotas())
        assert unlimited.quotas == Quotas()
        for created in (defaulted, unlimited):
            store.delete_tenant(created.id)


# -- over HTTP ----------------------------------------------------------------------------------------------------


def test_a_refused_model_is_403_over_http_and_the_client_gets_model_not_allowed(api: TestClient) -> None:
    t = make_tenant(api, quotas={"allowed_models": ["gpt-4o"]})
    tenant = api.get(f"/v1/tenants/{t.id}", headers=admin_headers()).json()
    assert tenant["quotas"]["allowed_models"] == ["gpt-4o"]
    user = t.ok("POST", "/v1/users", 201, json={})["id"]
    refused = t.call("POST", "/v1/conversations", json={"user_id": user, "model_override": "o1-pro"})
    assert (refused.status_code, refused.json()["code"], refused.json()["error"]) == (
        403,
        "model_not_allowed",
        "ModelNotAllowed",
    )
    assert "'o1-pro'" in refused.json()["message"] and "'gpt-4o'" in refused.json()["message"]
    conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user, "model_override": "gpt-4o"})["id"]
    body = {"role": "assistant", "content": "hi", "model": "o1-pro"}
    answer = t.call("POST", f"/v1/conversations/{conversation}/messages", json=body)
    assert (answer.status_code, answer.json()["code"]) == (403, "model_not_allowed")
    error = error_from_answer(answer.status_code, answer.headers, answer.json())
    assert isinstance(error, ModelNotAllowed)
    assert (error.model, error.allowed, error.tenant_id) == ("o1-pro", ("gpt-4o",), t.id)
    t.ok("POST", f"/v1/conversations/{conversation}/messages", 201, json={**body, "model": "gpt-4o"})


def test_recall_counts_and_version_tiers_over_http(api_tenant: ApiTenant) -> None:
    memory = api_tenant.ok("POST", "/v1/memories", 201, json={"content": "counted", "tier": "working"})
    assert (memory["recall_count"], memory["last_recalled_at"]) == (0, None)
    listed = api_tenant.ok("GET", "/v1/memories", params={"tier": "working"}, read_only=True)
    assert [m["id"] for m in listed["items"]] == [memory["id"]]
    again = api_tenant.ok("GET", f"/v1/memories/{memory['id']}")
    assert again["recall_count"] == 1 and again["last_recalled_at"] is not None  # a read-only key's recall counts
    api_tenant.ok("PATCH", f"/v1/memory/{memory['id']}", json={"content": "counted again"})
    history = api_tenant.ok("GET", f"/v1/memory/{memory['id']}/history")
    assert [(v["tier"], v["reason"]) for v in history["items"]] == [("working", "update")]
