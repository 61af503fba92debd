"""Postmortems are Markdown; the incident page shows them rendered, never their raw HTML.

markdown-it-py (already installed with Airflow, through rich) with HTML disabled: a
``<script>`` in a postmortem or an incident title comes out as text, and its link
validator refuses ``javascript:`` and ``data:`` URLs.
"""

from __future__ import annotations

from aire.dashboard.html import Html


def render_markdown(text: str) -> Html:
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    return Html(renderer.render(text))
