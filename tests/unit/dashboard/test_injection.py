"""Hostile values from data, configs and incidents render as text on every page.

A batch's column name and category value, a check's reason, an incident's title,
evidence and postmortem all hold ``<script>``, quotes and Markdown here; the pages are
parsed back and may contain no element, attribute or URL that the renderer did not put
there itself.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aire.dashboard import pages
from aire.dashboard.runs import find_run, run_view
from aire.home import Home
from aire.incidents.store import IncidentSource, IncidentStore, Severity
from aire.incidents.types import Incident

SCRIPT = '<script>alert("x")</script>'
COLUMN = f'age"><img src=x onerror=alert(1)>{SCRIPT}'
CATEGORY = f"'single' & \"double\" {SCRIPT}"
TITLE = f"**bold** [click](javascript:alert(1)) {SCRIPT} 'q' \"qq\""
RUN_ID = "manual__2026-12-02T14:15:14+00:00"
# The only tags and attributes the pages are built from (html.page, tag(), svg, buttons).
OUR_SCRIPTS = {"/aire/static/aire.js"}


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(document: str) -> Elements:
    parser = Elements()
    parser.feed(document)
    return parser


def assert_inert(document: str) -> str:
    """No injected element or handler survives; returns the page's text."""
    parsed = parse(document)
    for name, attrs in parsed.tags:
        assert name != "img", attrs
        if name == "script":
            assert attrs.get("src") in OUR_SCRIPTS, attrs
        assert not any(key.startswith("on") for key in attrs), (name, attrs)
        for key in ("href", "src"):
            assert not (attrs.get(key) or "").lower().startswith(("javascript:", "data:")), (name, attrs)
    return "".join(parsed.text)


@pytest.fixture()
def hostile_run(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    folder = home.run_dir("credit-risk", RUN_ID)
    (folder / "validation").mkdir(parents=True)
    (folder / "analysis").mkdir()
    (folder / "decision.json").write_text(json.dumps({
        "promote": False, "failed": [f"drift {SCRIPT}"], "run_key": RUN_ID, "pipeline": "credit-risk",
        "checks": [{"name": f"drift {SCRIPT}", "value": [COLUMN], "threshold": 0.3, "passed": False,
                    "reason": f"column {COLUMN} drifted on {CATEGORY}"}]}))
    (folder / "validation" / "validation.json").write_text(json.dumps({"success": False, "checks": [
        {"column": COLUMN, "rule": "values in set", "success": False, "detail": f"unexpected {CATEGORY}",
         "observed": {"unexpected": [CATEGORY]}}]}))
    (folder / "analysis" / "error_analysis.csv").write_text(
        f'row_id,label,loss,suspected,"{COLUMN.replace(chr(34), chr(34) * 2)}"\n'
        f'7,1,2.5,True,"{CATEGORY.replace(chr(34), chr(34) * 2)}"\n')
    return home


def test_run_page_shows_hostile_columns_and_categories_as_text(hostile_run: Home) -> None:
    found = find_run(hostile_run, ["credit-risk"], RUN_ID)
    assert found is not None
    document = pages.run_page("/aire", "aire_retrain", RUN_ID, run_view(found))
    text = assert_inert(document)
    assert COLUMN in text and CATEGORY in text and f"drift {SCRIPT}" in text
    assert "&lt;script&gt;" in document and "&quot;double&quot;" in document


@pytest.fixture()
def incident(tmp_path: Path) -> Incident:
    with IncidentStore(f"sqlite:///{tmp_path / 'incidents.db'}") as store:
        opened, _ = store.record("k1", pipeline=f"credit-risk {SCRIPT}", title=TITLE, severity=Severity.HIGH,
                                 source=IncidentSource(kind="gate_rejection", dag_id="aire_retrain", run_id=RUN_ID),
                                 evidence={COLUMN: CATEGORY})
        return store.acknowledge(opened.id, f"mallory {SCRIPT}")


def test_incident_pages_show_titles_evidence_and_timeline_as_text(incident: Incident) -> None:
    detail = pages.incident_page("/aire", incident, None)
    text = assert_inert(detail)
    assert TITLE in text and COLUMN in text and f"by mallory {SCRIPT}" in text
    listing = assert_inert(pages.incidents_page("/aire", [incident], None))
    assert TITLE in listing


def test_markdown_in_a_title_is_not_rendered(incident: Incident) -> None:
    detail = pages.incident_page("/aire", incident, None)
    assert "<strong>" not in detail and "**bold**" in assert_inert(detail)


def test_a_postmortem_renders_markdown_but_never_its_html_or_script_links(incident: Incident) -> None:
    postmortem = f"# Postmortem: {TITLE}\n\n| a | b |\n|---|---|\n| {SCRIPT} | x |\n\n<div onclick=x>raw</div>\n"
    detail = pages.incident_page("/aire", incident, postmortem)
    text = assert_inert(detail)
    parsed = parse(detail)
    assert ("h1", {}) in parsed.tags and ("table", {}) in parsed.tags  # Markdown did render
    assert SCRIPT in text and "<div onclick=x>raw</div>" in text  # raw HTML stays text


def test_the_overview_escapes_pipeline_names_and_run_keys(hostile_run: Home) -> None:
    from aire.dashboard.overview import PipelineOverview
    from aire.dashboard.runs import recent_runs

    item = PipelineOverview(name=f"p {SCRIPT}", runs=recent_runs(hostile_run, "credit-risk"),
                            problems=[f"registry: {SCRIPT}"])
    text = assert_inert(pages.overview_page("/aire", [item]))
    assert f"p {SCRIPT}" in text and f"registry: {SCRIPT}" in text


def test_chart_labels_are_escaped() -> None:
    from aire.dashboard.svg import Series, line_chart

    chart = line_chart(SCRIPT, [COLUMN, "b"], [Series(CATEGORY, [0.1, 0.2])])
    text = assert_inert(chart)
    assert SCRIPT in text and COLUMN in text and CATEGORY in text
