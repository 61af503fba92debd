"""The spread benchmark on the calibration panel (``bench/evaluation.py spread --panel``).

Per data set and seed, in a fresh home (one process-pool task each):
- ``first``: the reference batch (min(3000, half the rows)) run through every stage up to
  the gate with no champion; its decision is the first-run figure. The candidate is then
  promoted as the champion; where the gate rejected it, a second gate call on the same
  run with every waivable check waived (the yardstick config) lets it through, since the
  champion is the yardstick of the later batches, not what they test.
- the later kinds, each one batch of min(1500, the rest) rows drawn without replacement
  from the rows the reference did not use, against that one champion, up to the gate
  (never promoted, so every kind meets the same champion): ``clean``, ``noise30`` and
  ``noise10`` (uniform label noise), ``drift`` (only rows above the 70th percentile of one
  numeric feature), ``bias`` (60% of one group's positive labels flipped), ``leak`` (a
  feature overwritten with the label's code plus a little noise), ``nulls`` (one feature
  40% null). bench/panel.py holds the data and the corruptions.

The config comes from the set's schema (bench/panel.py ``config``) with ``gates: {}`` plus
the ``--gate`` overrides. A batch that fails validation (validate_data raises) is a reject
by ``data_validation``; any other exception is recorded with its message as ``error``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "include"))

import panel  # bench/ is not a package: the path above finds it


def waived_gates(gates: dict[str, Any]) -> dict[str, Any]:
    """The yardstick's gates: every max_* at its upper bound, min_* (but min_group_count) at
    its lower bound, reject_on_* off; read from aire.config.Gates so new keys are covered."""
    from aire.config import Gates

    waived = dict(gates)
    for name, info in Gates.model_fields.items():
        bounds = {k: getattr(m, k) for m in info.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)}
        if isinstance(info.default, bool):
            if name.startswith("reject_on"):
                waived[name] = False
        elif name.startswith("max_") and "le" in bounds:
            waived[name] = bounds["le"]
        elif name.startswith("min_") and name != "min_group_count" and "ge" in bounds:
            waived[name] = bounds["ge"]
    return waived


def run_seed(name: str, seed: int, gates: dict[str, Any], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every kind's record for one (data set, seed); see the module docstring."""
    import yaml

    from aire.home import Home
    from aire.pipeline.home_setup import prepare_home
    from aire.pipeline.run_context import RunSpec

    loaded = panel.load(panel.BY_NAME[name])
    drawn = panel.draw(loaded, seed)
    base = {"set": name, "half": loaded.spec.half, "seed": seed, "classes": len(loaded.classes)}
    with tempfile.TemporaryDirectory(prefix=f"aire-panel-{name}-{seed}-") as tmp:
        os.environ["AIRE_HOME"] = str(Path(tmp) / "home")
        for variable in ("MLFLOW_TRACKING_URI", "AIRE_INCIDENTS_DB"):
            os.environ.pop(variable, None)
        prepare_home(Home.from_env(), migrate_airflow=False)
        config, yardstick = Path(tmp) / "config.yaml", Path(tmp) / "yardstick.yaml"
        config.write_text(yaml.safe_dump(panel.config(loaded, gates)))
        yardstick.write_text(yaml.safe_dump(panel.config(loaded, waived_gates(gates))))

        reference = Path(tmp) / "reference.csv"
        drawn.reference.to_csv(reference, index=False)
        spec = RunSpec(str(config), str(reference), "first")
        first = _through_gate(spec, expect_champion=False)
        records = [{**base, "kind": "first", "rows": len(drawn.reference), **first}] if "first" in kinds else []
        champion = _make_champion(spec, RunSpec(str(yardstick), str(reference), "first"), first)
        for kind in (k for k in kinds if k != "first"):
            if champion is None:
                records.append({**base, "kind": kind, "rows": 0, "promote": None, "rejected_by": [],
                                "checks": [], "error": "no champion: the yardstick gate rejected the reference"})
                continue
            frame = panel.batch(loaded, drawn, kind, seed)
            path = Path(tmp) / f"{kind}.csv"
            frame.to_csv(path, index=False)
            result = _through_gate(RunSpec(str(config), str(path), kind), expect_champion=True)
            records.append({**base, "kind": kind, "rows": len(frame), **result})
    return records


def _through_gate(spec: Any, *, expect_champion: bool) -> dict[str, Any]:
    """validate_data .. gate in-process, as `aire run` does, without the promotion."""
    from aire.errors import DataValidationError
    from aire.pipeline import stages

    start = time.perf_counter()
    try:
        version = stages.validate_data(spec)["champion_version"]
        if (version is not None) != expect_champion:  # a stale home would make every figure wrong
            raise RuntimeError(f"champion version {version} where expect_champion={expect_champion}")
        stages.analyze_errors(spec, version)
        stages.fine_tune(spec, version)
        stages.sign_model(spec)
        stages.evaluate(spec, version)
        decision = stages.gate(spec, version)
    except DataValidationError as exc:
        return {"promote": False, "rejected_by": ["data_validation"], "checks": [
            {"name": "data_validation", "value": None, "threshold": True, "passed": False,
             "detail": str(exc)[:300]}], "error": None, "wall_s": round(time.perf_counter() - start, 2)}
    except Exception as exc:  # noqa: BLE001 - the bench records any failure and goes on
        return {"promote": None, "rejected_by": [], "checks": [], "wall_s": round(time.perf_counter() - start, 2),
                "error": f"{type(exc).__name__}: {exc}"[:500], "trace": traceback.format_exc()[-1500:]}
    checks = [{k: c.get(k) for k in ("name", "value", "threshold", "passed")} for c in decision["checks"]]
    return {"promote": bool(decision["promote"]), "rejected_by": [c["name"] for c in checks if not c["passed"]],
            "checks": checks, "error": None, "wall_s": round(time.perf_counter() - start, 2)}


def _make_champion(spec: Any, yardstick: Any, first: dict[str, Any]) -> int | None:
    """Promote the reference run; a rejected one through the yardstick's gate. None: no champion."""
    from aire.pipeline import stages

    if first.get("error") or "data_validation" in first.get("rejected_by", []):
        return None
    if not first["promote"]:
        if not stages.gate(yardstick, None)["promote"]:
            return None
        spec = yardstick
    return int(stages.promote(spec)["version"])


# --- the driver and the tables -------------------------------------------------------------
def spread_panel(half: str, seeds: int, kinds: tuple[str, ...], gates: dict[str, Any], jobs: int,
                 out: Path | None, only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run every (set, seed) of the half (or of ``only``, its sets by name) and print the tables."""
    unknown = sorted(set(only) - set(panel.BY_NAME))
    if unknown:
        raise SystemExit(f"--sets: no panel set {', '.join(unknown)} (there are {', '.join(panel.BY_NAME)})")
    bad_kinds = sorted(set(kinds) - set(panel.KINDS))
    if bad_kinds:
        raise SystemExit(f"--kinds: no kind {', '.join(bad_kinds)} (there are {', '.join(panel.KINDS)})")
    sets = [s for s in panel.panel(half) if not only or s.name in only]
    # Largest sets first, so the pool's last tasks are short ones.
    tasks = sorted(((s.name, seed) for s in sets for seed in range(seeds)),
                   key=lambda t: -len(panel.load(panel.BY_NAME[t[0]]).frame))
    start = time.perf_counter()
    records: list[dict[str, Any]] = []

    def save(complete: bool) -> None:
        # Rewritten after every task, so a run stopped early still leaves its figures.
        if out is not None:
            out.write_text(json.dumps({"half": half, "seeds": seeds, "gates": gates, "jobs": jobs,
                                       "complete": complete, "wall_s": round(time.perf_counter() - start, 1),
                                       "records": records}, indent=1, default=str))
    print(f"panel {half}: {len(sets)} sets x {seeds} seeds, kinds {','.join(kinds)}, gates {gates}, "
          f"jobs {jobs}", flush=True)
    # One thread per worker: --jobs processes on a few shared cores, not jobs x cores threads.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_seed, name, seed, gates, kinds): (name, seed) for name, seed in tasks}
        for future in as_completed(futures):
            name, seed = futures[future]
            try:
                records.extend(future.result())
            except Exception as exc:  # noqa: BLE001 - one broken task must not lose the others' figures
                records.extend({"set": name, "half": panel.BY_NAME[name].half, "seed": seed, "kind": kind,
                                "rows": 0, "promote": None, "rejected_by": [], "checks": [],
                                "error": f"task failed: {type(exc).__name__}: {exc}"[:500]} for kind in kinds)
            save(complete=False)
            print(f"  done {name} seed {seed} ({time.perf_counter() - start:.0f} s)", flush=True)
    wall = time.perf_counter() - start
    save(complete=True)
    print_tables(records, [s.name for s in sets], kinds)
    print(f"\nwall time {wall:.0f} s for {len(records)} runs ({len(tasks)} tasks, jobs {jobs})", flush=True)
    return records


def replay(path: Path, kinds: tuple[str, ...], only: tuple[str, ...] = ()) -> None:
    """Print the tables of a saved --out file again (no run)."""
    saved = json.loads(path.read_text())
    records = [r for r in saved["records"] if not only or r["set"] in only]
    names = [s.name for s in panel.PANEL if any(r["set"] == s.name for r in records)]
    partial = "" if saved.get("complete", True) else " (stopped early: the tasks finished by then)"
    print(f"{path}: panel {saved['half']}, {saved['seeds']} seeds, gates {saved['gates']}, jobs {saved['jobs']}, "
          f"wall {saved['wall_s']} s{partial}")
    print_tables(records, names, kinds)


def print_tables(records: list[dict[str, Any]], sets: Iterable[str], kinds: Iterable[str]) -> None:
    """Promote/reject counts per set and kind with the checks that rejected; then each check's spread."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        by.setdefault((record["set"], record["kind"]), []).append(record)
    print(f"\n{'set':<17} {'kind':<8} {'promoted':>9} {'errors':>6}  rejected by (runs)")
    for name in sets:
        for kind in kinds:
            rows = by.get((name, kind), [])
            if not rows:
                continue
            promoted = sum(r["promote"] is True for r in rows)
            errors = sum(r["promote"] is None for r in rows)
            why = Counter(c for r in rows for c in r["rejected_by"])
            shown = ", ".join(f"{c} {n}" for c, n in why.most_common())
            print(f"{name:<17} {kind:<8} {promoted:>4}/{len(rows):<4} {errors:>6}  {shown}", flush=True)
    for name in sets:
        for kind in kinds:
            rows = [r for r in by.get((name, kind), []) if r["checks"]]
            if rows:
                _print_checks(name, kind, rows)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _print_checks(name: str, kind: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{name} / {kind}: promoted {sum(r['promote'] is True for r in rows)}/{len(rows)}")
    print(f"  {'check':<40} {'min':>7} {'median':>7} {'max':>7} {'limit':>7} {'passed':>7}")
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(c["name"] for c in r["checks"]))
    for check in names:
        found = [c for r in rows for c in r["checks"] if c["name"] == check]
        values = [v for v in (_number(c["value"]) for c in found) if v is not None]
        limits = [v for v in (_number(c["threshold"]) for c in found) if v is not None]
        shown = " ".join(f"{x:>7.3f}" for x in (min(values), statistics.median(values), max(values))) \
            if values else " ".join([f"{'-':>7}"] * 3)
        limit = f"{statistics.median(limits):>7.3f}" if limits else f"{found[0]['threshold']!s:>7.7}"
        passed = sum(bool(c["passed"]) for c in found)
        print(f"  {check:<40} {shown} {limit} {passed:>4}/{len(found)}", flush=True)
