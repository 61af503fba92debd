"""The AIRE app the plugin mounts at ``/aire``: every route behind Airflow's login."""

from __future__ import annotations

from fastapi import FastAPI

from aire_airflow.ui import actions, views
from aire_airflow.ui.auth import READ


def create_app() -> FastAPI:
    # No OpenAPI or docs routes: they would be the only unguarded pages of the app.
    app = FastAPI(title="AIRE", dependencies=[READ], docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(views.router)
    app.include_router(actions.router)
    return app
