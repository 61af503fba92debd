"""AIRE: AI Reliability Engineering.

The library behind the Airflow DAGs and the ``aire`` command line. One subpackage per
concern over a small core (``errors``, ``config``, ``home``, ``constants``, ``atomic``,
``telemetry``); ``docs/architecture.md`` has the map and the layers. Nothing here imports
Airflow, so every stage runs and tests without a scheduler.
"""

__version__ = "0.1.0"
