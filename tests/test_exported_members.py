"""The public surface of ``mnemostore``: what ``__all__`` promises, and what the error classes look like.

These tests need no database: they only import the package.
"""

from __future__ import annotations

import inspect
import re
from types import ModuleType

import pytest

import mnemostore
from mnemostore import domain, errors
from mnemostore.domain import _models

# The modules whose public classes callers are meant to reach as ``mnemostore.<Name>``.
PUBLIC_CLASS_MODULES: list[ModuleType] = [errors, _models]


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 ("isort-style") keeps ``__all__`` in.

    SCREAMING_SNAKE_CASE constants first, then CamelCase classes, then everything else (functions, dunders);
    within a group, plain character order.
    """
    if len(name) > 1 and name.isupper():
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    return group, name


def _classes_defined_in(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value) and not name.startswith("_") and value.__module__ in {module.__name__, "mnemostore"}
    }


def test_all_is_sorted() -> None:
    assert mnemostore.__all__ == sorted(mnemostore.__all__, key=_isort_key)


def test_all_has_no_duplicates() -> None:
    assert len(mnemostore.__all__) == len(set(mnemostore.__all__))


def test_every_name_in_all_exists() -> None:
    missing = [name for name in mnemostore.__all__ if not hasattr(mnemostore, name)]
    assert missing == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from mnemostore import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(mnemostore.__all__)


@pytest.mark.parametrize("module", PUBLIC_CLASS_MODULES, ids=lambda m: m.__name__)
def test_public_classes_are_exported(module: ModuleType) -> None:
    defined = _classes_defined_in(module)
    assert defined, f"no public classes found in {module.__name__}"
    assert sorted(defined - set(mnemostore.__all__)) == []


@pytest.mark.parametrize("module", PUBLIC_CLASS_MODULES, ids=lambda m: m.__name__)
def test_exported_classes_are_the_module_objects(module: ModuleType) -> None:
    for name in _classes_defined_in(module):
        assert getattr(mnemostore, name) is getattr(module, name), name


@pytest.mark.parametrize("module", [errors, _models, domain], ids=lambda m: m.__name__)
def test_submodule_all_lists_its_public_classes(module: ModuleType) -> None:
    exported = set(module.__all__)
    assert _classes_defined_in(_models if module is domain else module) <= exported
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_public_api_entry_points_are_exported() -> None:
    for name in ("AsyncMnemoStore", "AsyncTenantStore", "MnemoStore", "TenantStore", "Settings", "MigrationStatus"):
        assert name in mnemostore.__all__


def test_sync_and_async_stores_have_the_same_public_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(mnemostore.MnemoStore) == public(mnemostore.AsyncMnemoStore)
    assert public(mnemostore.TenantStore) == public(mnemostore.AsyncTenantStore)


ERROR_CLASSES = sorted(_classes_defined_in(errors))


@pytest.mark.parametrize("name", ERROR_CLASSES)
def test_error_derives_from_root_and_lives_in_mnemostore(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, mnemostore.MnemostoreError)
    assert issubclass(cls, Exception)
    assert cls.__module__ == "mnemostore"
    assert cls.__qualname__ == name
    assert repr(cls) == f"<class 'mnemostore.{name}'>"


def test_errors_all_matches_its_classes() -> None:
    assert sorted(errors.__all__) == ERROR_CLASSES


def test_error_tree_matches_the_documented_hierarchy() -> None:
    """Every error class is drawn in the tree of mnemostore/errors.py's docstring, under its real parent."""
    documented = set(re.findall(r"\b([A-Z][A-Za-z]+)\b", errors.__doc__ or "")) & set(ERROR_CLASSES)
    assert sorted(documented) == ERROR_CLASSES
    parents = {
        "ConfigurationError": "MnemostoreError",
        "BackendUnavailable": "MnemostoreError",
        "SchemaError": "MnemostoreError",
        "SchemaOutOfDate": "SchemaError",
        "MigrationError": "SchemaError",
        "InvalidInput": "MnemostoreError",
        "ContentTooLarge": "InvalidInput",
        "InvalidText": "InvalidInput",
        "InvalidMetadata": "InvalidInput",
        "InvalidCursor": "InvalidInput",
        "NotFoundError": "MnemostoreError",
        "ConflictError": "MnemostoreError",
        "TenantAlreadyExists": "ConflictError",
        "DuplicateIdentity": "ConflictError",
        "QuotaExceeded": "MnemostoreError",
    }
    for name, parent in parents.items():
        assert getattr(errors, name).__bases__ == (getattr(errors, parent),), name
    for name in ERROR_CLASSES:
        if name.endswith("NotFound"):
            assert getattr(errors, name).__bases__ == (errors.NotFoundError,), name


def test_errors_can_be_raised_and_caught_at_the_root() -> None:
    samples: list[Exception] = [
        errors.SchemaOutOfDate(None, "0001"),
        errors.ConversationNotFound("abc"),
        errors.QuotaExceeded("t", "max_users", 3),
        errors.ConfigurationError("bad"),
    ]
    for error in samples:
        with pytest.raises(mnemostore.MnemostoreError):
            raise error
    assert "mnemostore db upgrade" in str(samples[0])
    assert str(samples[1]) == "conversation abc not found"
