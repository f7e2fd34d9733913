"""``AsyncEventStream``: a conversation's events as an async iterator, reconnecting where the stream broke off.

(async; ``_stream.py`` is generated from this file.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Final, Self

import httpx

from mnemostore.client._base_async import NOT_SENT, RETRY_STATUSES, AsyncConnection, _body, _url
from mnemostore.client._endpoints import STREAM_EVENTS
from mnemostore.client._errors import error_from_answer
from mnemostore.client._events import ConversationEvent, Frame, SseParser
from mnemostore.errors import BackendUnavailable

__all__ = ["AsyncEventStream"]

DEFAULT_RECONNECT_SECONDS: Final = 2.0


class _Ended(Exception):
    """The service closed the stream, or the connection dropped."""


class AsyncEventStream:
    """The events of one conversation as they happen: an async iterator of ``ConversationEvent``.

    ``async with client.events(conversation_id) as events`` returns once the service has subscribed: every event
    after that point is delivered (messages appended from then on, an archive). Iterating waits for the next
    one; leave the loop (or the ``async with`` block) to stop, and ``close()`` a stream not used as a context
    manager.

    When the connection drops, the stream reconnects with ``Last-Event-ID`` set to the last event received
    (``last_event_id``), and the service first sends what was missed (up to 500 messages), so nothing is lost or
    repeated once a ``message.added`` has arrived; before the first one, events of the moment of the
    reconnection may be missed. Reconnecting waits the delay the service asked for (``retry:``); connecting
    fails after the client's ``retries`` in a row with ``BackendUnavailable``, and an error answer (the
    conversation was deleted: ``ConversationNotFound``) ends the stream with its exception.
    """

    def __init__(
        self,
        connection: AsyncConnection,
        conversation_id: uuid.UUID | str,
        *,
        last_event_id: str | None = None,
        reconnect: bool = True,
        read_timeout: float = 60.0,
    ) -> None:
        self.conversation_id = str(conversation_id)
        self._connection = connection
        self._parser = SseParser()
        self._parser.last_id = last_event_id
        self._reconnect = reconnect
        self._read_timeout = read_timeout
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._connections = 0
        self._closed = False

    @property
    def last_event_id(self) -> str | None:
        """The id of the last ``message.added`` received (or the one given): where a new stream would resume."""
        return self._parser.last_id

    @property
    def connections(self) -> int:
        """How many times the stream has connected (1 + its reconnections)."""
        return self._connections

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ConversationEvent:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._lines is None:
                if self._connections and not self._reconnect:
                    await self.close()
                    raise StopAsyncIteration
                await self._connect(again=self._connections > 0)
            try:
                frame = await self._next_frame()
            except _Ended:
                await self._drop()
                continue
            event = frame.to_event()
            if event is not None:
                return event

    async def open(self) -> None:
        """Connect, and return once the service has subscribed to the conversation's events."""
        if self._lines is None and not self._closed:
            await self._connect(again=False)

    async def close(self) -> None:
        """Close the connection; iterating ends."""
        self._closed = True
        await self._drop()

    async def _connect(self, *, again: bool) -> None:
        connection = self._connection
        if again:
            retry_ms = self._parser.retry_ms
            await connection._sleep(retry_ms / 1000 if retry_ms is not None else DEFAULT_RECONNECT_SECONDS)
        url = _url(STREAM_EVENTS.path, {"conversation_id": self.conversation_id})
        headers = {**connection._auth(STREAM_EVENTS), "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        timeout = connection._timeout
        attempt = 0
        while True:
            if self._parser.last_id is not None:
                headers["Last-Event-ID"] = self._parser.last_id
            request = connection._http.build_request(
                "GET",
                url,
                headers=headers,
                timeout=httpx.Timeout(
                    connect=timeout.connect, read=self._read_timeout, write=timeout.write, pool=timeout.pool
                ),
            )
            try:
                response = await connection._http.send(request, stream=True)
            except httpx.TransportError as error:
                if attempt < connection._retries:
                    await connection._sleep(connection._backoff_delay(attempt))
                    attempt += 1
                    continue
                raise connection._unreachable(
                    STREAM_EVENTS, url, error, maybe_done=not isinstance(error, NOT_SENT)
                ) from error
            if response.status_code >= 400:
                await response.aread()
                await response.aclose()
                wait = connection._retry_wait(attempt, response) if response.status_code in RETRY_STATUSES else None
                if wait is None:
                    raise error_from_answer(response.status_code, response.headers, _body(response))
                await connection._sleep(wait)
                attempt += 1
                continue
            self._response = response
            self._lines = response.aiter_lines()
            self._connections += 1
            try:
                await self._next_frame()  # the first frame says the subscription is live
            except _Ended:
                await self._drop()
                if attempt < connection._retries:
                    await connection._sleep(connection._backoff_delay(attempt))
                    attempt += 1
                    continue
                raise BackendUnavailable(
                    f"the event stream of conversation {self.conversation_id} at {connection.base_url} closed "
                    "before it started: retry later"
                ) from None
            return

    async def _next_frame(self) -> Frame:
        lines = self._lines
        assert lines is not None
        try:
            while True:
                frame = self._parser.feed(await anext(lines))
                if frame is not None:
                    return frame
        except (StopAsyncIteration, httpx.TransportError, httpx.StreamError):
            raise _Ended from None

    async def _drop(self) -> None:
        response, self._response, self._lines = self._response, None, None
        if response is not None:
            await response.aclose()
