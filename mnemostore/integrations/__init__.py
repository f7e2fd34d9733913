"""Adapters of agent frameworks over mnemostore's public API (each one a subpackage, imported only when used).

``mnemostore.integrations.langgraph``: LangGraph's checkpointer (``MnemostoreSaver``, ``AsyncMnemostoreSaver``).
An adapter keeps nothing of its own: it turns the framework's calls into tenant store calls.
"""
