"""The pages as HTML strings. Each takes what ``overview``, ``runs``, ``models``, ``trends``
and the incident store gathered, and ``base``, the URL path the app is mounted at.

Everything shown goes through ``esc`` (via ``tag``/``table``); the only markup not built
here is a postmortem rendered by ``markdown.render_markdown`` with raw HTML disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aire.dashboard.html import (
    Html,
    action_button,
    badge,
    esc,
    join,
    link,
    number,
    page,
    path,
    short,
    table,
    tag,
    verdict,
)
from aire.dashboard.incidents import ROLLBACK_DAG, owning_dag
from aire.dashboard.markdown import render_markdown
from aire.dashboard.models import VERSION_METRICS, LedgerView, RoleView, VersionRow
from aire.dashboard.overview import PipelineOverview
from aire.dashboard.runs import RunSummary, RunView
from aire.dashboard.svg import Series, line_chart
from aire.dashboard.trends import TrendPoint
from aire.incidents.types import Incident, Status
from aire.reliability.slo import SloReport

TIMED_SLIS = ("freshness", "promotion_latency")
STATUS_KIND = {"ok": "ok", "breached": "bad", "no_data": "muted", "promote": "ok", "reject": "bad",
               "open": "bad", "acknowledged": "warn", "resolved": "ok"}


def run_url(base: str, dag_id: str, run_key: str) -> str:
    return f"{base}/dags/{path(dag_id)}/runs/{path(run_key)}"


def task_log_url(base: str, dag_id: str, run_id: str, task_id: str) -> str:
    """The Airflow UI's page of one task of a run, which opens on the task's log.

    ``base`` is where the AIRE app is mounted (``/aire``, below any ``[api] base_url`` path);
    the Airflow UI is served from the level above it.
    """
    return f"{base.rsplit('/', 1)[0]}/dags/{path(dag_id)}/runs/{path(run_id)}/tasks/{path(task_id)}"


def _outcome(outcome: str) -> Html:
    return badge(outcome, STATUS_KIND.get(outcome, "muted"))


def _problems(problems: Sequence[str]) -> Html:
    return join(tag("p", problem, class_="problem") for problem in problems)


# --- overview ------------------------------------------------------------------------------
def overview_page(base: str, pipelines: Sequence[PipelineOverview], problems: Sequence[str] = ()) -> Html:
    sections = [_problems(problems)]
    if not pipelines:
        sections.append(tag("p", "No pipeline configs found (set AIRE_UI_CONFIGS).", class_="muted"))
    for item in pipelines:
        sections.append(tag("section", Html(
            tag("h2", item.name) + _problems(item.problems)
            + tag("h3", "Models") + _roles(item.roles)
            + tag("h3", "Last runs") + _runs(base, item.runs)
            + tag("h3", "Open incidents") + _incident_table(base, item.incidents)
            + tag("h3", "SLOs") + _slo(item.slo)), class_="pipeline", data_pipeline=item.name))
    return page("Overview", join(sections), base=base, current="")


def _roles(found: Sequence[RoleView]) -> Html:
    rows = [[badge(r.role, "ok" if r.role == "champion" else "muted"), f"v{r.version.version}",
             tag("code", short(r.version.signed_digest), title=r.version.signed_digest),
             _verified(r.verified, r.problem),
             r.moved_at or "-", r.moved_by or "-"] for r in found]
    return table(["role", "version", "digest", "verified now", "made champion at", "by"], rows,
                 empty="no registered model yet")


def _runs(base: str, runs: Sequence[RunSummary]) -> Html:
    rows = [[link(run_url(base, "aire_retrain", r.run_key), r.run_key), f"{r.modified:%Y-%m-%d %H:%M}",
             _outcome(r.outcome), ", ".join(r.failed) or "-"] for r in runs]
    return table(["run", "last written (UTC)", "gate", "failed checks"], rows, empty="no runs yet")


def _slo(report: SloReport | None) -> Html:
    if report is None:
        return tag("p", "SLO status unavailable", class_="muted")
    rows = []
    for o in report.objectives:
        burns = join((tag("span", f"{b.alert} {b.long_rate:.1f}/{b.short_rate:.1f}",
                          class_="burn firing" if b.firing else "burn") for b in o.burn), " ")
        rows.append([o.name, o.sli, _slo_value(o.current, o.sli), f"{o.target:g}", f"{o.budget_remaining:.0%}", burns,
                     badge(o.status, STATUS_KIND.get(o.status, "muted")), o.reason])
    return table(["objective", "SLI", "current", "target", "error budget left", "burn rate (long/short)", "status",
                  "why"], rows, empty="no objectives")


def _slo_value(value: float | None, sli: str) -> str:
    """Ratios as numbers; freshness and promotion latency (seconds) as a duration."""
    if value is None or sli not in TIMED_SLIS:
        return number(value, 3)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}s"


# --- one run -------------------------------------------------------------------------------
def run_page(base: str, dag_id: str, run_id: str, view: RunView | None) -> Html:
    if view is None:
        body = tag("p", f"No AIRE run folder for run {run_id} of {dag_id}: only aire_retrain runs that reached "
                        "validate_data write one.", class_="muted")
        return page(f"Run {run_id}", body, base=base, current="run")
    here = run_url(base, dag_id, view.summary.run_key)
    decision = view.decision
    parts = [tag("p", Html(esc(f"pipeline {view.summary.pipeline} · gate ") + _outcome(view.summary.outcome)))]
    parts.append(tag("h2", "Gate decision"))
    if decision is None:
        parts.append(tag("p", "No decision.json: the run stopped before the gate (a rejected batch fails closed).",
                         class_="muted"))
    else:
        checks = [c for c in decision.get("checks") or [] if isinstance(c, dict)]
        parts.append(table(["check", "value", "threshold", "verdict", "reason"],
                           [[c.get("name"), number(c.get("value")), number(c.get("threshold")),
                             verdict(bool(c.get("passed"))), c.get("reason")] for c in checks],
                           row_classes=[None if c.get("passed") else "failed" for c in checks]))
        parts.append(tag("p", link(task_log_url(base, dag_id, run_id, "gate"), "the gate's task log in Airflow"),
                         class_="task-log"))
    parts.append(tag("h2", "Validation failures"))
    parts.append(table(["column", "rule", "detail", "observed"],
                       [[f.get("column") or "(table)", f.get("rule"), f.get("detail"), _observed(f.get("observed"))]
                        for f in view.validation_failures],
                       empty="none" if view.validation_success is not False else "the suite failed"))
    parts.append(tag("h2", "Reports"))
    parts.append(tag("ul", join(tag("li", link(f"{here}/report?name={path(name)}", name)) for name in view.reports))
                 if view.reports else tag("p", "no HTML reports", class_="muted"))
    parts.append(tag("h2", "Top suspects"))
    parts.append(tag("p", f"estimated noise rate {number(view.noise_rate)}", class_="muted"))
    columns = list(view.suspects[0]) if view.suspects else ["row_id", "label", "predicted", "loss"]
    parts.append(table(columns, [[row.get(c) for c in columns] for row in view.suspects], empty="no suspects"))
    parts.append(tag("h2", "Approval"))
    approval = view.approval
    parts.append(tag("p", approval.get("summary") or approval.get("outcome")) if approval
                 else tag("p", "no approval requested", class_="muted"))
    return page(f"Run {view.summary.run_key}", join(parts), base=base, current="run")


def _observed(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return "" if value is None else str(value)


def report_frame_page(base: str, dag_id: str, run_key: str, name: str) -> Html:
    """A run's report inside a frame with scripts but no same-origin rights (see the app's CSP)."""
    source = f"{run_url(base, dag_id, run_key)}/reports/{path(*name.split('/'))}"
    body = Html(tag("p", link(run_url(base, dag_id, run_key), f"← run {run_key}"))
                + tag("iframe", "", src=source, sandbox="allow-scripts", class_="report", title=name,
                      referrerpolicy="no-referrer"))
    return page(name, body, base=base, current="run")


# --- versions and ledger -------------------------------------------------------------------
def versions_page(base: str, pipeline: str, pipelines: Sequence[str], rows: Sequence[VersionRow], ledger: LedgerView,
                  metric: str, problems: Sequence[str] = ()) -> Html:
    choose = join(link(f"{base}/versions?pipeline={path(p)}", p, class_="current" if p == pipeline else None)
                  for p in pipelines)
    metric_links = join(link(f"{base}/versions?pipeline={path(pipeline)}&metric={path(m)}", m,
                             class_="current" if m == metric else None) for m in VERSION_METRICS)
    oldest_first = list(reversed(rows))
    chart = line_chart(f"{metric} by version", [f"v{r.version.version}" for r in oldest_first],
                       [Series(metric, [r.metrics.get(metric) for r in oldest_first])])
    version_table = table(["version", "aliases", "digest", "verified now", "run", *VERSION_METRICS, ""],
                          [[f"v{r.version.version}", ", ".join(r.aliases) or "-",
                            tag("code", short(r.version.signed_digest), title=r.version.signed_digest),
                            _verified(r.verified, r.problem), r.version.run_key,
                            *(number(r.metrics.get(m), 3) for m in VERSION_METRICS),
                            _rollback_button(base, pipeline, r)] for r in rows], empty="no registered versions")
    previous = action_button("Roll back to previous", f"{base}/dags/{ROLLBACK_DAG}/rollback",
                             {"pipeline": pipeline, "target": "previous"}, ask="reason", placeholder="reason")
    ledger_state = (badge("hash chain verified", "ok") if ledger.verified
                    else Html(badge("does not verify", "bad") + esc(f" {ledger.problem}")))
    ledger_rows = [[e.seq, e.time, e.kind, _move(e.entry), tag("code", short(e.entry.get("digest"))),
                    e.entry.get("by") or e.entry.get("run_key") or "-", e.entry.get("reason") or ""]
                   for e in reversed(ledger.entries)]
    body = Html(_problems(problems) + tag("p", choose, class_="choose") + tag("h2", "Versions") + version_table
                + tag("p", Html(previous + tag("span", " a rollback verifies the target first; nothing moves if it "
                                                       "does not verify", class_="muted")))
                + tag("h2", "One metric across versions") + tag("p", metric_links, class_="choose") + chart
                + tag("h2", "Ledger") + tag("p", ledger_state)
                + table(["seq", "time", "kind", "move", "digest", "by", "reason"], ledger_rows, empty="empty ledger"))
    return page(f"Versions & ledger · {pipeline}", body, base=base, current="versions")


def _move(entry: dict[str, Any]) -> str:
    if "to_version" not in entry:
        return "-"
    before = entry.get("from_version")
    return f"{'v' + str(before) if before is not None else 'none'} → v{entry['to_version']}"


def _verified(verified: bool | None, problem: str | None) -> Html:
    if verified is None:
        return badge("not checked", "muted")
    return verdict(True) if verified else Html(verdict(False) + tag("span", f" {problem}", class_="why"))


def _rollback_button(base: str, pipeline: str, row: VersionRow) -> Html:
    """Only a version that verified just now is offered (the DAG verifies it again before it moves)."""
    if "champion" in row.aliases or row.verified is not True:
        return Html("")
    return action_button("Make champion", f"{base}/dags/{ROLLBACK_DAG}/rollback",
                         {"pipeline": pipeline, "target": str(row.version.version)}, ask="reason",
                         placeholder="reason")


# --- incidents -----------------------------------------------------------------------------
def _incident_table(base: str, incidents: Sequence[Incident]) -> Html:
    rows = [[link(f"{base}/incidents/{i.id}", f"#{i.id}"), badge(i.status.value, STATUS_KIND[i.status.value]),
             i.severity.value, i.pipeline, i.source.kind, i.count, f"{i.last_seen:%Y-%m-%d %H:%M}", i.title]
            for i in incidents]
    return table(["id", "status", "severity", "pipeline", "source", "count", "last seen (UTC)", "title"], rows,
                 empty="none")


def incidents_page(base: str, incidents: Sequence[Incident], status: str | None) -> Html:
    filters = join(link(f"{base}/incidents" + (f"?status={s}" if s else ""), s or "all",
                        class_="current" if s == status else None) for s in [None, *(x.value for x in Status)])
    return page("Incidents", Html(tag("p", filters, class_="choose") + _incident_table(base, incidents)),
                base=base, current="incidents")


def incident_page(base: str, incident: Incident, postmortem: str | None) -> Html:
    dag = owning_dag(incident)
    actions = []
    url = f"{base}/dags/{path(dag)}/incidents/{incident.id}"
    if incident.status is Status.OPEN:
        actions.append(action_button("Acknowledge", f"{url}/acknowledge", {}))
    if incident.status is not Status.RESOLVED:
        actions.append(action_button("Resolve", f"{url}/resolve", {}, ask="note", placeholder="what fixed it"))
    source = incident.source
    facts = table(["", ""], [["status", badge(incident.status.value, STATUS_KIND[incident.status.value])],
                             ["severity", incident.severity.value], ["pipeline", incident.pipeline],
                             ["source", ", ".join(f"{k} {v}" for k, v in source.to_dict().items() if v is not None)],
                             ["seen", f"{incident.count}x, first {incident.first_seen:%Y-%m-%d %H:%M:%S}, "
                                      f"last {incident.last_seen:%Y-%m-%d %H:%M:%S} UTC"]], class_="facts")
    run = (tag("p", link(run_url(base, dag, source.run_id), f"run {source.run_id}")) if source.run_id
           else Html(""))
    evidence = table(["evidence", "value"], [[key, tag("pre", _json(value))]
                                             for key, value in sorted(incident.evidence.items())], empty="none")
    timeline = table(["time (UTC)", "event", "detail"],
                     [[f"{e.time:%Y-%m-%d %H:%M:%S}", e.event, e.detail] for e in incident.timeline])
    written = (tag("div", render_markdown(postmortem), class_="postmortem") if postmortem is not None
               else tag("p", incident.postmortem or "no postmortem yet", class_="muted"))
    body = Html(tag("p", incident.title, class_="incident-title") + tag("p", join(actions, " "), class_="actions")
                + facts + run + tag("h2", "Timeline") + timeline + tag("h2", "Evidence") + evidence
                + tag("h2", "Postmortem") + written)
    return page(f"Incident #{incident.id}", body, base=base, current="incidents")


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=1, default=str)[:4000]


# --- drift and quality over time -----------------------------------------------------------
CHARTS = (("drift_share", "drift share", "max_drift_share"), ("noise_rate", "estimated noise rate", "max_noise_rate"),
          ("accuracy", "candidate accuracy", "min_accuracy"), ("fairness_gap", "fairness gap", "max_fairness_gap"))


def trends_page(base: str, pipelines: Sequence[tuple[str, Sequence[TrendPoint], dict[str, float]]]) -> Html:
    sections = []
    for name, points, thresholds in pipelines:
        labels = [f"{p.run.modified:%m-%d %H:%M}" for p in points]
        charts = join(line_chart(title, labels, [Series(title, [p.values[key] for p in points])],
                                 threshold=thresholds.get(gate)) for key, title, gate in CHARTS)
        runs = table(["#", "run", "gate"], [[i + 1, link(run_url(base, "aire_retrain", p.run.run_key), p.run.run_key),
                                             _outcome(p.run.outcome)] for i, p in enumerate(points)], empty="no runs")
        sections.append(tag("section", Html(tag("h2", name) + tag("div", charts, class_="charts") + runs),
                            class_="pipeline"))
    return page("Drift & quality over time", join(sections), base=base, current="trends")
