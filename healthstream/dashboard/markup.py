"""HTML that escapes by default: every value put into a template is escaped unless it is
``Markup`` (HTML this package built), so an account id, an attribute or a piece of
evidence from telemetry is always shown as text."""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote, urlencode


class Markup(str):
    """A string of HTML that is safe to insert as it is."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """``value`` as HTML text (quotes too, so it is safe in an attribute)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def render(template: str, **values: object) -> Markup:
    """``template`` (a format string written in this package, never from data) with each
    value escaped unless it is ``Markup``."""
    return Markup(template.format(**{k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    return Markup(sep.join(esc(p) for p in parts))


def account_href(account_id: str) -> str:
    """The path of an account's page; every character of the id but letters and digits is
    percent-encoded, a ``/`` or ``?`` too."""
    return "/accounts/" + quote(account_id, safe="")


def href(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path
