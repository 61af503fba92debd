"""Monitoring scored batches: drift, confidence, ODD violations and freshness as SLOs.

Each scored batch leaves a summary in ``<home>/scoring/<pipeline>/summaries/`` (``aire.scoring.
score.record_summary``) that carries the batch's output and input distributions and the same
distributions of the serving model on its reference rows (``aire.scoring.stats``). Per batch:

- prediction drift: total-variation distance between the predicted-class shares and the
  model's on its reference;
- input drift: the worst feature's population stability index (numbers, reference decile
  bins) or total-variation distance (categories);
- confidence: the share of rows below the model's learned confidence threshold (uncertain);
- ODD-violation rate: the share of rows out of the operating domain;
- freshness: time since the last scored batch (time-based).

The objectives are the config's ``slo.objectives`` of those kinds, or ``MONITOR_OBJECTIVES``
when it lists none; each is evaluated with the error budget and burn rates of
``aire.reliability.slo``, and a breach opens one incident per objective while it stays
active (``aire.reliability.breaches``), with the batches' figures in its postmortem.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aire.config import Objective, PipelineConfig, load_config
from aire.home import Home
from aire.reliability.breaches import record_slo_breaches
from aire.reliability.slo import BATCH_SLIS, BatchRecord, History, SloReport, evaluate
from aire.scoring.score import scoring_dir
from aire.scoring.stats import category_tv, psi, total_variation

log = logging.getLogger(__name__)

MONITOR_OBJECTIVES: list[dict[str, Any]] = [
    # Sized on German Credit (`aire demo-score` on a demo home, 500-row batches): the champion's
    # own training batch reads 0.009 / 0.029 (prediction / input drift), a clean new batch
    # 0.011 / 0.025, a drift=1.0 batch 0.068 / 0.275 (credit_amount's PSI; duration 0.239).
    # A 500-row batch's class shares move by ~0.02 by chance alone, hence 0.05.
    {"name": "prediction_drift", "sli": "prediction_drift", "threshold": 0.05, "target": 0.9},
    # 0.2: inside the usual 0.1-0.25 "moderate shift" band of the population stability index.
    {"name": "input_drift", "sli": "input_drift", "threshold": 0.2, "target": 0.9},
    # The learned threshold leaves 5% of the reference below it; three times that is a shift.
    {"name": "uncertain_share", "sli": "confidence", "threshold": 0.15, "target": 0.9},
    {"name": "odd_violations", "sli": "odd_violation_rate", "threshold": 0.05, "target": 0.9},
    {"name": "scoring_freshness", "sli": "scoring_freshness", "threshold": "2d", "target": 0.9},
    # Labeled batches only (feedback): the gate's own floor for a useful German Credit model.
    {"name": "serving_quality", "sli": "serving_quality", "threshold": 0.6, "target": 0.9},
]


def objectives_for(config: PipelineConfig) -> list[Objective]:
    configured = [o for o in config.slo.objectives if o.sli in BATCH_SLIS]
    return configured or [Objective.model_validate(o) for o in MONITOR_OBJECTIVES]


def batch_record(summary: dict[str, Any]) -> BatchRecord:
    """The monitoring SLIs of one scored batch, from its summary."""
    reference, outputs = summary.get("reference") or {}, summary.get("outputs") or {}
    prediction = None
    if reference.get("class_shares") and outputs.get("class_shares"):
        prediction = total_variation(reference["class_shares"], outputs["class_shares"])
    drifts = [psi(reference["numeric_shares"][c], shares)
              for c, shares in (outputs.get("numeric_shares") or {}).items()
              if c in (reference.get("numeric_shares") or {}) and sum(shares)]
    drifts += [category_tv(reference["category_shares"][c], shares)
               for c, shares in (outputs.get("category_shares") or {}).items()
               if c in (reference.get("category_shares") or {})]
    odd = summary.get("odd") or {}
    return BatchRecord(
        batch_id=str(summary.get("batch_id")), scored=datetime.fromisoformat(summary["scored_at"]),
        prediction_drift=prediction, input_drift=max(drifts) if drifts else None,
        confidence=odd.get("uncertain_rate") if odd.get("confidence_threshold") is not None else None,
        odd_violation_rate=odd.get("violation_rate"),
        quality=(summary.get("quality") or {}).get("accuracy"),
    )


def feature_drift(summary: dict[str, Any]) -> dict[str, float]:
    """Each feature's drift figure (PSI or TV distance), for the report and the postmortem."""
    reference, outputs = summary.get("reference") or {}, summary.get("outputs") or {}
    found = {c: psi(reference["numeric_shares"][c], s) for c, s in (outputs.get("numeric_shares") or {}).items()
             if c in (reference.get("numeric_shares") or {}) and sum(s)}
    found.update({c: category_tv(reference["category_shares"][c], s)
                  for c, s in (outputs.get("category_shares") or {}).items()
                  if c in (reference.get("category_shares") or {})})
    return {c: round(v, 4) for c, v in sorted(found.items(), key=lambda kv: -kv[1])}


def _rollback_on_fast_burn(config_path: str | Path, config: PipelineConfig, report: SloReport,
                           home: Home) -> dict[str, Any] | None:
    """With ``scoring.rollback_on_fast_burn``, a fast burn of serving quality moves the champion
    back to ``previous`` (verified first; the ledger records it as a rollback)."""
    from aire.config import SliKind
    from aire.errors import AireError
    from aire.promotion.rollback import rollback

    if not config.scoring.rollback_on_fast_burn:
        return None
    burning = [o for o in report.objectives if o.sli == SliKind.SERVING_QUALITY.value
               and any(b.firing and b.alert == "fast" for b in o.burn)]
    if not burning:
        return None
    try:
        done = rollback(config_path, by="aire_monitor", home=home,
                        reason=f"fast burn of SLO '{burning[0].name}': {burning[0].reason}")
    except AireError as exc:  # no previous version, or it does not verify: the incident stands
        log.error("fast burn of serving quality, but no rollback: %s", exc)
        return {"rolled_back": False, "reason": str(exc)}
    return {"rolled_back": True, **done.to_dict()}


def summaries(home: Home, pipeline: str, since: datetime | None = None) -> list[dict[str, Any]]:
    """The home's summaries of scored batches, oldest first (unreadable files skipped, logged)."""
    found = []
    for path in sorted((scoring_dir(home, pipeline) / "summaries").glob("*.json")):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            scored = datetime.fromisoformat(summary["scored_at"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        if since is None or scored > since:
            found.append(summary)
    return sorted(found, key=lambda s: s["scored_at"])


def monitor(config_path: str | Path, home: Home | None = None, now: datetime | None = None,
            open_incidents: bool = True) -> dict[str, Any]:
    """Evaluate the monitoring SLOs over the window; breaches open incidents. Returns the report."""
    home = (home or Home.from_env()).ensure()
    config = load_config(config_path)
    now = now or datetime.now(UTC)
    objectives = objectives_for(config)
    window = max([o.window or config.slo.window for o in objectives])
    found = summaries(home, config.name, since=now - timedelta(seconds=window))
    batches = tuple(batch_record(s) for s in found)
    history = History(runs=(), born=None, batches=batches)
    report = SloReport(config.name, now, len(batches),
                       tuple(evaluate(o, config.slo, history, now) for o in objectives))
    latest = found[-1] if found else None
    evidence = {
        "monitor": {
            "batches": [asdict(b) | {"scored": b.scored.isoformat()} for b in batches[-10:]],
            "latest_batch": latest and {"batch_id": latest["batch_id"], "batch_uri": latest["batch_uri"],
                                        "summary_uri": latest["summary_uri"],
                                        "served_by": latest["served_by"], "odd": latest["odd"]["counts"],
                                        "feature_drift": feature_drift(latest)},
        },
    }
    incidents = record_slo_breaches(config, report, home, evidence=evidence) if open_incidents else []
    result = {**report.to_dict(), **evidence, "incidents": incidents,
              "rollback": _rollback_on_fast_burn(config_path, config, report, home)}
    path = scoring_dir(home, config.name) / "monitor.json"
    from aire import atomic

    atomic.write_json(path, result, default=str, newline=True)
    return result
