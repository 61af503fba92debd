# AIRE on the official Airflow image of the pinned version.
FROM apache/airflow:3.3.2-python3.11

USER root
# libgomp: PyTorch's CPU kernels.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt constraints.txt /opt/aire/
RUN pip install --no-cache-dir -r /opt/aire/requirements.txt -c /opt/aire/constraints.txt \
      psycopg2-binary==2.9.11 "apache-airflow[celery]==3.3.2" -c /opt/aire/constraints.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/aire/
COPY --chown=airflow:root include /opt/aire/include
RUN pip install --no-cache-dir --no-deps -e /opt/aire

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins

ENV AIRE_HOME=/opt/airflow/aire \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK=true
