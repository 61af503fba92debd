"""The fail-closed promotion gate: a policy table, missing and garbled evidence, first runs,
the relative noise check, the noise-aware tolerances for accuracy, F1, ROC AUC and
calibration error, and the leakage check. Each check's baseline and error bar in detail, and
bad sensitive attributes: test_gate_baselines.py."""

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
from aire.evaluation.drift import ColumnDrift, DriftResult, NullRate
from aire.evaluation.fairness import fairness
from aire.evaluation.quality import compare_quality, quality
from aire.evaluation.report import write_report
from aire.promotion.evidence import evidence_from_files
from aire.promotion.gate import NOT_APPLICABLE, Evidence, decide

REGRESSIONS = ["accuracy_drop_vs_champion", "macro_f1_drop_vs_champion", "roc_auc_drop_vs_champion",
               "calibration_error_increase_vs_champion"]
CHECKS = ["data_validation", "drift_share", "feature_shift", "null_rate_increase", "noise_rate", "accuracy",
          *REGRESSIONS, "label_leakage",
          "group_suspect_rate_gap", "group_label_shift", "fairness_gap", "fairness_gap_increase_vs_champion",
          "signature_verified"]

# Each regression is 0.01 against an allowance of tolerance + 2.326 x 0.01: accuracy, F1 and
# ROC AUC 0.04326, calibration error 0.05326.
# Noise estimates over 100,000 rows each: SE 0.00197, so the noise limit is 0.28 + 0.035 + 0.0032.
# The Brier score beats the prior's 0.48 by 0.10 against prior_z x 0.02.
CHAMPION_BASELINES: dict[str, Any] = {
    "champion_noise_rate": 0.28, "champion_noise_rows": 100_000,
    "champion_group_suspect_rates": (("sex", "female", 200, 0.16), ("sex", "male", 500, 0.13))}
GOOD = Evidence(validation_passed=True, drift_share=0.1, first_run=False, noise_rate=0.25, noise_rows=100_000,
                noise_classes=2, feature_tests=(("age", "ks", 0.04, 0.2), ("region", "chi2", 0.03, 0.5)),
                null_rates=(("age", 0.0, 0.0, 700, 300), ("region", 0.02, 0.05, 700, 300)),
                candidate_accuracy=0.76, baseline_accuracy=0.60, accuracy_gain_se=0.02,
                prior_brier=0.48, candidate_brier=0.38, brier_gain_se=0.02,
                compared_candidate_accuracy=0.75,
                compared_champion_accuracy=0.76, accuracy_drop_se=0.01,
                compared_candidate_macro_f1=0.70, compared_champion_macro_f1=0.71, macro_f1_drop_se=0.01,
                compared_candidate_roc_auc=0.78, compared_champion_roc_auc=0.79, roc_auc_drop_se=0.01,
                compared_candidate_ece=0.08, compared_champion_ece=0.07, ece_increase_se=0.01,
                leaking_features=(), group_suspect_rates=(("sex", "female", 200, 0.15), ("sex", "male", 500, 0.13)),
                group_label_shifts=(("sex", "female", "1", 200, 300, -0.02, 0.04),
                                    ("sex", "male", "1", 500, 700, 0.02, 0.04)),
                candidate_fairness_gap=0.10, champion_fairness_gap=0.08, candidate_fairness_gap_se=0.03,
                fairness_gap_increase_se=0.02, signature_verified=True, **CHAMPION_BASELINES)


def _failed(gates: Gates, evidence: Evidence) -> list[str]:
    decision = decide(gates, evidence)
    assert decision.promote == (not decision.failed)
    return decision.failed


def _check(gates: Gates, evidence: Evidence, name: str) -> Any:
    return next(c for c in decide(gates, evidence).checks if c.name == name)


def test_all_evidence_good_promotes() -> None:
    decision = decide(Gates(), GOOD)
    assert decision.promote and [c.name for c in decision.checks] == CHECKS
    assert all(c.passed for c in decision.checks)
    record = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert record["promote"] is True and record["failed"] == []
    assert record["checks"][0] == {"name": "data_validation", "value": True, "threshold": True,
                                   "passed": True, "reason": "passed"}


@pytest.mark.parametrize(("gates", "change", "failing"), [
    ({}, {"validation_passed": False}, "data_validation"),
    ({}, {"drift_share": 0.31}, "drift_share"),
    ({}, {"noise_rate": 0.34}, "noise_rate"),  # above the champion's 0.28 + 0.035 + 1.645 x SE 0.002
    ({}, {"noise_rate": 0.2, "champion_noise_rate": 0.1}, "noise_rate"),  # a clean champion is the bar
    ({"max_noise_rate": 0.3}, {"noise_rate": 0.31}, "noise_rate"),  # the cap: no ratcheting up
    # the no-signal cap 0.9 x 0.5 binds below the relative limit of a noisy champion's 0.44
    ({}, {"noise_rate": 0.46, "champion_noise_rate": 0.44}, "noise_rate"),
    # one feature moved far and significantly: 0.3 >= 0.1 and 1e-9 x 2 features <= 0.01
    ({}, {"feature_tests": (("age", "ks", 0.3, 1e-9), ("region", "chi2", 0.03, 0.5))}, "feature_shift"),
    # region 0.02 -> 0.40 of 300 rows: a rise of 0.38 > 0.1 + 2.326 x SE 0.029
    ({}, {"null_rates": (("age", 0.0, 0.0, 700, 300), ("region", 0.02, 0.40, 700, 300))}, "null_rate_increase"),
    ({"min_accuracy": 0.8}, {}, "accuracy"),  # the optional absolute floor
    ({}, {"candidate_brier": 0.53}, "accuracy"),  # worse than the prior by 0.05 > 2.326 x 0.02
    ({"prior_z": 2.0}, {"candidate_brier": 0.441}, "accuracy"),  # beats it by 0.039 < 2 x 0.02
    ({}, {"compared_candidate_accuracy": 0.71}, "accuracy_drop_vs_champion"),  # 0.05 > 0.04326
    ({"accuracy_drop_z": 0}, {"compared_candidate_accuracy": 0.735}, "accuracy_drop_vs_champion"),  # old name
    ({}, {"compared_candidate_macro_f1": 0.66}, "macro_f1_drop_vs_champion"),  # 0.05 > 0.04326
    ({"max_f1_drop": 0.0, "regression_z": 0}, {}, "macro_f1_drop_vs_champion"),
    ({}, {"compared_candidate_roc_auc": 0.74}, "roc_auc_drop_vs_champion"),  # 0.05 > 0.04326
    ({"max_roc_auc_drop": 0.0}, {"roc_auc_drop_se": 0.001}, "roc_auc_drop_vs_champion"),
    ({}, {"compared_candidate_ece": 0.13}, "calibration_error_increase_vs_champion"),  # 0.06 > 0.05326
    ({}, {"leaking_features": ("copied_label",)}, "label_leakage"),
    # (0.34 - 0.14) - (0.16 - 0.13) = 0.17 against 0.02 + 2.326 x SE 0.055
    ({}, {"group_suspect_rates": (("sex", "female", 126, 0.34), ("sex", "male", 274, 0.14))},
     "group_suspect_rate_gap"),
    ({"max_fairness_gap": 0.25}, {"candidate_fairness_gap": 0.30, "champion_fairness_gap": 0.28}, "fairness_gap"),
    ({}, {"candidate_fairness_gap": 0.20}, "fairness_gap_increase_vs_champion"),  # +0.12 > 0.02 + 2.326 x 0.02
    ({}, {"signature_verified": False}, "signature_verified"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_single_failure_is_named(gates: dict[str, float], change: dict[str, Any], failing: str) -> None:
    assert _failed(Gates(**gates), replace(GOOD, **change)) == [failing]


@pytest.mark.parametrize("change", [
    {"drift_share": 0.3}, {"noise_rate": 0.318}, {"noise_rate": 0.137, "champion_noise_rate": 0.1},
    {"candidate_brier": 0.48 - 0.02 * Gates().prior_z - 1e-4, "candidate_accuracy": 0.5},  # accuracy: not gated
    {"compared_candidate_accuracy": 0.70, "compared_champion_accuracy": 0.74326},  # exactly the allowance
    {"compared_candidate_macro_f1": 0.66674}, {"compared_candidate_roc_auc": 0.74674},
    {"compared_candidate_ece": 0.12326},
    {"candidate_fairness_gap": 0.21652, "champion_fairness_gap": 0.15},  # 0.02 + 2.326 x 0.02
])
def test_values_on_the_threshold_pass(change: dict[str, Any]) -> None:
    assert _failed(Gates(), replace(GOOD, **change)) == []


def test_the_accuracy_allowance_grows_with_the_comparisons_noise() -> None:
    """A 6-point drop is noise on 50 rows (SE ~0.05) and a regression on 5,000 (SE ~0.005)."""
    drop = {"compared_candidate_accuracy": 0.70, "compared_champion_accuracy": 0.76}
    small = _check(Gates(), replace(GOOD, **drop, accuracy_drop_se=0.05), "accuracy_drop_vs_champion")
    large = _check(Gates(), replace(GOOD, **drop, accuracy_drop_se=0.005), "accuracy_drop_vs_champion")
    assert small.passed and small.threshold == pytest.approx(0.02 + 2.326 * 0.05)
    assert not large.passed and large.threshold == pytest.approx(0.02 + 2.326 * 0.005)
    assert "paired SE 0.0050" in large.reason


def test_noise_limit_is_the_champions_estimate_plus_the_margin_and_error_bar_under_the_cap() -> None:
    relative = _check(Gates(), GOOD, "noise_rate")
    se = math.sqrt(0.28 * 0.72 / 100_000 + 0.25 * 0.75 / 100_000)
    assert relative.threshold == pytest.approx(0.315 + 1.645 * se, abs=1e-6)
    assert "champion's 0.2800 + 0.035 + 1.645 x SE 0.0020" in relative.reason
    capped = _check(Gates(), replace(GOOD, champion_noise_rate=0.48), "noise_rate")
    assert capped.threshold == pytest.approx(0.45) and "capped at 0.9 x the no-signal level 0.5000" in capped.reason
    first = _check(Gates(), replace(GOOD, first_run=True, champion_noise_rate=None), "noise_rate")
    assert first.passed and first.threshold == 0.45 and "first run" in first.reason
    assert not _check(Gates(), replace(GOOD, first_run=True, champion_noise_rate=None, noise_rate=0.46),
                      "noise_rate").passed


def test_the_noise_cap_follows_the_number_of_classes() -> None:
    """No-signal labels read about 1 - 1/K: five classes at 0.6 are far from it, two are not."""
    first = replace(GOOD, first_run=True, champion_noise_rate=None, noise_rate=0.6)
    five = _check(Gates(), replace(first, noise_classes=5), "noise_rate")
    assert five.passed and five.threshold == pytest.approx(0.9 * 0.8) and "(5 classes)" in five.reason
    assert not _check(Gates(), first, "noise_rate").passed  # binary: 0.6 > 0.45
    absolute = _check(Gates(max_noise_rate=0.55), replace(first, noise_classes=5), "noise_rate")
    assert not absolute.passed and absolute.threshold == 0.55 and "max_noise_rate 0.55" in absolute.reason


def test_a_null_rate_rise_is_judged_with_its_error_bar() -> None:
    """0.10 more nulls is noise on 30 rows and a broken feed on 30,000."""
    def rise(rows: int) -> Any:
        return _check(Gates(), replace(GOOD, null_rates=(("region", 0.05, 0.17, rows, rows),)), "null_rate_increase")

    small, large = rise(30), rise(30_000)
    assert small.passed and "largest: region +0.120" in small.reason
    assert not large.passed and large.value == ["region"] and "region 0.050 -> 0.170" in large.reason
    first = _check(Gates(), replace(GOOD, first_run=True, null_rates=None), "null_rate_increase")
    assert first.passed and first.reason == NOT_APPLICABLE


def test_feature_shift_needs_a_significant_and_a_large_effect() -> None:
    """Bonferroni over the features tested, and an effect floor a huge batch cannot cross by chance."""
    def shift(effect: float, p: float, features: int = 10) -> Any:
        tests = (("age", "ks", effect, p), *((f"f{i}", "ks", 0.01, 0.9) for i in range(features - 1)))
        return _check(Gates(), replace(GOOD, feature_tests=tests), "feature_shift")

    far = shift(0.45, 1e-40)
    assert not far.passed and far.value == ["age"] and "age (ks effect 0.450" in far.reason
    assert shift(0.45, 0.002).passed  # p 0.002 x 10 features = 0.02 > 0.01: could be chance
    assert not shift(0.45, 0.002, features=1).passed  # alone, 0.002 <= 0.01
    small = shift(0.05, 1e-40)  # real but small (a million rows see it): Evidently's share judges that
    assert small.passed and small.value == [] and "largest: age" in small.reason
    for absent in (None, ()):  # no test at all is not a pass
        missing = _check(Gates(), replace(GOOD, feature_tests=absent), "feature_shift")
        assert not missing.passed and missing.reason.startswith("missing evidence")


def test_a_champion_without_a_noise_baseline_fails_closed() -> None:
    evidence = replace(GOOD, champion_noise_rate=None,
                       missing={"champion_noise_rate": "champion v3's run logged no analysis.estimated_noise_rate"})
    check = _check(Gates(), evidence, "noise_rate")
    assert not check.passed and check.reason.startswith("missing evidence") and "v3" in check.reason


@pytest.mark.parametrize(("field", "checks"), [
    ("validation_passed", ["data_validation"]),
    ("drift_share", ["drift_share"]),
    ("feature_tests", ["feature_shift"]),
    ("null_rates", ["null_rate_increase"]),
    ("noise_rate", ["noise_rate"]),
    ("noise_classes", ["noise_rate"]),
    ("champion_noise_rate", ["noise_rate"]),
    ("candidate_accuracy", ["accuracy"]),
    ("baseline_accuracy", ["accuracy"]),
    ("prior_brier", ["accuracy"]),
    ("candidate_brier", ["accuracy"]),
    ("brier_gain_se", ["accuracy"]),
    ("noise_rows", ["noise_rate"]),
    ("champion_noise_rows", ["noise_rate"]),
    ("compared_candidate_accuracy", ["accuracy_drop_vs_champion"]),
    ("compared_champion_accuracy", ["accuracy_drop_vs_champion"]),
    ("accuracy_drop_se", ["accuracy_drop_vs_champion"]),
    ("compared_candidate_macro_f1", ["macro_f1_drop_vs_champion"]),
    ("macro_f1_drop_se", ["macro_f1_drop_vs_champion"]),
    ("compared_champion_roc_auc", ["roc_auc_drop_vs_champion"]),
    ("roc_auc_drop_se", ["roc_auc_drop_vs_champion"]),
    ("compared_candidate_ece", ["calibration_error_increase_vs_champion"]),
    ("ece_increase_se", ["calibration_error_increase_vs_champion"]),
    ("leaking_features", ["label_leakage"]),
    ("group_suspect_rates", ["group_suspect_rate_gap"]),
    ("champion_group_suspect_rates", ["group_suspect_rate_gap"]),
    ("group_label_shifts", ["group_label_shift"]),
    ("candidate_fairness_gap", ["fairness_gap", "fairness_gap_increase_vs_champion"]),
    ("champion_fairness_gap", ["fairness_gap_increase_vs_champion"]),
    ("fairness_gap_increase_se", ["fairness_gap_increase_vs_champion"]),
    ("signature_verified", ["signature_verified"]),
])
def test_missing_evidence_fails_closed(field: str, checks: list[str]) -> None:
    absent: dict[str, Any] = {field: None}
    decision = decide(Gates(), replace(GOOD, **absent))
    assert decision.failed == checks
    for check in decision.checks:
        if check.name in checks:
            assert check.reason.startswith("missing evidence") and field in check.reason


def test_nan_counts_as_missing() -> None:
    decision = decide(Gates(), replace(GOOD, noise_rate=math.nan))
    assert decision.failed == ["noise_rate"] and "missing evidence" in decision.checks[4].reason


def test_first_run_waives_only_what_needs_a_champion() -> None:
    first = replace(GOOD, first_run=True, drift_share=None, feature_tests=None, null_rates=None,
                    champion_noise_rate=None,
                    champion_noise_rows=None,
                    champion_group_suspect_rates=None, fairness_gap_increase_se=None, group_label_shifts=None,
                    compared_candidate_accuracy=None, compared_champion_accuracy=None, accuracy_drop_se=None,
                    compared_candidate_macro_f1=None, compared_champion_macro_f1=None, macro_f1_drop_se=None,
                    compared_candidate_roc_auc=None, compared_champion_roc_auc=None, roc_auc_drop_se=None,
                    compared_candidate_ece=None, compared_champion_ece=None, ece_increase_se=None,
                    champion_fairness_gap=None)
    decision = decide(Gates(), first)
    assert decision.promote
    waived = {c.name for c in decision.checks if c.reason.startswith(NOT_APPLICABLE)}
    assert waived == {"drift_share", "feature_shift", "null_rate_increase", *REGRESSIONS, "group_suspect_rate_gap",
                      "group_label_shift",
                      "fairness_gap_increase_vs_champion"}
    # The same evidence without the first-run flag is missing evidence, not a pass.
    assert _failed(Gates(), replace(first, first_run=False)) == [
        "drift_share", "feature_shift", "null_rate_increase", "noise_rate", *REGRESSIONS, "group_suspect_rate_gap",
        "group_label_shift",
        "fairness_gap_increase_vs_champion"]
    # A first run waives nothing the candidate alone must show.
    assert _failed(Gates(), replace(first, candidate_accuracy=None)) == ["accuracy"]


def test_first_run_still_checks_champion_evidence_that_exists() -> None:
    claimed_first = replace(GOOD, first_run=True, compared_champion_accuracy=0.9)
    assert _failed(Gates(), claimed_first) == ["accuracy_drop_vs_champion"]


# --- reading the report files ------------------------------------------------------------
def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture()
def reports(tmp_path: Path) -> dict[str, Path]:
    return {
        "evaluation": _write(tmp_path / "evaluation.json", {
            "drift": {"drift_share": 0.1, "n_reference": 700, "n_current": 300, "null_rate_change": {
                "age": {"reference": 0.0, "current": 0.0, "change": 0.0},
                "region": {"reference": 0.02, "current": 0.05, "change": 0.03}}, "feature_tests": {
                "age": {"method": "ks", "effect": 0.04, "p_value": 0.2, "reference_rows": 700, "current_rows": 300},
                "region": {"method": "chi2", "effect": 0.03, "p_value": 0.5, "reference_rows": 700,
                           "current_rows": 300}}},
            "quality": {"candidate": {"accuracy": 0.76}, "champion": {"accuracy": 0.8},
                        "baseline": {"accuracy": 0.60, "accuracy_gain_se": 0.02, "brier": 0.48,
                                     "candidate_brier": 0.38, "brier_gain_se": 0.02},
                        "comparison": {"candidate": {"accuracy": 0.75, "macro_f1": 0.70, "roc_auc": 0.78,
                                                     "ece": 0.08},
                                       "champion": {"accuracy": 0.76, "macro_f1": 0.71, "roc_auc": 0.79,
                                                    "ece": 0.07},
                                       "accuracy_drop_se": 0.01, "macro_f1_drop_se": 0.01,
                                       "roc_auc_drop_se": 0.01, "ece_increase_se": 0.01}},
            "fairness": {"candidate": {"max_gap": 0.1}, "champion": {"max_gap": 0.08},
                         "errors": {"candidate_gap_se": 0.03, "increase_se": 0.02},
                         "label_shift": {"shifts": [
                             {"column": "sex", "group": "female", "label": "1", "rows": 200, "reference_rows": 300,
                              "shift": -0.02, "se": 0.04},
                             {"column": "sex", "group": "male", "label": "1", "rows": 500, "reference_rows": 700,
                              "shift": 0.02, "se": 0.04}]}}}),
        "analysis": _write(tmp_path / "summary.json", {"estimated_noise_rate": 0.25, "skipped": False,
                                                        "n_rows": 100_000,
                                                        "per_class": [{"label": 0, "n_rows": 70_000},
                                                                      {"label": 1, "n_rows": 30_000}],
                                                        "leakage": {"flagged": []}, "per_group": [
            {"column": "sex", "value": "female", "n_rows": 200, "n_suspected": 30, "suspect_rate": 0.15},
            {"column": "sex", "value": "male", "n_rows": 500, "n_suspected": 65, "suspect_rate": 0.13}]}),
        "signing": _write(tmp_path / "signing.json", {"digest": "ab" * 32, "verified": True}),
        "validation": _write(tmp_path / "validation.json", {"success": True, "checks": []}),
    }


def _from(reports: dict[str, Path | None], first_run: bool = False) -> Evidence:
    evidence = evidence_from_files(reports["evaluation"], reports["analysis"], reports["signing"], first_run,
                                   validation_json=reports["validation"])
    return replace(evidence, **CHAMPION_BASELINES)  # as the pipeline does, from the champion's run


EVALUATION_CHECKS = ["drift_share", "feature_shift", "null_rate_increase", "accuracy", *REGRESSIONS,
                     "group_label_shift", "fairness_gap", "fairness_gap_increase_vs_champion"]
ANALYSIS_CHECKS = ["noise_rate", "label_leakage", "group_suspect_rate_gap"]
TWO_CLASSES = {"per_class": [{"label": 0, "n_rows": 70_000}, {"label": 1, "n_rows": 29_999}]}


def test_evidence_from_good_files_promotes(reports: dict[str, Path]) -> None:
    evidence = _from(reports)  # type: ignore[arg-type]
    assert evidence == replace(GOOD, missing={})
    assert decide(Gates(), evidence).promote


@pytest.mark.parametrize(("report", "content", "checks"), [
    ("evaluation", None, EVALUATION_CHECKS),
    ("evaluation", '{"drift": {"drift_share": 0.1}, "quality": {"cand', EVALUATION_CHECKS),  # truncated
    ("evaluation", "[1, 2]", EVALUATION_CHECKS),
    ("evaluation", b"\xff\xfe\x00garbage", EVALUATION_CHECKS),
    ("evaluation", {"drift": {"drift_share": 0.1}, "quality": {"candidate": {"accuracy": 0.76}, "comparison": None},
                    "fairness": {"candidate": {"max_gap": 0.1}, "champion": {"max_gap": 0.08}}},
     ["feature_shift", "null_rate_increase", "accuracy", *REGRESSIONS, "group_label_shift",
      "fairness_gap_increase_vs_champion"]),  # an older report
    ("analysis", None, ANALYSIS_CHECKS),
    ("analysis", {"estimated_noise_rate": "0.05", "n_rows": 9, "leakage": {"flagged": []}, "per_group": []},
     ["noise_rate"]),
    ("analysis", {"estimated_noise_rate": 0.05, "skipped": True, "reason": "one class"}, ANALYSIS_CHECKS),
    ("analysis", '{"estimated_noise_rate": NaN, "n_rows": 9, "leakage": {"flagged": []}, "per_group": []}',
     ["noise_rate"]),
    ("analysis", {"estimated_noise_rate": 0.25, "n_rows": 99999, "leakage": {"flagged": "sex"}, "per_group": [],
                  **TWO_CLASSES}, ["label_leakage"]),
    ("analysis", {"estimated_noise_rate": 0.25, "n_rows": 99999},
     ["noise_rate", "label_leakage", "group_suspect_rate_gap"]),  # an old summary: no classes for the cap
    ("analysis", {"estimated_noise_rate": 0.25, "n_rows": 99999, "leakage": {"flagged": []}, "per_group": [],
                  "per_class": [{"label": 0, "n_rows": 99999}, {"label": 1, "n_rows": 0}]},
     ["noise_rate"]),  # one class with rows: no no-signal level
    ("analysis", {"estimated_noise_rate": 0.25, "leakage": {"flagged": []}, "per_group": []},
     ["noise_rate"]),  # no row count: no error bar for the estimate
    ("analysis", {"estimated_noise_rate": 0.25, "n_rows": 99999, "leakage": {"flagged": []}, **TWO_CLASSES,
                  "per_group": [{"column": "sex", "value": "f", "n_rows": 9, "suspect_rate": 1.5}]},
     ["group_suspect_rate_gap"]),
    ("signing", None, ["signature_verified"]),
    ("signing", {"verified": "yes"}, ["signature_verified"]),
    ("validation", None, ["data_validation"]),
    ("validation", {"success": 1}, ["data_validation"]),
])
def test_unusable_report_files_fail_closed(reports: dict[str, Path | None], report: str, content: Any,
                                           checks: list[str]) -> None:
    if content is None:
        reports[report].unlink()  # type: ignore[union-attr]
    elif isinstance(content, bytes):
        reports[report].write_bytes(content)  # type: ignore[union-attr]
    else:
        _write(reports[report], content)  # type: ignore[arg-type]
    decision = decide(Gates(), _from(reports))
    assert decision.failed == checks
    assert all(c.reason.startswith("missing evidence") for c in decision.checks if not c.passed)


@pytest.mark.parametrize("bad", [True, "0.8", 1.5, -0.1, None, {"x": 1}])
def test_out_of_range_or_mistyped_numbers_are_missing(reports: dict[str, Path], bad: Any) -> None:
    record = json.loads(reports["evaluation"].read_text())
    record["quality"]["comparison"]["candidate"]["accuracy"] = bad
    _write(reports["evaluation"], record)
    evidence = _from(reports)  # type: ignore[arg-type]
    assert evidence.compared_candidate_accuracy is None and "compared_candidate_accuracy" in evidence.missing
    assert decide(Gates(), evidence).failed == ["accuracy_drop_vs_champion"]


def test_no_paths_and_a_directory_never_raise(tmp_path: Path) -> None:
    evidence = evidence_from_files(None, tmp_path, None, first_run=True)
    assert evidence.noise_rate is None and "unreadable" in evidence.missing["noise_rate"]
    assert decide(Gates(), evidence).failed == ["data_validation", "noise_rate", "accuracy", "label_leakage",
                                                "group_suspect_rate_gap", "fairness_gap", "signature_verified"]


def test_caller_supplied_evidence_replaces_missing_notes(reports: dict[str, Path]) -> None:
    evidence = evidence_from_files(reports["evaluation"], reports["analysis"], None, False)
    assert evidence.validation_passed is None and evidence.signature_verified is None
    evidence = replace(evidence, validation_passed=True, signature_verified=True, **CHAMPION_BASELINES)
    assert decide(Gates(), evidence).promote and evidence.to_dict()["missing"] == {}


def test_write_report_output_feeds_the_gate(tmp_path: Path) -> None:
    """The gate reads exactly what aire.evaluation.candidate writes, on a first run and after."""
    config = parse_config({"name": "m", "dataset": {"label": "y", "features": {"numeric": ["x"]},
                                                    "sensitive": ["g"]}})
    frame = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 40})
    y = np.array([0, 1] * 40)
    p = np.array([0, 1] * 30 + [1, 1] * 10)
    proba = np.column_stack([1 - p * 0.8 - 0.1, p * 0.8 + 0.1])
    fair, q = fairness(frame, y, p, config, 1, min_group_count=10), quality(y, proba, [0, 1])
    write_report(tmp_path, None, q, None, fair, None)
    first = evidence_from_files(tmp_path / "evaluation.json", None, None, first_run=True)
    assert (first.candidate_accuracy, first.candidate_fairness_gap) == (q.accuracy, fair.max_gap)
    assert first.drift_share is None and first.compared_champion_accuracy is None

    column = ColumnDrift("K-S p_value", 0.5, 0.05, False)
    drifted = DriftResult(0.0, (), {"x": column}, {"x": NullRate(0.0, 0.0)}, {}, 0.0, 80, 80)
    same = compare_quality(y, (proba, [0, 1]), (proba, [0, 1]))
    write_report(tmp_path, drifted, q, q, fair, fair, comparison=same)
    later = replace(evidence_from_files(tmp_path / "evaluation.json", None, None, first_run=False),
                    champion_noise_rate=0.2)
    assert (later.drift_share, later.compared_champion_accuracy, later.champion_fairness_gap,
            later.accuracy_drop_se) == (0.0, q.accuracy, fair.max_gap, 0.0)
    checks = {c.name: c for c in decide(Gates(), later).checks}
    assert checks["accuracy_drop_vs_champion"].passed and checks["accuracy_drop_vs_champion"].value == 0.0
