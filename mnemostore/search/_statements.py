"""Transitional alias of ``_query``: ``mnemostore.service`` still imports these names from here.

Delete this module once the service imports ``SearchFilters`` and ``query_terms`` from ``mnemostore.search``
(the search statements themselves moved to ``mnemostore.store._search_statements``).
"""

from mnemostore.search._query import SearchFilters, query_terms

__all__ = ["SearchFilters", "query_terms"]
