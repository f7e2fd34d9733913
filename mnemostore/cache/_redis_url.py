"""Redis URLs: one server, or a Redis Cluster (pure, shared by both twins).

``redis+cluster://[user:password@]host:port[,host:port…][?option=value…]`` (``rediss+cluster://`` for TLS) names
a Redis Cluster by any of its nodes: the client asks them for the cluster's layout and finds every other node
itself, so listing two or three is enough to survive one of them being down at start. Everything after the hosts
means what it means in a ``redis://`` URL (credentials, ``?ssl_cert_reqs=…``); a cluster has one database, 0.
"""

from __future__ import annotations

from mnemostore.errors import ConfigurationError

__all__ = ["CLUSTER_SCHEMES", "is_cluster_url", "split_cluster_url"]

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT = 6379


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def split_cluster_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """(the startup nodes, a one-node ``redis://`` URL carrying the rest: credentials, TLS, options).

    Raises:
        ConfigurationError: the URL names no node, a port is not a number, or it selects a database other than 0.
    """
    scheme, _, rest = url.partition("://")
    base = CLUSTER_SCHEMES[scheme.lower()]
    netloc, slash, path = rest.partition("/")
    query = ""
    if "?" in netloc:  # no path: redis+cluster://h:1,h:2?ssl_cert_reqs=none
        netloc, _, query = netloc.partition("?")
    elif slash:
        path, _, query = path.partition("?")
    auth, at, hosts = netloc.rpartition("@")
    nodes = [_node(part, url) for part in hosts.split(",") if part.strip()]
    if not nodes:
        raise ConfigurationError(f"{_redacted(url)} names no node: write {scheme}://host:6379[,host:6379…]")
    if path not in ("", "0"):
        raise ConfigurationError(
            f"{_redacted(url)} selects database {path!r}: a Redis Cluster has only database 0, drop the /{path}"
        )
    host, port = nodes[0]
    single = f"{base}://{auth}{at}{_host(host)}:{port}/0" + (f"?{query}" if query else "")
    return nodes, single


def _node(text: str, url: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [::1]:7000
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (port and not port.isdigit()) or not 0 < int(port or DEFAULT_PORT) < 65536:
        raise ConfigurationError(f"{_redacted(url)} has node {text!r}: write host:port, e.g. 10.0.0.1:6379")
    return host, int(port or DEFAULT_PORT)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    _auth, at, tail = rest.rpartition("@")
    return f"{scheme}://{'***@' if at else ''}{tail}"
