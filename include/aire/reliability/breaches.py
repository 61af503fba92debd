"""SLO breaches as incidents: one active incident per breached objective."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aire.home import Home
from aire.incidents.sources import champion_of, open_incident
from aire.incidents.store import Severity, SourceKind, dedup_key

if TYPE_CHECKING:
    from aire.config import PipelineConfig
    from aire.incidents.notifiers import ChannelResolver
    from aire.reliability.slo import SloReport


def record_slo_breaches(config: PipelineConfig, report: SloReport, home: Home | None = None,
                        resolver: ChannelResolver | None = None,
                        evidence: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One active incident per breached objective; a breach still there counts again.

    ``evidence`` (the monitor's report of the batches behind it) goes into the incident and
    its postmortem beside the objective's figures."""
    home = home or Home.from_env()
    outcomes = []
    for objective in report.breached:
        fast = any(b.firing and b.alert == "fast" for b in objective.burn)
        outcomes.append(open_incident(
            home, dedup_key("slo", config.name, objective.name), pipeline=config.name,
            title=f"{config.name}: SLO '{objective.name}' breached: {objective.reason}",
            severity=Severity.HIGH if fast else Severity.MEDIUM,
            source={"kind": SourceKind.SLO_BREACH.value},
            evidence={"slo": objective.to_dict(), "evaluated_at": report.evaluated_at.isoformat(),
                      "champion": champion_of(home, config.name), **(evidence or {})},
            notify=config.notify, resolver=resolver,
        ))
    return outcomes
