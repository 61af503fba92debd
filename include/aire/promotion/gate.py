"""The promotion gate: thresholds from the config, one check per line of the decision.

The gate fails closed: ``decide`` turns every piece of evidence a check needs that is None
(``aire.promotion.evidence`` says why in ``Evidence.missing``) into a failed check whose
reason starts with "missing evidence". Champion comparisons (and drift, which needs the
champion's reference data) are waived only when ``first_run`` is True and the champion's
evidence is indeed absent; evidence that exists is always checked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from aire.config import Gates

NOT_APPLICABLE = "not applicable: first run (no champion)"


@dataclass(frozen=True)
class Evidence:
    validation_passed: bool | None = None
    drift_share: float | None = None
    first_run: bool = False
    noise_rate: float | None = None
    champion_noise_rate: float | None = None
    candidate_accuracy: float | None = None
    compared_candidate_accuracy: float | None = None
    compared_champion_accuracy: float | None = None
    accuracy_drop_se: float | None = None
    compared_candidate_macro_f1: float | None = None
    compared_champion_macro_f1: float | None = None
    macro_f1_drop_se: float | None = None
    compared_candidate_roc_auc: float | None = None
    compared_champion_roc_auc: float | None = None
    roc_auc_drop_se: float | None = None
    compared_candidate_ece: float | None = None
    compared_champion_ece: float | None = None
    ece_increase_se: float | None = None
    leaking_features: tuple[str, ...] | None = None
    # (column, group, rows, suspect rate) per sensitive group, from the error analysis.
    group_suspect_rates: tuple[tuple[str, str, int, float], ...] | None = None
    candidate_fairness_gap: float | None = None
    champion_fairness_gap: float | None = None
    signature_verified: bool | None = None
    missing: dict[str, str] = field(default_factory=dict)  # field -> why it is None

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        # A field set after reading (dataclasses.replace) is no longer missing.
        record["missing"] = {k: v for k, v in self.missing.items() if getattr(self, k, None) is None}
        return record


@dataclass(frozen=True)
class Check:
    name: str
    value: float | bool | list[str] | None
    threshold: float | bool | None
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    checks: list[Check]

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"promote": self.promote, "failed": self.failed, "checks": [c.to_dict() for c in self.checks]}


# --- deciding ----------------------------------------------------------------------------
def decide(gates: Gates, evidence: Evidence) -> GateDecision:
    e = evidence
    checks = [
        _is_true("data_validation", e.validation_passed, "validation_passed", e),
        _drift(gates, e),
        _noise(gates, e),
        _at_least("accuracy", e.candidate_accuracy, gates.min_accuracy, "candidate_accuracy", e),
        _accuracy_drop(gates, e),
        _regression("macro_f1_drop_vs_champion", gates.max_f1_drop, gates, e, "macro_f1", "macro_f1_drop_se"),
        _regression("roc_auc_drop_vs_champion", gates.max_roc_auc_drop, gates, e, "roc_auc", "roc_auc_drop_se"),
        _regression("calibration_error_increase_vs_champion", gates.max_calibration_error_increase, gates, e,
                    "ece", "ece_increase_se", higher_is_better=False),
        _leakage(gates, e),
        _group_suspect_gap(gates, e),
        _at_most("fairness_gap", e.candidate_fairness_gap, gates.max_fairness_gap, "candidate_fairness_gap", e),
        _fairness_increase(gates, e),
        _is_true("signature_verified", e.signature_verified, "signature_verified", e),
    ]
    return GateDecision(promote=all(c.passed for c in checks), checks=checks)


def _missing(name: str, threshold: float | bool, fields: tuple[str, ...], e: Evidence) -> Check:
    why = "; ".join(f"{f} ({e.missing[f]})" if f in e.missing else f for f in fields)
    return Check(name, None, threshold, False, f"missing evidence: {why}")


def _number(value: float | None) -> float | None:
    # Evidence built by hand may hold NaN; NaN compares False both ways, so treat it as absent.
    return value if value is not None and math.isfinite(value) else None


def _is_true(name: str, value: bool | None, source: str, e: Evidence) -> Check:
    if value is None:
        return _missing(name, True, (source,), e)
    passed = value is True
    return Check(name, value, True, passed, "passed" if passed else f"{source} is {value}")


def _at_most(name: str, value: float | None, limit: float, source: str, e: Evidence) -> Check:
    value = _number(value)
    if value is None:
        return _missing(name, limit, (source,), e)
    passed = value <= limit
    return Check(name, value, limit, passed, f"{value:.4f} {'<=' if passed else '>'} max {limit}")


def _at_least(name: str, value: float | None, limit: float, source: str, e: Evidence) -> Check:
    value = _number(value)
    if value is None:
        return _missing(name, limit, (source,), e)
    passed = value >= limit
    return Check(name, value, limit, passed, f"{value:.4f} {'>=' if passed else '<'} min {limit}")


def _drift(gates: Gates, e: Evidence) -> Check:
    if _number(e.drift_share) is None and e.first_run:
        return Check("drift_share", None, gates.max_drift_share, True, NOT_APPLICABLE)
    return _at_most("drift_share", e.drift_share, gates.max_drift_share, "drift_share", e)


def _noise(gates: Gates, e: Evidence) -> Check:
    """Relative to the champion's own estimate, never above the cap; the cap alone on a first run."""
    baseline = _number(e.champion_noise_rate)
    if baseline is None and not e.first_run:
        return _missing("noise_rate", gates.max_noise_rate, ("champion_noise_rate",), e)
    if baseline is None:
        limit, basis = gates.max_noise_rate, "first run: the absolute cap"
    else:
        limit = min(baseline + gates.max_noise_rate_increase, gates.max_noise_rate)
        basis = (f"champion's {baseline:.4f} + {gates.max_noise_rate_increase}"
                 + (f", capped at {gates.max_noise_rate}" if limit == gates.max_noise_rate else ""))
    check = _at_most("noise_rate", e.noise_rate, round(limit, 6), "noise_rate", e)
    return check if check.value is None else replace(check, reason=f"{check.reason} ({basis})")


def _accuracy_drop(gates: Gates, e: Evidence) -> Check:
    """The candidate may trail the champion by the tolerance plus z paired standard errors."""
    se = _number(e.accuracy_drop_se)
    limit = gates.max_accuracy_drop + gates.regression_z * (se or 0.0)
    check = _worse_than_champion("accuracy_drop_vs_champion", round(limit, 6), e,
                                 worse=("compared_champion_accuracy", e.compared_champion_accuracy),
                                 better=("compared_candidate_accuracy", e.compared_candidate_accuracy),
                                 champion=e.compared_champion_accuracy)
    if check.value is None or check.reason == NOT_APPLICABLE:
        return check
    if se is None:  # the allowance for noise is part of the evidence: without it, fail closed
        return _missing(check.name, limit, ("accuracy_drop_se",), e)
    return replace(check, reason=f"{check.reason} (max {gates.max_accuracy_drop} + "
                                 f"{gates.regression_z} x paired SE {se:.4f})")


def _regression(name: str, tolerance: float, gates: Gates, e: Evidence, metric: str, se_field: str, *,
                higher_is_better: bool = True) -> Check:
    """Like the accuracy drop: tolerance plus z bootstrap standard errors of the paired difference."""
    candidate = (f"compared_candidate_{metric}", getattr(e, f"compared_candidate_{metric}"))
    champion = (f"compared_champion_{metric}", getattr(e, f"compared_champion_{metric}"))
    worse, better = (champion, candidate) if higher_is_better else (candidate, champion)
    se = _number(getattr(e, se_field))
    limit = round(tolerance + gates.regression_z * (se or 0.0), 6)
    check = _worse_than_champion(name, limit, e, worse=worse, better=better, champion=champion[1])
    if check.value is None or check.reason == NOT_APPLICABLE:
        return check
    if se is None:
        return _missing(name, limit, (se_field,), e)
    return replace(check, reason=f"{check.reason} (max {tolerance} + {gates.regression_z} x paired SE {se:.4f})")


def _group_suspect_gap(gates: Gates, e: Evidence) -> Check:
    """Suspected label errors spread evenly over each sensitive attribute's groups.

    Per attribute, the highest minus the lowest group suspect rate (groups with at least
    ``min_group_count`` rows) may exceed the tolerance by regression_z standard errors of a
    difference of two proportions. The worst attribute (largest excess) is reported.
    """
    name, tolerance = "group_suspect_rate_gap", gates.max_group_suspect_rate_gap
    if e.group_suspect_rates is None:
        return _missing(name, tolerance, ("group_suspect_rates",), e)
    worst: tuple[float, float, float, str] | None = None  # (excess, gap, limit, description)
    for column in sorted({c for c, _, _, _ in e.group_suspect_rates}):
        groups = [(g, n, r) for c, g, n, r in e.group_suspect_rates if c == column and n >= gates.min_group_count]
        if len(groups) < 2:
            continue
        high, low = max(groups, key=lambda x: x[2]), min(groups, key=lambda x: x[2])
        se = math.sqrt(high[2] * (1 - high[2]) / high[1] + low[2] * (1 - low[2]) / low[1])
        gap, limit = high[2] - low[2], tolerance + gates.regression_z * se
        described = (f"{column}: {high[0]} {high[2]:.3f} ({high[1]} rows) vs {low[0]} {low[2]:.3f} "
                     f"({low[1]} rows); max {tolerance} + {gates.regression_z} x SE {se:.4f}")
        if worst is None or gap - limit > worst[0]:
            worst = (gap - limit, gap, limit, described)
    if worst is None:
        return Check(name, None, tolerance, True,
                     f"not applicable: no sensitive attribute with two groups of {gates.min_group_count}+ rows "
                     "(the fairness checks judge small groups)")
    _, gap, limit, described = worst
    passed = gap <= limit + 1e-12
    return Check(name, gap, round(limit, 6), passed,
                 f"{gap:.4f} {'<=' if passed else '>'} {limit:.4f}: {described}")


def _leakage(gates: Gates, e: Evidence) -> Check:
    """A feature that alone predicts the label is a leak or a shortcut the model will learn."""
    if not gates.reject_on_leakage:
        return Check("label_leakage", None, False, True, "not checked: gates.reject_on_leakage is false")
    if e.leaking_features is None:
        return _missing("label_leakage", False, ("leaking_features",), e)
    passed = not e.leaking_features
    reason = ("no single feature predicts the label" if passed
              else f"feature(s) {', '.join(e.leaking_features)} alone predict the label")
    return Check("label_leakage", list(e.leaking_features), False, passed, reason)


def _fairness_increase(gates: Gates, e: Evidence) -> Check:
    return _worse_than_champion("fairness_gap_increase_vs_champion", gates.max_fairness_gap_increase, e,
                                worse=("candidate_fairness_gap", e.candidate_fairness_gap),
                                better=("champion_fairness_gap", e.champion_fairness_gap),
                                champion=e.champion_fairness_gap)


def _worse_than_champion(name: str, limit: float, e: Evidence, *, worse: tuple[str, float | None],
                         better: tuple[str, float | None], champion: float | None) -> Check:
    """Passes when ``worse - better <= limit``: how much worse the candidate is than the champion."""
    if _number(champion) is None and e.first_run:
        return Check(name, None, limit, True, NOT_APPLICABLE)
    absent = tuple(source for source, value in (worse, better) if _number(value) is None)
    if absent:
        return _missing(name, limit, absent, e)
    worse_by = float(worse[1]) - float(better[1])  # type: ignore[arg-type]
    passed = worse_by <= limit + 1e-12  # float subtraction noise must not flip an exact tie
    return Check(name, worse_by, limit, passed,
                 f"candidate worse by {worse_by:+.4f}; {'within' if passed else 'beyond'} max {limit}")
