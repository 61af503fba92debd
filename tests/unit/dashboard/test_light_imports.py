"""Loading the plugin imports no heavy library: Airflow loads plugins in the scheduler, the
dag-processor and every task process, not only in the api-server that serves the pages."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "sklearn", "mlflow", "evidently", "great_expectations", "fairlearn", "model_signing", "boto3",
         "pandas"]
PROBE = ("import json, sys; import aire_airflow.ui.plugin; "
         "print(json.dumps([m for m in sys.argv[1:] if m in sys.modules]))")


def test_importing_the_plugin_and_the_dashboard_loads_no_heavy_library() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *HEAVY], capture_output=True, text=True, timeout=300,
                          check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
