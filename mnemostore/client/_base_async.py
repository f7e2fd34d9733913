"""The client's connection to the service: keys, timeouts, retries, and the error answers turned into
mnemostore's exceptions.

(async; ``_base.py`` is generated from this file.)

One ``httpx`` client per ``AsyncClient`` keeps the connections open between calls. A request is sent again only
where that is safe (``Endpoint.retry``: reads, deletes by id, searches, appends with their idempotency key), after
a dropped connection, a 502/503/504 or a 429, waiting ``backoff`` seconds doubled at each attempt (at most
``max_backoff``), or the answer's ``Retry-After`` when that is longer. A ``Retry-After`` beyond ``max_retry_after``
is not waited for: the error is raised, with its ``retry_after``. Any other write is sent once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final, Protocol, Self, TypeVar
from urllib.parse import quote

import httpx

from mnemostore._version import __version__
from mnemostore.client._codec import jsonable
from mnemostore.client._endpoints import Endpoint
from mnemostore.client._errors import error_from_answer, retry_after_seconds
from mnemostore.domain import Page
from mnemostore.errors import BackendUnavailable, ConfigurationError, InvalidInput, MnemostoreError

__all__ = ["AsyncConnection", "new_idempotency_key", "walk"]

T = TypeVar("T")


class AsyncSleep(Protocol):
    """How the client waits between attempts (``asyncio.sleep``, or a test's clock)."""

    async def __call__(self, seconds: float, /) -> None: ...


class AsyncPageFetch(Protocol[T]):
    """Gets the page of a listing that ``cursor`` starts (None: the first)."""

    async def __call__(self, cursor: str | None, /) -> Page[T]: ...


DEFAULT_URL: Final = "http://127.0.0.1:{port}"
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
# Transport errors raised before the request went out: the service saw nothing.
NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key`` for one logical append (its retries send the same one)."""
    return f"mnemostore-client-{uuid.uuid4().hex}"


def default_url() -> str:
    """``MNEMOSTORE_URL``, else the address ``mnemostore serve`` listens on by default (``MNEMOSTORE_SERVER_PORT``)."""
    return os.environ.get("MNEMOSTORE_URL") or DEFAULT_URL.format(port=os.environ.get("MNEMOSTORE_SERVER_PORT", 8000))


class AsyncConnection:
    """What every part of the client shares: the HTTP connection, the keys, the retry policy."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        if retries < 0 or backoff < 0 or max_backoff < 0 or max_retry_after < 0:
            raise InvalidInput("retries, backoff, max_backoff and max_retry_after must be 0 or more")
        self.base_url = (base_url or default_url()).rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("MNEMOSTORE_API_KEY")
        self._admin_key = admin_key if admin_key is not None else os.environ.get("MNEMOSTORE_ADMIN_API_KEY")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_retry_after = max_retry_after
        self._sleep: AsyncSleep = sleep or asyncio.sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self._timeout,
            transport=transport,
            headers={"User-Agent": f"mnemostore-client/{__version__}", **(headers or {})},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (the client cannot be used afterwards)."""
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    async def _send(
        self,
        endpoint: Endpoint,
        *,
        path: Mapping[str, object] | None = None,
        params: Mapping[str, object] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one request, again where ``endpoint.retry`` allows it; an error answer raises its exception.

        A DELETE whose earlier attempt may have been carried out (its answer was lost) and that now finds
        nothing (404) succeeded: the object is gone.
        """
        url = _url(endpoint.path, path or {})
        sent_headers = {**self._auth(endpoint), **(headers or {})}
        query = {name: jsonable(value) for name, value in (params or {}).items() if value is not None}
        content = None if body is None else jsonable(body)
        attempt = 0
        maybe_done = False  # an earlier attempt may have reached the service
        while True:
            try:
                response = await self._http.request(
                    endpoint.method, url, params=query, json=content, headers=sent_headers
                )
            except httpx.TransportError as error:
                sent = not isinstance(error, NOT_SENT)
                maybe_done = maybe_done or sent
                if endpoint.retry and attempt < self._retries:
                    await self._sleep(self._backoff_delay(attempt))
                    attempt += 1
                    continue
                raise self._unreachable(endpoint, url, error, maybe_done=maybe_done) from error
            status = response.status_code
            if status < 400 or status in accept:
                return response
            if status == 404 and maybe_done and endpoint.method == "DELETE":
                return response
            wait = self._retry_wait(attempt, response) if endpoint.retry and status in RETRY_STATUSES else None
            if wait is None:
                raise error_from_answer(status, response.headers, _body(response))
            maybe_done = maybe_done or status in (502, 504)  # a proxy's answer: the service may have done it
            await self._sleep(wait)
            attempt += 1

    async def _json(self, endpoint: Endpoint, **request: Any) -> Any:
        """``_send``, and the answer's JSON."""
        return _body(await self._send(endpoint, **request))

    def _auth(self, endpoint: Endpoint) -> dict[str, str]:
        if endpoint.auth == "none":
            return {}
        if endpoint.auth == "admin":
            if not self._admin_key:
                raise ConfigurationError(
                    f"{endpoint.method} {endpoint.path} needs the service's admin key: pass admin_key=… "
                    "(or set MNEMOSTORE_ADMIN_API_KEY)"
                )
            return {"Authorization": f"Bearer {self._admin_key}"}
        if not self._api_key:
            raise ConfigurationError(
                f"{endpoint.method} {endpoint.path} needs one of the tenant's API keys: pass api_key=… (or set "
                "MNEMOSTORE_API_KEY); an admin creates one with create_tenant_api_key or `mnemostore tenant create-key`"
            )
        return {"Authorization": f"Bearer {self._api_key}"}

    def _backoff_delay(self, attempt: int) -> float:
        return float(min(self._max_backoff, self._backoff * 2**attempt))

    def _retry_wait(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before sending again after an answer of RETRY_STATUSES, or None: do not."""
        if attempt >= self._retries:
            return None
        delay = self._backoff_delay(attempt)
        asked = retry_after_seconds(response.headers)
        if asked is None:
            return delay
        return None if asked > self._max_retry_after else max(asked, delay)

    def _unreachable(self, endpoint: Endpoint, url: str, error: httpx.TransportError, *, maybe_done: bool) -> Exception:
        what = type(error).__name__
        detail = str(error) or what
        if not maybe_done:
            effect = "nothing reached it"
        elif endpoint.retry:
            effect = "calling again is safe"
        else:
            effect = "it may have been carried out: its answer was lost"
        return BackendUnavailable(
            f"the service at {self.base_url} did not answer {endpoint.method} {url} ({what}: {detail}); {effect}. "
            "Check that it runs (`mnemostore serve`) at that address"
        )


async def walk(fetch: AsyncPageFetch[T]) -> AsyncIterator[T]:
    """Every item of a listing, one page at a time, each once: ``fetch(cursor)`` gets a page."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        if page.next_cursor == cursor:
            raise MnemostoreError("the service returned the same page cursor twice: stopping the listing")
        cursor = page.next_cursor


def _url(template: str, values: Mapping[str, object]) -> str:
    """The path of an operation with its placeholders filled in (each value quoted: it cannot add a segment)."""
    try:
        return template.format_map({name: quote(str(value), safe="") for name, value in values.items()})
    except KeyError as missing:
        raise InvalidInput(f"{template} needs {missing}") from None


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text
