"""No code path unpickles model bytes: weights load through safetensors only.

A static guard over the project's own code: it fails the moment someone adds a pickle
load, an unrestricted torch.load, or an MLflow flavour that unpickles.
"""

from __future__ import annotations

import re

from aire.home import PROJECT_ROOT

ROOT = PROJECT_ROOT
SOURCES = sorted([*(ROOT / "include").rglob("*.py"), *(ROOT / "dags").rglob("*.py"),
                  *(ROOT / "plugins").rglob("*.py")])

FORBIDDEN = {
    r"\bpickle\.loads?\(": "pickle.load",
    r"\bcloudpickle\.loads?\(": "cloudpickle.load",
    r"\bjoblib\.load\(": "joblib.load",
    r"\bdill\.loads?\(": "dill.load",
    r"mlflow\.(pytorch|sklearn|pyfunc)\.load_model\(": "an MLflow flavour that unpickles",
    r"\bnp\.load\([^)]*allow_pickle\s*=\s*True": "numpy.load(allow_pickle=True)",
}


def test_the_guard_sees_the_project_sources() -> None:
    assert any(path.name == "tabular.py" for path in SOURCES)


def test_no_unpickling_anywhere() -> None:
    found = [f"{path.relative_to(ROOT)}:{n}: {what}"
             for path in SOURCES
             for n, line in enumerate(path.read_text().splitlines(), 1)
             for pattern, what in FORBIDDEN.items() if re.search(pattern, line)]
    assert found == []


def test_every_torch_load_is_weights_only() -> None:
    calls = [(path, line) for path in SOURCES for line in path.read_text().splitlines()
             if re.search(r"\btorch\.load\(", line)]
    assert all("weights_only=True" in line for _, line in calls), calls


def test_model_weights_are_read_with_safetensors() -> None:
    model = (ROOT / "include" / "aire" / "model" / "tabular.py").read_text()
    assert "safetensors" in model and "torch.load(" not in model
