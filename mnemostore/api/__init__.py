"""The HTTP service (FastAPI): ``create_app(settings | store)``; ``mnemostore serve`` runs it with uvicorn.

Needs the ``server`` extra: ``pip install 'mnemostore[server]'``.
"""

from mnemostore.api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
