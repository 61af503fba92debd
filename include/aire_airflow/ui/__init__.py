"""The AIRE pages inside Airflow: a FastAPI app the api-server mounts at ``/aire`` (see
``plugin``), serving ``aire.dashboard``'s pages behind Airflow's own login."""
