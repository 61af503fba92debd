"""The read routes: one per page, each gathering with ``aire.dashboard`` and rendering it.

Routes are plain ``def``: FastAPI runs them in its thread pool, so the blocking reads
(MLflow, the incident store, run folders) never stall the api-server's event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from aire.dashboard import pages
from aire.dashboard.assets import SCRIPT, STYLE
from aire.dashboard.incidents import postmortem_file
from aire.dashboard.models import VERSION_METRICS, LedgerView, ledger_view, version_rows
from aire.dashboard.overview import overview
from aire.dashboard.runs import RunView, find_run, recent_runs, report_path, run_view
from aire.dashboard.sources import Sources, load_sources
from aire.dashboard.trends import trend
from aire.errors import AireError
from aire.incidents.store import IncidentStore
from aire.incidents.types import Status, UnknownIncidentError
from aire_airflow.ui.reports import PAGE_POLICY, SECURITY_HEADERS, report_response

router = APIRouter()


def base(request: Request) -> str:
    """Where the app is mounted (``/aire``, below any ``[api] base_url`` path)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def html(content: str) -> HTMLResponse:
    return HTMLResponse(content, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store",
                                          **SECURITY_HEADERS})


@router.get("/static/aire.js", include_in_schema=False)
def script() -> Response:
    return Response(SCRIPT, media_type="text/javascript; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/static/aire.css", include_in_schema=False)
def style() -> Response:
    return Response(STYLE, media_type="text/css; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/")
def overview_page(request: Request) -> HTMLResponse:
    sources = load_sources()
    return html(pages.overview_page(base(request), overview(sources), sources.problems))


def _run(sources: Sources, run_id: str) -> RunView | None:
    found = find_run(sources.home, sorted(sources.pipelines), run_id)
    return run_view(found) if found else None


@router.get("/dags/{dag_id}/runs/{run_id}")
def run_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
    return html(pages.run_page(base(request), dag_id, run_id, _run(load_sources(), run_id)))


@router.get("/dags/{dag_id}/runs/{run_id}/report")
def report_frame(request: Request, dag_id: str, run_id: str, name: str) -> HTMLResponse:
    view = _run(load_sources(), run_id)
    if view is None or name not in view.reports:
        raise HTTPException(404, f"run {run_id} has no report {name!r}")
    return html(pages.report_frame_page(base(request), dag_id, view.summary.run_key, name))


@router.get("/dags/{dag_id}/runs/{run_id}/reports/{name:path}")
def report_file(dag_id: str, run_id: str, name: str) -> FileResponse:
    view = _run(load_sources(), run_id)
    file = report_path(view.summary.folder, name) if view else None
    if file is None:
        raise HTTPException(404, f"run {run_id} has no report {name!r}")
    return report_response(file)


@router.get("/versions")
def versions_page(request: Request, pipeline: str | None = None, metric: str = VERSION_METRICS[0]) -> HTMLResponse:
    from aire.registry.mlflow_registry import Registry

    sources = load_sources()
    names = sorted(sources.pipelines)
    chosen = pipeline or (names[0] if names else None)
    if chosen is None or chosen not in sources.pipelines:
        raise HTTPException(404, f"no pipeline {pipeline!r}; known: {names}")
    if metric not in VERSION_METRICS:
        raise HTTPException(404, f"no metric {metric!r}; known: {list(VERSION_METRICS)}")
    problems: list[str] = []
    rows = []
    try:
        rows = version_rows(sources.home, Registry(sources.home.mlflow_tracking_uri), chosen)
    except Exception as exc:  # noqa: BLE001 - MLflow down: the ledger still shows
        problems.append(f"registry: {exc}")
    ledger: LedgerView = ledger_view(sources.home, chosen)
    return html(pages.versions_page(base(request), chosen, names, rows, ledger, metric, problems))


@router.get("/incidents")
def incidents_page(request: Request, status: Status | None = None) -> HTMLResponse:
    with IncidentStore(load_sources().home.incidents_db_url) as store:
        found = store.list(status=status)
    return html(pages.incidents_page(base(request), found, status.value if status else None))


@router.get("/incidents/{incident_id}")
def incident_page(request: Request, incident_id: int) -> HTMLResponse:
    home = load_sources().home
    try:
        with IncidentStore(home.incidents_db_url) as store:
            incident = store.get(incident_id)
            kept = store.postmortem_text(incident_id)
    except UnknownIncidentError as exc:
        raise HTTPException(404, str(exc)) from None
    # The file in this home is what people edit; on another host (a worker wrote it), the
    # stub kept with the incident.
    file = postmortem_file(home, incident)
    text = None
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, AireError):
            text = None
    return html(pages.incident_page(base(request), incident, text if text is not None else kept))


@router.get("/trends")
def trends_page(request: Request) -> HTMLResponse:
    sources = load_sources()
    charts = [(p.name, trend(recent_runs(sources.home, p.name, None)),
               {k: float(v) for k, v in p.config.gates.model_dump().items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)})
              for p in sources.pipelines.values()]
    return html(pages.trends_page(base(request), charts))
