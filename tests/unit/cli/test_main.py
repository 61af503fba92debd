"""The ``aire`` entry point: what reaches the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from aire.cli.main import main, terminal_safe

ESCAPES = "\x1b]0;owned\x07\x1b[2J\r\u202e"


def test_control_characters_never_reach_the_terminal(aire_home: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The attack (issue 13, case 5): a file name that retitles the terminal and clears it."""
    config = tmp_path / f"batch{ESCAPES}.yaml"
    assert main(["status", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("aire: ") and "\\x1b]0;owned\\x07\\x1b[2J\\r\\u202e" in err
    assert not any(ch in out + err for ch in "\x1b\x07\r\u202e")


def test_newlines_and_tabs_stay() -> None:
    assert terminal_safe("a\tb\nc") == "a\tb\nc"
