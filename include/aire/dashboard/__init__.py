"""The AIRE pages: what each page shows (``views``, reading the home, the registry and the
incident store) and how it is drawn (``pages``, ``html``, ``svg``, ``markdown``).

No Airflow and no web framework here: ``aire_airflow.ui`` serves these pages behind
Airflow's login; everything in this package returns plain data or HTML strings, so it
is tested without a server. Every value from data, configs or incidents goes through
``html.escape`` on its way out (``aire.dashboard.html.Html`` marks what already did).
"""
