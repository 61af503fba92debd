"""OpenTelemetry metrics, read back with the SDK's in-process InMemoryMetricReader."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aire import telemetry
from aire.config import load_config
from aire.home import PROJECT_ROOT
from aire.incidents.sources import record_task_failure
from aire.reliability.slo import History, RunRecord, evaluate_all
from aire.telemetry import Telemetry

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """An in-process reader behind the process-wide instance the library records through."""
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    monkeypatch.setattr(telemetry, "_default", Telemetry(provider))
    yield memory
    provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [point for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == name for point in metric.data.data_points]


def test_stage_durations_by_outcome(reader: InMemoryMetricReader) -> None:
    meter = telemetry.get_telemetry()
    meter.record_stage("credit-risk", "fine_tune", 12.5, "success")
    with meter.timed_stage("credit-risk", "evaluate"):
        pass
    with pytest.raises(RuntimeError), meter.timed_stage("credit-risk", "evaluate"):
        raise RuntimeError("boom")
    by_stage = {(p.attributes["stage"], p.attributes["outcome"]): p
                for p in points(reader, "aire.stage.duration")}
    assert set(by_stage) == {("fine_tune", "success"), ("evaluate", "success"),
                             ("evaluate", "failure")}
    assert by_stage[("fine_tune", "success")].sum == 12.5
    assert by_stage[("evaluate", "failure")].count == 1


def test_incidents_are_counted_when_recorded(reader: InMemoryMetricReader, aire_home: Path) -> None:
    failure: dict[str, Any] = {"dag_id": "aire_retrain", "run_id": "r1", "task_id": "fine_tune",
                               "try_number": 3, "exception": MemoryError("CUDA out of memory"),
                               "params": {"config": str(CONFIG)}}
    record_task_failure(**failure)
    record_task_failure(**failure)
    counted = {p.attributes["created"]: p.value for p in points(reader, "aire.incidents.recorded")}
    assert counted == {True: 1, False: 1}
    [point, _] = points(reader, "aire.incidents.recorded")
    assert point.attributes["source"] == "task_failure" and point.attributes["severity"] == "high"


def test_slo_gauges(reader: InMemoryMetricReader) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    runs = (RunRecord("a", now, now, "promoted", accuracy=0.7),
            RunRecord("b", now, now, "failed"))
    report = evaluate_all(load_config(CONFIG), History(runs, now), now)
    telemetry.get_telemetry().record_slo(report)
    telemetry.get_telemetry().record_open_incidents("credit-risk", 3)
    sli = {p.attributes["objective"]: p.value for p in points(reader, "aire.slo.sli")}
    assert sli["pipeline_success"] == 0.5 and sli["champion_quality"] == 0.7
    budget = {p.attributes["objective"]: p.value
              for p in points(reader, "aire.slo.error_budget_remaining")}
    assert budget["pipeline_success"] == pytest.approx(1 - 0.5 / 0.1)
    burns = {(p.attributes["objective"], p.attributes["alert"], p.attributes["window"]): p.value
             for p in points(reader, "aire.slo.burn_rate")}
    assert burns[("pipeline_success", "fast", "short")] == pytest.approx(5.0)
    assert [p.value for p in points(reader, "aire.incidents.open")] == [3]


def test_without_an_endpoint_the_global_provider_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(telemetry, "_default", None)
    assert telemetry._provider_from_env() is None
    assert telemetry.get_telemetry() is telemetry.get_telemetry()


def test_pipeline_stages_record_their_duration(reader: InMemoryMetricReader, aire_home: Path,
                                               tmp_path: Path) -> None:
    """The stages themselves report: a failing validate_data is a 'failure' point."""
    from aire.errors import DataValidationError
    from aire.pipeline.run_context import RunSpec
    from aire.pipeline.stages import validate_data

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError):
        validate_data(RunSpec(str(CONFIG), str(empty), "telemetry-run"))
    by_stage = {(p.attributes["pipeline"], p.attributes["stage"], p.attributes["outcome"])
                for p in points(reader, "aire.stage.duration")}
    assert by_stage == {("credit-risk", "validate_data", "failure")}
