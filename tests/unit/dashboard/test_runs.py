"""Run folders: finding a run, what its page reads, and which files may be served."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aire.dashboard.runs import find_run, recent_runs, report_files, report_path, run_view
from aire.home import Home

RUN_ID = "manual__2026-12-02T14:15:14.621838+00:00"


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    folder = home.run_dir("credit-risk", RUN_ID)
    for sub in ("evaluation", "analysis", "model", "registry/credit-risk-v1"):
        (folder / sub).mkdir(parents=True)
    (folder / "evaluation" / "drift.html").write_text("<html>drift</html>")
    (folder / "analysis" / "report.html").write_text("<html>analysis</html>")
    (folder / "model" / "card.html").write_text("not a report")
    (folder / "registry" / "credit-risk-v1" / "x.html").write_text("the champion's files")
    (folder / "model.sig").write_text("signature")
    (folder / "decision.json").write_text(json.dumps({"promote": True, "failed": [], "run_key": RUN_ID,
                                                      "checks": []}))
    (tmp_path / "home" / "ledger.jsonl").write_text("secret-ish")
    (tmp_path / "outside.html").write_text("outside")
    return home


def test_an_airflow_run_id_finds_its_folder_and_decision(home: Home) -> None:
    found = find_run(home, ["other", "credit-risk"], RUN_ID)
    assert found is not None and found.pipeline == "credit-risk" and found.run_key == RUN_ID
    assert found.outcome == "promote"
    assert find_run(home, ["credit-risk"], "manual__unknown") is None
    assert find_run(home, ["credit-risk"], "..") is None


def test_the_run_page_lists_only_the_runs_own_reports(home: Home) -> None:
    found = find_run(home, ["credit-risk"], RUN_ID)
    assert found is not None
    assert run_view(found).reports == ["analysis/report.html", "evaluation/drift.html"]
    assert report_files(found.folder) == ["analysis/report.html", "evaluation/drift.html"]


@pytest.mark.parametrize("name", [
    "../../../ledger.jsonl", "../../../../outside.html", "/etc/passwd", "evaluation/../../x.html", "",
    "model/card.html", "registry/credit-risk-v1/x.html", "model.sig", "evaluation", "nothing.html", "a\x00.html",
])
def test_a_report_name_that_leaves_the_folder_or_is_no_report_is_refused(home: Home, name: str) -> None:
    assert report_path(home.run_dir("credit-risk", RUN_ID), name) is None


def test_a_link_out_of_the_folder_is_refused(home: Home, tmp_path: Path) -> None:
    folder = home.run_dir("credit-risk", RUN_ID)
    os.symlink(tmp_path / "outside.html", folder / "evaluation" / "link.html")
    assert report_path(folder, "evaluation/link.html") is None


def test_a_report_inside_the_folder_is_served(home: Home) -> None:
    folder = home.run_dir("credit-risk", RUN_ID)
    assert report_path(folder, "evaluation/drift.html") == (folder / "evaluation" / "drift.html").resolve()
    assert report_path(folder, "evaluation/./drift.html") is not None


def test_a_run_without_a_decision_is_listed_as_such(home: Home) -> None:
    (home.reports_dir / "credit-risk" / "manual__stopped").mkdir()
    outcomes = {r.run_key: r.outcome for r in recent_runs(home, "credit-risk")}
    assert outcomes == {RUN_ID: "promote", "manual__stopped": "no decision"}
    assert recent_runs(home, "no-such-pipeline") == []


@pytest.mark.parametrize(("base", "ui"), [("/aire", ""), ("/airflow/aire", "/airflow")])  # [api] base_url
def test_the_run_page_links_the_gate_s_task_log_in_the_airflow_ui(home: Home, base: str, ui: str) -> None:
    from aire.dashboard.pages import run_page

    found = find_run(home, ["credit-risk"], RUN_ID)
    assert found is not None
    page = run_page(base, "aire_retrain", RUN_ID, run_view(found))
    quoted = RUN_ID.replace(":", "%3A").replace("+", "%2B")
    assert f'<a href="{ui}/dags/aire_retrain/runs/{quoted}/tasks/gate">the gate&#x27;s task log in Airflow</a>' \
        in page
    (found.folder / "decision.json").unlink()  # no gate ran: nothing to link
    assert "/tasks/gate" not in run_page(base, "aire_retrain", RUN_ID, run_view(found))
