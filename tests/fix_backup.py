"""Fixtures of the backup tests: scratch databases cloned from per-session templates (see tests/backup_data.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backup_data import Databases, Templates


@pytest.fixture(scope="session")
def backup_templates(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    templates = Templates(request, tmp_path_factory.mktemp("backup-templates"))
    yield templates
    templates.close()


@pytest.fixture
def databases(backup_templates: Templates, tmp_path: Path) -> Iterator[Databases]:
    """Scratch databases of either backend: ``databases.new(backend)``, ``databases.seeded(backend)``."""
    made = Databases(backup_templates, tmp_path)
    yield made
    made.close()
