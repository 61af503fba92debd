"""Incidents on the pages: which DAG owns one (whose edit right acknowledges it) and its
postmortem, read only from the home's postmortem folder."""

from __future__ import annotations

from pathlib import Path

from aire.home import Home
from aire.incidents.types import Incident

# An incident with no DAG in its source (an SLO breach, one opened from the CLI) belongs to
# the pipeline's retraining DAG: editing that DAG is what may acknowledge it.
PIPELINE_DAG = "aire_retrain"
ROLLBACK_DAG = "aire_rollback"


def owning_dag(incident: Incident) -> str:
    return incident.source.dag_id or PIPELINE_DAG


def postmortem_file(home: Home, incident: Incident) -> Path | None:
    """The incident's postmortem if it is a file in ``home.postmortems_dir``; else None.

    The location is text in the incident store: it is never opened unless it resolves
    inside the folder AIRE writes postmortems to.
    """
    if not incident.postmortem or "://" in incident.postmortem:
        return None
    root = home.postmortems_dir.resolve()
    try:
        candidate = Path(incident.postmortem).resolve()
    except (OSError, RuntimeError):
        return None
    if candidate.is_relative_to(root) and candidate.suffix == ".md" and candidate.is_file():
        return candidate
    return None
