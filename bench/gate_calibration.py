"""Choosing the gate's defaults from recorded evidence: run the panel once, re-decide offline.

``record``: bench/panel_spread.py's runs (``spread --panel``: every data set, seed and kind
through the real stages up to the gate), with each run's whole ``Evidence`` kept beside its
decision, written as JSON. It wraps panel_spread's own functions (the harness is unchanged):
in each worker process ``_through_gate`` is wrapped to keep the evidence the gate stage
returns. ``--gate KEY=VALUE`` sets the gates the runs use; they matter only for evidence
computed with a default (``min_group_count``, ``max_sensitive_groups``,
``max_null_rate_increase``) and for which reference becomes the champion.

``--sets`` limits a recording to some of the half's sets; ``decide`` and ``sweep`` take
several record files (their runs together).

``decide``: every recorded run's evidence through ``aire.promotion.gate.decide`` with the
given defaults (``--gate KEY=VALUE``, else the library's), printed as the promote/reject
table per data set and kind with the checks that rejected. Cheap: seconds, not hours.

``sweep``: for one Gates field and a list of values, the share of each kind promoted.

``features``: per set and kind, the range of each run's largest feature-shift effect and
smallest adjusted p-value (the figures behind ``drift_alpha`` and ``min_drift_effect``).

``record-german``: bench/evaluation.py's German Credit ``spread`` (scenarios overlap and
disjoint, unchanged) with each gate call's evidence kept the same way, so that its figures
can be re-decided under the chosen defaults too (set: ``german-<scenario>``).

    .venv/bin/python bench/gate_calibration.py record --panel calibration --jobs 2 --out calib.json
    .venv/bin/python bench/gate_calibration.py decide calib.json
    .venv/bin/python bench/gate_calibration.py record --panel verification --first-seed 10 --out fresh.json
    .venv/bin/python bench/gate_calibration.py sweep calib.json prior_z=-1,0,1
    .venv/bin/python bench/gate_calibration.py features calib.json
    .venv/bin/python bench/gate_calibration.py record-german --seeds 10 --out german.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "include"))


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def _kept_evidence(spec: Any, *, expect_champion: bool) -> dict[str, Any]:
    import panel_spread
    from aire.pipeline import stages

    original_gate = stages.gate
    seen: dict[str, Any] = {}

    def gate(spec: Any, version: int | None) -> dict[str, Any]:
        decision = original_gate(spec, version)
        seen["evidence"] = decision.get("evidence")
        return decision

    stages.gate = gate  # type: ignore[assignment]
    try:
        result = panel_spread.__dict__["_original_through_gate"](spec, expect_champion=expect_champion)
    finally:
        stages.gate = original_gate
    return {**result, "evidence": seen.get("evidence")}


def run_seed(name: str, seed: int, gates: dict[str, Any], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """panel_spread.run_seed with the evidence of each gate call kept in its record."""
    import panel_spread

    if "_original_through_gate" not in panel_spread.__dict__:
        panel_spread.__dict__["_original_through_gate"] = panel_spread._through_gate
        panel_spread._through_gate = _kept_evidence
    records: list[dict[str, Any]] = panel_spread.run_seed(name, seed, gates, kinds)
    return records


def record(half: str, seeds: int, kinds: tuple[str, ...], gates: dict[str, Any], jobs: int, out: Path,
           only: list[str] | None = None, first_seed: int = 0) -> None:
    import time
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    import panel
    import panel_spread

    sets = [s for s in panel.panel(half) if only is None or s.name in only]
    tasks = sorted(((s.name, seed) for s in sets for seed in range(first_seed, first_seed + seeds)),
                   key=lambda t: -len(panel.load(panel.BY_NAME[t[0]]).frame))
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    print(f"panel {half}: {len(sets)} sets x {seeds} seeds from {first_seed}, kinds {','.join(kinds)}, "
          f"gates {gates}", flush=True)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_seed, name, seed, gates, kinds): (name, seed) for name, seed in tasks}
        for future in as_completed(futures):
            records.extend(future.result())
            name, seed = futures[future]
            print(f"  done {name} seed {seed} ({time.perf_counter() - start:.0f} s)", flush=True)
            out.write_text(json.dumps({"half": half, "seeds": seeds, "gates": gates, "records": records},
                                      default=str))
    panel_spread.print_tables(records, [s.name for s in sets], kinds)
    print(f"\nwall time {time.perf_counter() - start:.0f} s for {len(records)} runs", flush=True)


_SHIFTS: dict[tuple[str, int, str], Any] = {}


def _label_shifts(record: dict[str, Any], gates: dict[str, Any]) -> Any:
    """``Evidence.group_label_shifts`` of a run recorded before the evaluation computed them:
    the same function on the same frames, which bench/panel.py redraws from the seed."""
    import panel
    from aire.config import Gates
    from aire.evaluation.label_shift import group_label_shift

    key = (record["set"], record["seed"], record["kind"])
    if key not in _SHIFTS:
        loaded = panel.load(panel.BY_NAME[record["set"]])
        drawn = panel.draw(loaded, record["seed"])
        frame = panel.batch(loaded, drawn, record["kind"], record["seed"])
        chosen = Gates(**gates)
        label = loaded.spec.label
        result = group_label_shift(drawn.reference, frame, label, loaded.spec.sensitive,
                                   int(drawn.reference[label].max()), min_group_count=chosen.min_group_count,
                                   max_groups=chosen.max_sensitive_groups)
        _SHIFTS[key] = tuple((s.column, s.group, s.label, s.rows, s.reference_rows, s.shift, s.se)
                             for s in result.shifts)
    return _SHIFTS[key]


def record_german(seeds: int, scenarios: list[str], gates: dict[str, Any], out: Path) -> None:
    import os

    import evaluation
    from aire.pipeline import stages

    original_gate = stages.gate
    homes: list[str] = []
    records: list[dict[str, Any]] = []

    def gate(spec: Any, version: int | None) -> dict[str, Any]:
        decision = original_gate(spec, version)
        home = os.environ["AIRE_HOME"]
        if home not in homes:
            homes.append(home)
        kind, _, seed = str(spec.run_key).rpartition("-")
        if not seed.isdigit():  # the champion's own run: the yardstick, not a figure
            return decision
        checks = [{k: c.get(k) for k in ("name", "value", "threshold", "passed")} for c in decision["checks"]]
        records.append({"set": f"german-{scenarios[len(homes) - 1]}", "kind": kind, "seed": int(seed),
                        "promote": bool(decision["promote"]), "rejected_by": decision["failed"],
                        "checks": checks, "evidence": decision.get("evidence"), "error": None})
        out.write_text(json.dumps({"half": "german", "seeds": seeds, "gates": gates, "records": records},
                                  default=str))
        return decision

    stages.gate = gate  # type: ignore[assignment]
    evaluation.spread(seeds, scenarios, list(evaluation.KINDS), gates)


def redecide(records: list[dict[str, Any]], gates: dict[str, Any]) -> list[dict[str, Any]]:
    """Each record's decision under ``gates``, from its evidence (a validation reject stays one)."""
    from dataclasses import fields

    from aire.config import Gates
    from aire.promotion.gate import Evidence, decide

    chosen = Gates(**gates)
    tuples = {"leaking_features", "fairness_small_groups"}
    nested = {"group_suspect_rates", "champion_group_suspect_rates", "group_label_shifts", "feature_tests"}
    known = {f.name for f in fields(Evidence)}
    decided = []
    for r in records:
        evidence = r.get("evidence")
        if not evidence:
            decided.append(r)  # a validation reject or an error: no evidence to re-decide
            continue
        values = {k: v for k, v in evidence.items() if k in known}
        for key in tuples & values.keys():
            values[key] = tuple(values[key]) if values[key] is not None else None
        if "group_label_shifts" not in values and r["kind"] != "first" and not values.get("first_run"):
            values["group_label_shifts"] = _label_shifts(r, gates)  # older records lack them
        for key in nested & values.keys():
            values[key] = tuple(tuple(row) for row in values[key]) if values[key] is not None else None
        decision = decide(chosen, Evidence(**values))
        decided.append({**r, "promote": decision.promote, "rejected_by": decision.failed,
                        "checks": [c.to_dict() for c in decision.checks]})
    return decided


def table(records: list[dict[str, Any]]) -> None:
    sets = list(dict.fromkeys(r["set"] for r in records))
    kinds = list(dict.fromkeys(r["kind"] for r in records))
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        by.setdefault((r["set"], r["kind"]), []).append(r)
    print(f"{'set':<17} {'kind':<8} {'promoted':>9} {'errors':>6}  rejected by (runs)")
    for name in sets:
        for kind in kinds:
            rows = by.get((name, kind), [])
            if rows:
                why = Counter(c for r in rows for c in r["rejected_by"])
                print(f"{name:<17} {kind:<8} {sum(r['promote'] is True for r in rows):>4}/{len(rows):<4} "
                      f"{sum(r['promote'] is None for r in rows):>6}  "
                      + ", ".join(f"{c} {n}" for c, n in why.most_common()), flush=True)
    print(f"\n{'all sets':<17} {'kind':<8} {'promoted':>9}")
    for kind in kinds:
        rows = [r for r in records if r["kind"] == kind and r["promote"] is not None]
        print(f"{'':<17} {kind:<8} {sum(r['promote'] is True for r in rows):>4}/{len(rows):<4}")


def features(records: list[dict[str, Any]]) -> None:
    """Per set and kind: each run's largest feature-shift effect and smallest Bonferroni-adjusted p."""
    print(f"{'set':<17} {'kind':<8} {'largest effect':>16} {'smallest adj. p':>18}")
    by: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in records:
        tests = (r.get("evidence") or {}).get("feature_tests")
        if tests:
            by.setdefault((r["set"], r["kind"]), []).append(
                (max(t[2] for t in tests), min(min(1.0, t[3] * len(tests)) for t in tests)))
    for (name, kind), runs in by.items():
        effects, ps = [e for e, _ in runs], [p for _, p in runs]
        print(f"{name:<17} {kind:<8} {min(effects):>7.3f}-{max(effects):<8.3f} {min(ps):>9.2g}-{max(ps):<8.2g}")


def sweep(records: list[dict[str, Any]], field: str, values: list[Any], gates: dict[str, Any]) -> None:
    kinds = list(dict.fromkeys(r["kind"] for r in records))
    print(f"{field:>12} " + " ".join(f"{k:>8}" for k in kinds))
    for value in values:
        decided = redecide(records, {**gates, field: value})
        shares = []
        for kind in kinds:
            rows = [r for r in decided if r["kind"] == kind and r["promote"] is not None]
            shares.append(f"{sum(r['promote'] is True for r in rows):>3}/{len(rows):<4}")
        print(f"{value!s:>12} " + " ".join(f"{s:>8}" for s in shares), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cmd = sub.add_parser("record")
    cmd.add_argument("--panel", choices=["calibration", "verification", "all"], required=True)
    cmd.add_argument("--seeds", type=int, default=10)
    cmd.add_argument("--first-seed", type=int, default=0,
                     help="seeds first-seed .. first-seed + seeds - 1 (fresh draws for a second look)")
    cmd.add_argument("--kinds", default=None)
    cmd.add_argument("--jobs", type=int, default=2)
    cmd.add_argument("--out", type=Path, required=True)
    cmd.add_argument("--sets", default=None, help="only these data sets of the half (comma-separated)")
    cmd.add_argument("--gate", action="append", default=[], metavar="KEY=VALUE")
    cmd = sub.add_parser("record-german")
    cmd.add_argument("--seeds", type=int, default=10)
    cmd.add_argument("--scenario", default="overlap,disjoint")
    cmd.add_argument("--out", type=Path, required=True)
    cmd.add_argument("--gate", action="append", default=[], metavar="KEY=VALUE")
    for name in ("decide", "sweep", "features"):
        cmd = sub.add_parser(name)
        cmd.add_argument("records", type=Path, nargs=1 if name == "sweep" else "+")
        if name == "sweep":
            cmd.add_argument("field", metavar="FIELD=V1,V2,...")
        cmd.add_argument("--gate", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    gates = {key: _yaml(value) for key, value in (g.split("=", 1) for g in args.gate)}
    if args.what == "record":
        import os

        import panel

        os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        kinds = tuple(args.kinds.split(",")) if args.kinds else panel.KINDS
        record(args.panel, args.seeds, kinds, gates, args.jobs, args.out,
               args.sets.split(",") if args.sets else None, args.first_seed)
        return
    if args.what == "record-german":
        import os

        os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        record_german(args.seeds, args.scenario.split(","), gates, args.out)
        return
    records = [r for path in args.records for r in json.loads(path.read_text())["records"]]
    if args.what == "decide":
        table(redecide(records, gates))
    elif args.what == "features":
        features(records)
    else:
        field, listed = args.field.split("=", 1)
        sweep(records, field, [_yaml(v) for v in listed.split(",")], gates)


if __name__ == "__main__":
    main()
