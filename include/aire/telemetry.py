"""OpenTelemetry metrics: stage durations, SLIs, error budgets, burn rates and incidents.

Instruments on the meter ``aire`` (attributes in braces):

- ``aire.stage.duration`` histogram, seconds {pipeline, stage, outcome}
- ``aire.incidents.recorded`` counter {pipeline, source, severity, created}
- ``aire.incidents.open`` gauge {pipeline}
- ``aire.slo.sli`` gauge, the current SLI value {pipeline, objective, sli}
- ``aire.slo.error_budget_remaining`` gauge, a fraction (negative once overspent)
  {pipeline, objective}
- ``aire.slo.burn_rate`` gauge {pipeline, objective, alert: fast|slow, window: long|short}

Where they go: ``get_telemetry()`` exports over OTLP/HTTP when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``) is set, with
``OTEL_SERVICE_NAME`` and the other standard variables honoured by the SDK; otherwise it
uses the process's global provider, a no-op unless something installed one. Tests pass
their own ``MeterProvider`` with an ``InMemoryMetricReader``.

Airflow's own metrics go to the same collector: ``[metrics] otel_on = True``
(``AIRFLOW__METRICS__OTEL_ON=True``) and ``[traces] otel_on = True`` for task spans, with the
same ``OTEL_EXPORTER_OTLP_*`` variables; Airflow 3.2 deprecated ``otel_host``, ``otel_port``
and ``otel_interval_milliseconds`` in favour of them. ``[metrics] otel_prefix`` (default
``airflow``) keeps its names apart from these.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from typing import Any, Protocol

from opentelemetry import metrics

import aire


# What the recorders read, as shapes: the core imports nothing from the layers above it
# (aire.incidents.types.Incident and aire.reliability.slo.SloReport have these fields).
class _Source(Protocol):
    @property
    def kind(self) -> str: ...


class _Incident(Protocol):
    @property
    def pipeline(self) -> str: ...
    @property
    def source(self) -> _Source: ...
    @property
    def severity(self) -> Enum: ...


class _Burn(Protocol):
    @property
    def alert(self) -> str: ...
    @property
    def long_rate(self) -> float: ...
    @property
    def short_rate(self) -> float: ...


class _Objective(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def sli(self) -> str: ...
    @property
    def current(self) -> float | None: ...
    @property
    def budget_remaining(self) -> float: ...
    @property
    def burn(self) -> Sequence[_Burn]: ...


class _SloReport(Protocol):
    @property
    def pipeline(self) -> str: ...
    @property
    def objectives(self) -> Sequence[_Objective]: ...


_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


class Telemetry:
    """AIRE's instruments on one meter provider."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("aire", getattr(aire, "__version__", None))
        self.provider = provider
        self._stage = meter.create_histogram(
            "aire.stage.duration", unit="s", description="Wall time of one pipeline stage")
        self._recorded = meter.create_counter(
            "aire.incidents.recorded", description="Incidents opened or seen again")
        self._open = meter.create_gauge(
            "aire.incidents.open", description="Active (open or acknowledged) incidents")
        self._sli = meter.create_gauge("aire.slo.sli", description="Current SLI value")
        self._budget = meter.create_gauge(
            "aire.slo.error_budget_remaining", unit="1",
            description="Fraction of the error budget left in the SLO window")
        self._burn = meter.create_gauge(
            "aire.slo.burn_rate", unit="1",
            description="Error rate over a window divided by the rate the budget allows")

    def record_stage(self, pipeline: str, stage: str, seconds: float, outcome: str) -> None:
        self._stage.record(seconds, {"pipeline": pipeline, "stage": stage, "outcome": outcome})

    @contextmanager
    def timed_stage(self, pipeline: str, stage: str) -> Iterator[None]:
        """Record the block's duration with outcome ``success`` or ``failure``."""
        start, outcome = time.perf_counter(), "failure"
        try:
            yield
            outcome = "success"
        finally:
            self.record_stage(pipeline, stage, time.perf_counter() - start, outcome)

    def record_incident(self, incident: _Incident, created: bool) -> None:
        self._recorded.add(1, {"pipeline": incident.pipeline, "source": incident.source.kind,
                               "severity": incident.severity.value, "created": created})

    def record_open_incidents(self, pipeline: str, count: int) -> None:
        self._open.set(count, {"pipeline": pipeline})

    def record_slo(self, report: _SloReport) -> None:
        for objective in report.objectives:
            base: dict[str, Any] = {"pipeline": report.pipeline, "objective": objective.name}
            if objective.current is not None:
                self._sli.set(objective.current, {**base, "sli": objective.sli})
            self._budget.set(objective.budget_remaining, base)
            for burn in objective.burn:
                self._burn.set(burn.long_rate, {**base, "alert": burn.alert, "window": "long"})
                self._burn.set(burn.short_rate, {**base, "alert": burn.alert, "window": "short"})


_default: Telemetry | None = None


def get_telemetry() -> Telemetry:
    """The process-wide instance; built on first use from the environment (see module doc)."""
    global _default
    if _default is None:
        _default = Telemetry(_provider_from_env())
    return _default


def _provider_from_env() -> metrics.MeterProvider | None:
    if not any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    # Tasks are short-lived processes: the provider's exit hook flushes what is pending.
    return MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
