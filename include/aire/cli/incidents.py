"""``aire incidents list|show|ack|resolve`` and ``aire slo status``.

Acknowledging or resolving here changes the store at once; the matching PagerDuty, Slack
or webhook notification needs the Airflow connections, so aire_incident_sweep sends the
resolve on its next run (``aire.incidents.notifiers.deliver_pending``).
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import Incident, IncidentStore, Status

EXAMPLE_CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    incidents = sub.add_parser("incidents", help="list, show, acknowledge and resolve incidents")
    verbs = incidents.add_subparsers(dest="verb", required=True)

    cmd = verbs.add_parser("list", help="incidents, newest first")
    cmd.add_argument("--status", choices=[s.value for s in Status])
    cmd.add_argument("--pipeline", help="only this pipeline (the config's name)")
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(handler=_list)

    cmd = verbs.add_parser("show", help="one incident with its evidence and timeline")
    cmd.add_argument("id", type=int)
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(handler=_show)

    for verb, helptext in (("ack", "acknowledge: someone is on it"),
                           ("resolve", "resolve, with a note saying how")):
        cmd = verbs.add_parser(verb, help=helptext)
        cmd.add_argument("id", type=int)
        cmd.add_argument("--by", default=_user(), help="who (default: the current user)")
        if verb == "resolve":
            cmd.add_argument("--note", required=True, help="what fixed it")
        cmd.add_argument("--json", action="store_true")
        cmd.set_defaults(handler=_change, verb=verb)

    slo = sub.add_parser("slo", help="service-level objectives of a pipeline")
    slo_verbs = slo.add_subparsers(dest="verb", required=True)
    cmd = slo_verbs.add_parser("status", help="SLIs, error budgets and burn rates now")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG))
    cmd.add_argument("--json", action="store_true")
    cmd.add_argument("--open-incidents", action="store_true",
                     help="open (or count) an incident for each breached objective")
    cmd.set_defaults(handler=_slo_status)


def _store() -> IncidentStore:
    return IncidentStore(Home.from_env().incidents_db_url)


def _list(args: argparse.Namespace) -> int:
    with _store() as store:
        found = store.list(status=args.status, pipeline=args.pipeline)
    if args.json:
        _print([i.to_dict() for i in found])
        return 0
    rows = [[str(i.id), i.status.value, i.severity.value, str(i.count), i.pipeline,
             i.source.kind, f"{i.last_seen:%Y-%m-%d %H:%M}", i.title] for i in found]
    _table(["ID", "STATUS", "SEVERITY", "COUNT", "PIPELINE", "SOURCE", "LAST SEEN (UTC)", "TITLE"],
           rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    with _store() as store:
        incident = store.get(args.id)
    if args.json:
        _print(incident.to_dict())
        return 0
    _describe(incident)
    return 0


def _change(args: argparse.Namespace) -> int:
    with _store() as store:
        if args.verb == "ack":
            incident = store.acknowledge(args.id, args.by)
        else:
            incident = store.resolve(args.id, args.by, args.note)
    if args.json:
        _print(incident.to_dict())
    else:
        print(f"incident {incident.id} is {incident.status.value} "
              f"(notifications follow on the next aire_incident_sweep run)")
    return 0


def _slo_status(args: argparse.Namespace) -> int:
    from aire.config import load_config
    from aire.reliability.breaches import record_slo_breaches
    from aire.reliability.history import slo_status

    config = load_config(args.config)
    report = slo_status(config)
    opened = record_slo_breaches(config, report) if args.open_incidents else []
    if args.json:
        _print({**report.to_dict(), **({"incidents": opened} if args.open_incidents else {})})
        return 0
    print(f"{report.pipeline}: {len(report.objectives)} objective(s) over {report.runs} run(s), "
          f"evaluated {report.evaluated_at:%Y-%m-%d %H:%M} UTC")
    rows = []
    for o in report.objectives:
        timed = o.sli in ("freshness", "promotion_latency")
        fast, slow = (f"{b.long_rate:.1f}/{b.short_rate:.1f}" for b in o.burn)
        rows.append([o.name, o.sli, _value(o.current, timed), f"{o.target:g}",
                     _value(o.threshold, timed), _amount(o.good, o.total, o.sli == "freshness"),
                     f"{o.budget_remaining:.0%}", fast, slow, o.status])
    _table(["OBJECTIVE", "SLI", "CURRENT", "TARGET", "THRESHOLD", "GOOD/TOTAL", "BUDGET LEFT",
            "FAST BURN", "SLOW BURN", "STATUS"], rows)
    for o in report.objectives:
        if o.status == "breached":
            print(f"  {o.name}: {o.reason}")
    for outcome in opened:
        print(f"  incident {outcome['incident_id']} "
              f"{'opened' if outcome['created'] else 'seen again'}")
    return 0


def _describe(incident: Incident) -> None:
    source = incident.source
    where = ", ".join(f"{k} {v}" for k, v in source.to_dict().items() if v is not None and k != "kind")
    print(f"#{incident.id} [{incident.severity.value}] {incident.status.value}: {incident.title}")
    print(f"  pipeline {incident.pipeline}; source {source.kind}" + (f" ({where})" if where else ""))
    print(f"  seen {incident.count}x, first {incident.first_seen:%Y-%m-%d %H:%M:%S} UTC, "
          f"last {incident.last_seen:%Y-%m-%d %H:%M:%S} UTC")
    print(f"  postmortem: {incident.postmortem or '(none yet)'}")
    print(f"  evidence: {', '.join(sorted(incident.evidence)) or '(none)'}")
    print("  timeline:")
    for event in incident.timeline:
        print(f"    {event.time:%Y-%m-%d %H:%M:%S}  {event.event:<12} {event.detail}")


def _value(value: float | None, timed: bool) -> str:
    if value is None:
        return "-"
    if not timed:
        return f"{value:.3f}"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}s"


def _amount(good: float, total: float, timed: bool) -> str:
    return f"{good / 3600:.1f}h/{total / 3600:.1f}h" if timed else f"{good:.0f}/{total:.0f}"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"
