"""`aire analyze-errors`: the error analysis stage on any batch, outside a pipeline run.

    aire analyze-errors --config C --data URI --out DIR [--model champion|none]

``--model champion`` (the default) scores the batch with the registered champion, loaded
only after its signature and recorded digest verify, averaged with a short cross-fit on
the batch (``analysis.champion_blend_epochs``; 0 turns it off; see ``aire.analysis.error_analysis``);
with no champion registered it says
so on stderr and cross-fits instead. ``--model none`` always cross-fits. ``--out`` is a
folder, ``file://`` URI or ``s3://bucket/prefix``; the files are those of ``aire.analysis.report``.

Exit status: 0 when the analysis ran (the summary is printed); 3 when it was skipped (one
class, fewer rows than folds: the files say why, and the pipeline's gate would reject);
2 on bad input (config, data, a label the champion has no class for, a champion that does
not verify); 1 on any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from aire.home import PROJECT_ROOT, Home

EXAMPLE_CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
SKIPPED = 3


def add_commands(sub: Any) -> None:
    cmd = sub.add_parser(
        "analyze-errors", help="per-sample loss, suspected label errors, most-confident review, "
                               "leakage check")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG), help="pipeline config (YAML)")
    cmd.add_argument("--data", required=True, help="labeled batch: CSV/Parquet path or s3:// URI")
    cmd.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")
    cmd.add_argument("--model", choices=("champion", "none"), default="champion",
                     help="champion: score with the verified champion (cross-fit if there is "
                          "none); none: always cross-fit")
    cmd.set_defaults(handler=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    from aire.analysis.error_analysis import run_error_analysis
    from aire.config import load_config
    from aire.data.storage import settings_for
    from aire.data.tables import read_table

    config = load_config(args.config)
    s3 = settings_for(config.storage)
    frame = read_table(args.data, s3=s3)
    champion, model = None, None
    if args.model == "champion":
        champion, model = _verified_champion(config.name, config.analysis.folds)
    result = run_error_analysis(frame, config, champion=champion)
    model = model or result.source  # cross-fitted: which fold models, e.g. cross_fit:5:boosted_trees
    files = _write(result, args.out, config.analysis.top_k, s3)
    print(json.dumps({**result.to_dict(), "model": model, "files": files}, indent=2, default=str))
    if result.skipped:
        print(f"aire: analysis skipped: {result.reason}", file=sys.stderr)
        return SKIPPED
    return 0


def _verified_champion(name: str, folds: int) -> tuple[Any, str | None]:
    """The champion, verified then loaded, and its label; ``(None, None)`` when none is registered."""
    from aire.model.tabular import load_model
    from aire.registry.mlflow_registry import Registry
    from aire.trust.ledger import Ledger
    from aire.trust.verify import fetch_verified

    home = Home.from_env().ensure()
    registry = Registry(home.mlflow_tracking_uri)
    version = registry.champion(name)
    if version is None:
        print(f"aire: no champion registered for '{name}': cross-fitting {folds} folds instead",
              file=sys.stderr)
        return None, None
    with tempfile.TemporaryDirectory(prefix="aire-analyze-") as workdir:
        verified = fetch_verified(registry, version, public_key=home.public_key,
                                  ledger=Ledger.for_home(home), workdir=Path(workdir))
        return load_model(verified.model_dir), f"champion v{version.version} ({verified.digest})"


def _write(result: Any, out: str, top_k: int, s3: Any) -> dict[str, str]:
    from aire.analysis.report import write_outputs
    from aire.data.storage import open_store

    if "://" not in out:
        return {name: str(path) for name, path in write_outputs(result, out, top_k=top_k).items()}
    store = open_store(out, Path("."), s3)
    with tempfile.TemporaryDirectory(prefix="aire-analyze-out-") as staging:
        written = write_outputs(result, staging, top_k=top_k)
        return {name: store.put_file(path, path.name) for name, path in written.items()}
