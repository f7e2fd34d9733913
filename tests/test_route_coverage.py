"""Every public operation of the store is reachable over HTTP, or is listed here as Python-only with the reason.

The tables below name, for each public method of ``AsyncTenantStore`` (a tenant's operations) and of
``AsyncMnemoStore`` (the store-wide ones), the routes of the FastAPI app (its OpenAPI document) that serve it, or
say why it stays in Python. A new public method that is in neither table fails
``test_every_public_operation_is_classified``: give it a route (and a client method), or say here why it has none.
Each routed operation must have its routes in the app and a method of ``AsyncClient`` that calls one of them: by
default the store's name, else the name in ``CLIENT_NAMES``.
"""

from __future__ import annotations

import inspect
from typing import Final

from mnemostore import AsyncClient, AsyncMnemoStore, AsyncTenantStore, MnemoStore, Settings, TenantStore
from mnemostore.api import create_app
from mnemostore.client import endpoint_of

Op = tuple[str, str]  # (method, path) as the OpenAPI document writes them

USER = "/v1/users/{user_id}"
CONVERSATION = "/v1/conversations/{conversation_id}"
MEMORY = "/v1/memories/{memory_id}"
CHUNK = "/v1/knowledge/{chunk_id}"
TENANT = "/v1/tenants/{tenant_id}"
CHANNEL = "/v1/channels/{channel}"
SESSION = CHANNEL + "/sessions/{channel_user_id}"

TENANT_ROUTES: Final[dict[str, tuple[Op, ...]]] = {
    # the tenant itself and its keys
    "resolve": (("GET", "/v1/tenant"),),
    "create_api_key": (("POST", "/v1/api-keys"),),
    "list_api_keys": (("GET", "/v1/api-keys"),),
    "revoke_api_key": (("DELETE", "/v1/api-keys/{key_id}"),),
    # users and identities
    "create_user": (("POST", "/v1/users"),),
    "list_users": (("GET", "/v1/users"),),
    "get_user": (("GET", USER),),
    "get_user_or_raise": (("GET", USER),),
    "update_user": (("PATCH", USER),),
    "delete_user": (("DELETE", USER),),
    "get_or_create_user_by_identity": (("POST", "/v1/users/resolve"),),
    "get_or_create_user_by_email": (("POST", "/v1/users/resolve/email"),),
    "get_or_create_user_by_external_id": (("POST", "/v1/users/resolve/external-id"),),
    "get_user_by_identity": (("GET", "/v1/users/lookup"),),
    "get_user_by_email": (("GET", "/v1/users/lookup"),),
    "get_user_by_external_id": (("GET", "/v1/users/lookup"),),
    "list_identities": (("GET", USER + "/identities"),),
    "link_identity": (("POST", USER + "/identities"),),
    "erase_user": (("POST", USER + "/erase"),),
    "export": (("GET", "/v1/export"),),
    # conversations and messages
    "create_conversation": (("POST", "/v1/conversations"),),
    "list_conversations": (("GET", "/v1/conversations"),),
    "list_active_conversations": (("GET", "/v1/conversations"),),
    "get_conversation": (("GET", CONVERSATION),),
    "get_conversation_or_raise": (("GET", CONVERSATION),),
    "get_conversation_by_external_id": (("GET", "/v1/conversations/lookup"),),
    "get_or_create_conversation_by_external_id": (("POST", "/v1/conversations/resolve"),),
    "update_conversation": (("PATCH", CONVERSATION),),
    "archive_conversation": (("POST", CONVERSATION + "/archive"),),
    "delete_conversation": (("DELETE", CONVERSATION),),
    "get_conversation_stats": (("GET", CONVERSATION + "/stats"),),
    "export_conversation": (("GET", CONVERSATION + "/export"),),
    "import_conversation": (("POST", "/v1/conversations/import"),),
    "consolidate_conversation": (("POST", CONVERSATION + "/consolidate"),),
    "build_context": (("POST", CONVERSATION + "/context"),),
    "add_message": (("POST", CONVERSATION + "/messages"),),
    "append_messages": (("POST", CONVERSATION + "/messages"), ("POST", CONVERSATION + "/messages/batch")),
    "add_messages": (("POST", CONVERSATION + "/messages/batch"),),
    "get_conversation_history": (("GET", CONVERSATION + "/messages"),),
    "count_messages": (("GET", CONVERSATION + "/messages/count"),),
    "delete_messages": (("DELETE", CONVERSATION + "/messages"),),
    "get_message": (("GET", "/v1/messages/{message_id}"),),
    "delete_message": (("DELETE", "/v1/messages/{message_id}"),),
    # memories
    "store_memory": (("POST", "/v1/memories"),),
    "retrieve_memories": (("GET", "/v1/memories"),),
    "get_memory": (("GET", MEMORY),),
    "get_memory_or_raise": (("GET", MEMORY),),
    "update_memory": (("PATCH", MEMORY),),
    "get_memory_history": (("GET", MEMORY + "/history"),),
    "delete_memory": (("DELETE", MEMORY),),
    "delete_memories": (("DELETE", "/v1/memories"),),
    "add_memory_segment": (("POST", "/v1/memories/segments"),),
    "run_maintenance": (("POST", TENANT + "/maintenance"),),  # the admin's: a tenant's retention
    # knowledge and search
    "upsert_knowledge": (("POST", "/v1/knowledge"),),
    "upsert_knowledge_chunks": (("POST", "/v1/knowledge/bulk"),),
    "list_knowledge": (("GET", "/v1/knowledge"),),
    "get_knowledge_chunk": (("GET", CHUNK),),
    "get_knowledge_chunks": (("GET", "/v1/knowledge/lookup"),),
    "delete_knowledge_chunk": (("DELETE", CHUNK),),
    "delete_knowledge_chunks": (("DELETE", "/v1/knowledge"),),
    "search": (("POST", "/v1/search"),),
    "semantic_search": (("POST", "/v1/search"),),  # mode=semantic
    "search_similar_memories": (("POST", "/v1/search"),),  # scope=memories
    "indexing_status": (("GET", "/v1/indexing"),),
    # the agent's records
    "record_tool_execution": (("POST", "/v1/tool-executions"),),
    "list_tool_executions": (("GET", "/v1/tool-executions"),),
    "create_checkpoint": (("POST", CONVERSATION + "/checkpoints"),),
    "list_checkpoints": (("GET", CONVERSATION + "/checkpoints"),),
    "get_latest_checkpoint": (("GET", CONVERSATION + "/checkpoints/latest"),),
    "get_checkpoint": (("GET", CONVERSATION + "/checkpoints/{iteration}"),),
    "get_checkpoint_by_id": (("GET", "/v1/checkpoints/{checkpoint_id}"),),
    "prune_checkpoints": (("POST", CONVERSATION + "/checkpoints/prune"),),
    "record_interaction_event": (("POST", "/v1/interaction-events"),),
    "list_interaction_events": (("GET", "/v1/interaction-events"),),
    "record_metric": (("POST", "/v1/agent-metrics"),),
    "record_metrics": (("POST", "/v1/agent-metrics"),),
    "query_metrics": (("GET", "/v1/agent-metrics"),),
    # channels: configs, sessions, presence, rate limits, feature flags
    "set_channel_config": (("PUT", CHANNEL),),
    "get_channel_config": (("GET", CHANNEL),),
    "get_session": (("GET", SESSION),),
    "update_session": (("PATCH", SESSION),),
    "touch_session": (("POST", SESSION + "/touch"),),
    "end_session": (("DELETE", SESSION),),
    "mark_user_active": (("POST", CHANNEL + "/active-users/{user_id}"),),
    "mark_user_inactive": (("DELETE", CHANNEL + "/active-users/{user_id}"),),
    "active_users": (("GET", CHANNEL + "/active-users"),),
    "count_active_users": (("GET", CHANNEL + "/active-users/count"),),
    "rate_limit": (("POST", "/v1/rate-limits/check"),),
    "feature_enabled": (("GET", "/v1/feature-flags/{flag}"),),
    "feature_variant": (("GET", "/v1/feature-flags/{flag}"),),
    "set_feature_flag": (("PUT", "/v1/feature-flags/{flag}"), ("DELETE", "/v1/feature-flags/{flag}")),
}

TENANT_PYTHON_ONLY: Final[dict[str, str]] = {
    "subscribe_events": "a live subscription object to every event of the tenant; HTTP serves the events per "
    "conversation as Server-Sent Events (GET /v1/conversations/{id}/events, AsyncClient.events)",
    "wait_for_indexing": "blocks (and may index inline) until the backlog drains: a test and batch-job helper; "
    "over HTTP poll GET /v1/indexing until pending is 0",
    # LangGraph's persistence: the checkpointer (graph checkpoints, writes, threads) and the BaseStore (namespaced
    # items). Their values are LangGraph's serialised state (bytes of its serde, channel versions), meaningful
    # only to LangGraph in the same process; they are served by mnemostore.integrations.langgraph. Another
    # language keeps its agent state in checkpoints (/v1/.../checkpoints) and its memories in /v1/memories.
    "put_graph_checkpoint": "LangGraph checkpointer storage (langgraph adapter)",
    "get_graph_checkpoint": "LangGraph checkpointer storage (langgraph adapter)",
    "list_graph_checkpoints": "LangGraph checkpointer storage (langgraph adapter)",
    "put_graph_writes": "LangGraph checkpointer storage (langgraph adapter)",
    "copy_graph_thread": "LangGraph checkpointer storage (langgraph adapter)",
    "delete_graph_thread": "LangGraph checkpointer storage (langgraph adapter)",
    "delete_graph_runs": "LangGraph checkpointer storage (langgraph adapter)",
    "prune_graph_threads": "LangGraph checkpointer storage (langgraph adapter)",
    "put_graph_item": "LangGraph BaseStore storage (langgraph adapter)",
    "get_graph_item": "LangGraph BaseStore storage (langgraph adapter)",
    "delete_graph_item": "LangGraph BaseStore storage (langgraph adapter)",
    "search_graph_items": "LangGraph BaseStore storage (langgraph adapter)",
    "list_graph_namespaces": "LangGraph BaseStore storage (langgraph adapter)",
    "purge_expired_graph_items": "LangGraph BaseStore storage (langgraph adapter)",
}

STORE_ROUTES: Final[dict[str, tuple[Op, ...]]] = {
    "create_tenant": (("POST", "/v1/tenants"),),
    "list_tenants": (("GET", "/v1/tenants"),),
    "get_tenant": (("GET", TENANT),),
    "get_tenant_or_raise": (("GET", TENANT),),
    "get_tenant_by_name": (("GET", "/v1/tenants/lookup"),),
    "update_tenant_config": (("PATCH", TENANT),),
    "delete_tenant": (("DELETE", TENANT),),
    "get_tenant_usage": (("GET", TENANT + "/usage"),),
    "recount_tenant_usage": (("POST", TENANT + "/usage/recount"),),
    "flush_cache": (("POST", TENANT + "/cache/flush"),),
    "set_global_feature_flag": (
        ("PUT", "/v1/admin/feature-flags/{flag}"),
        ("DELETE", "/v1/admin/feature-flags/{flag}"),
    ),
    "health": (("GET", "/readyz"),),
}

STORE_PYTHON_ONLY: Final[dict[str, str]] = {
    "tenant": "returns the per-tenant view; over HTTP the API key chooses the tenant",
    "authenticate": "the service's own bearer-key check (deps.py); HTTP callers send the key instead",
    "close": "the process's connection pool; the service closes it at shutdown",
    "check_schema": "run at start-up; /readyz reports the schema state",
    "get_migration_status": "deploy-time, with the database owner's rights: `mnemostore db status`; /readyz "
    "reports whether the schema is at head",
    "migrate": "deploy-time, with the database owner's rights (`mnemostore db upgrade`); the service never "
    "migrates (app.py)",
    "rollback_to_version": "deploy-time, with the database owner's rights (`mnemostore db downgrade`)",
    "backup": "writes an archive of the whole database (or a tenant) to the server's filesystem, for minutes to "
    "hours: `mnemostore backup`; a tenant downloads its own archive with GET /v1/export",
    "restore": "reads an archive from the server's filesystem into an empty database: `mnemostore restore`",
    "rotate_keys": "re-seals every encrypted column with the process's configured keys, for minutes: "
    "`mnemostore rotate-keys`",
    "run_maintenance": "every tenant at once, on a schedule: `mnemostore maintenance` (cron, worker); one "
    "tenant: POST /v1/tenants/{tenant_id}/maintenance",
    "observe_queries": "registers an in-process callback (the service's /metrics uses it)",
    "cache_health": "the process's own cache state; exported by /metrics and the redis check of /readyz",
    "indexing_status": "the whole database's backlog, reported by /readyz (indexing_backlog) and /metrics; a "
    "tenant's: GET /v1/indexing",
    "reindex": "re-embeds everything, for hours, in a worker: `mnemostore reindex`",
    "sync_vector_index": "every tenant's vectors at once, an operator's repair after a restore or a lost Milvus: "
    "`mnemostore reindex` ends with it",
    "run_indexer": "the indexer's loop, run by `mnemostore worker` or the service itself",
    "start_indexer": "process control of the background indexer (`mnemostore worker`, server_indexer)",
    "stop_indexer": "process control of the background indexer (`mnemostore worker`, server_indexer)",
    "wait_for_indexing": "blocks until the whole database's backlog drains: a test and batch-job helper",
}

CLIENT_NAMES: Final[dict[str, str]] = {
    # The client's name where it is not the store's.
    "resolve": "get_own_tenant",
    "get_user_or_raise": "get_user",
    "get_conversation_or_raise": "get_conversation",
    "get_memory_or_raise": "get_memory",
    "get_tenant_or_raise": "get_tenant",
    "list_active_conversations": "list_conversations",
    "append_messages": "add_messages",
    "semantic_search": "search",
    "search_similar_memories": "search",
    "health": "readiness",
}


def public_operations(cls: type) -> set[str]:
    """The public methods of ``cls`` (properties and attributes left out)."""
    return {
        name
        for name in dir(cls)
        if not name.startswith("_")
        and not isinstance(inspect.getattr_static(cls, name), property)
        and callable(getattr(cls, name))
    }


def unclassified(cls: type, routed: dict[str, tuple[Op, ...]], python_only: dict[str, str]) -> set[str]:
    return public_operations(cls) - set(routed) - set(python_only)


def app_operations() -> set[Op]:
    """The app's routes, as its OpenAPI document lists them (the app is not started: no database is opened)."""
    paths = create_app(Settings(database_url="sqlite:///unused-for-routes.db")).openapi()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item if method != "parameters"}


def test_every_public_operation_is_classified():
    assert unclassified(AsyncTenantStore, TENANT_ROUTES, TENANT_PYTHON_ONLY) == set(), (
        "give these operations of AsyncTenantStore a route, or say in TENANT_PYTHON_ONLY why they have none"
    )
    assert unclassified(AsyncMnemoStore, STORE_ROUTES, STORE_PYTHON_ONLY) == set(), (
        "give these operations of AsyncMnemoStore a route, or say in STORE_PYTHON_ONLY why they have none"
    )
    # Nothing is listed twice, nor listed without existing (a renamed method leaves a stale row).
    assert not set(TENANT_ROUTES) & set(TENANT_PYTHON_ONLY)
    assert not set(STORE_ROUTES) & set(STORE_PYTHON_ONLY)
    assert set(TENANT_ROUTES) | set(TENANT_PYTHON_ONLY) == public_operations(AsyncTenantStore)
    assert set(STORE_ROUTES) | set(STORE_PYTHON_ONLY) == public_operations(AsyncMnemoStore)
    assert all(reason.strip() for reason in (*TENANT_PYTHON_ONLY.values(), *STORE_PYTHON_ONLY.values()))


def test_the_sync_twins_have_the_same_operations():
    assert public_operations(TenantStore) == public_operations(AsyncTenantStore)
    assert public_operations(MnemoStore) == public_operations(AsyncMnemoStore)


def test_a_new_public_method_without_a_route_is_caught():
    class Grown(AsyncTenantStore):
        async def new_operation(self) -> None:
            """A method someone added without a route."""

    assert unclassified(Grown, TENANT_ROUTES, TENANT_PYTHON_ONLY) == {"new_operation"}


def test_each_routed_operation_has_its_routes_in_the_app():
    served = app_operations()
    missing = {
        name: [op for op in ops if op not in served]
        for name, ops in {**TENANT_ROUTES, **STORE_ROUTES}.items()
        if any(op not in served for op in ops)
    }
    assert missing == {}


def test_each_routed_operation_has_a_client_method():
    problems = {}
    for name, ops in {**TENANT_ROUTES, **STORE_ROUTES}.items():
        method_name = CLIENT_NAMES.get(name, name)
        method = getattr(AsyncClient, method_name, None)
        endpoint = endpoint_of(method) if method is not None else None
        if endpoint is None or endpoint.operation not in ops:
            problems[name] = (method_name, endpoint.operation if endpoint else None, ops)
    assert problems == {}
    assert set(CLIENT_NAMES) <= set(TENANT_ROUTES) | set(STORE_ROUTES)
