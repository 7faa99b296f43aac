"""Validation helpers for profile files: every error names the key and the reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the key and the reason."""


def number(value: Any, key: str, minimum: float = 0.0, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{key}: expected a number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
        raise ProfileError(f"{key}: {value!r} is out of range (must be {bound})")
    return float(value)


def table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{key}: expected a table, got {type(value).__name__}")
    return value


def check_keys(given: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ProfileError(
            f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def tuned(defaults: Mapping[str, Any], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``defaults`` with the keys of ``given`` replaced, each checked against its default's type."""
    check_keys(given, set(defaults), where)
    params = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ProfileError(f"{where}.{key}: expected true or false, got {value!r}")
        elif isinstance(default, int | float):
            number(value, f"{where}.{key}", minimum=-1e12)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ProfileError(f"{where}.{key}: expected a string, got {value!r}")
        elif isinstance(default, list) and not isinstance(value, list):
            raise ProfileError(f"{where}.{key}: expected a list, got {value!r}")
        params[key] = value
    return params


def merged(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` laid over it, tables merged key by key."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out
