"""The gate's evidence, read from the stage reports: ``evidence_from_files`` never raises.

A missing, unreadable or garbled report leaves the fields it would give as None and
records why in ``Evidence.missing``; ``aire.promotion.gate.decide`` fails every check that
needs them.

Where each field comes from:
- evaluation.json (``aire.evaluation.report.write_report``): drift.drift_share,
  quality.candidate.accuracy (the whole holdout), quality.comparison.{candidate,champion}
  .{accuracy,macro_f1,roc_auc,ece} and their paired standard errors .accuracy_drop_se,
  .macro_f1_drop_se, .roc_auc_drop_se, .ece_increase_se (both models on the same rows),
  fairness.candidate.max_gap, fairness.champion.max_gap;
- the error analysis summary.json: estimated_noise_rate (None when the analysis was skipped)
  and leakage.flagged, the features that alone predict the label (``label_leakage``);
  per_group, each sensitive group's share of suspected label errors
  (``group_suspect_rate_gap``: noise that concentrates in one group is a fairness problem);
- ``champion_noise_rate``: set by the caller from the champion's training run (the MLflow
  metric analysis.estimated_noise_rate): the noise check's baseline. Only a first run goes
  without it (the absolute cap ``max_noise_rate`` is then the limit);
- signing_json: a boolean ``verified``; the pipeline normally sets ``signature_verified``
  itself after verifying the candidate, with ``dataclasses.replace``;
- ``validation_passed``: the validation report's ``success`` (keyword ``validation_json``),
  or set by the caller.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.promotion.gate import Evidence

if TYPE_CHECKING:
    from aire.registry.mlflow_registry import Registry

log = logging.getLogger(__name__)

NOISE_METRIC = "analysis.estimated_noise_rate"  # what the analyze_errors stage logs


def evidence_from_files(evaluation_json: Path | None, analysis_summary_json: Path | None,
                        signing_json: Path | None, first_run: bool, *,
                        validation_json: Path | None = None) -> Evidence:
    missing: dict[str, str] = {}
    values: dict[str, Any] = {}

    def take(name: str, record: dict[str, Any] | str, path: tuple[str, ...], kind: str) -> None:
        if isinstance(record, str):  # why the whole file is unusable
            missing[name] = record
            return
        raw = _dig(record, path)
        value = _as_rate(raw) if kind == "rate" else (raw if isinstance(raw, bool) else None)
        if value is None:
            shown = "absent" if raw is None else f"not a valid {'rate in [0, 1]' if kind == 'rate' else 'boolean'}"
            missing[name] = f"{'.'.join(path)} is {shown}"
        values[name] = value

    evaluation = _read(evaluation_json, "evaluation report")
    take("drift_share", evaluation, ("drift", "drift_share"), "rate")
    untestable = _dig(evaluation, ("drift", "untestable_columns"))
    if untestable:  # a share over columns that could not all be tested is not a measurement
        values["drift_share"] = None
        missing["drift_share"] = f"drift not computable for column(s) {untestable}: no values to test"
    take("candidate_accuracy", evaluation, ("quality", "candidate", "accuracy"), "rate")
    take("compared_candidate_accuracy", evaluation, ("quality", "comparison", "candidate", "accuracy"), "rate")
    take("compared_champion_accuracy", evaluation, ("quality", "comparison", "champion", "accuracy"), "rate")
    take("accuracy_drop_se", evaluation, ("quality", "comparison", "accuracy_drop_se"), "rate")
    for metric in ("macro_f1", "roc_auc", "ece"):
        take(f"compared_candidate_{metric}", evaluation, ("quality", "comparison", "candidate", metric), "rate")
        take(f"compared_champion_{metric}", evaluation, ("quality", "comparison", "champion", metric), "rate")
        se = "ece_increase_se" if metric == "ece" else f"{metric}_drop_se"
        take(se, evaluation, ("quality", "comparison", se), "rate")
    if isinstance(evaluation, dict):  # ROC AUC is None for a reason the report gives
        for role in ("candidate", "champion"):
            reason = _dig(evaluation, ("quality", "comparison", role, "roc_auc_reason"))
            if isinstance(reason, str) and values.get(f"compared_{role}_roc_auc") is None:
                missing[f"compared_{role}_roc_auc"] = reason
    take("candidate_fairness_gap", evaluation, ("fairness", "candidate", "max_gap"), "rate")
    take("champion_fairness_gap", evaluation, ("fairness", "champion", "max_gap"), "rate")
    if isinstance(evaluation, dict) and values.get("candidate_fairness_gap") is None:
        reason = _dig(evaluation, ("fairness", "candidate", "reason"))
        if isinstance(reason, str):
            missing["candidate_fairness_gap"] = f"fairness not computable: {reason}"

    analysis = _read(analysis_summary_json, "error analysis summary")
    take("noise_rate", analysis, ("estimated_noise_rate",), "rate")
    if isinstance(analysis, dict) and analysis.get("skipped") is True:
        values["noise_rate"] = None  # a skipped analysis has no estimate, whatever the file says
        missing["noise_rate"] = f"error analysis skipped: {analysis.get('reason')}"
    groups = _group_rates(_dig(analysis, ("per_group",)))
    if groups is not None and not (isinstance(analysis, dict) and analysis.get("skipped") is True):
        values["group_suspect_rates"] = groups
    else:
        missing["group_suspect_rates"] = _why_absent(analysis, "per_group is absent or malformed")
    flagged = _dig(analysis, ("leakage", "flagged"))
    if isinstance(flagged, list) and all(isinstance(f, str) for f in flagged):
        values["leaking_features"] = tuple(flagged)
    else:
        missing["leaking_features"] = _why_absent(analysis, "leakage.flagged is absent or not a list of "
                                                            "feature names")

    take("signature_verified", _read(signing_json, "signing record"), ("verified",), "bool")
    if validation_json is None:
        missing["validation_passed"] = "no validation report given"
    else:
        take("validation_passed", _read(validation_json, "validation report"), ("success",), "bool")
    return Evidence(first_run=bool(first_run), missing=missing, **values)


def _read(path: Path | None, what: str) -> dict[str, Any] | str:
    """The parsed JSON object, or a string saying why there is none."""
    if path is None:
        return f"no {what} given"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path}: file not found"
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return f"{path}: unreadable ({type(exc).__name__})"
    if not isinstance(data, dict):
        return f"{path}: not a JSON object"
    return data


def _dig(record: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def _why_absent(analysis: dict[str, Any] | str, otherwise: str) -> str:
    """Why an analysis field is missing: the file, a skipped analysis, or the field itself."""
    if isinstance(analysis, str):
        return analysis
    if analysis.get("skipped") is True:
        return f"error analysis skipped: {analysis.get('reason')}"
    return otherwise


def _group_rates(raw: Any) -> tuple[tuple[str, str, int, float], ...] | None:
    if not isinstance(raw, list):
        return None
    rows = []
    for entry in raw:
        rate = _as_rate(_dig(entry, ("suspect_rate",)))
        n = _dig(entry, ("n_rows",))
        column, group = _dig(entry, ("column",)), _dig(entry, ("value",))
        if rate is None or not isinstance(n, int) or isinstance(n, bool) or n < 0 \
                or not isinstance(column, str) or not isinstance(group, str):
            return None
        rows.append((column, group, n, rate))
    return tuple(rows)


def _as_rate(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def champion_noise_rate(registry: Registry, name: str, version: int | None) -> tuple[float | None, str | None]:
    """The noise estimate the champion's own training run logged, or None and why."""
    if version is None:
        return None, None
    try:
        value = registry.run_metric(name, version, NOISE_METRIC)
    except Exception as exc:  # noqa: BLE001 - the gate must decide, not crash: the check fails
        log.warning("cannot read the champion's noise baseline: %s", exc)
        return None, f"champion v{version}'s run is unreadable: {type(exc).__name__}"
    if value is None:
        return None, f"champion v{version}'s run logged no {NOISE_METRIC}"
    return value, None
