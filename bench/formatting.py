"""What both report writers share: reading a figure out of a result, and writing it."""

from __future__ import annotations

from typing import Any


def number(value: Any, digits: int = 1) -> str:
    """A figure as the tables show it: thousands separated, ``–`` when not measured."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def lookup(result: dict[str, Any] | None, path: str) -> Any:
    """The value at dotted ``path`` of a result (``"fanout.p99"``), or ``None``."""
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
