# AIRE on the official Airflow image of the pinned version (requirements.txt: apache-airflow==3.3.2).
# The slim variant: every provider and driver the stack uses comes from our own pinned files,
# resolved together with constraints.txt, the set the tests ran against.
FROM apache/airflow:slim-3.3.2-python3.11

USER root
# libgomp1: PyTorch's CPU kernels; curl: the compose health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt constraints.txt docker/requirements-image.txt /opt/aire/
# apache-airflow stays at the image's version (requirements.txt pins the same one);
# `pip check` fails the build on any conflict with what the image already holds.
RUN pip install --no-cache-dir -r /opt/aire/requirements.txt -r /opt/aire/requirements-image.txt \
      -c /opt/aire/constraints.txt \
 && pip check

COPY --chown=airflow:root pyproject.toml README.md /opt/aire/
COPY --chown=airflow:root include /opt/aire/include
RUN pip install --no-cache-dir --no-deps -e /opt/aire

COPY --chown=airflow:root docker/mlflow-server.sh /opt/aire/docker/mlflow-server.sh
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins

# The shared AIRE home: a named volume mounted here starts with this folder's owner and
# mode, group-writable so any AIRFLOW_UID in group 0 (the official image's rule) can write.
RUN mkdir -p /opt/airflow/aire && chmod g+rwX /opt/airflow/aire

ENV AIRE_HOME=/opt/airflow/aire \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK=true \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
