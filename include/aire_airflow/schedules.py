"""When aire_retrain runs and where its tasks go: landed batches, a cron, the GPU queue, task routes."""

from __future__ import annotations

from typing import Any

from aire_airflow.connections import s3_settings

LANDING_ASSET = "aire_landing"


BATCH_SUFFIXES = (".csv", ".parquet")


def landing_asset() -> Any:
    """The Asset a landed batch updates; its URI is the landing prefix (``AIRE_LANDING_URI``).

    Read when a DAG file is parsed, so the dag-processor's environment decides it.
    """
    import os

    from airflow.sdk import Asset

    return Asset(name=LANDING_ASSET, uri=os.environ.get("AIRE_LANDING_URI") or "s3://aire/landing/")


def retrain_schedule() -> Any:
    """aire_retrain's schedule: each landed batch, and a cron (``AIRE_RETRAIN_CRON``, UTC).

    A cron run has no landed batch of its own: it trains on the ``batch`` Param's default.
    """
    import os

    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    cron = os.environ.get("AIRE_RETRAIN_CRON") or "0 3 * * 1"
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"),
                               assets=[landing_asset()])


def gpu_queue() -> str:
    """The Celery queue fine-tuning goes to (``AIRE_GPU_QUEUE``); other tasks stay on the default."""
    import os

    return os.environ.get("AIRE_GPU_QUEUE") or "default"


def task_queues() -> dict[str, str]:
    """``AIRE_TASK_QUEUES``: ``task=queue,task=queue`` sends those tasks of aire_retrain to
    those Celery queues (a pool of hosts each); it wins over ``AIRE_GPU_QUEUE``.

    Read when the DAG is parsed; a malformed entry or an unknown task fails the parse with
    the variable named, rather than sending a task to a queue nobody serves.
    """
    import os

    from aire.pipeline.stage_registry import AWAIT_APPROVAL, OUTCOMES, PIPELINE

    raw = os.environ.get("AIRE_TASK_QUEUES", "")
    known = {entry.name for entry in (*PIPELINE, *OUTCOMES)} | {AWAIT_APPROVAL}
    routes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        task_id, sep, queue = (side.strip() for side in item.partition("="))
        if not sep or not task_id or not queue:
            raise ValueError(f"AIRE_TASK_QUEUES: {item!r} is not task=queue")
        if task_id not in known:
            raise ValueError(f"AIRE_TASK_QUEUES: no task {task_id!r} in aire_retrain ({', '.join(sorted(known))})")
        routes[task_id] = queue
    return routes


def queue_for(task_id: str, accelerator: bool = False) -> dict[str, Any]:
    """The ``queue`` argument of a task: its ``AIRE_TASK_QUEUES`` route, else the GPU queue
    for a stage on an accelerator, else nothing (the executor's default queue)."""
    routes = task_queues()
    if task_id in routes:
        return {"queue": routes[task_id]}
    return {"queue": gpu_queue()} if accelerator else {}


def landed_batch(landing_uri: str, conn_id: str | None, last: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest CSV/Parquet object under the landing prefix newer than ``last`` (an event's extra).

    None when nothing landed since. Objects are ordered by (LastModified, key), so two
    batches landing in the same second are still told apart.
    """
    from aire.data.storage import parse_s3_uri, s3_client

    bucket, prefix = parse_s3_uri(landing_uri, require_key=False)
    # Airflow strips an Asset URI's trailing slash; without it `landing/a` would match `landing/ab/`.
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    client = s3_client(s3_settings(conn_id, None, None))
    newest: tuple[str, str, dict[str, Any]] | None = None
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].lower().endswith(BATCH_SUFFIXES):
                continue
            order = (item["LastModified"].isoformat(), item["Key"], item)
            if newest is None or order[:2] > newest[:2]:
                newest = order
    if newest is None:
        return None
    if last and (newest[0], newest[1]) <= (str(last.get("last_modified")), str(last.get("key"))):
        return None
    modified, key, item = newest
    return {"batch": f"s3://{bucket}/{key}", "key": key, "last_modified": modified,
            "etag": str(item.get("ETag", "")).strip('"'), "size": int(item.get("Size", 0))}
