#!/usr/bin/env bash
# Starts the MLflow tracking server with basic auth (docker-compose.yaml's `mlflow` service,
# and the integration tests' server). Arguments go to `mlflow server`.
#
# MLflow's auth app reads its user database URI from an ini file only: this writes one
# from MLFLOW_AUTH_DATABASE_URI to MLFLOW_AUTH_CONFIG_PATH (mode 600), so no password sits
# in a file of the repo. The admin user is created on first start from
# MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD.
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?}" "${MLFLOW_AUTH_DATABASE_URI:?}" "${MLFLOW_AUTH_CONFIG_PATH:?}"
umask 077
# configparser reads '%' as interpolation: a password holding one must be doubled.
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI//%/%%}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
exec mlflow server --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" "$@"
