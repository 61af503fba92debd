"""Each gate check against its baseline, with its error bar: it passes clean evidence, rejects
the corruption it is for, fails closed on missing evidence, and behaves as documented on a
first run. And bad sensitive attributes (a one-row group, 200 distinct values, all null), from
the evaluation's own output to a named outcome in the decision."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aire.config import Gates, parse_config
from aire.constants import TAG_SIGNED_DIGEST
from aire.evaluation.fairness import fairness, paired_gap_errors
from aire.evaluation.quality import prior_baseline, quality
from aire.evaluation.report import write_report
from aire.promotion.evidence import champion_analysis, evidence_from_files
from aire.promotion.gate import NOT_APPLICABLE, Evidence, decide
from aire.registry.mlflow_registry import Registry
from tests.unit.promotion.test_gate import GOOD


def _check(evidence: Evidence, name: str, **gates: Any) -> Any:
    return next(c for c in decide(Gates(**gates), evidence).checks if c.name == name)


# --- accuracy: the candidate beats the prior model ------------------------------------------
def test_prior_baseline_is_the_training_majority_on_the_same_rows() -> None:
    y = np.array([0] * 90 + [1] * 10)
    skilled = np.column_stack([np.where(y == 0, 0.9, 0.3), np.where(y == 0, 0.1, 0.7)])
    result = prior_baseline(y, skilled, [0, 1], train_labels=[0] * 95 + [1] * 5)
    assert result.label == 0 and result.accuracy == pytest.approx(0.9) and result.candidate_accuracy == 1.0
    prior_brier = np.mean(np.where(y == 0, 2 * 0.05 ** 2, 2 * 0.95 ** 2))
    assert result.brier == pytest.approx(prior_brier) and result.candidate_brier < result.brier
    gain = np.where(y == 0, 2 * 0.05 ** 2, 2 * 0.95 ** 2) - np.where(y == 0, 2 * 0.1 ** 2, 2 * 0.3 ** 2)
    assert result.brier_gain_se == pytest.approx(gain.std(ddof=1) / math.sqrt(100))
    # Without training labels the holdout's own counts give the prior, and the report says so.
    assert "holdout's own labels" in prior_baseline(y, skilled, [0, 1]).source


def _prior_evidence(y: np.ndarray, proba: np.ndarray) -> Evidence:
    baseline = prior_baseline(y, proba, [0, 1], train_labels=y)
    return replace(GOOD, candidate_accuracy=baseline.candidate_accuracy, baseline_accuracy=baseline.accuracy,
                   prior_brier=baseline.brier, candidate_brier=baseline.candidate_brier,
                   brier_gain_se=baseline.brier_gain_se)


def test_a_95_percent_majority_model_is_judged_on_skill_not_on_its_accuracy() -> None:
    """Accuracy cannot tell these apart: each answers the majority on every row (0.95)."""
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.05).astype(int)
    ranked = np.clip(0.05 + 0.3 * y + rng.normal(0, 0.05, 4000), 0.01, 0.45)  # below 0.5: never the minority
    skilled = _prior_evidence(y, np.column_stack([1 - ranked, ranked]))
    prior = _prior_evidence(y, np.tile([1 - y.mean(), y.mean()], (4000, 1)))
    noisy = np.clip(0.05 + rng.normal(0, 0.15, 4000), 0.01, 0.45)  # no skill, and noise on top
    worse = _prior_evidence(y, np.column_stack([1 - noisy, noisy]))
    accuracies = {skilled.candidate_accuracy, prior.candidate_accuracy, worse.candidate_accuracy}
    assert accuracies == {skilled.baseline_accuracy}
    # The default rejects a model significantly worse than the prior ...
    assert _check(skilled, "accuracy").passed and not _check(worse, "accuracy").passed
    assert _check(prior, "accuracy").passed  # ... and lets the prior itself through: no worse than itself
    assert "gain +0.0000 >= -2.326 x paired SE" in _check(prior, "accuracy").reason  # the rule it passed
    assert " < -2.326 x paired SE" in _check(worse, "accuracy").reason
    # A positive prior_z demands shown skill: then the prior itself fails (gain 0 is not > 0).
    assert _check(skilled, "accuracy", prior_z=2.326).passed and not _check(prior, "accuracy", prior_z=2.326).passed


def test_ten_classes_at_half_accuracy_beat_their_prior() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 2000)
    proba = np.full((2000, 10), 0.5 / 9)
    hit = rng.random(2000) < 0.5
    proba[np.arange(2000), np.where(hit, y, (y + 1) % 10)] = 0.5
    baseline = prior_baseline(y, proba, list(range(10)), train_labels=y)
    assert 0.45 < baseline.candidate_accuracy < 0.55 and baseline.accuracy < 0.15
    evidence = replace(GOOD, candidate_accuracy=baseline.candidate_accuracy, baseline_accuracy=baseline.accuracy,
                       prior_brier=baseline.brier, candidate_brier=baseline.candidate_brier,
                       brier_gain_se=baseline.brier_gain_se)
    check = _check(evidence, "accuracy", prior_z=2.326)
    assert check.passed and "vs the majority class's" in check.reason
    assert not _check(evidence, "accuracy", min_accuracy=0.6).passed  # an old config's floor still holds


# --- noise: relative to the champion, with a binomial error bar ------------------------------
def test_the_noise_allowance_shrinks_with_the_rows_behind_both_estimates() -> None:
    small = replace(GOOD, noise_rate=0.32, noise_rows=300, champion_noise_rows=300)
    large = replace(GOOD, noise_rate=0.32, noise_rows=100_000)
    assert _check(small, "noise_rate").passed  # 0.28 + 0.035 + 1.645 x SE 0.037 = 0.376
    assert not _check(large, "noise_rate").passed  # 0.28 + 0.035 + 1.645 x SE 0.002 = 0.318
    assert not _check(replace(small, noise_rate=0.39), "noise_rate").passed
    assert _check(replace(large, noise_rate=0.317), "noise_rate").passed
    check = _check(replace(GOOD, noise_rows=None, missing={"noise_rows": "n_rows is absent"}), "noise_rate")
    assert not check.passed and check.reason.startswith("missing evidence: noise_rows (n_rows is absent)")


# --- group suspect rates: against the champion's own per-group rates ---------------------------
REFERENCE = (("race", "a", 2000, 0.10), ("race", "b", 800, 0.18), ("race", "tiny", 12, 0.5))


def _rates(a: float, b: float, n: tuple[int, int] = (1000, 400)) -> tuple[tuple[str, str, int, float], ...]:
    return (("race", "a", n[0], a), ("race", "b", n[1], b), ("race", "tiny", 6, 1.0))


def test_groups_that_differ_as_the_reference_did_pass() -> None:
    """The census case: groups 0.08 apart in the reference and now, over thousands of rows."""
    evidence = replace(GOOD, group_suspect_rates=_rates(0.09, 0.17), champion_group_suspect_rates=REFERENCE)
    check = _check(evidence, "group_suspect_rate_gap")
    assert check.passed and abs(check.value) < 0.01
    assert "race=tiny (6 rows, reference 12)" in check.reason and "reported not gated" in check.reason


def test_suspects_moving_into_one_group_are_rejected_and_named() -> None:
    evidence = replace(GOOD, group_suspect_rates=_rates(0.09, 0.35), champion_group_suspect_rates=REFERENCE)
    check = _check(evidence, "group_suspect_rate_gap")
    # (0.35 - 0.09) - (0.18 - 0.10) = 0.18 (the tiny group is part of "the rest") against 0.02 + 2.326 x SE 0.03
    assert not check.passed and check.value == pytest.approx(0.18, abs=0.01) and "race=b" in check.reason
    # A lower overall level (the champion-blended analysis reads lower than a first run's) cancels out.
    assert _check(replace(evidence, group_suspect_rates=_rates(0.02, 0.10)), "group_suspect_rate_gap").passed


def test_a_small_group_gets_a_wide_error_bar() -> None:
    """The same 0.1 excess: noise over 40-row groups, a shift over 4,000-row ones."""
    reference = (("race", "a", 40, 0.1), ("race", "b", 40, 0.1))
    def rates(n: int) -> tuple[tuple[str, str, int, float], ...]:
        return (("race", "a", n, 0.1), ("race", "b", n, 0.2))
    assert _check(replace(GOOD, group_suspect_rates=rates(40), champion_group_suspect_rates=reference),
                  "group_suspect_rate_gap").passed
    big = tuple((c, g, 4000, r) for c, g, _, r in reference)
    assert not _check(replace(GOOD, group_suspect_rates=rates(4000), champion_group_suspect_rates=big),
                      "group_suspect_rate_gap").passed


def test_group_check_first_run_and_missing_reference() -> None:
    first = replace(GOOD, first_run=True, champion_group_suspect_rates=None)
    check = _check(first, "group_suspect_rate_gap")
    assert check.passed and check.reason.startswith(NOT_APPLICABLE) and "per-group" in check.reason
    later = replace(GOOD, champion_group_suspect_rates=None,
                    missing={"champion_group_suspect_rates": "champion v2's error analysis is unreadable"})
    check = _check(later, "group_suspect_rate_gap")
    assert not check.passed and "v2's error analysis is unreadable" in check.reason


# --- fairness: reported always, judged against the champion with a bootstrap error bar --------
def test_fairness_gap_is_reported_not_gated_unless_a_limit_is_set() -> None:
    high = replace(GOOD, candidate_fairness_gap=0.45, champion_fairness_gap=0.42)  # the 7k-row set's case
    check = _check(high, "fairness_gap")
    assert check.passed and check.value == 0.45 and check.threshold is None and "reported, not gated" in check.reason
    assert "bootstrap SE 0.0300" in check.reason
    assert _check(high, "fairness_gap_increase_vs_champion").passed  # +0.03
    assert not _check(high, "fairness_gap", max_fairness_gap=0.25).passed


def test_fairness_increase_allowance_grows_with_its_bootstrap_error() -> None:
    worse = replace(GOOD, candidate_fairness_gap=0.25, champion_fairness_gap=0.10)  # +0.15
    assert not _check(worse, "fairness_gap_increase_vs_champion").passed  # 0.02 + 2.326 x 0.02
    assert _check(replace(worse, fairness_gap_increase_se=0.06), "fairness_gap_increase_vs_champion").passed
    first = _check(replace(GOOD, first_run=True, champion_fairness_gap=None, fairness_gap_increase_se=None),
                   "fairness_gap_increase_vs_champion")
    assert first.passed and first.reason == NOT_APPLICABLE


def _holdout(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"g": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])})
    y = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    return frame, y, p


CONFIG = parse_config({"name": "m", "dataset": {"label": "y", "features": {"numeric": ["x"]}, "sensitive": ["g"]}})


def test_bootstrap_errors_shrink_with_rows_and_pair_the_two_models() -> None:
    errors = {}
    for n in (400, 6400):
        frame, y, p = _holdout(n)
        champion = np.where(np.random.default_rng(9).random(n) < 0.95, p, 1 - p)  # close to the candidate
        errors[n] = paired_gap_errors(frame, y, p, champion, CONFIG, 1, 20, replicates=100, max_rows=10_000)
    small, large = errors[400], errors[6400]
    assert small.candidate_gap_se and large.candidate_gap_se and large.candidate_gap_se < small.candidate_gap_se / 2
    assert small.increase_se is not None and small.increase_se < small.candidate_gap_se  # pairing cancels noise
    frame, y, p = _holdout(400)
    assert paired_gap_errors(frame, y, p, None, CONFIG, 1, 20, replicates=50).increase_se is None


def test_multiclass_fairness_takes_the_worst_class_one_vs_rest() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n)})
    y = rng.integers(0, 3, n)
    p = y.copy()
    # Class 2 is under-predicted for group b only: its recall and selection rate drop there.
    hit = (frame["g"].to_numpy() == "b") & (y == 2) & (rng.random(n) < 0.5)
    p[hit] = 0
    result = fairness(frame, y, p, CONFIG, positive_label=2, classes=[0, 1, 2])
    attribute = result.attributes["g"]
    assert result.classes_compared == 3 and attribute.worst_class == "2"
    assert attribute.equalized_odds_difference == pytest.approx(hit.sum() / ((frame["g"] == "b") & (y == 2)).sum(),
                                                                abs=1e-9)
    fair = fairness(frame, y, y, CONFIG, positive_label=2, classes=[0, 1, 2])
    assert fair.max_gap is not None and fair.max_gap < attribute.gap  # type: ignore[operator]


def test_binary_gaps_agree_with_fairlearn() -> None:
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    frame, y, p = _holdout(2000, seed=4)
    attribute = fairness(frame, y, p, CONFIG, positive_label=1, min_group_count=1).attributes["g"]
    g = frame["g"]
    assert attribute.demographic_parity_difference == pytest.approx(demographic_parity_difference(
        y, p, sensitive_features=g))
    assert attribute.equalized_odds_difference == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g))


# --- bad sensitive attributes: a clear, named outcome in the decision --------------------------
def _decision(tmp_path: Path, frame: pd.DataFrame, y: np.ndarray, p: np.ndarray,
              group_rates: tuple[tuple[str, str, int, float], ...]) -> Any:
    proba = np.column_stack([1 - p * 0.8 - 0.1, p * 0.8 + 0.1])
    gates = Gates()
    fair = fairness(frame, y, p, CONFIG, 1, gates.min_group_count, max_groups=gates.max_sensitive_groups)
    errors = paired_gap_errors(frame, y, p, None, CONFIG, 1, gates.min_group_count, replicates=50) \
        if fair.max_gap is not None else None
    write_report(tmp_path, None, quality(y, proba, [0, 1]), None, fair, None,
                 baseline=prior_baseline(y, proba, [0, 1], train_labels=y), gap_errors=errors)
    evidence = evidence_from_files(tmp_path / "evaluation.json", None, None, first_run=True)
    evidence = replace(evidence, validation_passed=True, noise_rate=0.1, noise_rows=len(y), noise_classes=2,
                       leaking_features=(), group_suspect_rates=group_rates, signature_verified=True)
    return decide(gates, evidence)


def test_a_group_with_one_row_is_named_and_the_rest_are_compared(tmp_path: Path) -> None:
    frame, y, p = _holdout(600)
    frame.loc[0, "g"] = "solo"
    rates = (("g", "a", 360, 0.1), ("g", "b", 180, 0.1), ("g", "c", 59, 0.1), ("g", "solo", 1, 1.0))
    decision = _decision(tmp_path, frame, y, p, rates)
    checks = {c.name: c for c in decision.checks}
    assert decision.promote, decision.to_dict()
    assert "g=solo (1 rows)" in checks["fairness_gap"].reason and "reported not gated" in checks["fairness_gap"].reason
    assert isinstance(checks["fairness_gap"].value, float)


def test_a_sensitive_attribute_with_200_values_rejects_with_the_rule(tmp_path: Path) -> None:
    frame, y, p = _holdout(1000)
    frame["g"] = [f"zip{i % 200}" for i in range(1000)]
    rates = tuple(("g", f"zip{i}", 5, 0.2) for i in range(200))
    decision = _decision(tmp_path, frame, y, p, rates)
    checks = {c.name: c for c in decision.checks}
    assert not decision.promote and {"fairness_gap", "group_suspect_rate_gap"} <= set(decision.failed)
    assert "200 distinct values (> gates.max_sensitive_groups 50)" in checks["fairness_gap"].reason
    assert "'g' has 200" in checks["group_suspect_rate_gap"].reason


def test_an_all_null_sensitive_column_rejects_with_the_reason(tmp_path: Path) -> None:
    frame, y, p = _holdout(600)
    frame["g"] = None
    decision = _decision(tmp_path, frame, y, p, (("g", "None", 600, 0.1),))
    checks = {c.name: c for c in decision.checks}
    assert decision.failed == ["fairness_gap"]
    assert "column 'g' is null in every row" in checks["fairness_gap"].reason
    assert checks["fairness_gap"].reason.startswith("missing evidence")


# --- the champion's own error analysis, read from its MLflow run -----------------------------
def test_champion_analysis_reads_the_champions_summary_and_never_raises(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", (tmp_path / "artifacts").as_uri())
    run_id = registry.run_for("p", "champion-run")
    summary = tmp_path / "analysis" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(json.dumps({"n_rows": 700, "skipped": False, "estimated_noise_rate": 0.2, "per_group": [
        {"column": "sex", "value": "f", "n_rows": 200, "n_suspected": 30, "suspect_rate": 0.15}]}))
    registry.log_artifacts(run_id, summary.parent, "analysis")
    version, _ = registry.register("p", run_id, "champion-run", {TAG_SIGNED_DIGEST: "ab" * 32})
    values, missing = champion_analysis(registry, "p", version.version, tmp_path / "download")
    assert values == {"champion_noise_rows": 700, "champion_group_suspect_rates": (("sex", "f", 200, 0.15),)}
    assert missing == {}
    assert champion_analysis(registry, "p", None, tmp_path / "d2") == ({}, {})
    values, missing = champion_analysis(registry, "p", 99, tmp_path / "d3")
    assert values == {} and "v99" in missing["champion_group_suspect_rates"]


# --- label shares per group: against the champion's batch, family-wise z ---------------------
def test_label_shift_rejects_a_rewritten_group_and_passes_many_clean_groups() -> None:
    clean = tuple(("race", f"g{i}", "1", 300, 600, 0.05 * (-1) ** i, 0.03) for i in range(9))
    check = _check(replace(GOOD, group_label_shifts=clean), "group_label_shift")
    assert check.passed and "z for 9 shift(s)" in check.reason  # 0.05 < 0.02 + 3.26 x 0.03
    one = replace(GOOD, group_label_shifts=(("race", "g0", "1", 300, 600, 0.05, 0.03),))
    assert not _check(one, "group_label_shift", max_group_label_shift=0.0, regression_z=1.0).passed
    rewritten = (*clean[1:], ("race", "White", "1", 340, 680, -0.17, 0.03))
    check = _check(replace(GOOD, group_label_shifts=rewritten), "group_label_shift")
    assert not check.passed and check.value == -0.17 and "race=White, label 1" in check.reason
    first = _check(replace(GOOD, first_run=True, group_label_shifts=None), "group_label_shift")
    assert first.passed and first.reason == NOT_APPLICABLE
    missing = _check(replace(GOOD, group_label_shifts=None, missing={"group_label_shifts": "absent"}),
                     "group_label_shift")
    assert not missing.passed and missing.reason.startswith("missing evidence")
