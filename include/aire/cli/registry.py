"""``aire ledger``, ``aire rollback`` and ``aire versions``: the registry's record and its undo.

``aire ledger`` prints every entry and then verifies the hash chain; a broken chain exits
with status 2 and names the first entry that does not verify. ``aire rollback`` moves the
champion to ``--to N`` or to ``--previous`` after verifying it (see ``aire.promotion.rollback``).
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from aire.errors import VerificationError
from aire.home import PROJECT_ROOT, Home

EXAMPLE_CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("ledger", help="print the hash-chained ledger of signings, promotions and rollbacks")
    cmd.add_argument("--verify", action="store_true", help="only verify the chain")
    cmd.add_argument("--json", action="store_true")
    cmd.add_argument("--kind", default=None, help="only entries of this kind (model_signed, promotion, rollback)")
    cmd.set_defaults(handler=_ledger)

    cmd = sub.add_parser("rollback", help="move the champion back to a verified version")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG))
    target = cmd.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", type=int, dest="to_version", metavar="N", help="the version to make champion")
    target.add_argument("--previous", action="store_true", help="the version the 'previous' alias points at")
    cmd.add_argument("--reason", default="", help="why, for the ledger and the incident")
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(handler=_rollback)

    cmd = sub.add_parser("versions", help="a pipeline's registered versions and their aliases")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG))
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(handler=_versions)


def _ledger(args: argparse.Namespace) -> int:
    from aire.trust.ledger import Ledger

    ledger = Ledger.for_home(Home.from_env())
    entries = ledger.entries()  # a line that is not an entry at all raises here
    problem: str | None = None
    try:
        ledger.verify()
    except VerificationError as exc:
        problem = str(exc)
    shown = [e for e in entries if args.kind is None or e.kind == args.kind]
    if args.json:
        print(json.dumps({"path": ledger.location, "backend": ledger.backend,
                          "entries": [] if args.verify else [e.to_dict() for e in shown],
                          "count": len(entries), "verified": problem is None, "problem": problem}, indent=2))
    else:
        if not args.verify:
            for item in shown:
                print(f"{item.seq:>5}  {item.time}  {item.kind:<13} {_summary(item.entry)}")
        if problem is None:
            print(f"ledger {ledger.location}: {len(entries)} entries, hash chain verified")
    if problem is not None:
        raise VerificationError(f"ledger does not verify: {problem}")
    return 0


def _summary(entry: dict[str, Any]) -> str:
    """One line per entry: who, which versions, which digests."""
    parts = [str(entry.get("pipeline", "?"))]
    if "to_version" in entry:
        parts.append(f"v{entry.get('from_version')} -> v{entry['to_version']}")
    if entry.get("digest"):
        parts.append(f"digest {str(entry['digest'])[:12]}")
    who = entry.get("by") or entry.get("run_key")
    if who:
        parts.append(f"by {who}")
    decision = entry.get("decision")
    if isinstance(decision, dict):
        parts.append("gate: " + ("promote" if decision.get("promote") else "reject"))
    if entry.get("reason"):
        parts.append(f"reason: {entry['reason']}")
    return "  ".join(parts)


def _rollback(args: argparse.Namespace) -> int:
    from aire.promotion.rollback import rollback

    result = rollback(args.config, to_version=None if args.previous else args.to_version,
                      by=f"cli:{getpass.getuser()}", reason=args.reason)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"model {result.pipeline}: champion v{result.from_version} -> v{result.to_version} "
              f"(digest {result.digest}, verified); ledger entry {result.ledger_seq}"
              + (f"; noted on incident {result.incident_id}" if result.incident_id else ""))
    return 0


def _versions(args: argparse.Namespace) -> int:
    from aire.config import load_config
    from aire.registry.mlflow_registry import Registry

    home = Home.from_env()
    name = load_config(args.config).name
    registry = Registry(home.mlflow_tracking_uri)
    aliases = registry.aliases(name)
    # Searched versions come back without their aliases: take them from the model itself.
    versions = [{**v.to_dict(), "aliases": sorted(a for a, n in aliases.items() if n == v.version)}
                for v in registry.versions(name)]
    if args.json:
        print(json.dumps({"model": name, "aliases": aliases, "versions": versions}, indent=2))
    else:
        for v in versions:
            shown = ",".join(v["aliases"]) or "-"
            print(f"v{v['version']:<4} {shown:<20} digest {str(v['signed_digest'])[:12]}  run {v['run_key']}")
    return 0
