"""Summarisers for ``consolidate_conversation``: turn old messages into the text of one memory segment.

Pure logic, no I/O of its own (no twin). A summariser is anything with ``summarize(messages) -> str``; it may
also return an awaitable of ``str`` (an async LLM client), which ``AsyncTenantStore`` awaits and the sync
``TenantStore`` refuses with a message naming the async store.

- ``ExtractiveSummarizer`` needs no model: it keeps the highest-scoring sentences, scored by TF-IDF (each
  message is a document) with a small bonus for early sentences of a message, and returns them in conversation
  order. Deterministic: the same messages always give the same summary.
- ``LLMSummarizer`` adapts a user-supplied completion callable (``prompt -> text``, sync or async): it builds the
  prompt, calls it, and checks the answer. mnemostore makes no network call of its own.
"""

from __future__ import annotations

import inspect
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Protocol, runtime_checkable

from mnemostore.domain import Message, Role
from mnemostore.errors import SummarizationError

__all__ = ["ExtractiveSummarizer", "LLMSummarizer", "Summarizer"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W_]+")
# Words too common to say what a sentence is about (English; everything else counts).
_STOP = frozenset(
    _WORD.findall(
        "a an and are as at be been but by can could did do does for from had has have he her him his how i "
        "if in into is it its just me my no not of on or our she so than that the their them then there these "
        "they this to too us was we were what when where which who why will with would you your yes ok okay "
        "also about "
    )
)


@runtime_checkable
class Summarizer(Protocol):
    """Anything that turns messages (oldest first) into the text of a memory segment."""

    def summarize(self, messages: Sequence[Message]) -> str | Awaitable[str]: ...


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if w not in _STOP and len(w) > 1]


class ExtractiveSummarizer:
    """Keep the most informative sentences of the messages, no model needed.

    Args:
        max_sentences: at most this many sentences are kept.
        ratio: keep about this share of the sentences (at least one), when it is fewer than ``max_sentences``.
        roles: only messages of these roles are summarised (default: user and assistant).
        label_roles: prefix each kept sentence with its role ("user: ...").
    """

    def __init__(
        self,
        *,
        max_sentences: int = 6,
        ratio: float = 0.3,
        roles: Sequence[Role | str] = (Role.USER, Role.ASSISTANT),
        label_roles: bool = True,
    ) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        if not 0.0 < ratio <= 1.0:
            raise ValueError("ratio must be in (0, 1]")
        self.max_sentences = max_sentences
        self.ratio = ratio
        self.roles = frozenset(Role(r) for r in roles)
        self.label_roles = label_roles

    def summarize(self, messages: Sequence[Message]) -> str:
        # (message index, position in message, role, sentence)
        sentences: list[tuple[int, int, Role, str]] = []
        for i, message in enumerate(messages):
            if message.role not in self.roles:
                continue
            parts = [s.strip() for s in _SENTENCE.split(message.content) if s.strip()]
            sentences.extend((i, j, message.role, s) for j, s in enumerate(parts))
        if not sentences:
            return ""
        documents = Counter[str]()
        per_message: dict[int, set[str]] = {}
        for i, _, _, text in sentences:
            per_message.setdefault(i, set()).update(_words(text))
        for words in per_message.values():
            documents.update(words)
        n_docs = len(per_message)

        def score(item: tuple[int, int, Role, str]) -> float:
            words = _words(item[3])
            if not words:
                return 0.0
            counts = Counter(words)
            tfidf = sum(c * (math.log((1 + n_docs) / (1 + documents[w])) + 1.0) for w, c in counts.items())
            # Normalised by sqrt(length): long sentences score higher, but not linearly.
            position = 1.0 + 0.25 / (1 + item[1])
            return tfidf / math.sqrt(len(words)) * position

        keep = max(1, min(self.max_sentences, round(len(sentences) * self.ratio)))
        ranked = sorted(range(len(sentences)), key=lambda k: (-score(sentences[k]), k))[:keep]
        chosen = [sentences[k] for k in sorted(ranked)]
        if self.label_roles:
            return "\n".join(f"{role.value}: {text}" for _, _, role, text in chosen)
        return " ".join(text for _, _, _, text in chosen)


DEFAULT_PROMPT = (
    "Summarise the following conversation excerpt for an assistant's long-term memory. Keep facts, preferences, "
    "decisions and open questions; drop greetings and filler. Answer with the summary only.\n\n{transcript}"
)


class LLMSummarizer:
    """Summarise with a language model the caller supplies.

    Args:
        complete: ``prompt -> text``, or an async function returning the text (a thin wrapper over any client).
        prompt: the template; ``{transcript}`` is replaced by ``role: content`` lines.
        max_chars: the transcript is cut (oldest lines dropped first) to this many characters.

    Raises (from ``summarize``):
        SummarizationError: the callable failed or returned something that is not non-empty text.
    """

    def __init__(
        self,
        complete: Callable[[str], str | Awaitable[str]],
        *,
        prompt: str = DEFAULT_PROMPT,
        max_chars: int = 24_000,
    ) -> None:
        if "{transcript}" not in prompt:
            raise ValueError("prompt must contain the placeholder {transcript}")
        self.complete = complete
        self.prompt = prompt
        self.max_chars = max_chars

    def build_prompt(self, messages: Sequence[Message]) -> str:
        lines = [f"{m.role.value}: {m.content}" for m in messages]
        while len(lines) > 1 and sum(len(line) + 1 for line in lines) > self.max_chars:
            lines.pop(0)
        return self.prompt.replace("{transcript}", "\n".join(lines)[-self.max_chars :])

    def summarize(self, messages: Sequence[Message]) -> str | Awaitable[str]:
        try:
            result = self.complete(self.build_prompt(messages))
        except Exception as error:
            raise SummarizationError(f"the summariser's callable failed: {error!r}") from error
        if inspect.isawaitable(result):
            return _PendingSummary(result)
        return _check(result)


class _PendingSummary:
    """The answer of an async callable, checked when awaited; ``close()`` closes it unawaited (no warning)."""

    def __init__(self, pending: Awaitable[str]) -> None:
        self._pending = pending

    def __await__(self) -> Generator[Any, None, str]:
        return self._finish().__await__()

    async def _finish(self) -> str:
        try:
            result = await self._pending
        except Exception as error:
            raise SummarizationError(f"the summariser's callable failed: {error!r}") from error
        return _check(result)

    def close(self) -> None:
        close = getattr(self._pending, "close", None)
        if close is not None:
            close()


def _check(result: object) -> str:
    if not isinstance(result, str) or not result.strip():
        raise SummarizationError(
            f"the summariser returned {type(result).__name__} {result!r:.80}: it must return non-empty text"
        )
    return result.strip()
