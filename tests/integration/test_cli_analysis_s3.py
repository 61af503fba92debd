"""`aire analyze-errors` reading the batch from S3 and writing its files there (moto over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aire.cli.main import main
from aire.data.datasets import german_credit, make_batch
from aire.data.storage import S3Settings, s3_client
from aire.home import PROJECT_ROOT

pytestmark = pytest.mark.integration

BUCKET = "aire-analysis"
FILES = ["error_analysis.csv", "most_confident.csv", "report.html", "review_queue.csv",
         "summary.json"]


@pytest.fixture()
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # the command takes credentials from boto3's chain, as on a worker
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = f"http://{host}:{port}"
    s3_client(S3Settings(endpoint_url=url, region="us-east-1")).create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


def test_batch_from_s3_and_outputs_to_s3(aire_home: Path, tmp_path: Path, endpoint: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "include" / "config" / "credit_risk.yaml").read_text())
    config["storage"].update({"endpoint_url": endpoint, "region": "us-east-1"})
    config_path = tmp_path / "s3.yaml"
    config_path.write_text(yaml.safe_dump(config))
    client = s3_client(S3Settings(endpoint_url=endpoint, region="us-east-1"))
    batch, _ = make_batch(german_credit(), n_rows=200, seed=3, label_noise=0.1)
    client.put_object(Bucket=BUCKET, Key="landing/batch.csv",
                      Body=batch.to_csv(index=False).encode())

    code = main(["analyze-errors", "--config", str(config_path), "--model", "none",
                 "--data", f"s3://{BUCKET}/landing/batch.csv", "--out", f"s3://{BUCKET}/analysis"])
    out, err = capsys.readouterr()
    assert code == 0, err
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="analysis/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"analysis/{name}" for name in FILES]
    assert json.loads(out)["files"]["summary"] == f"s3://{BUCKET}/analysis/summary.json"
    summary = json.loads(client.get_object(Bucket=BUCKET, Key="analysis/summary.json")["Body"].read())
    assert summary["n_rows"] == 200 and summary["skipped"] is False
