"""The HTTP service (FastAPI): ``create_app(settings | store)``; ``mnemostore serve`` runs it with uvicorn.

``logging_config(level)`` is the uvicorn logging setup (JSON lines with request ids) that ``mnemostore serve``
passes on. Needs the ``server`` extra: ``pip install 'mnemostore[server]'``.
"""

from mnemostore.api._logging import logging_config
from mnemostore.api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app", "logging_config"]
