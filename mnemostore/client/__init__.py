"""The HTTP service from Python: ``Client`` (sync) and ``AsyncClient``, typed with mnemostore's own classes.

``Client("http://127.0.0.1:8000", api_key=key)`` has the store's method names (``create_user``,
``add_message``, ``get_conversation_history``, ``search``…) and returns and raises what the library does;
``client.memory`` is the three-line memory API; ``client.events(conversation_id)`` streams a conversation's
events. Needs only the base package (httpx); the service needs the ``server`` extra.

``ENDPOINTS`` lists the service's operations the client calls, and ``endpoint_of(method)`` the one a method
calls: the tests keep both in step with the service's OpenAPI document.
"""

from mnemostore.client._client import Client
from mnemostore.client._client_async import AsyncClient
from mnemostore.client._endpoints import ENDPOINTS, Endpoint, endpoint_of
from mnemostore.client._events import ConversationEvent
from mnemostore.client._memory import MemoryClient
from mnemostore.client._memory_async import AsyncMemoryClient
from mnemostore.client._stream import EventStream
from mnemostore.client._stream_async import AsyncEventStream

__all__ = [
    "ENDPOINTS",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncMemoryClient",
    "Client",
    "ConversationEvent",
    "Endpoint",
    "EventStream",
    "MemoryClient",
    "endpoint_of",
]
