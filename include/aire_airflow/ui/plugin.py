"""The Airflow plugin: the AIRE app at ``/aire`` and its places in the Airflow UI.

Loaded through the ``airflow.plugins`` entry point of the installed ``aire`` package
(pyproject.toml, via ``entry_point``), and from ``plugins/aire_plugin.py`` where it is not.
``href`` values are relative so an ``[api] base_url`` sub-path keeps working; with a
``url_route`` the UI shows the page in a frame inside its own layout.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from aire_airflow.ui.app import create_app

URL_PREFIX = "/aire"


class AirePlugin(AirflowPlugin):
    name = "aire"
    # Airflow reads these as class attributes (AirflowPlugin declares them so).
    fastapi_apps: list[Any] = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "AIRE"}]  # noqa: RUF012
    external_views: list[Any] = [  # noqa: RUF012
        {"name": "AIRE", "href": "aire/", "destination": "nav", "url_route": "aire"},
        {"name": "AIRE run", "href": "aire/dags/{DAG_ID}/runs/{RUN_ID}", "destination": "dag_run",
         "url_route": "aire-run"},
    ]
