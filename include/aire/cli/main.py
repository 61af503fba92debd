"""The ``aire`` command line: every stage without a scheduler, plus status and set-up.

Exit status 0 on success; 2 with a one-line reason on bad input (config, data, signature);
1 on any other failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import pkgutil
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from aire.errors import AireError, InputError
from aire.home import PROJECT_ROOT, Home
from aire.pipeline.stage_registry import OUTCOMES, PIPELINE, stage

EXAMPLE_CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
STAGES = tuple(entry.command for entry in (*PIPELINE, *OUTCOMES))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Everything any command prints goes through one filter: no module has to remember.
    with contextlib.redirect_stdout(_Safe(sys.stdout)), contextlib.redirect_stderr(_Safe(sys.stderr)):
        try:
            result = args.handler(args)
        except InputError as exc:
            print(f"aire: {exc}", file=sys.stderr)
            return 2
        except AireError as exc:
            print(f"aire: {exc}", file=sys.stderr)
            return 1
    return int(result or 0)


# Control characters but newline and tab, DEL, C1 controls and the bidirectional overrides:
# a value from a batch, a run key or a file name must not move the cursor, clear the screen,
# retitle the terminal or reorder what the reader sees.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character shown as its escape (``\\x1b``), never sent raw."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class _Safe(io.TextIOBase):
    """A text stream that writes ``terminal_safe`` text to the stream it wraps."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_safe(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:  # a child process given this stream writes to the real one
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aire", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    cmd = sub.add_parser("env", help="print the exports that point airflow, mlflow and aire at the home")
    cmd.set_defaults(handler=_env)

    cmd = sub.add_parser("init", help="prepare the embedded home: folders, key pair, Airflow DB, example batches")
    cmd.add_argument("--skip-airflow", action="store_true", help="do not migrate the Airflow database")
    cmd.set_defaults(handler=_init)

    cmd = sub.add_parser("make-batches", help="write the example clean and corrupted batches")
    cmd.add_argument("--out", type=Path, help="folder (default: $AIRE_HOME/data)")
    cmd.set_defaults(handler=_make_batches)

    cmd = sub.add_parser("status", help="the champion and open incidents")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG))
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(handler=_status)

    cmd = sub.add_parser("run", help="run every stage in this process, in order")
    _run_args(cmd)
    cmd.set_defaults(handler=_run_all)

    cmd = sub.add_parser("stage", help="run one stage of a pipeline run")
    cmd.add_argument("name", choices=STAGES)
    _run_args(cmd)
    cmd.add_argument("--champion-version", type=int, default=None,
                     help="the champion pinned by validate-data (default: the current champion)")
    cmd.set_defaults(handler=_one_stage)

    cmd = sub.add_parser("demo", help="run aire_retrain through Airflow on the clean, then the corrupted batch")
    cmd.set_defaults(handler=_demo)

    # Each area's commands live in a module of aire.cli that defines add_commands(sub);
    # they are found here so that adding one edits no list.
    here = [str(Path(__file__).parent)]
    for module in sorted(m.name for m in pkgutil.iter_modules(here) if m.name != "main"):
        importlib.import_module(f"aire.cli.{module}").add_commands(sub)
    return parser


def _run_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG))
    cmd.add_argument("--batch", required=True, help="CSV/Parquet path or s3:// URI")
    cmd.add_argument("--run-key", default=None, help="names the run (default: cli-<UTC time>)")
    cmd.add_argument("--epochs", type=int, default=None)
    cmd.add_argument("--learning-rate", type=float, default=None)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _env(args: argparse.Namespace) -> int:
    # shlex, not JSON: inside double quotes the shell would still expand $ and ` in a path.
    for key, value in Home.from_env().environment().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from aire.pipeline.home_setup import prepare_home

    _print(prepare_home(Home.from_env(), migrate_airflow=not args.skip_airflow))
    return 0


def _make_batches(args: argparse.Namespace) -> int:
    from aire.data.datasets import write_example_batches

    _print({k: str(v) for k, v in write_example_batches(args.out or Home.from_env().ensure().data_dir).items()})
    return 0


def _status(args: argparse.Namespace) -> int:
    from aire.pipeline.status import pipeline_status

    status = pipeline_status(args.config)
    if args.json:
        _print(status)
    else:
        champion = status["champion"]
        print(f"model {status['model']}: " + (
            f"champion v{champion['version']} digest {champion['digest']} verified={champion['verified']}"
            if champion else "no champion yet"))
        print(f"open incidents: {status['incidents']['open']}")
        _print_using(status["using"])
    return 0


def _print_using(parts: dict[str, Any]) -> None:
    ledger, key, lock = parts["ledger"], parts["signing_key"], parts["promotion_lock"]
    print(f"using (home {parts['home']}, {parts['mode']}):")
    print(f"  registry        {parts['registry']['uri']}  [{parts['registry']['from']}]")
    print(f"  incident store  {parts['incident_store']['uri']}  [{parts['incident_store']['from']}]")
    if ledger["backend"] == "file":
        print(f"  ledger          file {ledger['path']}, head anchored in {ledger['anchor']}  [{ledger['from']}]")
    else:
        print(f"  ledger          {ledger['backend']} {ledger['location']}  [{ledger['from']}]")
    print(f"  signing key     {key['source']}  [{key['from']}]")
    print(f"  promotion lock  {lock['kind']} {lock['where']}  [{lock['from']}]")
    print(f"  airflow db      {parts['airflow_db']['uri']}  [{parts['airflow_db']['from']}]")


def _spec(args: argparse.Namespace) -> Any:
    from aire.pipeline.run_context import RunSpec

    run_key = args.run_key or time.strftime("cli-%Y%m%dT%H%M%SZ", time.gmtime())
    return RunSpec(config_path=args.config, batch_uri=args.batch, run_key=run_key,
                   epochs=args.epochs, learning_rate=args.learning_rate)


def _one_stage(args: argparse.Namespace) -> int:
    from aire.config import load_config
    from aire.registry.mlflow_registry import Registry

    spec = _spec(args)
    version = args.champion_version
    if version is None and args.name != "validate-data":
        home = Home.from_env()
        champion = Registry(home.mlflow_tracking_uri).champion(load_config(spec.config_path).name)
        version = champion.version if champion else None
    _print({"run_key": spec.run_key, args.name: stage(args.name).run(spec, version)})
    return 0


def _run_all(args: argparse.Namespace) -> int:
    from aire.pipeline.runner import run_all

    outcome = run_all(_spec(args))
    _print(outcome)
    return 0 if outcome["outcome"] == "promoted" else 3


def _demo(args: argparse.Namespace) -> int:
    from aire.pipeline.demo import run_demo

    return run_demo(Home.from_env(), EXAMPLE_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
