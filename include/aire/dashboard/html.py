"""HTML as strings, escaped by default.

``Html`` marks markup this package built itself; every other value that reaches a page
(a column name, an incident title, a run id) goes through ``html.escape`` exactly once,
in ``esc``. Helpers take values, not markup, unless their parameter says ``Html``.
"""

from __future__ import annotations

import html as _html
import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote


class Html(str):
    """Markup that is already safe to put in a page (built here from escaped parts)."""

    __slots__ = ()


def esc(value: Any) -> Html:
    """``value`` as page text: Html passes through, anything else is escaped (quotes too)."""
    if isinstance(value, Html):
        return value
    return Html(_html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    return Html(esc(sep).join(esc(p) for p in parts))


def tag(name: str, content: Any = "", /, **attrs: Any) -> Html:
    """``<name attr="...">content</name>``; attribute names are ours, values are escaped.

    A trailing underscore is dropped (``class_``), other underscores become dashes
    (``data_incident``); an attribute that is None or False is left out.
    """
    rendered = "".join(_attr(key, value) for key, value in attrs.items() if value is not None and value is not False)
    return Html(f"<{name}{rendered}>{esc(content)}</{name}>")


def void(name: str, /, **attrs: Any) -> Html:
    """An element with no content and no end tag (``<input>``), attributes as for ``tag``."""
    rendered = "".join(_attr(key, value) for key, value in attrs.items() if value is not None and value is not False)
    return Html(f"<{name}{rendered}>")


def _attr(key: str, value: Any) -> str:
    name = key.rstrip("_").replace("_", "-")
    return f" {name}" if value is True else f' {name}="{esc(value)}"'


def link(href: str, text: Any, **attrs: Any) -> Html:
    return tag("a", text, href=href, **attrs)


def path(*segments: Any) -> str:
    """URL path segments, each percent-encoded (a run id holds ':' and '+')."""
    return "/".join(quote(str(s), safe="") for s in segments)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, class_: str = "grid",
          row_classes: Sequence[str | None] | None = None, empty: str = "nothing yet") -> Html:
    head = join(tag("th", h) for h in headers)
    body = []
    for index, row in enumerate(rows):
        css = row_classes[index] if row_classes is not None and index < len(row_classes) else None
        body.append(tag("tr", join(tag("td", cell) for cell in row), class_=css))
    if not body:
        body.append(tag("tr", tag("td", empty, colspan=str(len(headers)), class_="muted")))
    return tag("table", Html(tag("thead", tag("tr", head)) + tag("tbody", join(body))), class_=class_)


def badge(text: Any, kind: str) -> Html:
    """A coloured word: kind is ok | bad | warn | muted."""
    return tag("span", text, class_=f"badge {kind}")


def verdict(passed: bool | None) -> Html:
    if passed is None:
        return badge("unknown", "muted")
    return badge("pass", "ok") if passed else badge("fail", "bad")


def number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.{digits}g}"  # a p-value: keep its magnitude
        return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def short(digest: Any, size: int = 12) -> str:
    return "-" if not digest else str(digest)[:size]


def action_button(label: str, url: str, body: dict[str, Any], *, ask: str | None = None,
                  placeholder: str | None = None) -> Html:
    """A button that POSTs ``body`` as JSON to ``url`` (static/aire.js does the fetch).

    ``ask`` names a body field typed into a text box beside the button (a resolve note, a
    rollback reason). A box, not ``window.prompt``: the Airflow UI frames these pages in a
    sandbox without ``allow-modals``, where prompt and confirm return at once, unanswered.
    """
    field = void("input", type="text", name=ask, placeholder=placeholder or ask, aria_label=ask) if ask else ""
    button = tag("button", label, type="button", class_="action", data_url=url, data_body=json.dumps(body),
                 data_ask=ask)
    return tag("span", Html(esc(field) + button), class_="action-form")


def page(title: str, body: Html, *, base: str, current: str) -> Html:
    """The whole document; scripts and styles come from the app's own static files."""
    nav = join(link(f"{base}/{href}", label, class_="current" if href == current else None)
               for href, label in (("", "Overview"), ("versions", "Versions & ledger"),
                                   ("incidents", "Incidents"), ("trends", "Drift & quality")))
    return Html(
        "<!doctype html>"
        + tag("html", Html(
            tag("head", Html(
                '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
                + tag("title", f"AIRE · {title}")
                + Html(f'<link rel="stylesheet" href="{esc(base)}/static/aire.css">')
                + Html(f'<script src="{esc(base)}/static/aire.js" defer></script>')))
            + tag("body", Html(tag("nav", nav) + tag("main", Html(
                tag("h1", title) + tag("p", "", id="aire-status", class_="status", role="status") + body))))),
            lang="en"))
