"""The documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), that work without internet.

FastAPI's own pages load Swagger UI's and ReDoc's scripts and styles from a CDN, so on a machine offline they stay
blank. These are the same pages (FastAPI's ``get_swagger_ui_html`` and ``get_redoc_html``, on the same
``/openapi.json``), but every asset comes from the app itself, under ``/docs-assets/``: the files that the
``fastapi-offline`` package ships (Swagger UI and ReDoc, with their licences; part of the ``server`` extra), found
with ``importlib.resources``. No authentication, like ``/openapi.json``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["ASSETS_PACKAGE", "ASSETS_URL", "assets_directory", "install_docs"]

ASSETS_PACKAGE: Final = "fastapi_offline"
"""The installed package whose ``static/`` folder holds the assets (``swagger-ui-bundle.js``, ``swagger-ui.css``,
``redoc.standalone.js``, ``favicon.png``)."""

ASSETS_URL: Final = "/docs-assets"


def assets_directory() -> Path:
    """The folder of the documentation assets inside the installed ``fastapi-offline`` package.

    Raises:
        ModuleNotFoundError: the package is not installed (``pip install 'mnemostore[server]'``).
        RuntimeError: it is installed but its assets are not a folder on disk (a zipped install, say).
    """
    static = importlib.resources.files(ASSETS_PACKAGE) / "static"
    if not isinstance(static, Path) or not static.is_dir():
        raise RuntimeError(f"the documentation assets of the {ASSETS_PACKAGE} package are not a folder: {static}")
    return static


# Found on import: without the package, `import mnemostore.api` fails at once naming it (and `mnemostore serve`
# says which extra to install), rather than the first app a worker builds.
_ASSETS: Final = assets_directory()


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve the assets under ``ASSETS_URL`` and add ``docs_url``, its OAuth2 redirect page, and ``redoc_url``.

    The app must be built with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages off); its ``openapi_url``,
    ``swagger_ui_oauth2_redirect_url``, ``swagger_ui_init_oauth`` and ``swagger_ui_parameters`` are honoured as
    FastAPI's own pages would, and so is the ASGI ``root_path`` (behind a proxy that strips a prefix).
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the documentation pages need the app's openapi_url")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,  # a stylesheet from Google's servers; ReDoc falls back to the system fonts
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    if oauth2_redirect_url:
        app.add_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
