"""
### aire_score

Scores a batch with the pipeline's champion, loaded only after its signature and recorded
digest verify. Each row gets a prediction, class probabilities, the model version and digest,
and an ODD verdict (in, out with the rule and column, or uncertain); out-of-domain rows are
flagged, sent to the fallback or withheld as `scoring.out_of_domain` says. If the champion
does not verify, the previous verified version (or the configured baseline) scores and an
incident opens. A `challenger` scores the same rows in shadow. The output and its summary
JSON are written atomically; a refused batch writes nothing and opens an incident.

Each scored batch updates the `aire_scored` Asset, which triggers `aire_monitor`.
Trigger with **Params**: `config`, `batch` (path or s3://), `out` (empty: the home's scoring
folder), `batch_id`. `aire score --config C --batch URI --out URI` does the same from a shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from aire.home import PROJECT_ROOT
from aire_airflow.callbacks import task_defaults
from aire_airflow.scoring import scored_asset

DEFAULT_CONFIG = str(PROJECT_ROOT / "include" / "config" / "credit_risk.yaml")


@dag(
    dag_id=Path(__file__).stem,
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aire", "scoring"],
    params={
        "config": Param(DEFAULT_CONFIG, type="string", minLength=1, description="Pipeline config (YAML path)"),
        "batch": Param("", type="string", minLength=1, description="Batch to score: CSV/Parquet path or s3:// URI"),
        "out": Param("", type="string", description="Output .parquet/.csv path or s3:// URI (empty: the home)"),
        "batch_id": Param("", type="string", description="Names the batch (empty: its file name)"),
    },
    default_args=task_defaults(),
)
def aire_score() -> None:
    @task(outlets=[scored_asset()])
    def score() -> dict[str, Any]:
        from aire_airflow.scoring import score_from_context

        return score_from_context(get_current_context())

    score()


aire_score()
