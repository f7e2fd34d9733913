"""Memory operations that need no I/O: near-duplicate detection, summarisers, retention and lifecycle policies,
token counting and the packing of context blocks.

The store (``mnemostore.service``) loads and writes; these modules decide. No sync/async twins here.
"""

from mnemostore.memory._context import Candidate, check_budget, pack_context, render_entry
from mnemostore.memory._dedup import DuplicateMatch, cosine, find_duplicate, normalize_text, token_jaccard
from mnemostore.memory._lifecycle import (
    CHECKPOINT_RETENTION_KEYS,
    MEMORY_LIFECYCLE_KEYS,
    CheckpointRetentionPolicy,
    MemoryLifecyclePolicy,
)
from mnemostore.memory._retention import RETENTION_KEYS, MaintenanceReport, RetentionPolicy, TenantMaintenance
from mnemostore.memory._summarize import ExtractiveSummarizer, LLMSummarizer, Summarizer
from mnemostore.memory._tokens import ApproxTokenCounter, TokenCounter

__all__ = [
    "CHECKPOINT_RETENTION_KEYS",
    "MEMORY_LIFECYCLE_KEYS",
    "RETENTION_KEYS",
    "ApproxTokenCounter",
    "Candidate",
    "CheckpointRetentionPolicy",
    "DuplicateMatch",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "MaintenanceReport",
    "MemoryLifecyclePolicy",
    "RetentionPolicy",
    "Summarizer",
    "TenantMaintenance",
    "TokenCounter",
    "check_budget",
    "cosine",
    "find_duplicate",
    "normalize_text",
    "pack_context",
    "render_entry",
    "token_jaccard",
]
