"""The ``mnemostore`` command line (``mnemostore.cli.main:main``); see ``main.py`` for the command tree."""

from mnemostore.cli.main import app, main

__all__ = ["app", "main"]
