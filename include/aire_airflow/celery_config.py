"""Airflow's Celery configuration, plus AIRE's preload in each worker before it forks tasks.

Point ``[celery] celery_config_options`` (``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS``) at
``aire_airflow.celery_config.CELERY_CONFIG``. The dict is Airflow's own default, unchanged:
what this module adds is a ``worker_init`` handler, connected when the module is imported.
Celery sends that signal in a worker's main process before the prefork pool starts, so the
modules ``aire.pipeline.preload`` imports are inherited by the pool processes and by every
task process forked from them: a task no longer pays its stage's imports (docs/production.md,
"Preloaded workers"). The scheduler and the api-server import this module too, to build the
Celery app, but never send ``worker_init``: they load nothing extra.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

log = logging.getLogger(__name__)

# A copy: Airflow skips a user config that *is* its default dict when it layers team configs.
CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


def _preload_stage_modules(**_: Any) -> None:
    from aire.pipeline.preload import ENV_PRELOAD, enabled, preload

    if not enabled():
        log.info("AIRE preload off (%s)", ENV_PRELOAD)
        return
    log.warning(preload().summary())  # warning: Celery's default worker log level shows it


# weak=False: Celery keeps a strong reference, so the receiver cannot be collected unnoticed.
worker_init.connect(_preload_stage_modules, weak=False)
