"""The AIRE pages in a real browser, as a user opens them after ``make demo``.

Two pipeline runs on an embedded home (the clean batch promotes v1; the corrupted batch
is rejected, opens an incident and leaves Evidently's drift report), then ``airflow
api-server`` on 127.0.0.1 over the home's SQLite metadata DB, with one simple-auth user
of role ``user``. Headless Chromium from Debian's packages (``.ci/run`` installs it),
driven by Playwright: log in on Airflow's own page, open the AIRE nav entry, the run's
AIRE tab and its drift report, and acknowledge the incident. A screenshot of each step is
saved under the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, FrameLocator, Page, expect, sync_playwright

from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore, Status
from aire.pipeline.home_setup import airflow_env, prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from tests.support.homes import isolated_home
from tests.support.servers import BIN, Process, free_port, http_ok, new_token, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright downloads no browser here
CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
CLEAN, REJECTED = "manual__2026-12-02T09:00:00+00:00", "manual__2026-12-02T10:00:00+00:00"
USER, PASSWORD = "op", "op-pw-browser-5Tz"


@dataclass
class Site:
    base: str
    home: Home
    shots: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with isolated_home(tmp_path_factory.mktemp("browser-home")) as root:
        home = Home.from_env()
        prepare_home(home)  # migrates the home's SQLite metadata DB, as `aire init` does
        # aire_rollback in the metadata DB, so the rollback button can trigger it (no scheduler runs it).
        done = subprocess.run([str(BIN / "airflow"), "dags", "reserialize"], env=airflow_env(home),
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        for run_id, batch in ((CLEAN, "batch_clean.csv"), (REJECTED, "batch_corrupt.csv")):
            run_all(RunSpec(str(CONFIG), str(home.data_dir / batch), run_id))
        passwords = root / "passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD}))
        port = free_port()
        env = {**airflow_env(home), "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
               "AIRFLOW__API__WORKERS": "1", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:user",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
               "AIRFLOW__API_AUTH__JWT_SECRET": new_token() * 4}
        api = Process("api-server", [str(BIN / "airflow"), "api-server"], env, root / "logs", new_token())
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: http_ok(f"{base}/api/v2/version"), 180, "the api-server", [api], 1.0)
            yield Site(base, home, tmp_path_factory.mktemp("screenshots"))
        finally:
            api.stop()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Browser]:
    # Chromium's own sandbox cannot start as root (containers, CI): the pages' sandbox
    # attributes and CSP under test are enforced by Blink either way.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(site: Site, browser: Browser) -> Iterator[Page]:
    """A logged-in tab: Airflow's own login form, then the Airflow home page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.goto(f"{site.base}/")
    tab.get_by_label("Username").fill(USER)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(f"{site.base}/")
    yield tab
    context.close()


def aire_frame(tab: Page, text: str) -> FrameLocator:
    """The frame the Airflow UI shows an AIRE page in, once its main part shows ``text``."""
    frame = tab.frame_locator("iframe").first
    # The first page a fresh api-server serves imports MLflow and opens its store: on a busy
    # two-core machine that took seconds, so the wait is long (it ends when the text shows).
    expect(frame.locator("main")).to_contain_text(text, timeout=180_000)
    return frame


def test_the_nav_entry_opens_the_overview(site: Site, page: Page) -> None:
    page.get_by_role("link", name="AIRE").first.click()
    frame = aire_frame(page, "credit-risk")
    models = frame.locator("section[data-pipeline='credit-risk'] table").first
    expect(models).to_contain_text("champion")
    assert "v1" in models.inner_text() and "pass" in models.inner_text()  # verified now
    expect(frame.locator("main")).to_contain_text(REJECTED)
    page.screenshot(path=site.shots / "overview.png", full_page=True)


def test_the_run_tab_shows_the_gate_decision_and_opens_the_drift_report(site: Site, page: Page) -> None:
    page.goto(f"{site.base}/dags/aire_retrain/runs/{quote(REJECTED, safe='')}")
    page.get_by_role("link", name="AIRE run").click()
    frame = aire_frame(page, "Gate decision")
    failed = frame.locator("tr.failed td:first-child").all_inner_texts()
    assert "drift_share" in failed
    page.screenshot(path=site.shots / "run.png", full_page=True)

    frame.get_by_role("link", name="evaluation/drift.html").click()
    expect(frame.locator("iframe.report")).to_have_attribute("sandbox", "allow-scripts")
    # Evidently's scripts run (they draw the report) but in an opaque origin: no access to
    # the Airflow session, so script in a batch value cannot act as the user.
    expect(frame.frame_locator("iframe.report").locator("body")).not_to_be_empty(timeout=120_000)
    report = wait_until(lambda: next((f for f in page.frames if f.url.endswith("/reports/evaluation/drift.html")),
                                     None), 60, "the drift report's frame")
    report.wait_for_function("() => document.body.innerText.length > 100", timeout=120_000)
    assert report.evaluate("() => window.origin") == "null"
    assert report.evaluate("() => { try { return document.cookie; } catch (e) { return e.name; } }") == "SecurityError"
    page.screenshot(path=site.shots / "drift-report.png", full_page=True)


def test_acknowledging_an_incident_records_the_user(site: Site, page: Page) -> None:
    with IncidentStore(site.home.incidents_db_url) as store:
        [incident] = [i for i in store.list(status=Status.OPEN) if i.source.run_id == REJECTED]
    page.goto(f"{site.base}/")
    page.get_by_role("link", name="AIRE").first.click()
    overview = aire_frame(page, "credit-risk")
    overview.get_by_role("link", name="Incidents").click()
    listing = aire_frame(page, "gate_rejection")
    listing.get_by_role("link", name=f"#{incident.id}").click()
    detail = aire_frame(page, "Timeline")
    detail.get_by_role("button", name="Acknowledge").click()
    # The page reloads with the new state once the POST is through.
    expect(detail.locator("main")).to_contain_text(f"by {USER}", timeout=60_000)
    page.screenshot(path=site.shots / "incident.png", full_page=True)
    with IncidentStore(site.home.incidents_db_url) as store:
        acknowledged = store.get(incident.id)
    assert acknowledged.status is Status.ACKNOWLEDGED
    assert (acknowledged.timeline[-1].event, acknowledged.timeline[-1].detail) == ("acknowledged", f"by {USER}")


def test_the_rollback_button_triggers_aire_rollback_with_the_typed_reason(site: Site, page: Page) -> None:
    page.goto(f"{site.base}/")
    page.get_by_role("link", name="AIRE").first.click()
    aire_frame(page, "credit-risk").get_by_role("link", name="Versions & ledger").click()
    versions = aire_frame(page, "hash chain verified")
    form = versions.locator(".action-form").filter(has_text="Roll back to previous")
    form.get_by_label("reason").fill("browser drill")
    form.get_by_role("button", name="Roll back to previous").click()
    token = httpx.post(f"{site.base}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def triggered() -> list[dict[str, object]]:
        runs = httpx.get(f"{site.base}/api/v2/dags/aire_rollback/dagRuns", headers=headers, timeout=30)
        return list(runs.json().get("dag_runs") or [])

    try:
        [run] = wait_until(triggered, 60, "the aire_rollback run")
    except TimeoutError:
        raise AssertionError(f"no aire_rollback run; the page said: "
                             f"{versions.locator('#aire-status').inner_text()!r}") from None
    assert run["triggering_user_name"] == USER
    assert run["conf"] == {"config": str(CONFIG), "target": "previous",
                           "reason": f"browser drill (requested by {USER} in the AIRE UI)"}


def test_the_versions_and_trend_pages_draw_their_charts(site: Site, page: Page) -> None:
    page.goto(f"{site.base}/")
    page.get_by_role("link", name="AIRE").first.click()
    for link, text, name in (("Versions & ledger", "hash chain verified", "versions.png"),
                             ("Drift & quality", "drift share", "trends.png")):
        frame = aire_frame(page, "credit-risk")
        frame.get_by_role("link", name=link).click()
        shown = aire_frame(page, text)
        expect(shown.locator("svg.chart").first).to_be_visible()
        page.screenshot(path=site.shots / name, full_page=True)
    if os.environ.get("AIRE_UI_SCREENSHOTS"):  # where docs/ui.md's screenshots are refreshed from
        shutil.copytree(site.shots, os.environ["AIRE_UI_SCREENSHOTS"], dirs_exist_ok=True)
