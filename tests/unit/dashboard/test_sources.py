"""The pipelines the pages show: every config named by AIRE_UI_CONFIGS, files or folders."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from aire.dashboard.sources import DEFAULT_CONFIGS, load_sources
from aire.home import Home

EXAMPLE = DEFAULT_CONFIGS / "credit_risk.yaml"


def _config(path: Path, name: str) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["name"] = name
    path.write_text(yaml.safe_dump(data))
    return path


def test_several_pipelines_from_files_and_folders_and_a_broken_config_is_a_problem(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    _config(folder / "a.yaml", "fraud")
    _config(folder / "b.yml", "churn")
    (folder / "notes.txt").write_text("not a config")
    (folder / "broken.yaml").write_text("name: x\ndataset: {label: 3, nope: 1}\n")
    single = _config(tmp_path / "single.yaml", "credit-risk")
    sources = load_sources(Home(tmp_path / "home"), raw=os.pathsep.join([str(folder), str(single)]))
    assert sorted(sources.pipelines) == ["churn", "credit-risk", "fraud"]
    assert sources.pipelines["fraud"].config_path == (folder / "a.yaml").resolve()
    [problem] = sources.problems
    assert "broken.yaml" in problem


def test_without_the_variable_the_projects_example_configs_are_shown(tmp_path: Path) -> None:
    sources = load_sources(Home(tmp_path / "home"), raw="")
    assert "credit-risk" in sources.pipelines and sources.problems == []
