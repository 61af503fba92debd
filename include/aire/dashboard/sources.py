"""Where the pages read from: the home (run folders, ledger, keys) and the pipelines' configs.

The pipelines are the configs the deployment runs; ``AIRE_UI_CONFIGS`` lists their files
or folders (``os.pathsep``-separated), the default is the project's ``include/config``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from aire.config import PipelineConfig, load_config
from aire.errors import AireError
from aire.home import PROJECT_ROOT, Home

CONFIGS_VARIABLE = "AIRE_UI_CONFIGS"
DEFAULT_CONFIGS = PROJECT_ROOT / "include" / "config"


@dataclass(frozen=True)
class Pipeline:
    name: str
    config_path: Path
    config: PipelineConfig


@dataclass(frozen=True)
class Sources:
    home: Home
    pipelines: dict[str, Pipeline]
    problems: list[str] = field(default_factory=list)  # configs that did not load, with why

    def pipeline(self, name: str) -> Pipeline | None:
        return self.pipelines.get(name)


def config_files(raw: str | None) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` named by ``raw`` (files or folders), in a stable order."""
    entries = [Path(p) for p in raw.split(os.pathsep) if p] if raw else [DEFAULT_CONFIGS]
    found: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            found.extend(sorted(p for p in entry.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            found.append(entry)
    return found


def load_sources(home: Home | None = None, raw: str | None = None) -> Sources:
    """The home and every pipeline; a config that does not load is a problem shown on the page."""
    home = home or Home.from_env()
    pipelines: dict[str, Pipeline] = {}
    problems: list[str] = []
    for path in config_files(raw if raw is not None else os.environ.get(CONFIGS_VARIABLE)):
        try:
            config = load_config(path)
        except AireError as exc:
            problems.append(str(exc))
            continue
        pipelines.setdefault(config.name, Pipeline(config.name, path.resolve(), config))
    return Sources(home, pipelines, problems)
