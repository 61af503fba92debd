-- Databases next to Airflow's own: MLflow's tracking store and AIRE's incident store.
CREATE DATABASE mlflow;
CREATE DATABASE aire;
