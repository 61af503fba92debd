"""Import the stages' heavy modules once in a long-lived worker, before it forks tasks.

Airflow 3 runs each task in a process forked from the worker that received it (the task
SDK's supervisor forks; a Celery worker's pool processes are themselves forked from the
worker's main process). A module already imported in the parent is in every child for free,
copy-on-write, while a stage imports its libraries lazily (``aire.pipeline.stages``), so a
cold task pays 4-14 s of imports before its first line of work (bench/profile_run.py).
``preload`` pays them once per worker instead. ``aire_airflow.celery_config`` calls it from
Celery's ``worker_init`` signal, which fires in the worker's main process only (never in the
scheduler or the api-server, which import the same Celery config).

Only imports: nothing here starts a thread or touches a device (torch's thread pools start at
the first operator, CUDA at the first ``torch.cuda`` call), so the fork stays safe.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import time
from dataclasses import dataclass

# What the stages import inside their functions, or their libraries import at first use (a
# torch optimizer's first step pulls in torch._dynamo; pandas' first Parquet read
# pyarrow.dataset; Evidently's first save_html plotly.offline). Kept in the order the stages
# run, the aire modules last so that a third-party failure names the third party.
PRELOADED_MODULES: tuple[str, ...] = (
    "mlflow", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
    "pyarrow.parquet", "pyarrow.dataset", "scipy.stats",
    "great_expectations", "great_expectations.data_context.types.base",
    "torch", "torch._dynamo", "sklearn.model_selection", "sklearn.ensemble",
    "sklearn.metrics",
    "evidently", "evidently.presets", "plotly.offline",
    # tests/unit/pipeline/test_preload.py fails when a stage imports an aire module not here.
    "aire.pipeline.stages", "aire.telemetry", "aire.data.tables", "aire.data.split", "aire.data.validation",
    "aire.analysis.error_analysis", "aire.analysis.report", "aire.analysis.suspects", "aire.model.boosted",
    "aire.model.training",
    "aire.trust.signing", "aire.evaluation.candidate", "aire.evaluation.report", "aire.promotion.evidence",
    "aire.promotion.gate", "aire.promotion.decision_record", "aire.promotion.promote",
    "aire.incidents.sources",
)
# Set to 0 / false / no / off on a worker to skip the preload (e.g. to bisect a fork problem).
ENV_PRELOAD = "AIRE_PRELOAD"
_OFF = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Preloaded:
    seconds: dict[str, float]  # module -> wall seconds its own import took here
    failed: dict[str, str]  # module -> the error; the task will meet it again, and say so there

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())

    def summary(self) -> str:
        line = f"AIRE preloaded {len(self.seconds)} modules in {self.total_s:.1f} s"
        if self.failed:
            line += "; not preloaded: " + ", ".join(f"{m} ({e})" for m, e in self.failed.items())
        return line


def enabled(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(ENV_PRELOAD, "1")
    return value.strip().lower() not in _OFF


def already_imported(modules: tuple[str, ...] = PRELOADED_MODULES) -> list[str]:
    """Which of ``modules`` this process has imported: all of them in a task forked from a
    preloaded worker, next to none in a cold one."""
    return [module for module in modules if module in sys.modules]


def preload(modules: tuple[str, ...] = PRELOADED_MODULES) -> Preloaded:
    """Import ``modules``, timing each; a module that fails to import is reported, not raised.

    A failure here must not stop the worker: the task that needs the module imports it again
    and fails with its own error, retries and incident, as it would without a preload.
    Afterwards ``gc.freeze()`` moves what was loaded out of the collector's reach, so the
    forked tasks' collections do not touch (and copy) those pages.
    """
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    for module in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 - any import error is the task's to report
            failed[module] = f"{type(error).__name__}: {error}"
            continue
        seconds[module] = time.perf_counter() - started
    gc.freeze()
    return Preloaded(seconds, failed)
