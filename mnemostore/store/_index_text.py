"""The text a message is indexed by: its author, when it has one, then its content. Pure, no I/O.

A message's author (``metadata["author"]``: a speaker's name in a multi-party or imported chat, what OpenAI's
chat format and LangChain call ``name``) is part of what it says: "what did Alice say about the move?" is about
Alice's messages. The full-text index (migration 0012: PostgreSQL's ``messages.search_tsv``, SQLite's
``messages.search_text`` under ``messages_fts``) and the indexer's embedding both read ``"{author}: {content}"``;
the stored content stays as written.

An author sealed by field encryption (``author`` in ``secret_metadata_keys``) is an envelope in the database and
is left out, so no index holds more plaintext than the rows do.
"""

from __future__ import annotations

from typing import Any, Final

from mnemostore.store._crypto import ENVELOPE_PREFIX

__all__ = ["AUTHOR_KEY", "indexed_message_text"]

AUTHOR_KEY: Final = "author"


def indexed_message_text(content: str, metadata: Any) -> str:
    """``"{author}: {content}"`` when ``metadata`` (as stored: secret values sealed) names a plaintext author,
    else ``content``. Migration 0012 writes the same rule in SQL for the full-text index."""
    author = metadata.get(AUTHOR_KEY) if isinstance(metadata, dict) else None
    if isinstance(author, str) and author.strip() and not author.startswith(ENVELOPE_PREFIX):
        return f"{author}: {content}"
    return content
