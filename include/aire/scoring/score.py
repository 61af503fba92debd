"""``score_batch``: a batch in, scored rows and a summary out, or nothing out and an incident.

1. Read the batch (``aire.data.tables.read_table``: size limits, CSV/Parquet, local or s3://);
   check that every feature column is there and the batch has rows. A batch that fails here
   is quarantined (a copy in the home), an incident opens, and DataValidationError names the
   file, the column and the rule; nothing is written.
2. Resolve who serves (``aire.scoring.fallback``): the champion once it verifies, else the
   previous verified version, else the documented baseline; a fallback opens an incident.
3. Score chunk by chunk (``scoring.chunk_rows``): ODD verdicts, each distinct row once per
   digest, the out-of-domain policy; a shadow challenger scores the same rows.
4. Write the table atomically, then the summary JSON beside it and in the home (the monitor
   reads those).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aire import atomic
from aire.config import OutOfDomain, PipelineConfig, load_config
from aire.constants import CHAMPION
from aire.data.storage import S3Settings
from aire.data.tables import read_table
from aire.errors import DataValidationError
from aire.home import Home
from aire.incidents.sources import open_incident
from aire.incidents.store import Severity, dedup_key
from aire.registry.mlflow_registry import Registry
from aire.scoring.batch import score_chunk
from aire.scoring.cache import PROCESS_CACHE
from aire.scoring.fallback import Baseline, Serving, resolve
from aire.scoring.loader import LoadedModel
from aire.scoring.odd import RULE_FINITE
from aire.scoring.stats import Distribution
from aire.scoring.writer import scored_output, summary_uri, write_summary
from aire.trust.keys import verify_key
from aire.trust.ledger import Ledger

log = logging.getLogger(__name__)
SOURCE_SCORING = "scoring_failure"
SOURCE_FALLBACK = "scoring_fallback"
_BATCH_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ScoreRequest:
    config_path: str
    batch_uri: str
    out_uri: str
    batch_id: str | None = None  # names the batch in the home and in incidents; default: from its file name
    s3: S3Settings | None = None
    public_key: Path | None = None  # default: the embedded home's (a home on services needs it given)
    by: str = "cli"  # who asked (a DAG run, the CLI): recorded in the summary
    # A refusal's incident key; a DAG task passes its failure callback's (dag, run, task, try),
    # so the refusal and the task's failure are one incident, not two.
    incident_key: str | None = None


def batch_id_of(request: ScoreRequest) -> str:
    name = request.batch_id or request.batch_uri.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return _BATCH_ID.sub("-", name).strip("-.")[:120] or "batch"


def scoring_dir(home: Home, pipeline: str) -> Path:
    return home.root / "scoring" / pipeline


def score_batch(request: ScoreRequest, home: Home | None = None) -> dict[str, Any]:
    """Score ``request.batch_uri`` into ``request.out_uri``; returns the summary (also written)."""
    home = (home or Home.from_env()).ensure()
    config = load_config(request.config_path)
    batch_id = batch_id_of(request)
    started = time.perf_counter()
    try:
        frame = _read_batch(request, config)
    except DataValidationError as exc:
        _refuse(home, config, request, batch_id, exc)
        raise
    registry = Registry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    ledger = Ledger.for_home(home)
    public_key = verify_key(request.public_key, home)  # a home on services: the shared key only
    settings = config.scoring
    serving = resolve(registry, config.name, public_key=public_key, ledger=ledger, settings=settings)
    if serving.fell_back:
        _fallback_incident(home, config, request, batch_id, serving)
    primary = serving.model
    fallback = _ood_fallback(registry, config, serving, public_key, ledger) \
        if settings.out_of_domain is OutOfDomain.FALLBACK and primary is not None else None
    shadow = _shadow(registry, config, serving, public_key, ledger)
    if primary is not None and settings.on_bad_input == "quarantine":
        _refuse_bad_cells(home, config, request, batch_id, frame, primary)
    classes = [str(c) for c in primary.model.classes] if primary else list(serving.baseline.classes)  # type: ignore[union-attr]
    stats = Distribution(classes, dict(primary.odd.reference_stats.get("numeric_edges", {})) if primary else {})
    counts: dict[str, int] = {"in": 0, "out": 0, "uncertain": 0}
    rules: dict[str, int] = {}
    withheld = 0
    scored = 0
    shadow_tally = shadow.tally() if shadow else None
    quality = LabeledQuality(config.dataset.label)
    id_column = config.dataset.id
    chunk_rows = settings.chunk_rows
    text_columns = tuple(c for c in [id_column, "prediction"] if c)
    with scored_output(request.out_uri, s3=request.s3, text_columns=text_columns) as writer:
        for start in range(0, len(frame), chunk_rows):
            chunk = frame.iloc[start:start + chunk_rows]
            label = serving.source if serving.source == CHAMPION else f"fallback:v{serving.version}" \
                if primary else "baseline"
            result = score_chunk(chunk, primary, serving.baseline, policy=settings.out_of_domain,
                                 fallback=fallback, id_column=id_column, row_offset=start,
                                 cache=PROCESS_CACHE, primary_label=label)
            writer.write(result.frame)
            odd = result.frame["odd"].value_counts()
            for verdict in counts:
                counts[verdict] += int(odd.get(verdict, 0))
            for (rule, column), n in _rule_counts(result).items():
                key = f"{rule}:{column}" if column else rule
                rules[key] = rules.get(key, 0) + n
            withheld += int(result.frame["withheld"].sum())
            scored += result.scored_rows
            served = result.proba[~np.isnan(result.proba).any(axis=1)]
            numeric = {c: result_numeric(chunk, c) for c in stats.numeric_edges}
            categorical = {c: chunk[c] for c in config.dataset.features.categorical if c in chunk.columns}
            stats.add(served, numeric, categorical)
            quality.add(chunk, result)
            if shadow and shadow_tally is not None:
                shadow_tally.add(chunk, result)
    rows = len(frame)
    summary: dict[str, Any] = {
        "pipeline": config.name, "batch_id": batch_id, "batch_uri": request.batch_uri,
        "output_uri": request.out_uri, "summary_uri": summary_uri(request.out_uri), "by": request.by,
        "scored_at": datetime.now(UTC).isoformat(), "seconds": round(time.perf_counter() - started, 3),
        "rows": rows, "rows_run_through_model": scored, "withheld": withheld,
        "served_by": {"source": serving.source, "version": serving.version, "digest": serving.digest,
                      "refused": serving.refused},
        "policy": {"out_of_domain": settings.out_of_domain.value, "on_bad_input": settings.on_bad_input},
        "odd": {"counts": counts, "violation_rate": counts["out"] / rows if rows else 0.0,
                "uncertain_rate": counts["uncertain"] / rows if rows else 0.0, "rules": rules,
                "distance_threshold": primary.odd.distance_threshold if primary else None,
                "confidence_threshold": primary.odd.confidence_threshold if primary else None,
                "null_rates": _null_rates(frame, config)},
        "outputs": stats.to_dict(),
        "reference": primary.odd.reference_stats if primary else {},
        "reference_null_rates": primary.odd.null_rates if primary else {},
        "shadow": shadow_tally.to_dict() if shadow_tally else None,
        "quality": quality.to_dict(),
    }
    write_summary(request.out_uri, summary, s3=request.s3)
    record_summary(home, summary)
    if shadow_tally is not None:
        from aire.scoring.shadow import record_shadow

        summary["shadow"] = record_shadow(home, config, summary["shadow"], batch_id)
    log.info("scored %d rows of %s into %s (%s)", rows, request.batch_uri, request.out_uri, counts)
    return summary


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures a person reads first; the summary file has the rest."""
    shadow = summary.get("shadow") or {}
    return {
        "rows": summary["rows"], "withheld": summary["withheld"], "served_by": summary["served_by"],
        "odd": {k: summary["odd"][k] for k in ("counts", "violation_rate", "rules")},
        "shadow": {k: shadow.get(k) for k in ("challenger", "agreement", "distance", "healthy",
                                              "healthy_streak")} if shadow else None,
        "output_uri": summary["output_uri"], "summary_uri": summary["summary_uri"],
    }


class LabeledQuality:
    """Accuracy of the served predictions on rows whose label the batch carries (feedback)."""

    def __init__(self, label: str) -> None:
        self.label, self.rows, self.correct = label, 0, 0

    def add(self, chunk: pd.DataFrame, result: Any) -> None:
        if self.label not in chunk.columns:
            return
        served = ~result.frame["withheld"].to_numpy()
        truth = chunk[self.label].to_numpy()
        predicted = result.frame["prediction"].to_numpy()
        known = served & pd.notna(truth)
        self.rows += int(known.sum())
        self.correct += int((_keys(predicted[known]) == _keys(truth[known])).sum())

    def to_dict(self) -> dict[str, Any]:
        return {"labeled_rows": self.rows, "accuracy": self.correct / self.rows if self.rows else None}


def _keys(values: np.ndarray) -> np.ndarray:
    """Each class label as text, so that 1, 1.0 and "1" (CSV, Parquet, JSON) compare equal;
    worked out once per distinct value."""
    def key(value: Any) -> str:
        value = value.item() if hasattr(value, "item") else value
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    codes, uniques = pd.factorize(values)
    keys: np.ndarray = np.array([key(u) for u in uniques] + [""], dtype=object)[codes]
    return keys


def result_numeric(chunk: pd.DataFrame, column: str) -> np.ndarray:
    from aire.scoring.encoding import numeric_values

    return numeric_values(chunk[column]) if column in chunk.columns else np.zeros(0)


def record_summary(home: Home, summary: dict[str, Any]) -> Path:
    """The home's copy of a batch's summary: ``scoring/<pipeline>/summaries/<time>-<batch>.json``."""
    stamp = summary["scored_at"].replace(":", "").replace("-", "")[:15]
    path = scoring_dir(home, summary["pipeline"]) / "summaries" / f"{stamp}-{summary['batch_id']}.json"
    atomic.write_json(path, summary, allow_nan=False, default=str, newline=True)
    return path


def _rule_counts(result: Any) -> dict[tuple[str, str | None], int]:
    verdicts = result.verdicts
    found: dict[tuple[str, str | None], int] = {}
    if not verdicts.reasons:
        return found
    counts = np.bincount(verdicts.reason[verdicts.reason >= 0], minlength=len(verdicts.reasons))
    for index, n in enumerate(counts):
        if n:
            found[verdicts.reasons[index]] = found.get(verdicts.reasons[index], 0) + int(n)
    return found


def _null_rates(frame: pd.DataFrame, config: PipelineConfig) -> dict[str, float]:
    return {c: float(frame[c].isna().mean()) for c in config.dataset.features.all if c in frame.columns}


def _read_batch(request: ScoreRequest, config: PipelineConfig) -> pd.DataFrame:
    frame = read_table(request.batch_uri, s3=request.s3)
    if len(frame) == 0:
        raise DataValidationError(request.batch_uri, None, "row count >= 1", "the batch has no rows")
    for column in config.dataset.features.all:
        if column not in frame.columns:
            raise DataValidationError(request.batch_uri, column, "column exists", "missing from the batch")
    return frame


def _refuse_bad_cells(home: Home, config: PipelineConfig, request: ScoreRequest, batch_id: str,
                      frame: pd.DataFrame, primary: LoadedModel) -> None:
    """on_bad_input: quarantine: any cell the model cannot take refuses the whole batch."""
    from aire.scoring.encoding import numeric_values

    for column in primary.model.preprocessor.numeric:
        bad = ~np.isfinite(numeric_values(frame[column]))
        if bad.any():
            examples = [str(v) for v in frame[column][bad].head(3).tolist()]
            exc = DataValidationError(request.batch_uri, column, RULE_FINITE,
                                      f"{int(bad.sum())} row(s), e.g. {examples}")
            _refuse(home, config, request, batch_id, exc)
            raise exc


def _refuse(home: Home, config: PipelineConfig, request: ScoreRequest, batch_id: str,
            exc: DataValidationError) -> None:
    quarantined = _quarantine(home, config, request, batch_id)
    open_incident(
        home, request.incident_key or dedup_key("score", config.name, batch_id, exc.rule, exc.column),
        pipeline=config.name,
        title=f"{config.name}: batch {batch_id} refused for scoring: {exc}"[:300], severity=Severity.MEDIUM,
        source={"kind": SOURCE_SCORING, "dag_id": "aire_score", "run_id": batch_id, "task_id": "score"},
        evidence={"error": {"file": exc.file, "column": exc.column, "rule": exc.rule, "detail": exc.detail},
                  "batch_uri": request.batch_uri, "quarantined": quarantined, "output_written": False},
        notify=config.notify,
    )


def _quarantine(home: Home, config: PipelineConfig, request: ScoreRequest, batch_id: str) -> str | None:
    """A copy of the refused batch's file in the home (best effort: it may not exist at all)."""
    target = scoring_dir(home, config.name) / "quarantine" / batch_id / request.batch_uri.rsplit("/", 1)[-1]
    try:
        if request.batch_uri.startswith("s3://"):
            from aire.data.storage import download_s3_object, parse_s3_uri, s3_client

            bucket, key = parse_s3_uri(request.batch_uri)
            download_s3_object(s3_client(request.s3), bucket, key, target)
        else:
            source = Path(request.batch_uri.removeprefix("file://"))
            if not source.is_file():
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    except Exception as exc:  # noqa: BLE001 - the incident matters more than the copy
        log.warning("batch %s not quarantined: %s", request.batch_uri, exc)
        return None
    return str(target)


def _fallback_incident(home: Home, config: PipelineConfig, request: ScoreRequest, batch_id: str,
                       serving: Serving) -> None:
    refused = serving.refused[0] if serving.refused else {"version": None, "reason": "no champion"}
    open_incident(
        home, dedup_key("score-fallback", config.name, refused.get("version")), pipeline=config.name,
        title=(f"{config.name}: champion v{refused.get('version')} refused for scoring; "
               f"{serving.source} v{serving.version} serves" if serving.model else
               f"{config.name}: no version verifies; the baseline serves")[:300],
        severity=Severity.HIGH,
        source={"kind": SOURCE_FALLBACK, "dag_id": "aire_score", "run_id": batch_id, "task_id": "score"},
        evidence={"refused": serving.refused, "served_by": {"source": serving.source, "version": serving.version,
                                                            "digest": serving.digest},
                  "batch_uri": request.batch_uri},
        notify=config.notify,
    )


def _ood_fallback(registry: Registry, config: PipelineConfig, serving: Serving, public_key: Path,
                  ledger: Ledger) -> LoadedModel | Baseline | None:
    """Who scores out-of-domain rows under policy ``fallback``: the next verified version, else the baseline."""
    from aire.errors import AireError
    from aire.scoring.fallback import candidates
    from aire.scoring.loader import load_verified

    for _, version in candidates(registry, config.name):
        if serving.model is not None and version.version == serving.model.version:
            continue
        try:
            return load_verified(registry, version, public_key=public_key, ledger=ledger, settings=config.scoring)
        except AireError:
            continue
    prior = config.scoring.baseline_prior
    return Baseline(list(prior), list(prior.values())) if prior else None


def _shadow(registry: Registry, config: PipelineConfig, serving: Serving, public_key: Path,
            ledger: Ledger) -> Any:
    if not config.scoring.shadow.enabled or serving.model is None:
        return None
    from aire.scoring.shadow import load_challenger

    return load_challenger(registry, config, serving.model, public_key=public_key, ledger=ledger)
