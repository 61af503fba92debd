"""The promotion gate: thresholds from the config, one check per line of the decision.

Every check compares the candidate with a baseline and allows a tolerance plus
``gates.regression_z`` standard errors (``aire.config.Gates`` says where each figure came from):

- ``accuracy``: the prior model (the training labels' class distribution) on the same
  holdout rows; the candidate's Brier score gain over it must exceed ``prior_z`` paired
  standard errors (by default negative: not significantly worse than the prior; optional
  absolute floor ``min_accuracy``);
- the four regressions and ``fairness_gap_increase_vs_champion``: the champion on the same
  holdout rows, with paired (closed-form or bootstrap) standard errors of the difference;
- ``noise_rate``: the champion's own estimate, with the binomial standard errors of both
  (z ``noise_z``);
- ``group_suspect_rate_gap``: the champion's per-group suspect rates (difference in
  differences, four proportions), and ``group_label_shift``: each group's label shares
  against the champion's training batch (the same form), both with family-wise z;
- ``drift_share`` (Evidently's share of drifted features) and ``feature_shift``: any one
  feature whose two-sample test is significant at the family-wise ``drift_alpha``
  (Bonferroni) with an effect of at least ``min_drift_effect``; ``null_rate_increase``: any
  one feature's null rate up by more than ``max_null_rate_increase`` + z SE;
- ``fairness_gap``: reported always; an absolute limit only when the config sets one.

The gate fails closed: ``decide`` turns every piece of evidence a check needs that is None
(``aire.promotion.evidence`` says why in ``Evidence.missing``) into a failed check whose
reason starts with "missing evidence". First-run policy: the checks that need a champion
(drift, feature shift and null rates, the regressions, the fairness increase, the group
suspect rates and label shares) are "not applicable" (reason ``NOT_APPLICABLE``) only when
``first_run`` is True and the champion's evidence is indeed absent; evidence that exists is
always checked. Noise then has its cap only (a multiple of the no-signal level), and the
accuracy, leakage, validation, signature and fairness-measurability checks judge the
candidate alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist
from typing import Any

from aire.config import Gates

NOT_APPLICABLE = "not applicable: first run (no champion)"


@dataclass(frozen=True)
class Evidence:
    validation_passed: bool | None = None
    drift_share: float | None = None
    # (column, method, effect, p-value) per feature: aire.evaluation.two_sample's tests.
    feature_tests: tuple[tuple[str, str, float, float], ...] | None = None
    # (column, reference null rate, current null rate, reference rows, current rows) per feature.
    null_rates: tuple[tuple[str, float, float, int, int], ...] | None = None
    first_run: bool = False
    noise_rate: float | None = None
    champion_noise_rate: float | None = None
    noise_rows: int | None = None  # rows behind each estimate: its binomial standard error
    noise_classes: int | None = None  # classes the analysis knew (the noise cap's no-signal level)
    champion_noise_rows: int | None = None
    candidate_accuracy: float | None = None
    # The prior model (the training labels' class distribution; for accuracy their majority
    # class) on the same holdout rows: its accuracy and Brier score, the candidate's Brier
    # score, and the paired standard errors of the candidate's gains.
    baseline_accuracy: float | None = None
    accuracy_gain_se: float | None = None
    prior_brier: float | None = None
    candidate_brier: float | None = None
    brier_gain_se: float | None = None
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
    # (column, group, rows, suspect rate) per sensitive group, from the error analysis; the
    # champion's from its own training run's analysis (the baseline of the group check).
    group_suspect_rates: tuple[tuple[str, str, int, float], ...] | None = None
    champion_group_suspect_rates: tuple[tuple[str, str, int, float], ...] | None = None
    # (column, group, label, rows, reference rows, shift, SE): each group's share of a label
    # relative to the rest, now minus in the champion's training batch (aire.evaluation.label_shift).
    group_label_shifts: tuple[tuple[str, str, str, int, int, float, float], ...] | None = None
    candidate_fairness_gap: float | None = None
    champion_fairness_gap: float | None = None
    candidate_fairness_gap_se: float | None = None  # bootstrap SE of the candidate's gap
    fairness_gap_increase_se: float | None = None  # paired bootstrap SE of candidate - champion
    fairness_small_groups: tuple[str, ...] = ()  # 'attribute=group (rows)' under min_group_count
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
        _feature_shift(gates, e),
        _null_rate_increase(gates, e),
        _noise(gates, e),
        _beats_prior(gates, e),
        _accuracy_drop(gates, e),
        _regression("macro_f1_drop_vs_champion", gates.max_f1_drop, gates, e, "macro_f1", "macro_f1_drop_se"),
        _regression("roc_auc_drop_vs_champion", gates.max_roc_auc_drop, gates, e, "roc_auc", "roc_auc_drop_se"),
        _regression("calibration_error_increase_vs_champion", gates.max_calibration_error_increase, gates, e,
                    "ece", "ece_increase_se", higher_is_better=False),
        _leakage(gates, e),
        _group_suspect_gap(gates, e),
        _group_label_shift(gates, e),
        _fairness_gap(gates, e),
        _fairness_increase(gates, e),
        _is_true("signature_verified", e.signature_verified, "signature_verified", e),
    ]
    return GateDecision(promote=all(c.passed for c in checks), checks=checks)


def _missing(name: str, threshold: float | bool | None, fields: tuple[str, ...], e: Evidence) -> Check:
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


def _drift(gates: Gates, e: Evidence) -> Check:
    if _number(e.drift_share) is None and e.first_run:
        return Check("drift_share", None, gates.max_drift_share, True, NOT_APPLICABLE)
    return _at_most("drift_share", e.drift_share, gates.max_drift_share, "drift_share", e)


def _feature_shift(gates: Gates, e: Evidence) -> Check:
    """No single feature moved both significantly and far (a filtered sub-population).

    Significant: the feature's p-value times the number of features tested (Bonferroni)
    is at most ``drift_alpha``, so a clean batch fails with probability at most that.
    Far: the effect (KS D, or the total variation distance of category shares) is at least
    ``min_drift_effect``, so that a large batch does not fail on a trivial difference.
    """
    name = "feature_shift"
    if not e.feature_tests:  # None, or no feature tested: nothing measured
        if e.first_run and e.feature_tests is None:
            return Check(name, None, gates.min_drift_effect, True, NOT_APPLICABLE)
        return _missing(name, gates.min_drift_effect, ("feature_tests",), e)
    tested = len(e.feature_tests)
    shifted = [(column, method, effect, min(1.0, p * tested)) for column, method, effect, p in e.feature_tests
               if effect >= gates.min_drift_effect and p * tested <= gates.drift_alpha]
    strongest = max(e.feature_tests, key=lambda t: (t[2], -t[3]))
    shown = shifted or [(strongest[0], strongest[1], strongest[2], min(1.0, strongest[3] * tested))]
    described = "; ".join(f"{c} ({m} effect {x:.3f}, adjusted p {p:.2g})" for c, m, x, p in shown)
    rule = f"effect >= {gates.min_drift_effect} and p x {tested} features <= {gates.drift_alpha}"
    if shifted:
        return Check(name, [c for c, *_ in shifted], gates.min_drift_effect, False, f"shifted: {described} ({rule})")
    return Check(name, [], gates.min_drift_effect, True, f"no feature shifted ({rule}); largest: {described}")


def _null_rate_increase(gates: Gates, e: Evidence) -> Check:
    """No feature's null rate rose by more than ``max_null_rate_increase`` plus regression_z
    standard errors of the difference of the two rates.

    A nullable column that goes 40% empty is a broken feed whatever the share of drifted
    features says (it is one column of many); Evidently leaves missing values out of its tests.
    """
    name = "null_rate_increase"
    if e.null_rates is None:
        if e.first_run:
            return Check(name, None, gates.max_null_rate_increase, True, NOT_APPLICABLE)
        return _missing(name, gates.max_null_rate_increase, ("null_rates",), e)
    risen: list[str] = []
    described: list[str] = []
    largest: tuple[str | None, float, float] = (None, -math.inf, 0.0)
    for column, before, now, n_before, n_now in e.null_rates:
        se = math.sqrt(before * (1 - before) / n_before + now * (1 - now) / n_now)
        limit = gates.max_null_rate_increase + gates.regression_z * se
        if now - before > limit:
            risen.append(column)
            described.append(f"{column} {before:.3f} -> {now:.3f} (rise {now - before:.3f} > {limit:.3f})")
        if now - before > largest[1]:
            largest = (column, now - before, limit)
    rule = f"max {gates.max_null_rate_increase} + {gates.regression_z} x SE"
    if risen:
        return Check(name, risen, gates.max_null_rate_increase, False,
                     f"null rate rose: {'; '.join(described)} ({rule})")
    shown = f"largest: {largest[0]} {largest[1]:+.3f} (limit {largest[2]:.3f})" if largest[0] else "no feature"
    return Check(name, [], gates.max_null_rate_increase, True, f"no null rate rose beyond {rule}; {shown}")


def _noise(gates: Gates, e: Evidence) -> Check:
    """Relative to the champion's own estimate plus z binomial standard errors of the
    difference, never above the cap; the cap alone on a first run.

    The cap is ``max_noise_vs_no_signal`` times what the estimate reads when the labels
    carry no information about the features: confident learning's per-class thresholds
    make every class look equally likely then, so it reads about 1 - 1/K for K classes
    whatever their shares (simulated: 0.49-0.52 for binary labels at 50/50, 70/30 and
    94/6; 0.63-0.67 for three classes; 0.75-0.77 for five: bench/noise_no_signal.py). An absolute ``max_noise_rate``
    applies as well when the config sets one.
    """
    name = "noise_rate"
    classes = e.noise_classes
    if classes is None or classes < 2:
        return _missing(name, None, ("noise_classes",), e)
    no_signal = 1.0 - 1.0 / classes
    cap = gates.max_noise_vs_no_signal * no_signal
    cap_basis = f"{gates.max_noise_vs_no_signal} x the no-signal level {no_signal:.4f} ({classes} classes)"
    if gates.max_noise_rate is not None and gates.max_noise_rate < cap:
        cap, cap_basis = gates.max_noise_rate, f"max_noise_rate {gates.max_noise_rate}"
    cap = round(cap, 6)
    baseline = _number(e.champion_noise_rate)
    if baseline is None and not e.first_run:
        return _missing(name, cap, ("champion_noise_rate",), e)
    if baseline is None:
        limit, basis = cap, f"first run: the cap, {cap_basis}"
    else:
        ours = _number(e.noise_rate)
        if ours is not None and (not e.noise_rows or not e.champion_noise_rows):
            absent = tuple(f for f in ("noise_rows", "champion_noise_rows") if not getattr(e, f))
            return _missing(name, cap, absent, e)
        se = 0.0 if ours is None else math.sqrt(
            baseline * (1 - baseline) / int(e.champion_noise_rows or 1) + ours * (1 - ours) / int(e.noise_rows or 1))
        relative = baseline + gates.max_noise_rate_increase + gates.noise_z * se
        limit = min(relative, cap)
        basis = (f"champion's {baseline:.4f} + {gates.max_noise_rate_increase} + {gates.noise_z} x SE {se:.4f}"
                 + (f", capped at {cap_basis}" if limit == cap else ""))
    check = _at_most(name, e.noise_rate, round(limit, 6), "noise_rate", e)
    return check if check.value is None else replace(check, reason=f"{check.reason} ({basis})")


def _beats_prior(gates: Gates, e: Evidence) -> Check:
    """The candidate beats the prior model on the same holdout rows by ``prior_z`` paired SEs.

    The prior predicts the training labels' class distribution for every row. "Beats" is
    judged on the Brier score, a proper score of the probabilities (value: the prior's minus
    the candidate's; threshold: prior_z x the paired SE of that difference), because
    accuracy cannot see skill that moves no row across the majority class: a 95%-majority
    label reads 0.95 with no skill at all, and a model that ranks well there may still
    answer the majority everywhere. Accuracy against the majority class is in the reason.
    A positive ``prior_z`` demands skill shown at that z; the default is negative (a model
    significantly worse than the prior fails, see ``aire.config.Gates``). The name
    "accuracy" is the check it replaces; ``min_accuracy``, when set, is an absolute floor.
    """
    name = "accuracy"
    fields = ("candidate_accuracy", "baseline_accuracy", "prior_brier", "candidate_brier", "brier_gain_se")
    values = [_number(getattr(e, f)) for f in fields]
    absent = tuple(f for f, v in zip(fields, values, strict=True) if v is None)
    if absent:
        return _missing(name, gates.prior_z, absent, e)
    accuracy, majority, prior, ours, se = (float(v) for v in values)  # type: ignore[arg-type]
    gain, limit = prior - ours, round(gates.prior_z * se, 6)
    # Demanding skill (z >= 0), strictly above: the prior itself (gain 0, SE 0) fails. Only
    # refusing a worse model (z < 0), no worse than the prior passes.
    demanding = gates.prior_z >= 0
    passed = gain > limit if demanding else gain >= limit - 1e-12
    shown = ('>' if passed else '<=') if demanding else ('>=' if passed else '<')
    reason = (f"Brier score {ours:.4f} vs the prior's {prior:.4f}: gain {gain:+.4f} {shown} "
              f"{gates.prior_z} x paired SE {se:.4f}; accuracy {accuracy:.4f} vs the majority class's {majority:.4f}")
    if gates.min_accuracy is not None:
        floor = accuracy >= gates.min_accuracy
        passed = passed and floor
        reason += f", {'>=' if floor else '<'} min_accuracy {gates.min_accuracy}"
    return Check(name, round(gain, 6), limit, passed, reason)


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
    """Suspected label errors must not concentrate in one sensitive group more than they did
    in the champion's training batch.

    Per group g of each attribute (``min_group_count`` rows now and in the reference): the
    excess ``(rate_g - rate_rest) - (ref_g - ref_rest)``, where "rest" is the attribute's
    other rows. Groups differ in how ambiguous their labels are, and the analysis of a later
    batch (champion-blended) reads lower overall than a first run's cross-fit: the
    difference in differences cancels both. It may exceed the tolerance by z standard
    errors of four independent proportions, each Agresti-Caffo adjusted (one suspect and
    one clean pseudo-row), so a small or suspect-free group still has an honest error. The
    worst group (largest excess over its limit) is reported; groups too small are named.
    """
    name, tolerance = "group_suspect_rate_gap", gates.max_group_suspect_rate_gap
    if e.group_suspect_rates is None:
        return _missing(name, tolerance, ("group_suspect_rates",), e)
    too_many = _too_many_groups(e.group_suspect_rates, gates.max_sensitive_groups)
    if too_many:
        return Check(name, None, tolerance, False, too_many)
    reference = e.champion_group_suspect_rates
    if reference is None:
        if e.first_run:
            return Check(name, None, tolerance, True,
                         f"{NOT_APPLICABLE}: no reference per-group suspect rates; groups differ in how "
                         "ambiguous their labels are, so only a change against the champion's batch is judged")
        return _missing(name, tolerance, ("champion_group_suspect_rates",), e)
    ref = {(c, g): (n, r) for c, g, n, r in reference}
    worst: tuple[float, float, float, str] | None = None  # (excess over limit, excess, limit, description)
    measured: list[tuple[float, float, str]] = []  # (excess, SE, description) per group
    small: list[str] = []
    for column in sorted({c for c, _, _, _ in e.group_suspect_rates}):
        now = {g: (n, r) for c, g, n, r in e.group_suspect_rates if c == column}
        then = {g: v for (c, g), v in ref.items() if c == column}
        for group, (n, rate) in sorted(now.items()):
            n_ref, rate_ref = then.get(group, (0, 0.0))
            rest, rest_ref = _rest(now, group), _rest(then, group)
            if min(n, n_ref, rest[0], rest_ref[0]) < gates.min_group_count:
                small.append(f"{column}={group} ({n} rows, reference {n_ref})")
                continue
            excess = (rate - rest[1]) - (rate_ref - rest_ref[1])
            se = math.sqrt(sum(_adjusted_variance(count, share) for count, share in
                               ((n, rate), rest, (n_ref, rate_ref), rest_ref)))
            measured.append((excess, se, f"{column}={group}: {rate:.3f} vs rest {rest[1]:.3f} now ({n} rows), "
                                         f"{rate_ref:.3f} vs {rest_ref[1]:.3f} in the champion's batch ({n_ref} rows)"))
    z = family_z(gates.regression_z, len(measured), two_sided=False)
    for excess, se, what in measured:
        limit = tolerance + z * se
        if worst is None or excess - limit > worst[0]:
            worst = (excess - limit, excess, limit, f"{what}; max {tolerance} + {z:.3f} x SE {se:.4f} "
                                                    f"(z for {len(measured)} group(s))")
    unjudged = f"; under {gates.min_group_count} rows, reported not gated: {', '.join(small)}" if small else ""
    if worst is None:
        return Check(name, None, tolerance, True,
                     f"not applicable: no group with {gates.min_group_count}+ rows here and in the champion's "
                     f"batch (the fairness checks judge small groups){unjudged}")
    _, excess, limit, described = worst
    passed = excess <= limit + 1e-12
    return Check(name, round(excess, 6), round(limit, 6), passed,
                 f"{excess:+.4f} {'<=' if passed else '>'} {limit:.4f}: {described}{unjudged}")


def _group_label_shift(gates: Gates, e: Evidence) -> Check:
    """A group's share of a label must not move against the rest's, relative to the champion's batch.

    The largest |shift| over every (attribute, group, label) measured may exceed the
    tolerance by a family-wise z: regression_z's one-sided error rate, Bonferroni-divided over
    the shifts and both directions, so a clean batch of many groups is not rejected by one
    of them by chance. Labels rewritten for one group only move nothing else the gate sees.
    """
    name, tolerance = "group_label_shift", gates.max_group_label_shift
    shifts = e.group_label_shifts
    if shifts is None:
        if e.first_run:
            return Check(name, None, tolerance, True, NOT_APPLICABLE)
        return _missing(name, tolerance, ("group_label_shifts",), e)
    if not shifts:
        return Check(name, None, tolerance, True,
                     f"not applicable: no group with {gates.min_group_count}+ rows here and in the champion's batch")
    z = family_z(gates.regression_z, len(shifts), two_sided=True)
    column, group, label, rows, ref_rows, shift, se = max(shifts, key=lambda s: abs(s[5]) - z * s[6])
    limit = tolerance + z * se
    passed = abs(shift) <= limit + 1e-12
    return Check(name, round(shift, 6), round(limit, 6), passed,
                 f"{column}={group}, label {label}: share moved {shift:+.4f} against the rest's "
                 f"({rows} rows, {ref_rows} in the champion's batch); {'within' if passed else 'beyond'} "
                 f"{tolerance} + {z:.3f} x SE {se:.4f} (z for {len(shifts)} shift(s), both directions)")


def family_z(z: float, tests: int, *, two_sided: bool) -> float:
    """The z that keeps ``tests`` tests together at the one-sided error rate of ``z`` (Bonferroni)."""
    alpha = 1.0 - NormalDist().cdf(z)
    share = alpha / (max(tests, 1) * (2 if two_sided else 1))
    return z if tests <= 1 and not two_sided else NormalDist().inv_cdf(1.0 - share)


def _rest(groups: dict[str, tuple[int, float]], group: str) -> tuple[int, float]:
    """Rows and suspect rate of the attribute's other groups together."""
    rows = sum(n for g, (n, _) in groups.items() if g != group)
    suspects = sum(n * r for g, (n, r) in groups.items() if g != group)
    return rows, (suspects / rows if rows else 0.0)


def _adjusted_variance(rows: int, rate: float) -> float:
    """Variance of a proportion with one pseudo-suspect and one pseudo-clean row (Agresti-Caffo)."""
    adjusted = (rate * rows + 1) / (rows + 2)
    return adjusted * (1 - adjusted) / (rows + 2)


def _too_many_groups(rates: tuple[tuple[str, str, int, float], ...], limit: int) -> str | None:
    counts: dict[str, int] = {}
    for column, _, _, _ in rates:
        counts[column] = counts.get(column, 0) + 1
    over = {c: k for c, k in counts.items() if k > limit}
    if not over:
        return None
    listed = ", ".join(f"'{c}' has {k}" for c, k in sorted(over.items()))
    return (f"sensitive attribute(s) with too many groups: {listed} distinct values (> gates.max_sensitive_groups "
            f"{limit}): not a group attribute; bin it or leave it out of dataset.sensitive")


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


def _fairness_gap(gates: Gates, e: Evidence) -> Check:
    """The candidate's worst gap, always measured and reported; judged against an absolute
    limit only when ``max_fairness_gap`` is set (the champion comparison is the default judge)."""
    name, limit = "fairness_gap", gates.max_fairness_gap
    value = _number(e.candidate_fairness_gap)
    if value is None:  # an unmeasurable gap is never a pass, limit or not
        return _missing(name, limit, ("candidate_fairness_gap",), e)
    se = _number(e.candidate_fairness_gap_se)
    shown = f"{value:.4f}" + (f" (bootstrap SE {se:.4f})" if se is not None else "")
    small = (f"; under min_group_count, reported not gated: {', '.join(e.fairness_small_groups)}"
             if e.fairness_small_groups else "")
    if limit is None:
        return Check(name, value, None, True, f"{shown}: reported, not gated (gates.max_fairness_gap is null; "
                                              f"fairness_gap_increase_vs_champion judges it){small}")
    passed = value <= limit
    return Check(name, value, limit, passed, f"{shown} {'<=' if passed else '>'} max {limit}{small}")


def _fairness_increase(gates: Gates, e: Evidence) -> Check:
    """The candidate's gap minus the champion's on the same holdout rows, within the tolerance
    plus z paired bootstrap standard errors of that difference."""
    name = "fairness_gap_increase_vs_champion"
    se = _number(e.fairness_gap_increase_se)
    limit = round(gates.max_fairness_gap_increase + gates.regression_z * (se or 0.0), 6)
    check = _worse_than_champion(name, limit, e, worse=("candidate_fairness_gap", e.candidate_fairness_gap),
                                 better=("champion_fairness_gap", e.champion_fairness_gap),
                                 champion=e.champion_fairness_gap)
    if check.value is None or check.reason == NOT_APPLICABLE:
        return check
    if se is None:
        return _missing(name, limit, ("fairness_gap_increase_se",), e)
    return replace(check, reason=f"{check.reason} (max {gates.max_fairness_gap_increase} + {gates.regression_z} "
                                 f"x paired bootstrap SE {se:.4f})")


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
