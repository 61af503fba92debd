from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aire.scoring.writer import scored_output, summary_uri, write_summary


@pytest.mark.parametrize("name", ["scores.parquet", "scores.csv"])
def test_chunks_become_one_table_only_when_every_chunk_is_in(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    with scored_output(str(target), text_columns=("prediction",)) as writer:
        writer.write(pd.DataFrame({"row": [0, 1], "prediction": ["a", "=cmd()"]}))
        assert not target.exists()  # nothing visible while it is being written
        writer.write(pd.DataFrame({"row": [2], "prediction": ["b"]}))
    back = pd.read_parquet(target) if name.endswith("parquet") else pd.read_csv(target)
    assert back["row"].tolist() == [0, 1, 2]
    if name.endswith("csv"):
        assert back["prediction"][1] == "'=cmd()"  # a spreadsheet would run it as a formula


def test_a_failure_midway_leaves_the_old_output_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "scores.parquet"
    pd.DataFrame({"row": [42]}).to_parquet(target)
    with pytest.raises(RuntimeError), scored_output(str(target)) as writer:
        writer.write(pd.DataFrame({"row": [0]}))
        raise RuntimeError("killed")
    assert pd.read_parquet(target)["row"].tolist() == [42]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]


def test_the_summary_sits_beside_the_output(tmp_path: Path) -> None:
    out = str(tmp_path / "x" / "scores.parquet")
    assert summary_uri(out) == str(tmp_path / "x" / "scores.summary.json")
    assert write_summary(out, {"rows": 1}) == summary_uri(out)
    assert Path(summary_uri(out)).read_text().startswith("{")
