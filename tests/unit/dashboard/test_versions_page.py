"""The versions page offers a rollback only to a version that verified just now."""

from __future__ import annotations

from aire.dashboard.models import LedgerView, VersionRow
from aire.dashboard.pages import versions_page
from aire.registry.mlflow_registry import ModelVersion


def _row(version: int, aliases: list[str], verified: bool | None, problem: str | None = None) -> VersionRow:
    return VersionRow(ModelVersion("credit-risk", version, f"run{version}", f"{version:064x}", None, f"r{version}"),
                      aliases, {"candidate.accuracy": 0.6 + version / 100}, verified, problem)


def test_only_verified_non_champions_get_a_make_champion_button() -> None:
    rows = [_row(4, ["champion"], True), _row(3, ["previous"], True), _row(2, [], False, "digest mismatch"),
            _row(1, [], None)]
    page = versions_page("/aire", "credit-risk", ["credit-risk"], rows, LedgerView([], True, None),
                         "candidate.accuracy")
    assert page.count(">Make champion</button>") == 1
    assert '&quot;target&quot;: &quot;3&quot;' in page  # the one button targets v3
    assert "digest mismatch" in page and "not checked" in page
    assert page.count("<circle") == 4  # one point per version on the metric chart
