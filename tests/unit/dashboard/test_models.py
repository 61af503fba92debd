"""Who made a version champion, and whether the ledger verifies, as the pages show it."""

from __future__ import annotations

import json
from pathlib import Path

from aire.dashboard.models import last_move, ledger_view, mover
from aire.home import Home
from aire.trust.ledger import FileLedger, Ledger


def _home(tmp_path: Path) -> tuple[Home, FileLedger]:
    home = Home(tmp_path / "home")
    home.root.mkdir(parents=True)
    ledger = FileLedger(home.ledger_path)
    ledger.append("model_signed", {"pipeline": "credit-risk", "digest": "a" * 64, "run_key": "r1"})
    ledger.append("promotion", {"pipeline": "credit-risk", "to_version": 1, "from_version": None,
                                "digest": "a" * 64, "run_key": "r1"})
    ledger.append("promotion", {"pipeline": "credit-risk", "to_version": 2, "from_version": 1, "digest": "b" * 64,
                                "run_key": "r2", "approval": {"responded_by": {"id": "alice", "name": "Alice"}}})
    ledger.append("rollback", {"pipeline": "credit-risk", "to_version": 1, "from_version": 2, "digest": "a" * 64,
                               "by": "dag:aire_rollback run manual__x", "reason": "drill (requested by op)"})
    ledger.append("promotion", {"pipeline": "other", "to_version": 1, "run_key": "o1", "digest": "c" * 64})
    return home, ledger


def test_the_newest_move_to_a_version_says_who_made_it_champion(tmp_path: Path) -> None:
    _, ledger = _home(tmp_path)
    entries = ledger.entries()
    first = last_move(entries, "credit-risk", 1)
    assert first is not None and first.kind == "rollback"
    assert mover(first) == "dag:aire_rollback run manual__x"
    second = last_move(entries, "credit-risk", 2)
    assert second is not None and mover(second) == "run r2 (approved by Alice)"
    only = last_move(entries, "other", 1)
    assert only is not None and mover(only) == "run o1 (gate)"
    assert last_move(entries, "credit-risk", 3) is None


def test_the_ledger_view_keeps_one_pipeline_and_verifies_the_whole_chain(tmp_path: Path) -> None:
    home, _ = _home(tmp_path)
    view = ledger_view(home, "credit-risk")
    assert view.verified and view.problem is None
    assert [e.seq for e in view.entries] == [1, 2, 3, 4]


def test_an_edited_entry_shows_as_not_verified(tmp_path: Path) -> None:
    home, _ = _home(tmp_path)
    lines = home.ledger_path.read_text().splitlines()
    record = json.loads(lines[1])
    record["entry"]["to_version"] = 9
    lines[1] = json.dumps(record)
    home.ledger_path.write_text("\n".join(lines) + "\n")
    view = ledger_view(home, "credit-risk")
    assert not view.verified and "seq 2" in (view.problem or "")
    assert len(view.entries) == 4  # still shown, so a person can see what was edited


def test_a_home_without_a_ledger_has_an_empty_verified_one(tmp_path: Path) -> None:
    view = ledger_view(Home(tmp_path / "empty"))
    assert view.verified and view.entries == []


def test_a_cut_ledger_shows_as_not_verified(tmp_path: Path) -> None:
    """The pages read the anchored ledger, so two entries cut off the end are seen, not hidden."""
    home = Home(tmp_path / "home")
    home.root.mkdir(parents=True)
    ledger = Ledger.for_home(home)
    for n in range(1, 4):
        ledger.append("model_signed", {"pipeline": "credit-risk", "digest": str(n) * 64, "run_key": f"r{n}"})
    assert ledger_view(home, "credit-risk").verified
    lines = home.ledger_path.read_text().splitlines()
    home.ledger_path.write_text(lines[0] + "\n")
    view = ledger_view(home, "credit-risk")
    assert not view.verified and view.problem
