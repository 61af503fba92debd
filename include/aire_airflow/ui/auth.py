"""Who may do what on the AIRE pages, asked of Airflow's auth manager.

Plugin routes are public unless the plugin guards them (Airflow PR 72655): the whole app
depends on ``READ`` (the PLUGINS view, which every Airflow role that sees the nav entry
has); a route that changes something also depends on ``WRITE``, edit rights on the DAG
named by its ``{dag_id}`` path parameter. The user comes from the same JWT (Bearer
header or the UI's ``_token`` cookie) that Airflow's own API reads.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_access_view
from fastapi import Depends

READ: Any = Depends(requires_access_view(AccessView.PLUGINS))
WRITE: Any = Depends(requires_access_dag(method="PUT"))


def user_name(user: GetUserDep) -> str:
    """The acting user's name, as Airflow shows it (recorded on timelines and runs)."""
    return str(user.get_name())


UserName: Any = Depends(user_name)
