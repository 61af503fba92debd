"""aire.pipeline.preload: what a preloaded worker imports before it forks tasks.

The worker side (Celery's worker_init, tasks forked holding the modules) runs on a real
Celery stack in tests/integration/test_stack_celery.py.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from aire.pipeline import preload

ROOT = Path(__file__).resolve().parents[3]


def test_a_module_that_fails_to_import_is_reported_and_the_rest_still_load() -> None:
    done = preload.preload(("json", "aire_no_such_module_anywhere", "csv"))

    assert set(done.seconds) == {"json", "csv"}
    assert list(done.failed) == ["aire_no_such_module_anywhere"]
    assert "ModuleNotFoundError" in done.failed["aire_no_such_module_anywhere"]
    assert "not preloaded: aire_no_such_module_anywhere (ModuleNotFoundError" in done.summary()


def test_aire_preload_switches_off_with_the_usual_false_words_only() -> None:
    assert preload.enabled({})
    assert preload.enabled({"AIRE_PRELOAD": "1"})
    for off in ("0", "false", "No", " off "):
        assert not preload.enabled({"AIRE_PRELOAD": off})


def _stage_function_imports() -> set[str]:
    """The aire modules the stage functions import in their bodies (what a cold task loads)."""
    tree = ast.parse((ROOT / "include" / "aire" / "pipeline" / "stages.py").read_text())
    modules: set[str] = set()
    for function in (node for node in tree.body if isinstance(node, ast.FunctionDef)):
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aire."):
                modules.add(node.module)
    return modules


def test_every_listed_module_imports_and_covers_what_the_stages_import() -> None:
    # A fresh interpreter: a renamed module would otherwise be preloaded as a silent failure.
    code = ("import json, sys\nfrom aire.pipeline.preload import preload\ndone = preload()\n"
            "print(json.dumps({'failed': done.failed, 'modules': sorted(sys.modules)}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT / "include"), "PATH": "/usr/bin:/bin",
                                        "GX_ANALYTICS_ENABLED": "false"}, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert result["failed"] == {}
    missing = _stage_function_imports() - set(result["modules"])
    assert not missing, f"add these to PRELOADED_MODULES: {sorted(missing)}"
