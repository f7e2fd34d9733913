"""Memory operations that need no I/O: near-duplicate detection, summarisers, retention policy.

The store (``mnemostore.service``) loads and writes; these modules decide. No sync/async twins here.
"""

from mnemostore.memory._dedup import DuplicateMatch, cosine, find_duplicate, normalize_text, token_jaccard
from mnemostore.memory._retention import RETENTION_KEYS, MaintenanceReport, RetentionPolicy, TenantMaintenance
from mnemostore.memory._summarize import ExtractiveSummarizer, LLMSummarizer, Summarizer

__all__ = [
    "RETENTION_KEYS",
    "DuplicateMatch",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "MaintenanceReport",
    "RetentionPolicy",
    "Summarizer",
    "TenantMaintenance",
    "cosine",
    "find_duplicate",
    "normalize_text",
    "token_jaccard",
]
