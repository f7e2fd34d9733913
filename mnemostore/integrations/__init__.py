"""Integrations of mnemostore with the protocols and frameworks agents use, one subpackage each.

Each one is a thin layer over the service and the facade (no storage of its own) and needs its own extra, imported
only where it is used: ``mnemostore.integrations.mcp`` (``pip install 'mnemostore[mcp]'``) serves the memory,
conversation and knowledge tools over the Model Context Protocol; ``mnemostore.integrations.langgraph``
(``pip install 'mnemostore[langgraph]'``) is LangGraph's checkpointer and store on a tenant's graph state and items;
``mnemostore.integrations.langchain`` (``pip install 'mnemostore[langchain]'``) is LangChain's chat history, vector
store and retriever. Importing this package imports no framework.
"""
