"""``aire demo-score``: after ``make demo``, the serving half in one go.

1. A clean batch from the champion's population, with three crafted rows (a new category, a
   loan far outside the learned range, an unreadable age), is scored by the verified champion:
   the ODD verdicts are printed. If no challenger exists, the ``previous`` version stands in as
   one for this demo (the alias is removed afterwards), so the shadow comparison shows too.
2. A drifted batch (``make_batch(drift=1.0)``: large loans, long durations, older applicants)
   is scored, and the monitor evaluates the SLOs over both: the drift objectives breach and an
   incident opens with its postmortem.
Everything goes to ``<home>/scoring/<pipeline>/demo/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aire.config import load_config
from aire.constants import CHALLENGER, PREVIOUS
from aire.data.datasets import german_credit, make_batch
from aire.errors import NoChampionError
from aire.home import Home
from aire.registry.mlflow_registry import Registry
from aire.scoring.monitor import monitor
from aire.scoring.score import ScoreRequest, score_batch, scoring_dir


def run_score_demo(home: Home, config_path: Path, say: Any = print) -> int:
    home = home.ensure()
    config = load_config(config_path)
    registry = Registry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    if registry.champion(config.name) is None:
        raise NoChampionError(f"model '{config.name}' has no champion yet: run `make demo` (or `aire demo`) first")
    folder = scoring_dir(home, config.name) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    clean, _ = make_batch(german_credit(), n_rows=500, seed=101)
    clean = clean.astype({"age": object})
    clean.loc[0, "purpose"] = "spaceship"
    clean.loc[1, "credit_amount"] = 5_000_000
    clean.loc[2, "age"] = "forty"
    clean.to_csv(folder / "clean.csv", index=False)
    drifted, _ = make_batch(german_credit(), n_rows=500, seed=102, drift=1.0)
    drifted.to_csv(folder / "drifted.csv", index=False)

    stand_in = registry.by_alias(config.name, CHALLENGER) is None and registry.by_alias(config.name, PREVIOUS)
    if stand_in:
        registry.set_alias(config.name, CHALLENGER, stand_in.version)
    try:
        say("== 1. a clean batch with three crafted rows ==")
        first = score_batch(ScoreRequest(str(config_path), str(folder / "clean.csv"),
                                         str(folder / "clean-scores.parquet"), batch_id="demo-clean", by="demo"),
                            home)
        _show(first, say)
        import pandas as pd

        rows = pd.read_parquet(folder / "clean-scores.parquet").head(3)
        for _, row in rows.iterrows():
            say(f"  row {row['row_id']}: {row['odd']} ({row['odd_rule']}, column {row['odd_column']}); "
                f"prediction {'-' if row['withheld'] else _label(row['prediction'])}"
                f"{' (withheld)' if row['withheld'] else ''}")
    finally:
        if stand_in:
            registry.delete_alias(config.name, CHALLENGER)
    say("\n== 2. a drifted batch, then the monitor ==")
    second = score_batch(ScoreRequest(str(config_path), str(folder / "drifted.csv"),
                                      str(folder / "drifted-scores.parquet"), batch_id="demo-drifted", by="demo"),
                         home)
    _show(second, say)
    report = monitor(config_path, home)
    for objective in report["objectives"]:
        say(f"  SLO {objective['name']:<18} {objective['status']:<9} current={_num(objective['current'])} "
            f"{objective['reason']}")
    for incident in report["incidents"]:
        say(f"  incident {incident['incident_id']} {'opened' if incident['created'] else 'seen again'}; "
            f"postmortem: {incident['postmortem']}")
    say(f"\nsummaries and outputs: {folder}; incidents: aire incidents list")
    return 0 if report["incidents"] else 1


def _show(summary: dict[str, Any], say: Any) -> None:
    served = summary["served_by"]
    say(f"  {summary['rows']} rows scored by {served['source']} v{served['version']} "
        f"(digest {str(served['digest'])[:12]}…); ODD {summary['odd']['counts']}; withheld {summary['withheld']}")
    say(f"  rules: {summary['odd']['rules']}")
    shadow = summary.get("shadow")
    if shadow:
        say(f"  shadow challenger v{shadow['challenger']['version']}: agreement {_num(shadow['agreement'])}, "
            f"distance {_num(shadow['distance'])}, accuracy champion {_num(shadow['champion_accuracy'])} vs "
            f"challenger {_num(shadow['challenger_accuracy'])} on {shadow['labeled_rows']} labeled rows; "
            f"healthy={shadow['healthy']}")
    else:
        say("  shadow: no challenger")


def _label(value: Any) -> str:
    """A class label as the config wrote it (Parquet reads an int column with gaps as floats)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float | np.floating) else str(value)
