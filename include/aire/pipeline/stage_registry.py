"""Every stage of ``aire_retrain``, in order, with what each needs: the one list of stages.

The DAG makes a task of each entry, ``aire stage NAME`` runs one, ``aire run`` runs them
all in this process, and the DAG test checks the DAG against this list, so adding a stage
is one function in ``aire.pipeline.stages`` plus one entry here.

All stages share one signature, ``run(spec, champion_version) -> dict``. The gate decides
between the two outcomes (``promote`` and ``reject``; ``await_approval`` in between is
Airflow's human-in-the-loop task, see ``aire_airflow.operators``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aire.errors import InputError

if TYPE_CHECKING:
    from aire.pipeline.run_context import RunSpec

StageFunction = Callable[["RunSpec", int | None], Mapping[str, Any]]


@dataclass(frozen=True)
class Stage:
    name: str  # the task id in the DAG, and the function's name in aire.pipeline.stages
    # Stages whose success this one needs; they are also its upstream tasks in the DAG.
    needs: tuple[str, ...] = ()
    # Stages that must have finished, failed or not, before this one starts: the gate reads
    # a failed evaluation as missing evidence instead of not running at all.
    after: tuple[str, ...] = ()
    # On the GPU queue in production (aire_airflow.schedules.gpu_queue).
    accelerator: bool = False

    @property
    def run(self) -> StageFunction:
        """The stage function; imported when first called, so that parsing a DAG file or
        ``aire --help`` loads no pandas, torch or MLflow."""
        from aire.pipeline import stages

        return cast(StageFunction, getattr(stages, self.name))

    @property
    def command(self) -> str:
        """The name ``aire stage`` takes: ``validate-data``."""
        return self.name.replace("_", "-")

    @property
    def fatal(self) -> bool:
        """Whether a failure ends the run before the gate (no candidate to decide on)."""
        return not any(self.name in later.after for later in PIPELINE)


PIPELINE: tuple[Stage, ...] = (
    Stage("validate_data"),
    Stage("analyze_errors", needs=("validate_data",)),
    Stage("fine_tune", needs=("validate_data", "analyze_errors"), accelerator=True),
    Stage("sign_model", needs=("fine_tune",)),
    Stage("evaluate", needs=("validate_data", "sign_model")),
    Stage("gate", needs=("sign_model",), after=("evaluate",)),
)
OUTCOMES: tuple[Stage, ...] = (
    Stage("promote", needs=("gate",)),
    Stage("reject", needs=("gate",)),
)
# The task between the gate and promotion when a person must approve (not a stage: Airflow asks).
AWAIT_APPROVAL = "await_approval"


def stage(name: str) -> Stage:
    """A stage by its task name (``fine_tune``) or its command name (``fine-tune``)."""
    for entry in (*PIPELINE, *OUTCOMES):
        if name in (entry.name, entry.command):
            return entry
    known = ", ".join(entry.command for entry in (*PIPELINE, *OUTCOMES))
    raise InputError(f"no stage '{name}'; the stages are {known}")
