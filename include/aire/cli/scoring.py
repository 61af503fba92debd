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

    from aire.scoring.demo import run_score_demo

    return run_score_demo(Home.from_env(), Path(args.config))
