"""A LangGraph graph with a human in the loop, for tests/test_langgraph_graph.py (which also runs ``resume`` in a
new process: ``python -c "from tests.langgraph_graphs import resume; resume()"``).

draft -> review (asks a human with ``interrupt``: approve the draft?) -> publish (or discard).
"""

from __future__ import annotations

import json
import operator
import os
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from mnemostore.integrations.langgraph import MnemostoreSaver


class Post(TypedDict, total=False):
    request: str
    approved: bool
    log: Annotated[list[str], operator.add]


def draft(state: Post) -> dict[str, Any]:
    return {"log": [f"drafted {state['request']}"]}


def review(state: Post) -> dict[str, Any]:
    answer = interrupt({"question": "publish this draft?", "draft": state["log"][-1]})
    return {"approved": answer == "yes", "log": [f"reviewed: {answer}"]}


def publish(state: Post) -> dict[str, Any]:
    return {"log": ["published" if state["approved"] else "discarded"]}


def builder() -> StateGraph[Post]:
    graph = StateGraph(Post)
    graph.add_node("draft", draft)
    graph.add_node("review", review)
    graph.add_node("publish", publish)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "review")
    graph.add_edge("review", "publish")
    graph.add_edge("publish", END)
    return graph


def resume() -> None:
    """Resume the thread ``LG_THREAD`` of tenant ``LG_TENANT`` at ``LG_URL`` with the answer ``LG_ANSWER``; print
    the final state as JSON."""
    with MnemostoreSaver.from_url(os.environ["LG_URL"], tenant=os.environ["LG_TENANT"]) as saver:
        graph = builder().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": os.environ["LG_THREAD"]}}
        result = graph.invoke(Command(resume=os.environ["LG_ANSWER"]), config)
    print(json.dumps(result))
