"""Where a pipeline run's time goes: per stage, imports, I/O, model work, reports, MLflow, other.

Per row count, in a fresh process (so ``ru_maxrss`` is that size's alone), on a fresh
embedded home (``prepare_home`` without Airflow, as the demo's: local MLflow sqlite store
and artifact folder, local object store, the home's key pair; no service, no network):
run 1 is the first run (no champion) on a batch of N rows, run 2 a second batch of N rows
judged against the champion run 1 left (if run 1 was not promoted, run 2 has none, and the
table says so). Both go through ``aire.pipeline.runner.run_all``, as ``aire run`` does, with
``include/config/credit_risk.yaml`` as it is. The batches are CSV (the demo's format;
``--format parquet`` for the other) drawn with replacement from German Credit by
``aire.data.datasets.make_batch`` (seeds 1 and 2), with age +-3, duration +-2 and
credit_amount x U(0.9, 1.1) jittered inside the observed ranges, so rows are not copies;
the second batch's ``row_id`` starts at N. Making them is not timed.

**imports** (method: a fresh interpreter per stage): for each stage, a fresh
``python -X importtime`` runs the imports that stage needs and times them with
``time.perf_counter``: ``BASE`` (``aire.pipeline.stages``, ``aire.telemetry`` and MLflow's
sqlite stores, every stage), the import statements in the stage function's body (read from
its source with ``ast``), and ``LAZY``, what its domain code imports inside functions or on
first use (Great Expectations, Evidently, plotly, scipy, sklearn, ``torch._dynamo`` with
sympy at an optimizer's first step, ``pyarrow.dataset`` at the first Parquet read). A DAG
task that starts cold pays that (the demo's LocalExecutor forks tasks from a process that
imported most of it); ``-X importtime``'s self times, summed per top-level package, say which
dominate (its own overhead is in the figure, a few per cent). Imports do not depend on the
row count: they are measured once per invocation, after one discarded warm-up process (page
cache), and the same figure stands in every table. ``aire run`` pays them once per process:
the "one process" line imports every stage's set at once.

**in-process**: the worker runs every stage's import set before the timed runs, so the
stage times below hold no import of those; ``late`` is the time of any module still first
imported during the stage (``importlib._bootstrap._find_and_load`` wrapped, through which
every import statement and ``importlib.import_module`` loads a module), with the top-level
packages it loaded beside the row (a hole in ``LAZY``). Each stage's wall time is split by
wrapping, at run time and in this process only (the library is not edited), these
functions; a call's time goes to its own category minus the wrapped calls inside it (so
``fetch_reference``'s download is ``mlflow``, its table read ``io``; only the main thread
is timed):

- ``io``: ``aire.data.tables.read_table`` and ``write_table`` (the batch, quarantine, the
  train/holdout split), ``RunContext._frame`` (the run's Parquet files read back),
  ``LocalStore.put_file`` (object-store copies), ``TrainedModel.save``,
  ``aire.model.tabular.load_model``, ``aire.trust.verify.fetch_reference`` (the champion's
  reference batch, read);
- ``model``: ``aire.model.training.fit`` (candidate, MLP cross-fit and blend folds),
  ``aire.model.boosted.fit_boosted`` (boosted-tree cross-fit folds), and both model classes'
  ``predict_proba`` and ``predict_proba_encoded`` (encoding included);
- ``report``: ``aire.data.validation._run_suite`` (the Great Expectations suite),
  ``aire.evaluation.drift._run_evidently`` (Evidently's drift report: run, json(),
  save_html), ``aire.analysis.report.write_outputs`` (analysis CSVs and report.html),
  ``aire.evaluation.report.write_report`` (evaluation.json and .html);
- ``mlflow``: every public method of ``aire.registry.mlflow_registry.Registry`` and its
  constructor (run lookup and creation, metrics, params, tags, artifacts, downloads,
  registration, aliases);
- ``other``: the rest of the stage's wall time: validation's planning and result reading,
  the table digest, the error analysis's statistics (confident learning, leakage check,
  review), quality and fairness metrics, signing and signature checks (model_signing),
  the ledger and its sqlite anchor, JSON files, config loading, telemetry.

``total`` is imports + the in-process wall (``in-proc``): the stage as a task of its own in a
cold process. MLflow's first call on a fresh home creates its sqlite database (alembic
migrations): that is in run 1's ``validate_data`` ``mlflow``, once per home.
The run's end-to-end figure is ``run_all``'s wall in this process (no imports), and beside it
that plus the one-process import set (a cold ``aire run``). CPU seconds
(``time.process_time``) of each run are printed too: on a shared machine wall time says as
much about the neighbours as about the code. Peak RSS is ``ru_maxrss`` after the imports and
after each run (the worker's peak so far, so run 2's covers both runs).

    .venv/bin/python bench/profile_run.py                          # 1,000 and 30,000 rows
    .venv/bin/python bench/profile_run.py --rows 1000000 --out profile.json
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

CONFIG = ROOT / "include" / "config" / "credit_risk.yaml"
STAGES = ("validate_data", "analyze_errors", "fine_tune", "sign_model", "evaluate", "gate", "promote", "reject")
CATEGORIES = ("late", "io", "model", "report", "mlflow")
# Every stage: its module, the telemetry its @timed opens, and the stores MlflowClient loads on
# first use of a sqlite tracking URI (the embedded home's; alembic and mako come with them).
BASE = ("import aire.pipeline.stages", "import aire.telemetry", "import mlflow.store.tracking.sqlalchemy_store",
        "import mlflow.store.model_registry.sqlalchemy_store")
# What each stage's domain code imports inside its functions, or first use imports (see the
# module doc): torch._dynamo (with sympy) at a torch optimizer's first step, pyarrow.dataset at
# pandas' first Parquet read, plotly.offline at Evidently's first save_html.
LAZY: dict[str, tuple[str, ...]] = {
    "validate_data": ("great_expectations", "great_expectations.data_context.types.base", "scipy.stats",
                      "pyarrow.parquet"),
    "analyze_errors": ("sklearn.model_selection", "sklearn.ensemble", "aire.model.boosted", "aire.model.training",
                       "torch._dynamo", "pyarrow.dataset"),
    "fine_tune": ("sklearn.model_selection", "torch._dynamo", "pyarrow.dataset"),
    "sign_model": (),
    "evaluate": ("evidently", "evidently.presets", "plotly.offline", "scipy.stats", "sklearn.metrics",
                 "pyarrow.dataset"),
    "gate": (),
    "promote": (),
    "reject": ("pyarrow.dataset",),
}
QUIET_ENV = {"MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true", "GX_ANALYTICS_ENABLED": "false",
             "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


# --- imports, in fresh processes -----------------------------------------------------------
def stage_imports(name: str) -> list[str]:
    """The import statements ``name`` needs: the base, its body's own, its lazy third-party ones."""
    from aire.pipeline import stages

    function = inspect.unwrap(getattr(stages, name))
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    return [*BASE, *body, *(f"import {module}" for module in LAZY[name])]


def measure_imports(statements: list[str]) -> dict[str, Any]:
    """Wall time of ``statements`` in a fresh ``python -X importtime``, and self time per package."""
    code = ("import time, json\nstarted = time.perf_counter()\n" + "\n".join(dict.fromkeys(statements))
            + "\nprint(json.dumps(time.perf_counter() - started))")
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT / "include")}
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True)
    by_package: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+\d+ \|(\s*)(\S+)", line)
        if found:
            by_package[found.group(3).split(".")[0]] += int(found.group(1)) / 1e6
    top = sorted(by_package.items(), key=lambda item: -item[1])[:5]
    return {"seconds": float(done.stdout.strip().splitlines()[-1]), "top": [[k, round(v, 2)] for k, v in top]}


def all_imports() -> dict[str, Any]:
    statements = {name: stage_imports(name) for name in STAGES}
    union = [s for name in STAGES for s in statements[name]]
    measure_imports(union)  # warm-up: the page cache, not the code
    return {"one_process": measure_imports(union), "base": measure_imports(list(BASE)),
            "stages": {name: measure_imports(statements[name]) for name in STAGES}}


# --- the batches ---------------------------------------------------------------------------
def make_batch_file(rows: int, seed: int, first_id: int, path: Path) -> None:
    from aire.data.datasets import ID, german_credit, make_batch
    from aire.data.tables import write_table

    frame, _ = make_batch(german_credit(), n_rows=rows, seed=seed, replace=True)
    rng = np.random.default_rng(seed + 100)
    frame["age"] = (frame["age"] + rng.integers(-3, 4, rows)).clip(19, 75)
    frame["duration"] = (frame["duration"] + rng.integers(-2, 3, rows)).clip(4, 72)
    frame["credit_amount"] = (frame["credit_amount"] * rng.uniform(0.9, 1.1, rows)).round().astype(np.int64)
    frame[ID] = np.arange(first_id, first_id + rows, dtype=np.int64)
    write_table(frame, path)


# --- the in-process split ------------------------------------------------------------------
class Split:
    """Exclusive time per category: a wrapped call's time minus the wrapped calls inside it.

    Only the main thread is timed (a background thread's calls would interleave with its stack).
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.inner: list[float] = []  # per open call: time spent in wrapped calls inside it

    def wrap(self, category: str, function: Callable[..., Any]) -> Callable[..., Any]:
        main = threading.main_thread()

        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not main:
                return function(*args, **kwargs)
            self.inner.append(0.0)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.totals[category] += elapsed - self.inner.pop()
                if self.inner:
                    self.inner[-1] += elapsed

        return wrapped

    def function(self, category: str, module_name: str, name: str) -> None:
        """Wrap ``module.name`` there and wherever an ``aire`` module imported it by name."""
        original = getattr(sys.modules[module_name], name)
        wrapped = self.wrap(category, original)
        for module in [m for key, m in sys.modules.items() if key == "aire" or key.startswith("aire.")]:
            if getattr(module, name, None) is original:
                setattr(module, name, wrapped)

    def method(self, category: str, cls: type, name: str) -> None:
        setattr(cls, name, self.wrap(category, cls.__dict__[name]))


def install(split: Split) -> None:
    import importlib._bootstrap

    from aire.data.storage import LocalStore
    from aire.model.boosted import BoostedFoldModel
    from aire.model.tabular import TrainedModel
    from aire.pipeline.run_context import RunContext
    from aire.registry.mlflow_registry import Registry

    for module, name in (("aire.data.tables", "read_table"), ("aire.data.tables", "write_table"),
                         ("aire.model.tabular", "load_model"), ("aire.trust.verify", "fetch_reference")):
        split.function("io", module, name)
    for cls, name in ((RunContext, "_frame"), (LocalStore, "put_file"), (TrainedModel, "save")):
        split.method("io", cls, name)
    split.function("model", "aire.model.training", "fit")
    split.function("model", "aire.model.boosted", "fit_boosted")
    for name in ("predict_proba", "predict_proba_encoded"):
        split.method("model", TrainedModel, name)
        split.method("model", BoostedFoldModel, name)
    for module, name in (("aire.data.validation", "_run_suite"), ("aire.evaluation.drift", "_run_evidently"),
                         ("aire.analysis.report", "write_outputs"), ("aire.evaluation.report", "write_report")):
        split.function("report", module, name)
    for name, member in list(vars(Registry).items()):
        if inspect.isfunction(member) and (name == "__init__" or not name.startswith("_")):
            split.method("mlflow", Registry, name)
    # Every import statement and importlib.import_module that loads a module (C included) goes
    # through this one function: a module first imported during a stage is "late", not its caller's.
    importlib._bootstrap._find_and_load = split.wrap(  # type: ignore[attr-defined]
        "late", importlib._bootstrap._find_and_load)  # type: ignore[attr-defined]


def time_stages(split: Split, records: list[dict[str, Any]]) -> None:
    """Wrap each stage function (``run_all`` looks them up on ``aire.pipeline.stages``)."""
    from aire.pipeline import stages

    def timed(name: str, stage: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(stage)
        def run(*args: Any, **kwargs: Any) -> Any:
            assert not split.inner, "a stage inside a wrapped call"
            before, modules = dict(split.totals), set(sys.modules)
            record: dict[str, Any] = {"stage": name, "failed": True}
            records.append(record)
            started = time.perf_counter()
            try:
                result = stage(*args, **kwargs)
                record["failed"] = False
                return result
            finally:
                wall = time.perf_counter() - started
                parts = {c: split.totals.get(c, 0.0) - before.get(c, 0.0) for c in CATEGORIES}
                late = sorted(set(sys.modules) - modules)
                record.update(parts, other=wall - sum(parts.values()), wall=wall, late_modules=late)

        return run

    for name in STAGES:
        setattr(stages, name, timed(name, getattr(stages, name)))


def one_size(work: Path) -> dict[str, Any]:
    """Both runs on the batches in ``work`` (the worker process)."""
    os.environ.update(QUIET_ENV)
    os.environ["AIRE_HOME"] = str(work / "home")
    for variable in ("MLFLOW_TRACKING_URI", "AIRE_INCIDENTS_DB", "AIRE_DERIVED_FROM",
                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        os.environ.pop(variable, None)
    for name in STAGES:
        for statement in stage_imports(name):
            exec(statement, {})
    from aire.home import Home
    from aire.pipeline.home_setup import prepare_home
    from aire.pipeline.run_context import RunSpec
    from aire.pipeline.runner import run_all

    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    prepare_home(Home.from_env(), migrate_airflow=False)
    split, runs = Split(), []
    install(split)
    for index, batch in enumerate(sorted(work.glob("batch-*")), start=1):
        records: list[dict[str, Any]] = []
        time_stages(split, records)
        started, cpu = time.perf_counter(), time.process_time()
        try:
            outcome = run_all(RunSpec(str(CONFIG), str(batch), f"profile-{index}"))
            outcome_name, champion = outcome["outcome"], outcome.get("validate_data", {}).get("champion_version")
        except Exception as exc:  # noqa: BLE001 - a fatal stage: the table still shows what ran
            outcome_name, champion = f"failed: {type(exc).__name__}: {str(exc)[:200]}", None
        runs.append({"run": index, "outcome": outcome_name, "champion_version": champion,
                     "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "stages": records})
        from aire.pipeline import stages

        for name in STAGES:  # unwrap this run's stage timers before the next run wraps again
            setattr(stages, name, getattr(stages, name).__wrapped__)
    return {"rss_after_imports_mb": rss_imports, "runs": runs}


# --- the tables ----------------------------------------------------------------------------
def print_table(rows: int, result: dict[str, Any], imports: dict[str, Any]) -> None:
    print(f"\n## {rows:,} rows (peak RSS after imports {result['rss_after_imports_mb']:.0f} MB)")
    for run in result["runs"]:
        champion = run["champion_version"]
        print(f"\nrun {run['run']} ({'champion v' + str(champion) if champion else 'no champion'}): "
              f"{run['outcome']}; end-to-end {run['seconds']:.1f} s in-process "
              f"({run['seconds'] + imports['one_process']['seconds']:.1f} s with one process's imports), "
              f"CPU {run['cpu_seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB")
        print(f"{'stage':<15} {'imports':>8} {'late':>7} {'io':>7} {'model':>7} {'report':>7} {'mlflow':>7} "
              f"{'other':>7} {'in-proc':>8} {'total':>7}")
        for stage in run["stages"]:
            imported = imports["stages"][stage["stage"]]["seconds"]
            cells = " ".join(f"{stage[c]:>7.2f}" for c in (*CATEGORIES, "other"))
            note = " (failed)" if stage["failed"] else ""
            if stage["late"] >= 0.05:
                roots = sorted({m.split(".")[0] for m in stage["late_modules"]})
                note += f" late: {', '.join(roots)}"
            print(f"{stage['stage']:<15} {imported:>8.2f} {cells} {stage['wall']:>8.2f} "
                  f"{imported + stage['wall']:>7.2f}{note}")
        sums = {c: sum(s[c] for s in run["stages"]) for c in (*CATEGORIES, "other", "wall")}
        print(f"{'sum of stages':<15} {'':>8} " + " ".join(f"{sums[c]:>7.2f}" for c in (*CATEGORIES, "other"))
              + f" {sums['wall']:>8.2f}   (run_all outside the stages: {run['seconds'] - sums['wall']:.2f} s)")


def print_imports(imports: dict[str, Any]) -> None:
    print("\n## imports (fresh `python -X importtime` per line; seconds of wall; self time per top-level package)")

    def line(label: str, measured: dict[str, Any]) -> None:
        top = ", ".join(f"{package} {seconds:.2f}" for package, seconds in measured["top"])
        print(f"{label:<28} {measured['seconds']:>7.2f}  {top}")

    line("one process (all stages)", imports["one_process"])
    line("base (aire.pipeline.stages)", imports["base"])
    for name, measured in imports["stages"].items():
        line(name, measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,30000", help="comma-separated row counts (1000000 is accepted)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", help="the batches' file format")
    parser.add_argument("--out", type=Path, default=None, help="write every figure here (JSON)")
    parser.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one)))
        return
    sizes = [int(r) for r in args.rows.split(",") if r]
    imports = all_imports()
    print_imports(imports)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
                               "format": args.format, "imports": imports, "sizes": {}}
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="aire-bench-profile-") as tmp:
            work = Path(tmp)
            for seed, first_id in ((1, 0), (2, rows)):
                make_batch_file(rows, seed, first_id, work / f"batch-{seed}.{args.format}")
            done = subprocess.run([sys.executable, __file__, "--one", str(work)], capture_output=True, text=True,
                                  cwd=ROOT, check=False)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-5000:], file=sys.stderr)
                raise SystemExit(f"the {rows}-row worker failed ({done.returncode})")
            result = json.loads(done.stdout.strip().splitlines()[-1])
        results["sizes"][str(rows)] = result
        print_table(rows, result, imports)
        sys.stdout.flush()
    print(f"\n{os.cpu_count()} cores; load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
