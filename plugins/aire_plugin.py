"""The AIRE pages in the Airflow UI (``aire_airflow.ui``): a FastAPI app at ``/aire``, a
top-level nav entry and a tab on every DAG run.

The plugin class lives in the ``aire`` package, which registers it through its
``airflow.plugins`` entry point (pyproject.toml), so an image with the package installed
loads it whatever its plugins folder holds. This file exposes it only where that entry
point is absent: Airflow skips a second plugin of the same name and reports it as a
plugin import error, so defining it in both places would show an error on every page.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not entry_points(group="airflow.plugins", name="aire"):
    from aire_airflow.ui.plugin import AirePlugin

    __all__ = ["AirePlugin"]
