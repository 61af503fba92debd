"""SLOs: burn-rate and budget math against hand-computed cases, and config errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from aire.config import Objective, PipelineConfig, Slo, load_config, parse_config
from aire.errors import ConfigError
from aire.home import PROJECT_ROOT
from aire.reliability.slo import (
    History,
    RunRecord,
    budget_remaining,
    burn_rate,
    evaluate,
    evaluate_all,
    stale_intervals,
)

EXAMPLE = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
NOW = datetime(2026, 3, 29, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
# Daily-batch windows: fast = 1d long / 2h short at 10x, slow = 7d / 1d at 2x.
SLO = Slo.model_validate({"window": "28d", "fast_burn": {"long": "1d", "short": "2h", "factor": 10},
                          "slow_burn": {"long": "7d", "short": "1d", "factor": 2},
                          "objectives": []})
SUCCESS = Objective.model_validate({"name": "success", "sli": "success_rate", "target": 0.95})


def run(ago: timedelta, outcome: str = "promoted", took: timedelta = HOUR,
        **metrics: float) -> RunRecord:
    ended = NOW - ago
    return RunRecord(f"r-{ago.total_seconds():g}", ended - took, ended, outcome, **metrics)


def daily_good_runs() -> list[RunRecord]:
    """26 good runs, one a day, 1.5 to 26.5 days ago: inside 28d, outside the last day."""
    return [run(k * DAY + 12 * HOUR, "rejected") for k in range(1, 27)]


@pytest.mark.parametrize(("bad", "total", "target", "burn", "budget"), [
    (1, 20, 0.9, 0.5, 0.5),     # 5% errors against a 10% budget: half spent
    (3, 20, 0.9, 1.5, -0.5),    # 15% errors: overspent by half
    (1, 10, 0.99, 10.0, -9.0),  # a 99% target allows 1%: 10% burns it 10x
    (0, 0, 0.9, 0.0, 1.0),      # nothing to judge: nothing burnt
])
def test_burn_rate_and_budget(bad: int, total: int, target: float, burn: float,
                              budget: float) -> None:
    assert burn_rate(bad, total, target) == pytest.approx(burn)
    assert budget_remaining(bad, total, target) == pytest.approx(budget)


def test_fast_and_slow_alerts_fire_on_a_bad_last_hour() -> None:
    # Last day: good at -23h, bad at -1h and -30m. Windows by hand (allowed error 0.05):
    #   2h: 2 of 2 bad -> 1/0.05 = 20;   1d: 2 of 3 -> 0.667/0.05 = 13.33
    #   7d: 6 daily + 3 = 9, 2 bad -> 0.222/0.05 = 4.44;   28d: 26 + 3 = 29, 2 bad -> budget 1 - 1.379
    history = History((*daily_good_runs(), run(23 * HOUR, "rejected"),
                       run(HOUR, "failed"), run(30 * timedelta(minutes=1), "failed")),
                      born=NOW - 30 * DAY)
    report = evaluate(SUCCESS, SLO, history, NOW)
    fast, slow = report.burn
    assert (fast.long_rate, fast.short_rate) == (pytest.approx(40 / 3), pytest.approx(20))
    assert (slow.long_rate, slow.short_rate) == (pytest.approx(40 / 9), pytest.approx(40 / 3))
    assert fast.firing and slow.firing
    assert (report.good, report.total) == (27, 29)
    assert report.budget_remaining == pytest.approx(1 - (2 / 29) / 0.05)
    assert report.status == "breached" and report.reason.startswith("fast burn: 13.3x over 1d")
    assert report.current == pytest.approx(27 / 29)


def test_a_recovered_short_window_silences_the_fast_alert() -> None:
    # Bad at -20h and -19h, good at -23h and -1h:
    #   2h: 0 of 1 bad -> 0 (fast stays quiet);  1d: 2 of 4 -> 0.5/0.05 = 10 (at the limit)
    #   7d: 6 + 4 = 10, 2 bad -> 4.0;  28d: 30, 2 bad -> budget 1 - (2/30)/0.05 = -1/3
    history = History((*daily_good_runs(), run(23 * HOUR, "rejected"), run(20 * HOUR, "failed"),
                       run(19 * HOUR, "failed"), run(HOUR, "promoted")), born=NOW - 30 * DAY)
    report = evaluate(SUCCESS, SLO, history, NOW)
    fast, slow = report.burn
    assert (fast.long_rate, fast.short_rate) == (pytest.approx(10), 0)
    assert not fast.firing
    assert (slow.long_rate, slow.short_rate) == (pytest.approx(4), pytest.approx(10))
    assert slow.firing and report.reason.startswith("slow burn: 4.0x over 7d and 10.0x over 1d")
    assert report.budget_remaining == pytest.approx(-1 / 3)


def test_healthy_history_keeps_its_budget_and_no_runs_is_no_data() -> None:
    report = evaluate(SUCCESS, SLO, History(tuple(daily_good_runs()), NOW - 30 * DAY), NOW)
    assert report.status == "ok" and report.budget_remaining == 1
    assert all(b.long_rate == b.short_rate == 0 for b in report.burn)
    empty = evaluate(SUCCESS, SLO, History((), None), NOW)
    assert empty.status == "no_data" and empty.total == 0 and empty.current is None


def test_freshness_is_time_based() -> None:
    # Born -20d, promoted -9d and -5d, max age 2d: stale [-18d,-9d), [-7d,-5d), [-3d, now).
    # 10d window: 1d + 2d + 3d = 6d stale of 10d -> 60% errors against 10% allowed.
    fresh = Objective.model_validate({"name": "fresh", "sli": "freshness", "threshold": "2d",
                                      "target": 0.9, "window": "10d"})
    history = History((run(9 * DAY), run(5 * DAY)), born=NOW - 20 * DAY)
    assert stale_intervals(history, 2 * 86400, NOW) == [
        (NOW - 18 * DAY, NOW - 9 * DAY), (NOW - 7 * DAY, NOW - 5 * DAY), (NOW - 3 * DAY, NOW)]
    report = evaluate(fresh, SLO, history, NOW)
    assert (report.good, report.total) == (4 * 86400, 10 * 86400)
    assert report.budget_remaining == pytest.approx(1 - 0.6 / 0.1)
    fast, slow = report.burn
    assert (fast.long_rate, fast.short_rate) == (pytest.approx(10), pytest.approx(10))
    assert (slow.long_rate, slow.short_rate) == (pytest.approx(5 / 7 / 0.1), pytest.approx(10))
    assert report.current == 5 * 86400  # the champion's data is 5 days old
    # A young pipeline is judged from its first run on, with one max age of grace.
    young = evaluate(fresh, SLO, History((run(3 * DAY, "rejected"),), born=NOW - 3 * DAY), NOW)
    assert (young.good, young.total) == (2 * 86400, 3 * 86400) and young.current is None


def test_threshold_slis_judge_the_serving_model() -> None:
    config = parse_config({**yaml.safe_load(EXAMPLE.read_text()), "slo": {"window": "28d"}})
    history = History((
        run(3 * DAY, "promoted", took=3 * HOUR, accuracy=0.7, drift_share=0.1, fairness_gap=0.1),
        run(2 * DAY, "rejected", accuracy=0.55, drift_share=0.5, fairness_gap=0.3),
        run(DAY, "failed"),
    ), born=NOW - 10 * DAY)
    by_name = {o.name: o for o in evaluate_all(config, history, NOW).objectives}
    assert (by_name["champion_quality"].good, by_name["champion_quality"].total) == (1, 2)
    assert by_name["champion_quality"].current == 0.55  # the latest batch's value
    assert (by_name["drift"].good, by_name["drift"].total) == (1, 2)
    assert (by_name["fairness"].good, by_name["fairness"].total) == (1, 2)
    latency = by_name["promotion_latency"]
    assert (latency.good, latency.total, latency.current) == (0, 1, 3 * 3600)  # 3h > 2h
    assert (by_name["pipeline_success"].good, by_name["pipeline_success"].total) == (2, 3)


@pytest.mark.parametrize(("slo", "key", "message"), [
    ({"window": "3 fortnights"}, "slo.window", "duration like"),
    ({"objectives": [{"name": "f", "sli": "freshness", "target": 0.9}]},
     "slo.objectives.0.threshold", "needs a threshold"),
    ({"objectives": [{"name": "q", "sli": "quality", "target": 0.9, "threshold": 3}]},
     "slo.objectives.0.threshold", r"number in \[0, 1\]"),
    ({"objectives": [{"name": "s", "sli": "success_rate", "target": 1.0}]},
     "slo.objectives.0.target", "less than 1"),
    ({"objectives": [{"name": "s", "sli": "uptime", "target": 0.9}]}, "slo.objectives.0.sli", ""),
    ({"fast_burn": {"long": "1h", "short": "2h", "factor": 10}}, "slo.fast_burn", "shorter"),
    ({"window": "1d"}, "slo", "shorter than a burn-rate window"),
])
def test_malformed_slo_config_names_the_key(slo: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"key '{key}': .*{message}"):
        parse_config({**yaml.safe_load(EXAMPLE.read_text()), "slo": slo})


# --- run history from MLflow and the incident store -------------------------------------
def test_example_config_has_sensible_default_objectives() -> None:
    config: PipelineConfig = load_config(EXAMPLE)
    assert [o.sli.value for o in config.slo.objectives] == [
        "success_rate", "freshness", "quality", "drift_share", "fairness_gap",
        "promotion_latency"]
    assert config.notify.channels == []


def test_scored_batches_are_events_of_the_monitoring_slis() -> None:
    from aire.config import Objective, Slo
    from aire.reliability.slo import BatchRecord, History, evaluate

    now = datetime(2026, 6, 1, tzinfo=UTC)
    batches = tuple(BatchRecord(f"b{i}", now - timedelta(hours=10 - i), prediction_drift=drift,
                                odd_violation_rate=0.01) for i, drift in enumerate([0.02, 0.03, 0.4]))
    history = History(runs=(), born=None, batches=batches)
    drift = evaluate(Objective(name="p", sli="prediction_drift", threshold=0.15, target=0.9), Slo(), history, now)
    assert (drift.good, drift.total, drift.current) == (2, 3, 0.4)
    odd = evaluate(Objective(name="o", sli="odd_violation_rate", threshold=0.05, target=0.9), Slo(), history, now)
    assert odd.status == "ok" and odd.good == 3
    fresh = evaluate(Objective(name="f", sli="scoring_freshness", threshold="1h", target=0.9), Slo(), history, now)
    assert fresh.current == pytest.approx(8 * 3600) and fresh.status == "breached"
