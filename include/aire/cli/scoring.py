"""`aire score` and `aire demo-score`: batch scoring inside the operating domain, and its SLOs.

`aire score --config C --batch URI --out URI` prints the summary (also written beside the
output as ``<out stem>.summary.json``); exit 0 when the batch was scored, 2 when it was
refused (the reason names the file, the column and the rule; nothing is written).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from aire.home import PROJECT_ROOT, Home

EXAMPLE_CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


def add_commands(sub: Any) -> None:
    cmd = sub.add_parser("score", help="score a batch with the verified champion (ODD verdicts, fallback, shadow)")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG))
    cmd.add_argument("--batch", required=True, help="CSV/Parquet path or s3:// URI")
    cmd.add_argument("--out", required=True, help="where the scored rows go: .parquet or .csv, a path or s3://")
    cmd.add_argument("--batch-id", default=None,
                     help="names the batch in the home and incidents (default: its file name)")
    cmd.add_argument("--full", action="store_true", help="print the whole summary, not the headline figures")
    cmd.set_defaults(handler=_score)

    cmd = sub.add_parser("demo-score", help="after `make demo`: score a batch (ODD, shadow), then a drifted one "
                                            "that the monitor turns into an incident")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG))
    cmd.set_defaults(handler=_demo_score)


def _score(args: argparse.Namespace) -> int:
    from aire.config import load_config
    from aire.data.storage import settings_for
    from aire.scoring.score import ScoreRequest, headline, score_batch

    storage = load_config(args.config).storage
    request = ScoreRequest(args.config, args.batch, args.out, batch_id=args.batch_id,
                           s3=settings_for(storage, None), by="cli")
    summary = score_batch(request, Home.from_env())
    print(json.dumps(summary if args.full else headline(summary), indent=2, default=str))
    return 0


def _demo_score(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aire.config import load_config
    from aire.constants import CHALLENGER, PREVIOUS
    from aire.registry.mlflow_registry import Registry
    from aire.scoring.demo import run_score_demo

    home = Home.from_env().ensure()
    name = load_config(args.config).name
    registry = Registry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    if registry.champion(name) is not None and not (registry.by_alias(name, CHALLENGER)
                                                    or registry.by_alias(name, PREVIOUS)):
        # `make demo` leaves one version; a shadow comparison needs a second one.
        from aire.data.datasets import german_credit, make_batch
        from aire.pipeline.run_context import RunSpec
        from aire.pipeline.runner import run_all

        batch, _ = make_batch(german_credit(), n_rows=700, seed=103)
        path = home.data_dir / "batch_clean_2.csv"
        batch.to_csv(path, index=False)
        print(f"== 0. a second version to shadow: aire_retrain's stages on {path} ==")
        print(f"  outcome: {run_all(RunSpec(str(args.config), str(path), 'demo-score-second'))['outcome']}")
    return run_score_demo(home, Path(args.config))
