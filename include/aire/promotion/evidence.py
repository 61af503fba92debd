"""The gate's evidence, read from the stage reports: ``evidence_from_files`` never raises.

A missing, unreadable or garbled report leaves the fields it would give as None and
records why in ``Evidence.missing``; ``aire.promotion.gate.decide`` fails every check that
needs them.

Where each field comes from:
- evaluation.json (``aire.evaluation.report.write_report``): drift.drift_share,
  drift.feature_tests (each feature's two-sample test: method, effect, p-value),
  drift.null_rate_change with n_reference and n_current (each feature's null rate, both sides),
  quality.candidate.accuracy (the whole holdout), quality.baseline.{accuracy, accuracy_gain_se,
  brier, candidate_brier, brier_gain_se} (the prior model on the same rows),
  quality.comparison.{candidate,champion}
  .{accuracy,macro_f1,roc_auc,ece} and their paired standard errors .accuracy_drop_se,
  .macro_f1_drop_se, .roc_auc_drop_se, .ece_increase_se (both models on the same rows),
  fairness.candidate.max_gap, fairness.champion.max_gap (same holdout rows),
  fairness.errors.candidate_gap_se and .increase_se (paired bootstrap),
  fairness.label_shift.shifts (per-group label shares against the champion's batch), and
  fairness.candidate.small_groups (groups reported, not compared);
- the error analysis summary.json: estimated_noise_rate (None when the analysis was skipped)
  and n_rows, the rows behind it (its binomial standard error), per_class (one entry per
  class: the classes with rows set the noise cap's no-signal level),
  and leakage.flagged, the features that alone predict the label (``label_leakage``);
  per_group, each sensitive group's share of suspected label errors
  (``group_suspect_rate_gap``: noise that concentrates in one group is a fairness problem);
- ``champion_noise_rate``: set by the caller from the champion's training run (the MLflow
  metric analysis.estimated_noise_rate): the noise check's baseline. Only a first run goes
  without it (the cap, a multiple of the no-signal level, is then the limit);
- ``champion_noise_rows`` and ``champion_group_suspect_rates``: set by the caller from the
  champion's training run's own summary.json (``champion_analysis``, the artifact
  analysis/summary.json), the baselines of the noise error bar and of the group check;
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
from typing import TYPE_CHECKING, Any, TypeGuard

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
        value = (_as_rate(raw) if kind == "rate" else _as_score(raw) if kind == "score"
                 else (raw if isinstance(raw, bool) else None))
        if value is None:
            wanted = {"rate": "rate in [0, 1]", "score": "score in [0, 2]"}.get(kind, "boolean")
            shown = "absent" if raw is None else f"not a valid {wanted}"
            missing[name] = f"{'.'.join(path)} is {shown}"
        values[name] = value

    evaluation = _read(evaluation_json, "evaluation report")
    take("drift_share", evaluation, ("drift", "drift_share"), "rate")
    untestable = _dig(evaluation, ("drift", "untestable_columns"))
    if untestable:  # a share over columns that could not all be tested is not a measurement
        values["drift_share"] = None
        missing["drift_share"] = f"drift not computable for column(s) {untestable}: no values to test"
    nulls = _null_rates(_dig(evaluation, ("drift",)))
    if nulls is not None:
        values["null_rates"] = nulls
    else:
        missing["null_rates"] = (evaluation if isinstance(evaluation, str)
                                 else "drift.null_rate_change, n_reference or n_current is absent or malformed")
    tests = _feature_tests(_dig(evaluation, ("drift", "feature_tests")))
    if tests is not None:
        values["feature_tests"] = tests
    else:
        missing["feature_tests"] = (evaluation if isinstance(evaluation, str)
                                    else "drift.feature_tests is absent or malformed")
    take("candidate_accuracy", evaluation, ("quality", "candidate", "accuracy"), "rate")
    take("compared_candidate_accuracy", evaluation, ("quality", "comparison", "candidate", "accuracy"), "rate")
    take("compared_champion_accuracy", evaluation, ("quality", "comparison", "champion", "accuracy"), "rate")
    take("accuracy_drop_se", evaluation, ("quality", "comparison", "accuracy_drop_se"), "rate")
    take("baseline_accuracy", evaluation, ("quality", "baseline", "accuracy"), "rate")
    take("accuracy_gain_se", evaluation, ("quality", "baseline", "accuracy_gain_se"), "rate")
    take("prior_brier", evaluation, ("quality", "baseline", "brier"), "score")
    take("candidate_brier", evaluation, ("quality", "baseline", "candidate_brier"), "score")
    take("brier_gain_se", evaluation, ("quality", "baseline", "brier_gain_se"), "score")
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
    shifts = _label_shifts(_dig(evaluation, ("fairness", "label_shift", "shifts")))
    if shifts is not None:
        values["group_label_shifts"] = shifts
    else:
        missing["group_label_shifts"] = (evaluation if isinstance(evaluation, str)
                                         else "fairness.label_shift is absent or malformed (no champion batch "
                                              "to compare with, or it failed)")
    take("candidate_fairness_gap_se", evaluation, ("fairness", "errors", "candidate_gap_se"), "rate")
    take("fairness_gap_increase_se", evaluation, ("fairness", "errors", "increase_se"), "rate")
    small = _dig(evaluation, ("fairness", "candidate", "small_groups"))
    if isinstance(small, list) and all(isinstance(g, str) for g in small):
        values["fairness_small_groups"] = tuple(small)
    if isinstance(evaluation, dict) and values.get("candidate_fairness_gap") is None:
        reason = _dig(evaluation, ("fairness", "candidate", "reason"))
        if isinstance(reason, str):
            missing["candidate_fairness_gap"] = f"fairness not computable: {reason}"

    analysis = _read(analysis_summary_json, "error analysis summary")
    take("noise_rate", analysis, ("estimated_noise_rate",), "rate")
    if isinstance(analysis, dict) and analysis.get("skipped") is True:
        values["noise_rate"] = None  # a skipped analysis has no estimate, whatever the file says
        missing["noise_rate"] = f"error analysis skipped: {analysis.get('reason')}"
    rows = _dig(analysis, ("n_rows",))
    if _is_count(rows):
        values["noise_rows"] = rows
    else:
        missing["noise_rows"] = _why_absent(analysis, "n_rows is absent or not a positive count")
    present = _classes_present(_dig(analysis, ("per_class",)))
    if present is not None and present >= 2:
        values["noise_classes"] = present
    else:
        missing["noise_classes"] = _why_absent(analysis, "per_class is absent, malformed or has fewer than two "
                                                         "classes with rows")
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


def _is_count(value: Any, *, zero: bool = False) -> TypeGuard[int]:
    """A real int (not a bool), positive, or non-negative with ``zero``."""
    return isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if zero else value > 0)


def _null_rates(drift: Any) -> tuple[tuple[str, float, float, int, int], ...] | None:
    """(column, reference rate, current rate, reference rows, current rows) per feature."""
    if not isinstance(drift, dict) or not isinstance(drift.get("null_rate_change"), dict):
        return None
    n_reference, n_current = drift.get("n_reference"), drift.get("n_current")
    if not (_is_count(n_reference) and _is_count(n_current)):
        return None
    out = []
    for column, rate in drift["null_rate_change"].items():
        before, now = _as_rate(_dig(rate, ("reference",))), _as_rate(_dig(rate, ("current",)))
        if before is None or now is None:
            return None
        out.append((str(column), before, now, n_reference, n_current))
    return tuple(out)


def _classes_present(raw: Any) -> int | None:
    """Classes with rows in the analysed batch (an absent class takes no part in the estimate)."""
    if not isinstance(raw, list):
        return None
    rows = [_dig(entry, ("n_rows",)) for entry in raw]
    if not all(_is_count(n, zero=True) for n in rows):
        return None
    return sum(1 for n in rows if n > 0)


def _feature_tests(raw: Any) -> tuple[tuple[str, str, float, float], ...] | None:
    """(column, method, effect, p-value) per feature; None when any entry is malformed."""
    if not isinstance(raw, dict) or not raw:
        return None
    out = []
    for column, test in raw.items():
        if not isinstance(test, dict):
            return None
        effect, p_value, method = _as_rate(test.get("effect")), _as_rate(test.get("p_value")), test.get("method")
        if effect is None or p_value is None or not isinstance(method, str):
            return None
        out.append((str(column), method, effect, p_value))
    return tuple(out)


def _label_shifts(raw: Any) -> tuple[tuple[str, str, str, int, int, float, float], ...] | None:
    if not isinstance(raw, list):
        return None
    rows = []
    for entry in raw:
        texts = [_dig(entry, (k,)) for k in ("column", "group", "label")]
        counts = [_dig(entry, (k,)) for k in ("rows", "reference_rows")]
        shift, se = _dig(entry, ("shift",)), _as_rate(_dig(entry, ("se",)))
        if not all(isinstance(t, str) for t in texts) or se is None \
                or not all(_is_count(n, zero=True) for n in counts) \
                or isinstance(shift, bool) or not isinstance(shift, (int, float)) \
                or not (math.isfinite(shift) and -1.0 <= shift <= 1.0):
            return None
        rows.append((*texts, *counts, float(shift), se))
    return tuple(rows)


def _as_score(value: Any) -> float | None:
    """A Brier score (0 to 2) or a standard error of one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 2.0 else None


def _as_rate(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def champion_analysis(registry: Registry, name: str, version: int | None,
                      destination: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The baselines the champion's own training run's error analysis gives: ``Evidence``
    fields ``champion_noise_rows`` and ``champion_group_suspect_rates`` (absent ones with why).

    Read from the artifact analysis/summary.json of the champion version's run; never raises.
    """
    if version is None:
        return {}, {}
    what = f"champion v{version}'s error analysis"
    try:
        run_id = registry.version(name, version).run_id
        folder = registry.download(run_id, "analysis/summary.json", destination)
        record = _read(folder if folder.is_file() else folder / "summary.json", what)
    except Exception as exc:  # noqa: BLE001 - the gate must decide, not crash: the checks fail
        log.warning("cannot read %s: %s", what, exc)
        record = f"{what} is unreadable: {type(exc).__name__}"
    if isinstance(record, str):
        return {}, {"champion_noise_rows": record, "champion_group_suspect_rates": record}
    values: dict[str, Any] = {}
    missing: dict[str, str] = {}
    rows = record.get("n_rows")
    if _is_count(rows) and record.get("skipped") is not True:
        values["champion_noise_rows"] = rows
    else:
        missing["champion_noise_rows"] = f"{what}: n_rows is absent or the analysis was skipped"
    groups = _group_rates(record.get("per_group"))
    if groups is not None and record.get("skipped") is not True:
        values["champion_group_suspect_rates"] = groups
    else:
        missing["champion_group_suspect_rates"] = f"{what}: per_group is absent or malformed"
    return values, missing


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
