"""Operations: schema migrations, backup and restore, health checks, analytics.

Public here: the results and checkers below, and the modules ``migrate`` (Alembic), ``backup_async`` / ``backup``
(backup, restore, export and erasure; the service imports the module of its twin), ``retention`` (which scheduled
archives to keep), ``verify_async`` / ``verify`` (restore an archive into a scratch database to prove it restores),
``analytics`` and ``analytics_report`` (which need the ``analytics`` extra when run). Everything else in the package
is private.
"""

from mnemostore.ops._archive import BackupManifest, BackupResult, ProgressReporter, RestoreResult, Scope
from mnemostore.ops._health import HealthChecker
from mnemostore.ops._health_async import AsyncHealthChecker
from mnemostore.ops._health_base import HealthCheck, HealthReport, HealthStatus
from mnemostore.ops._signing import SignatureStatus, SigningKey
from mnemostore.ops.migrate import MigrationStatus

__all__ = [
    "AsyncHealthChecker",
    "BackupManifest",
    "BackupResult",
    "HealthCheck",
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "MigrationStatus",
    "ProgressReporter",
    "RestoreResult",
    "Scope",
    "SignatureStatus",
    "SigningKey",
]
