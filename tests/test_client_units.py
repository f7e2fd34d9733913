"""The client's pure parts, without a server: the error table both ways, the event-stream parser, the codec."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime

import pytest

import mnemostore
from mnemostore import errors
from mnemostore.api.errors import _HTTP_CODES, ERROR_TABLE, rule_for
from mnemostore.client._base import default_url
from mnemostore.client._codec import UNSET, decode, present
from mnemostore.client._errors import CLASSES, error_from_answer
from mnemostore.client._events import SseParser
from mnemostore.domain import Message, Quotas, Role, Tenant, TenantStatus

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.MnemostoreError)
]

ERROR_TABLE_BASES = {rule.code: cls for cls, rule in ERROR_TABLE.items()}


def _answer(status: int, code: str, name: str | None = None, message: str = "what to do") -> errors.MnemostoreError:
    body = {"code": code, "message": message, "request_id": "r1", **({"error": name} if name else {})}
    return error_from_answer(status, {"retry-after": "7"}, body)


@pytest.mark.parametrize("cls", list(ERROR_TABLE), ids=lambda c: c.__name__)
def test_each_row_of_the_service_table_comes_back_as_its_class(cls: type[errors.MnemostoreError]):
    rule = ERROR_TABLE[cls]
    assert CLASSES[(rule.status, rule.code)] is cls
    error = _answer(rule.status, rule.code)
    assert type(error) is cls and (error.status, error.code, error.request_id) == (rule.status, rule.code, "r1")


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_the_service_names_comes_back_as_itself(cls: type[errors.MnemostoreError]):
    """What the service sends for an error of the store (``_store_error``) maps back to the very class."""
    rule = rule_for(cls.__new__(cls))
    error = _answer(rule.status, rule.code, cls.__name__ if rule.expose else None)
    if rule.expose:
        assert type(error) is cls
    else:  # the message (and the class) stay on the server: the row's class comes back
        assert type(error) is CLASSES[(rule.status, rule.code)] and isinstance(error, ERROR_TABLE_BASES[rule.code])


def test_the_http_layer_codes_are_mapped_and_unknown_names_do_not_escape_the_row():
    for status, code in _HTTP_CODES.items():
        expected = errors.MnemostoreError if code == "method_not_allowed" else CLASSES[(status, code)]
        assert type(_answer(status, code)) is expected
    assert type(_answer(404, "not_found", "ValueError")) is errors.NotFoundError  # not a mnemostore error
    assert type(_answer(404, "not_found", "ConflictError")) is errors.NotFoundError  # not a NotFoundError
    assert type(_answer(422, "validation_error")) is errors.InvalidInput


def test_attributes_are_read_back_from_the_answer():
    limited = _answer(429, "rate_limited", "RateLimited", str(errors.RateLimited("api_key", 3, 60, 1.25)))
    assert isinstance(limited, errors.RateLimited)
    assert (limited.scope, limited.limit, limited.window, limited.retry_after) == ("api_key", 3, 60.0, 7.0)
    quota = _answer(403, "quota_exceeded", "QuotaExceeded", str(errors.QuotaExceeded("t1", "max_users", 5)))
    assert isinstance(quota, errors.QuotaExceeded) and (quota.tenant_id, quota.quota, quota.limit) == (
        "t1",
        "max_users",
        5,
    )
    key = uuid.uuid4()
    missing = _answer(404, "not_found", "MessageNotFound", str(errors.MessageNotFound(key)))
    assert (
        isinstance(missing, errors.MessageNotFound)
        and missing.key == str(key)
        and str(missing) == f"message {key} not found"
    )
    reused = _answer(
        409, "conflict", "IdempotencyConflict", str(errors.IdempotencyConflict("k#0", 4, ["role", "metadata"]))
    )
    assert isinstance(reused, errors.IdempotencyConflict)
    assert (reused.key, reused.seq, reused.fields) == ("k#0", 4, ["role", "metadata"])
    fields = [{"loc": ["body", "x"], "field": "body.x", "message": "bad", "type": "missing"}]
    invalid = error_from_answer(
        422, {}, {"code": "validation_error", "message": "m", "request_id": "r", "fields": fields}
    )
    assert isinstance(invalid, errors.InvalidInput) and invalid.fields == fields


def test_answers_without_an_error_body():
    proxy = error_from_answer(502, {}, "<html>bad gateway</html>")
    assert isinstance(proxy, errors.BackendUnavailable) and proxy.status == 502
    teapot = error_from_answer(418, {}, "short and stout")
    assert type(teapot) is errors.MnemostoreError and "418" in str(teapot)


def test_the_parser_follows_the_event_stream_rules():
    parser = SseParser()
    lines = [
        "retry: 2000",
        ": subscribed",
        "",
        ": keep-alive",
        "",
        "id: c1",
        "event: message.added",
        "data: {",
        "data: }",
    ]
    frames = [frame for line in [*lines, "", "event: x", "data: y", ""] if (frame := parser.feed(line)) is not None]
    assert [(f.event, f.data, f.id, f.comments) for f in frames] == [
        (None, None, None, ("subscribed",)),
        (None, None, None, ("keep-alive",)),
        ("message.added", "{\n}", "c1", ()),
        ("x", "y", None, ()),
    ]
    assert (parser.retry_ms, parser.last_id) == (2000, "c1")  # an id stays the stream's last until another comes
    assert parser.feed("") is None  # blank lines between frames


def test_the_codec_gives_the_domain_classes_and_ignores_fields_it_does_not_know():
    tid = uuid.uuid4()
    answer = {
        "id": str(tid),
        "name": "acme",
        "plan": "pro",
        "status": "active",
        "quotas": {"max_users": 3, "max_messages": None, "max_storage_bytes": None, "max_future": 1},
        "config": {"tz": "UTC"},
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-01-02T03:04:05.123456+00:00",
        "added_later": True,
    }
    tenant = decode(Tenant, answer)
    assert tenant == Tenant(
        id=tid,
        name="acme",
        plan="pro",
        status=TenantStatus.ACTIVE,
        quotas=Quotas(max_users=3),
        config={"tz": "UTC"},
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    )
    with pytest.raises(errors.MnemostoreError, match="not a Message"):
        decode(Message, {"id": str(tid), "role": "user"})
    assert decode(Message, {**_message(tid), "role": "tool"}).role is Role.TOOL
    assert present(a=UNSET, b=None, c=tid, d=Role.USER, e=Quotas(max_users=1)) == {
        "b": None,
        "c": str(tid),
        "d": "user",
        "e": {"max_users": 1, "max_messages": None, "max_storage_bytes": None, "allowed_models": None},
    }


def _message(tid: uuid.UUID) -> dict[str, object]:
    return {
        "id": str(tid),
        "tenant_id": str(tid),
        "conversation_id": str(tid),
        "seq": 1,
        "role": "user",
        "content": "x",
        "model": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "metadata": {},
        "created_at": "2026-01-02T03:04:05Z",
    }


def test_the_default_address_is_the_one_serve_listens_on(monkeypatch):
    monkeypatch.delenv("MNEMOSTORE_URL", raising=False)
    monkeypatch.delenv("MNEMOSTORE_SERVER_PORT", raising=False)
    assert default_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv("MNEMOSTORE_SERVER_PORT", "8123")
    assert default_url() == "http://127.0.0.1:8123"
    monkeypatch.setenv("MNEMOSTORE_URL", "https://memory.example.com")
    assert default_url() == "https://memory.example.com"
    with mnemostore.Client() as client:
        assert client.base_url == "https://memory.example.com"
