"""The knowledge tool: search the tenant's knowledge chunks (documents, handbooks, FAQs loaded by the app)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from mnemostore.search import ItemKind

from ._access import Access
from ._shapes import KnowledgeHit, KnowledgeHits, Params
from ._tool import ToolSpec, tool

__all__ = ["KNOWLEDGE_TOOLS"]


class SearchKnowledge(Params):
    query: Annotated[str, Field(min_length=1, pattern=r"\S", description="a question or keywords")]
    limit: Annotated[int, Field(ge=1, le=50, description="how many passages at most")] = 5


@tool("search_knowledge", SearchKnowledge, KnowledgeHits, title="Search the knowledge base", writes=False)
async def search_knowledge(access: Access, p: SearchKnowledge) -> KnowledgeHits:
    """Search the knowledge base (documents, policies, FAQs the application loaded) for passages that answer a
    question, best first, each with its source and title. Use it to ground an answer in the documents rather
    than in what you remember."""
    found = await access.tenant.search(p.query, kinds=[ItemKind.KNOWLEDGE], limit=p.limit)
    return KnowledgeHits(hits=[KnowledgeHit.of(hit) for hit in found], mode=found.mode.value)


KNOWLEDGE_TOOLS: tuple[ToolSpec[Any, Any], ...] = (search_knowledge,)
