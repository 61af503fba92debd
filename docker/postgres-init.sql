-- Databases beside Airflow's own (POSTGRES_DB=airflow): MLflow's tracking store, MLflow's
-- auth users, and AIRE's incident store. Runs once, when the data volume is first created.
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
CREATE DATABASE aire;
