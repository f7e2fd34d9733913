"""The public surface of ``mnemostore``: what ``__all__`` promises, and what the error classes look like.

These tests need no database: they only import the package.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from types import ModuleType
from typing import Any

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


def _public_methods(cls: type) -> set[str]:
    """Public names of a store class, inherited from its capability mixins included."""
    return {name for name in dir(cls) if not name.startswith("_")}


def test_sync_and_async_stores_have_the_same_public_methods() -> None:
    assert _public_methods(mnemostore.MnemoStore) == _public_methods(mnemostore.AsyncMnemoStore)
    assert _public_methods(mnemostore.TenantStore) == _public_methods(mnemostore.AsyncTenantStore)
    # The stores are composed of mixins: make sure the comparison sees what they inherit.
    assert len(_public_methods(mnemostore.AsyncTenantStore)) > 80
    assert {"tenant", "create_tenant", "backup", "health"} <= _public_methods(mnemostore.AsyncMnemoStore)


STORE_CLASSES = [mnemostore.AsyncMnemoStore, mnemostore.AsyncTenantStore, mnemostore.MnemoStore, mnemostore.TenantStore]
CLIENT_CLASSES = [
    mnemostore.AsyncClient,
    mnemostore.Client,
    mnemostore.AsyncMemoryClient,
    mnemostore.MemoryClient,
    mnemostore.AsyncEventStream,
    mnemostore.EventStream,
]


def test_sync_and_async_clients_have_the_same_public_methods() -> None:
    assert _public_methods(mnemostore.Client) == _public_methods(mnemostore.AsyncClient)
    assert _public_methods(mnemostore.MemoryClient) == _public_methods(mnemostore.AsyncMemoryClient)
    # ``client.memory`` is ``Memory`` over HTTP (the client opens and closes the connection, and there is no store).
    assert _public_methods(mnemostore.MemoryClient) >= _public_methods(mnemostore.Memory) - {
        "close",
        "for_tenant",
        "store",
        "tenant",
    }
    # The client has the store's names where it does the same thing.
    shared = _public_methods(mnemostore.Client) & _public_methods(mnemostore.TenantStore)
    assert {
        "create_user",
        "add_message",
        "add_messages",
        "get_conversation_history",
        "search",
        "store_memory",
    } <= shared


# Names the store modules import only for type checking resolve among the public names (not in ``vars(mnemostore)``,
# whose subpackage attributes would shadow a module's own imports such as ``migrations``).
PUBLIC_NAMES = {name: getattr(mnemostore, name) for name in mnemostore.__all__}


def _signature_types(cls: type) -> dict[type, str]:
    """Every mnemostore class named in the parameters or return type of ``cls``'s public methods."""
    found: dict[type, str] = {}

    def walk(annotation: Any, where: str) -> None:
        origin = typing.get_origin(annotation)
        if origin is not None:
            for arg in typing.get_args(annotation):
                walk(arg, where)
            walk(origin, where)
        elif inspect.isclass(annotation) and annotation.__module__.split(".")[0] == "mnemostore":
            found.setdefault(annotation, where)

    # A tenant view is made by ``store.tenant(tenant_id)``, never by its constructor: that one is not public. Nor
    # are those of ``client.memory`` and ``client.events(conversation_id)``.
    made_by_others = cls.__name__.endswith(("TenantStore", "MemoryClient", "EventStream"))
    constructor = set() if made_by_others else {"__init__"}
    for name in sorted(_public_methods(cls) | constructor):
        member = inspect.getattr_static(cls, name)
        function = member.fget if isinstance(member, property) else getattr(cls, name)
        if not callable(function):
            continue
        for annotation in typing.get_type_hints(function, localns=PUBLIC_NAMES).values():
            walk(annotation, f"{cls.__name__}.{name}")
    return found


# The type of a "not passed" default (``UNSET``): callers never name it, so it stays private.
PRIVATE_SENTINELS = {"Unset"}


@pytest.mark.parametrize("cls", STORE_CLASSES + CLIENT_CLASSES, ids=lambda c: c.__name__)
def test_every_type_a_public_method_takes_or_returns_is_exported(cls: type) -> None:
    missing = {
        f"{tp.__module__}.{tp.__name__} ({where})"
        for tp, where in _signature_types(cls).items()
        if tp.__name__ not in PRIVATE_SENTINELS
        and (tp.__name__ not in mnemostore.__all__ or getattr(mnemostore, tp.__name__) is not tp)
    }
    assert sorted(missing) == []


def test_the_public_face_is_classes_only() -> None:
    """``mnemostore`` exports classes (and ``__version__``): no helpers, sentinels or constants of the internals."""
    not_classes = [name for name in mnemostore.__all__ if not inspect.isclass(getattr(mnemostore, name))]
    assert not_classes == ["__version__"]
    assert "UNSET" not in mnemostore.__all__ and "list_cursor" not in mnemostore.__all__


@pytest.mark.parametrize("cls", STORE_CLASSES + CLIENT_CLASSES[:4], ids=lambda c: c.__name__)
def test_every_listing_returns_a_page(cls: type) -> None:
    """A method that takes a ``cursor`` returns a page that carries the next one."""
    listings = {}
    for name in sorted(_public_methods(cls)):
        function = getattr(cls, name)
        if callable(function) and "cursor" in inspect.signature(function).parameters:
            listings[name] = typing.get_origin(typing.get_type_hints(function)["return"])
    assert len(listings) >= (
        10 if cls.__name__.endswith(("TenantStore", "AsyncClient")) or cls.__name__ == "Client" else 1
    )
    assert {name: origin for name, origin in listings.items() if origin is not mnemostore.Page} == {}


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


@pytest.mark.parametrize("cls", STORE_CLASSES + CLIENT_CLASSES, ids=lambda c: c.__name__)
def test_every_public_method_says_what_it_guarantees(cls: type) -> None:
    undocumented = []
    for name in sorted(_public_methods(cls)):
        member = inspect.getattr_static(cls, name)
        function = member.fget if isinstance(member, property) else getattr(cls, name)
        if callable(function) and not (function.__doc__ or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_sync_docstrings_show_sync_code() -> None:
    """The generated twins' docstrings are written for sync callers: no ``await``, no async context managers."""
    module_doc = sys.modules[mnemostore.MnemoStore.__module__].__doc__ or ""
    assert "with MnemoStore(" in module_doc  # the example survived, rewritten
    texts = {"store module": module_doc}
    for cls in (mnemostore.MnemoStore, mnemostore.TenantStore):
        texts[cls.__name__] = cls.__doc__ or ""
        for name in _public_methods(cls):
            texts[f"{cls.__name__}.{name}"] = getattr(getattr(cls, name), "__doc__", None) or ""
    asynchronous = {
        where: text
        for where, text in texts.items()
        if "await " in text or "async with" in text or "async context" in text or "AsyncMnemoStore" in text
    }
    assert asynchronous == {}
