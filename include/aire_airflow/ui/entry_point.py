"""The ``airflow.plugins`` entry point's target: the plugin class, handed out once per process.

Airflow 3.3 collects entry points from every distribution on ``sys.path`` and does not
deduplicate them (``airflow._shared.module_loading.entry_points_with_dist`` leaves that
to its callers; the plugins manager does not do it). An editable install of this project
has two copies of its metadata on the path: the dist-info in site-packages and the
``include/aire.egg-info`` that setuptools writes beside the packages. Loading the class
twice makes Airflow skip the second as "Plugin 'aire' already registered" and list it
as a plugin import error in the UI; answering None the second time makes it skip the
duplicate quietly (``is_valid_plugin(None)`` is False).
"""

from __future__ import annotations

from typing import Any

_handed_out = False


def __getattr__(name: str) -> Any:
    global _handed_out
    if name != "AirePlugin":
        raise AttributeError(name)
    if _handed_out:
        return None
    _handed_out = True
    from aire_airflow.ui.plugin import AirePlugin

    return AirePlugin
