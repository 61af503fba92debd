"""AIRE: AI Reliability Engineering.

The library behind the Airflow DAGs and the ``aire`` command line. One module per
stage; nothing here imports Airflow, so every stage runs and tests without a scheduler.
"""

__version__ = "0.1.0"
