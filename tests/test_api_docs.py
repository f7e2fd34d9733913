"""The documentation pages work offline: /docs (Swagger UI) and /redoc (ReDoc) load every script, stylesheet and
icon from the app itself (``mnemostore/api/_docs.py``), none from a CDN.

The app is the real one over ``httpx.ASGITransport``; the pages and their assets need no store, so its lifespan is
not run and no database is opened.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from mnemostore import Settings
from mnemostore.api import create_app
from tests.fix_api import free_port

CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _Assets(HTMLParser):
    """The URLs a browser would fetch for a page: every ``<script src>`` and ``<link href>``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def asset_urls(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def foreign(urls: list[str]) -> list[str]:
    """The URLs that point to another host (``https://cdn...``, ``//cdn...``): a page offline cannot load them."""
    return [url for url in urls if urlsplit(url).scheme or urlsplit(url).netloc or not url.startswith("/")]


def app() -> FastAPI:
    return create_app(Settings(database_url="sqlite:///unused-for-docs.db"))


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://docs.test") as c:
        yield c


async def assert_served_offline(client: httpx.AsyncClient, page: str, *, expected: set[str]) -> list[str]:
    """GET ``page`` (no credentials), check that each asset it names is local and served by the app with the
    right content type, and return the asset URLs."""
    response = await client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    urls = asset_urls(response.text)
    assert foreign(urls) == [], f"{page} loads assets from another host"
    assert {url.rsplit(".", 1)[1] for url in urls} == expected, urls
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, (url, asset.status_code)
        assert len(asset.content) > 0, url
        suffix = "." + url.rsplit(".", 1)[1]
        assert CONTENT_TYPES[suffix] in asset.headers["content-type"], (url, asset.headers["content-type"])
    return urls


async def test_swagger_ui_loads_its_assets_from_the_app(client: httpx.AsyncClient):
    urls = await assert_served_offline(client, "/docs", expected={"js", "css", "png"})
    assert all(url.startswith("/docs-assets/") for url in urls), urls
    page = (await client.get("/docs")).text
    assert "url: '/openapi.json'" in page and "/docs/oauth2-redirect" in page


async def test_redoc_loads_its_assets_from_the_app(client: httpx.AsyncClient):
    urls = await assert_served_offline(client, "/redoc", expected={"js", "png"})
    assert all(url.startswith("/docs-assets/") for url in urls), urls
    page = (await client.get("/redoc")).text
    assert 'spec-url="/openapi.json"' in page and "fonts.googleapis.com" not in page


async def test_swagger_oauth2_redirect_page_is_served(client: httpx.AsyncClient):
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "oauth2" in response.text and foreign(asset_urls(response.text)) == []


async def test_docs_routes_stay_out_of_the_openapi_document(client: httpx.AsyncClient):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


async def test_docs_behind_a_path_prefix_point_at_the_prefixed_assets():
    # Behind a proxy that strips /mnemo (uvicorn --root-path), the browser asks for /mnemo/...
    transport = httpx.ASGITransport(app=app(), root_path="/mnemo")
    async with httpx.AsyncClient(transport=transport, base_url="http://docs.test") as prefixed:
        urls = await assert_served_offline(prefixed, "/mnemo/docs", expected={"js", "css", "png"})
        assert all(url.startswith("/mnemo/docs-assets/") for url in urls), urls
        assert "url: '/mnemo/openapi.json'" in (await prefixed.get("/mnemo/docs")).text
        await assert_served_offline(prefixed, "/mnemo/redoc", expected={"js", "png"})


async def test_the_check_fails_on_fastapis_default_cdn_pages():
    # The same check on FastAPI's own pages (what /docs was before): they load from a CDN, and it says so.
    default = FastAPI(redoc_url="/redoc")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=default), base_url="http://docs.test") as c:
        for page in ("/docs", "/redoc"):
            urls = asset_urls((await c.get(page)).text)
            assert foreign(urls), (page, urls)
            with pytest.raises(AssertionError, match="loads assets from another host"):
                await assert_served_offline(c, page, expected=set())


def test_serve_without_the_assets_package_names_the_extra(tmp_path: Path):
    # `import fastapi_offline` fails as for an absent package: `mnemostore serve` says what to install, on one line.
    code = "import sys; sys.modules['fastapi_offline'] = None; from mnemostore.cli.main import main; main()"
    database = f"sqlite:///{tmp_path / 'never-made.db'}"
    command = [sys.executable, "-c", code, "--database-url", database, "serve", "--port", str(free_port())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_")}
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the HTTP service support needs the fastapi_offline package, which is not installed: "
        "pip install 'mnemostore[server]'"
    ]
    assert not (tmp_path / "never-made.db").exists()
