"""One pipeline run as its folder holds it: the gate's decision, the validation failures,
the error analysis' top suspects, the approval record and the HTML reports.

A run folder is ``<home>/reports/<pipeline>/<run>`` (``aire.home.RunLayout``). Report
files are served only from inside it: ``report_path`` resolves the requested name (links
and ``..`` included) and refuses anything that lands outside the folder or is not a report.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aire import constants as names
from aire.home import Home, RunLayout

# What a browser may be handed from a run folder: reports, and the JSON/CSV behind them.
# Never the model, the batches or the signature (they are not reports, and can be large).
REPORT_SUFFIXES = frozenset({".html", ".json", ".csv"})
SUSPECTS_FILE = "error_analysis.csv"  # in ANALYSIS_DIR, sorted by loss, worst first
TOP_SUSPECTS = 10


@dataclass(frozen=True)
class RunSummary:
    """A line of the overview: which run, when, what the gate said."""

    pipeline: str
    run_key: str
    folder: Path
    modified: datetime
    outcome: str  # promote | reject | no decision
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunView:
    """Everything the run page shows."""

    summary: RunSummary
    decision: dict[str, Any] | None
    validation_failures: list[dict[str, Any]]
    validation_success: bool | None
    suspects: list[dict[str, str]]
    noise_rate: float | None
    approval: dict[str, Any] | None
    reports: list[str]  # paths relative to the run folder, posix


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``; None when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def summarize(pipeline: str, folder: Path) -> RunSummary:
    decision = read_json(RunLayout(folder).decision)
    outcome = "no decision" if decision is None else ("promote" if decision.get("promote") else "reject")
    failed = [str(name) for name in (decision or {}).get("failed") or []]
    # A run stopped before the gate has no decision: its folder name (the run key made
    # portable) is all that names it.
    run_key = str((decision or {}).get("run_key") or folder.name)
    modified = datetime.fromtimestamp(folder.stat().st_mtime, UTC)
    return RunSummary(pipeline, run_key, folder, modified, outcome, failed)


def recent_runs(home: Home, pipeline: str, limit: int | None = 10) -> list[RunSummary]:
    """The pipeline's run folders, newest first."""
    root = home.reports_dir / pipeline
    if not root.is_dir():
        return []
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    return [summarize(pipeline, folder) for folder in folders[:limit]]


def find_run(home: Home, pipelines: list[str], run_id: str) -> RunSummary | None:
    """The folder of Airflow run ``run_id``, in whichever pipeline ran it."""
    for pipeline in pipelines:
        folder = home.run_dir(pipeline, run_id)
        # Resolved: a run id of ".." is portable as it stands, and would name the pipeline's parent.
        if folder.is_dir() and folder.resolve().parent == (home.reports_dir / pipeline).resolve():
            return summarize(pipeline, folder)
    return None


def run_view(summary: RunSummary) -> RunView:
    layout = RunLayout(summary.folder)
    validation = read_json(layout.validation) or {}
    checks = validation.get("checks") or []
    failures = [c for c in checks if isinstance(c, dict) and not c.get("success", True)]
    analysis = read_json(layout.analysis_summary) or {}
    noise = analysis.get("estimated_noise_rate")
    return RunView(
        summary=summary, decision=read_json(layout.decision), validation_failures=failures,
        validation_success=validation.get("success") if "success" in validation else None,
        suspects=top_suspects(layout.analysis_dir / SUSPECTS_FILE),
        noise_rate=noise if isinstance(noise, float) else None,
        approval=read_json(layout.approval), reports=report_files(summary.folder))


def top_suspects(path: Path, limit: int = TOP_SUSPECTS) -> list[dict[str, str]]:
    """The first suspected rows of the loss-sorted error analysis (worst first)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("suspected", "True") == "True"]
    except OSError:
        return []
    return rows[:limit]


def report_files(folder: Path) -> list[str]:
    """The run's HTML reports, relative to its folder (each one ``report_path`` serves)."""
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*.html"))
    return sorted(name for name in names if report_path(folder, name) is not None)


def report_path(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it is a report file inside ``folder`` once every link is resolved; else None."""
    if not name or "\x00" in name:
        return None
    root = folder.resolve()
    try:
        candidate = (root / name).resolve()
    except (OSError, RuntimeError):  # a link loop
        return None
    if not candidate.is_relative_to(root) or candidate == root:
        return None
    if candidate.suffix.lower() not in REPORT_SUFFIXES or not candidate.is_file():
        return None
    if candidate.relative_to(root).parts[0] in (names.MODEL_DIR, names.REGISTRY_DIR):
        return None  # model directories are not reports, whatever their files are called
    return candidate
