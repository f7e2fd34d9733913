"""The cache's pure parts, without servers: keys, codecs, breaker, dirty keys, flags, limits, history windows."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemostore import ChannelConfig, InvalidInput, Message, Quotas, Role, Tenant, TenantStatus, User
from mnemostore.cache import BreakerState, ChannelSession, Keys, _codec, flags, ratelimit
from mnemostore.cache._breaker import Admission, CircuitBreaker, DirtyKeys, DirtySnapshot
from mnemostore.cache._local import LocalState, glob_to_regex
from mnemostore.domain import HistoryPage
from mnemostore.service._history import page_from_window, window_from_rows
from mnemostore.store._cursors import encode_cursor

T1, T2 = uuid.uuid4(), uuid.uuid4()
NOW = datetime(2025, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)


def message(seq: int, conv: uuid.UUID | None = None, **fields: object) -> Message:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "tenant_id": T1,
        "conversation_id": conv or uuid.UUID(int=1),
        "seq": seq,
        "role": Role.USER,
        "content": f"message {seq}",
        "model": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "metadata": {},
        "created_at": NOW,
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


# -- keys -------------------------------------------------------------------------------------------------------


def test_keys_carry_the_tenant_hash_tag_and_escape_separators() -> None:
    keys = Keys("mns")
    meta, lst = keys.context(T1, T2)
    assert meta.startswith(f"mns:{{{T1}}}:c:") and lst.startswith(f"mns:{{{T1}}}:c:")
    assert keys.obj(T1, "ident", "disc:ord", "a{b}c%") == f"mns:{{{T1}}}:c:o:ident:disc%3Aord:a%7Bb%7Dc%25"
    assert keys.session(T1, "x", "y").startswith(keys.tenant(T1) + "c:")
    assert not keys.rate(T1, "user", "u").startswith(keys.tenant(T1) + "c:")


def test_tenant_patterns_never_match_another_tenant() -> None:
    keys = Keys("m*s")  # a glob character in the prefix is matched literally
    mine = glob_to_regex(keys.tenant_pattern(T1))
    assert mine.fullmatch(keys.session(T1, "web", "1"))
    assert mine.fullmatch(keys.rate(T1, "*", "user", "1"))
    assert not mine.fullmatch(keys.session(T2, "web", "1"))
    assert not mine.fullmatch(Keys("mxs").session(T1, "web", "1"))
    cached = glob_to_regex(keys.tenant_cache_pattern(T1))
    assert cached.fullmatch(keys.obj(T1, "user", "u")) and not cached.fullmatch(keys.presence(T1, "web"))
    everything = glob_to_regex(keys.all_cache_pattern())
    assert everything.fullmatch(keys.context(T2, T1)[0]) and not everything.fullmatch(keys.rate(T2, "x"))


# -- codecs -----------------------------------------------------------------------------------------------------


@given(
    content=st.text(),
    metadata=st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none())),
    micros=st.integers(min_value=0, max_value=4_000_000_000_000_000),
    key=st.one_of(st.none(), st.text(max_size=10)),
)
@settings(max_examples=50)
def test_messages_round_trip_exactly(content: str, metadata: dict[str, object], micros: int, key: str | None) -> None:
    created = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    original = [
        message(7, content=content, metadata=metadata, created_at=created, idempotency_key=key, model="m"),
        message(8, role=Role.TOOL, prompt_tokens=3, completion_tokens=4),
    ]
    decoded = _codec.decode_messages([_codec.encode_message(m) for m in original], T1, uuid.UUID(int=1))
    assert decoded == original
    assert all(m.created_at.tzinfo is UTC and isinstance(m.id, uuid.UUID) for m in decoded)


def test_other_timezones_come_back_as_the_same_instant_in_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-7)))
    (back,) = _codec.decode_messages([_codec.encode_message(message(1, created_at=local))], T1, uuid.UUID(int=1))
    assert back.created_at == local and back.created_at.utcoffset() == timedelta(0)


def test_objects_round_trip() -> None:
    user = User(
        id=uuid.uuid4(),
        tenant_id=T1,
        display_name="Ada",
        email=None,
        external_id="x",
        preferred_model="m",
        preferences={"a": [1, 2]},
        metadata={},
        created_at=NOW,
        updated_at=NOW,
    )
    tenant = Tenant(
        id=T1,
        name="acme",
        plan="pro",
        status=TenantStatus.SUSPENDED,
        quotas=Quotas(max_users=3, max_messages=None, max_storage_bytes=10),
        config={"rate_limits": {"user": "5/s"}},
        created_at=NOW,
        updated_at=NOW,
    )
    config = ChannelConfig(
        tenant_id=T1, channel="web", default_model=None, settings={"x": 1}, rate_limits={}, updated_at=NOW
    )
    session = ChannelSession(
        tenant_id=T1,
        channel="web",
        channel_user_id="42",
        user_id=user.id,
        conversation_id=None,
        model="m",
        started_at=NOW,
        last_activity_at=NOW,
        data={"k": "v"},
    )
    assert _codec.decode_user(_codec.encode_user(user)) == user
    assert _codec.decode_tenant(_codec.encode_tenant(tenant)) == tenant
    assert _codec.decode_channel_config(_codec.encode_channel_config(config)) == config
    assert _codec.decode_session(_codec.encode_session(session)) == session


# -- circuit breaker and dirty keys ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_failure_and_lets_one_probe_through_after_the_cooldown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    breaker = CircuitBreaker(cooldown=2.0, clock=clock)
    assert breaker.admit() is Admission.ALLOW
    for _ in range(5):
        breaker.failure(ConnectionError("refused"))
    assert breaker.state is BreakerState.OPEN and breaker.opened == 1
    assert [r.levelname for r in caplog.records if r.name == "mnemostore.cache"] == ["WARNING"]  # logged once
    assert breaker.admit() is Admission.DENY
    clock.now += 2.0
    assert breaker.admit() is Admission.PROBE
    assert breaker.admit() is Admission.DENY  # only one prober
    breaker.failure("still down")
    assert breaker.admit() is Admission.DENY and breaker.opened == 1
    clock.now += 2.0
    assert breaker.admit() is Admission.PROBE
    breaker.close()
    assert str(breaker.state) == "closed" and breaker.admit() is Admission.ALLOW


def test_dirty_keys_coarsen_instead_of_growing() -> None:
    dirty = DirtyKeys(limit=3)
    keys = Keys("p")
    dirty.add_context(T1, uuid.uuid4())
    dirty.add_key(T1, keys.obj(T1, "user", 1))
    dirty.add_key(T2, keys.obj(T2, "user", 1))
    snapshot = dirty.take()
    assert len(snapshot.contexts) == 1 and len(snapshot.keys) == 2 and not snapshot.tenants
    for _ in range(4):
        dirty.add_context(T1, uuid.uuid4())
    dirty.add_context(T1, uuid.uuid4())  # covered by the tenant flush already
    dirty.add_key(T2, keys.obj(T2, "user", 2))
    snapshot = dirty.take()
    assert snapshot.tenants == {T1} and not snapshot.contexts and snapshot.keys == {keys.obj(T2, "user", 2)}
    for _ in range(5):
        dirty.add_tenant(uuid.uuid4())
    assert dirty.take().everything
    assert not dirty.take()


def test_promoted_servers_stay_dirty_until_flushed() -> None:
    dirty = DirtyKeys(limit=3)
    dirty.add_servers(["10.0.0.4:6379"])
    snapshot = dirty.take()
    assert snapshot and len(snapshot) == 1 and snapshot.servers == {"10.0.0.4:6379"}
    dirty.add_servers(["10.0.0.5:6379"])
    dirty.restore(snapshot)  # the flush failed: both wait for the next recovery
    assert dirty.take().servers == {"10.0.0.4:6379", "10.0.0.5:6379"}
    dirty.add_everything()
    dirty.add_servers(["10.0.0.6:6379"])  # covered by the flush of everything
    assert dirty.take() == DirtySnapshot(everything=True)


# -- feature flags ----------------------------------------------------------------------------------------------


def test_assignment_is_deterministic_and_follows_the_weights() -> None:
    flag = {"variants": {"control": 50, "a": 30, "b": 20}}
    users = [str(uuid.UUID(int=i)) for i in range(4000)]
    first = [flags.variant(flag, tenant_id=T1, flag="f", subject=u) for u in users]
    again = [flags.variant(flag, tenant_id=T1, flag="f", subject=u) for u in users]
    assert first == again
    shares = Counter(first)
    assert abs(shares["control"] / 4000 - 0.5) < 0.04 and abs(shares["b"] / 4000 - 0.2) < 0.04
    other_tenant = [flags.variant(flag, tenant_id=T2, flag="f", subject=u) for u in users]
    assert other_tenant != first  # independent per tenant
    assert flags.variant({**flag, "enabled": False}, tenant_id=T1, flag="f", subject=users[0]) is None


def test_percentage_rollout_only_grows() -> None:
    users = [str(uuid.UUID(int=i)) for i in range(2000)]
    on_10 = {u for u in users if flags.is_enabled(10, tenant_id=T1, flag="g", subject=u)}
    on_30 = {u for u in users if flags.is_enabled(30, tenant_id=T1, flag="g", subject=u)}
    assert on_10 < on_30 and 0.07 < len(on_10) / 2000 < 0.13
    assert flags.is_enabled(True, tenant_id=None, flag="g", subject=None)
    assert not flags.is_enabled(None, tenant_id=None, flag="g", subject="u")
    assert flags.is_enabled(100, tenant_id=None, flag="g", subject=None)


@pytest.mark.parametrize("bad", [101, -1, "yes", {"variants": {}}, {"variants": {"a": -1}}, {"variants": {"a": 1.5}}])
def test_bad_flag_values_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput, match="feature flag"):
        flags.check_flag("f", bad)


# -- rate-limit rules -------------------------------------------------------------------------------------------


def test_limits_resolve_from_the_most_specific_config() -> None:
    limits = ratelimit.resolve_limits(
        {"user": "100/hour", "ip": "10/s"}, {"user": "60/minute", "tenant": {"limit": 5, "window": 2}}, {"ip": None}
    )
    assert limits["user"] == ratelimit.Limit(60, 60.0, "tenant")
    assert limits["tenant"] == ratelimit.Limit(5, 2.0, "tenant")
    assert "ip" not in limits
    with pytest.raises(InvalidInput, match="unknown scope"):
        ratelimit.resolve_limits(None, {"users": "1/s"}, None)
    with pytest.raises(InvalidInput, match="60/minute"):
        ratelimit.resolve_limits(None, {"user": "lots"}, None)


def test_local_token_bucket_refills_with_time() -> None:
    clock = Clock()
    state = LocalState(clock=clock)
    limits = [(3.0, 3 / 1000)]  # 3 per second
    results = [state.rate_acquire(["k"], limits, 1) for _ in range(4)]
    assert [r[0] for r in results] == [0, 0, 0, 1] and results[-1][1] == 334
    clock.now += 0.34
    assert state.rate_acquire(["k"], limits, 1)[0] == 0
    deny, wait, _ = state.rate_acquire(["k", "j"], [(3.0, 0.003), (10.0, 0.01)], 5)  # cost above a capacity
    assert deny == 1 and wait == 1000


# -- history pages from windows ----------------------------------------------------------------------------------


def reference_page(all_seqs: list[int], limit: int, before: int | None, after: int | None) -> HistoryPage:
    """What the database path returns (the same code as get_conversation_history's)."""
    msgs = [message(s) for s in all_seqs]
    if after is not None:
        rows = [m for m in msgs if m.seq > after][: limit + 1]
        items = rows[:limit]
        return HistoryPage(
            messages=items,
            before=encode_cursor("h", items[0].seq if items else after + 1),
            after=encode_cursor("h", items[-1].seq) if len(rows) > limit else None,
        )
    rows = [m for m in msgs if before is None or m.seq < before][-(limit + 1) :]
    items = rows[-limit:]
    return HistoryPage(
        messages=items,
        before=encode_cursor("h", items[0].seq) if len(rows) > limit else None,
        after=None if before is None else encode_cursor("h", items[-1].seq if items else before - 1),
    )


@given(
    seqs=st.lists(st.integers(min_value=1, max_value=40), unique=True, max_size=30).map(sorted),
    size=st.integers(min_value=1, max_value=12),
    limit=st.integers(min_value=1, max_value=12),
    cursor=st.one_of(st.none(), st.tuples(st.sampled_from(["before", "after"]), st.integers(0, 42))),
)
@settings(max_examples=400)
def test_a_window_answers_exactly_like_the_database_or_not_at_all(
    seqs: list[int], size: int, limit: int, cursor: tuple[str, int] | None
) -> None:
    window = seqs[-size:]
    floor = seqs[-size - 1] if len(seqs) > size else 0
    before = cursor[1] if cursor and cursor[0] == "before" else None
    after = cursor[1] if cursor and cursor[0] == "after" else None
    default = cursor is None
    fetched = window[-(limit + 1) :] if default else window
    page = page_from_window(
        [message(s) for s in fetched], floor, limit=limit, before=before, after=after, complete=not default
    )
    expected = reference_page(seqs, limit, before, after)
    if page is None:
        # It may decline only when the answer reaches below the window.
        assert floor > 0
        return
    assert [m.seq for m in page.messages] == [m.seq for m in expected.messages]
    assert (page.before, page.after) == (expected.before, expected.after)
    if default and limit <= size and len(seqs) >= limit:
        assert page is not None  # a default read that fits always hits


def test_window_from_rows_drops_newer_rows_and_knows_its_floor() -> None:
    rows = [message(s) for s in (3, 5, 6, 7, 9)]
    assert window_from_rows(rows, last_seq=9, fetched_all=True, size=10) == (rows, 0)
    window, floor = window_from_rows(rows, last_seq=7, fetched_all=False, size=2) or ([], -1)
    assert [m.seq for m in window] == [6, 7] and floor == 5
    assert window_from_rows(rows, last_seq=9, fetched_all=False, size=5) is None  # older ones may exist
