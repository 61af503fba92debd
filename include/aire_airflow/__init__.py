"""The thin layer between Airflow and the ``aire`` library.

``aire`` itself never imports Airflow; this package is where Airflow's context,
connections and callbacks are turned into the library's plain arguments. Keep it
free of heavy imports at module level: DAG files import it at parse time.
"""
