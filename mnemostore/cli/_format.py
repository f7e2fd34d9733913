"""Reading and writing the numbers people type and read: quota limits and byte sizes."""

from __future__ import annotations

import re

import typer

__all__ = ["UNLIMITED_WORDS", "human_bytes", "human_limit", "parse_limit"]

UNLIMITED_WORDS = frozenset({"unlimited", "none", "off"})

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_NUMBER = re.compile(r"^\s*(\d[\d_]*)\s*([a-z]*)\s*$")


def parse_limit(value: str | None, option: str, *, sizes: bool = False) -> int | None:
    """``"1000"`` → 1000, ``"unlimited"`` → None; with ``sizes``, ``"500MB"`` and ``"2GiB"`` too.

    Raises:
        typer.BadParameter: anything else (click reports it as a usage error).
    """
    if value is None or value.strip().lower() in UNLIMITED_WORDS:
        return None
    match = _NUMBER.match(value.lower())
    unit = match.group(2) if match else ""
    if match is None or unit not in _UNITS or (unit and not sizes):
        expected = "a number of bytes such as 500000000 or 500MB" if sizes else "a whole number"
        raise typer.BadParameter(f"{value!r} is not {expected}, nor 'unlimited'", param_hint=option)
    return int(match.group(1).replace("_", "")) * _UNITS[unit]


def human_bytes(size: int) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            return f"{int(amount)} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def human_limit(limit: int | None, *, size: bool = False) -> str:
    if limit is None:
        return "unlimited"
    return human_bytes(limit) if size else f"{limit:,}"
