"""What the overview page holds for each pipeline, gathered from the registry, the ledger,
the run folders, the incident store and the SLO history.

Each part is gathered on its own: an unreachable MLflow server leaves the incidents and the
runs on the page, with the reason where the registry's part would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aire.dashboard.models import RoleView, ledger_view, roles
from aire.dashboard.runs import RunSummary, recent_runs
from aire.dashboard.sources import Pipeline, Sources
from aire.errors import AireError
from aire.incidents.types import Incident, Status
from aire.reliability.slo import SloReport

RECENT_RUNS = 5


@dataclass(frozen=True)
class PipelineOverview:
    name: str
    roles: list[RoleView] = field(default_factory=list)
    runs: list[RunSummary] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)  # open or acknowledged
    slo: SloReport | None = None
    problems: list[str] = field(default_factory=list)  # a part that could not be read, and why


def active_incidents(sources: Sources, pipeline: str | None = None) -> list[Incident]:
    from aire.incidents.store import IncidentStore

    with IncidentStore(sources.home.incidents_db_url) as store:
        return [i for i in store.list(pipeline=pipeline) if i.status is not Status.RESOLVED]


def pipeline_overview(sources: Sources, pipeline: Pipeline) -> PipelineOverview:
    from aire.registry.mlflow_registry import Registry
    from aire.reliability.history import slo_status

    home, problems = sources.home, []
    found_roles: list[RoleView] = []
    try:
        ledger = ledger_view(home, pipeline.name)
        found_roles = roles(home, Registry(home.mlflow_tracking_uri), pipeline.name, ledger.entries)
    except Exception as exc:  # noqa: BLE001 - MLflow, SQL and network errors alike: this part is unavailable
        problems.append(f"registry: {exc}")
    incidents: list[Incident] = []
    try:
        incidents = active_incidents(sources, pipeline.name)
    except AireError as exc:
        problems.append(f"incidents: {exc}")
    slo: SloReport | None = None
    try:
        slo = slo_status(pipeline.config, home)
    except Exception as exc:  # noqa: BLE001 - as above: the rest of the page still shows
        problems.append(f"SLO: {exc}")
    return PipelineOverview(pipeline.name, found_roles, recent_runs(home, pipeline.name, RECENT_RUNS), incidents,
                            slo, problems)


def overview(sources: Sources) -> list[PipelineOverview]:
    return [pipeline_overview(sources, p) for p in sources.pipelines.values()]
