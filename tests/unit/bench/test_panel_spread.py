"""The panel spread harness's pure parts: the yardstick's waived gates and the tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import panel  # bench/ is not a package: the path above finds it
import panel_spread
from aire.config import Gates, parse_config


def test_waived_gates_open_every_bounded_limit_and_keep_overrides() -> None:
    waived = panel_spread.waived_gates({"min_group_count": 5})
    gates = parse_config({"name": "x", "dataset": {"label": "y", "features": {"numeric": ["a"]}},
                          "gates": waived}).gates
    assert gates.min_group_count == 5
    for name, info in Gates.model_fields.items():
        bounds = {k: getattr(m, k) for m in info.metadata for k in ("ge", "le") if hasattr(m, k)}
        if name.startswith("max_") and "le" in bounds:
            assert getattr(gates, name) == bounds["le"], name
        if name.startswith("reject_on"):
            assert getattr(gates, name) is False, name


def _record(name: str, kind: str, promote: bool | None, failed: tuple[str, ...] = ()) -> dict[str, object]:
    checks = [{"name": "noise_rate", "value": 0.2, "threshold": 0.35, "passed": "noise_rate" not in failed},
              {"name": "fairness_gap", "value": 0.3, "threshold": 0.25, "passed": "fairness_gap" not in failed}]
    return {"set": name, "half": panel.BY_NAME[name].half, "seed": 0, "kind": kind, "rows": 10,
            "promote": promote, "rejected_by": list(failed), "checks": checks if promote is not None else [],
            "error": None if promote is not None else "boom"}


def test_tables_count_promotions_errors_and_the_rejecting_checks(capsys: pytest.CaptureFixture[str]) -> None:
    records = [_record("chile", "clean", True), _record("chile", "clean", False, ("fairness_gap",)),
               _record("chile", "clean", None), _record("chile", "noise30", False, ("noise_rate", "fairness_gap"))]
    panel_spread.print_tables(records, ["chile"], ("clean", "noise30"))
    lines = capsys.readouterr().out.splitlines()
    clean = next(line for line in lines if line.startswith("chile") and " clean " in line)
    assert clean.split()[2:5] == ["1/3", "1", "fairness_gap"]
    noisy = next(line for line in lines if line.startswith("chile") and " noise30 " in line)
    assert "noise_rate 1" in noisy and "fairness_gap 1" in noisy
    gap = next(line for line in lines if line.strip().startswith("fairness_gap") and "0.300" in line)
    assert gap.split()[-1] == "1/2"  # the errored run has no checks


def test_replay_prints_a_saved_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "panel.json"
    saved.write_text(json.dumps({"half": "calibration", "seeds": 1, "gates": {}, "jobs": 1, "wall_s": 1.0,
                                 "records": [_record("titanic", "first", True), _record("chile", "first", True)]}))
    panel_spread.replay(saved, ("first",), ("titanic",))
    out = capsys.readouterr().out
    assert "titanic" in out and "chile" not in out
