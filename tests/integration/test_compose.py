"""docker-compose.yaml and the Dockerfile, checked without Docker (no daemon runs here).

The compose file is validated against the Compose Specification's JSON schema (the copy
check-jsonschema vendors, so nothing is fetched at test time), after interpolating
.env.example into it as `docker compose` would. Every command a service of our image runs
is parsed by the real CLI it names (airflow's argparse parser, mlflow's click command), so
a misspelt subcommand or flag, or a provider the image lacks, fails here.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
from importlib import import_module, resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
OUR_IMAGE = "${AIRE_IMAGE:-aire-airflow:3.3.2}"
# ${VAR}, ${VAR:?err}, ${VAR?err}, ${VAR:-default}, ${VAR-default}; $$ is a literal $.
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN", re.IGNORECASE)


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """What `docker compose config` does to values; an unset required variable raises."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match[1], match[2], match[3]
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op and op.endswith("-"):
            return arg or ""
        if op and op.endswith("?"):
            raise KeyError(f"{name} is required and unset")
        return ""

    return VARIABLE.sub(one, node)


def compose_schema() -> dict[str, Any]:
    text = (resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    return dict(json.loads(text))


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return dict(interpolate(raw, env_example()))


def our_services(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in raw["services"].items() if svc.get("image") == OUR_IMAGE}


# --- the Compose Specification ----------------------------------------------------------------
def test_compose_file_validates_against_the_compose_spec(raw: dict[str, Any], compose: dict[str, Any]) -> None:
    assert schema_errors(raw) == []
    assert schema_errors(compose) == []


@pytest.mark.parametrize("breakage", ["misspelt key", "bad condition", "devices as a string"])
def test_schema_catches_a_broken_compose_file(compose: dict[str, Any], breakage: str) -> None:
    broken = copy.deepcopy(compose)
    gpu = broken["services"]["airflow-worker-gpu"]
    if breakage == "misspelt key":
        gpu["healthchek"] = gpu.pop("healthcheck")
    elif breakage == "bad condition":
        gpu["depends_on"]["airflow-apiserver"]["condition"] = "service_ready"
    else:
        gpu["deploy"]["resources"]["reservations"]["devices"] = "nvidia"
    assert schema_errors(broken)


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def test_every_variable_is_defined_in_env_example(raw: dict[str, Any]) -> None:
    matches = [m for text in strings(raw) for m in VARIABLE.finditer(text) if m[1]]
    required = {m[1] for m in matches if not (m[2] or "").endswith("-")}
    assert required and required - set(env_example()) == set()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw, {k: v for k, v in env_example().items() if k != "POSTGRES_PASSWORD"})


# --- secrets ----------------------------------------------------------------------------------
def literal_secrets(raw: dict[str, Any]) -> list[str]:
    """Environment values that name a secret but do not take it from a variable.

    Variables are replaced by markers first, so a secret is anything that is not a marker:
    secret-named settings, connection passwords and the passwords inside URLs.
    """
    markers = {key: f"<{key}>" for key in env_example()}
    marker = re.compile(r"<[A-Z0-9_]+>")
    found = []
    for name, svc in raw["services"].items():
        env = svc.get("environment") or {}
        for key, value in (env.items() if isinstance(env, dict) else []):
            if not isinstance(value, str):
                continue
            value = interpolate(value, markers)
            if key.startswith("AIRFLOW_CONN_"):
                password = json.loads(value).get("password")
                if password and not marker.fullmatch(password):
                    found.append(f"{name}.{key}.password")
            elif (SECRET_NAME.search(key) and not marker.fullmatch(value)) or any(not marker.fullmatch(password)
                     for password in re.findall(r"://[^/@\s:]+:([^@/\s]+)@", value)):
                found.append(f"{name}.{key}")
    return found


def test_no_secret_is_written_in_the_compose_file(raw: dict[str, Any]) -> None:
    assert literal_secrets(raw) == []
    leaky = copy.deepcopy(raw)
    leaky["services"]["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] = "hunter2"
    leaky["services"]["postgres"]["environment"]["DATABASE_URL"] = "postgresql://airflow:hunter2@postgres/x"
    leaky["services"]["redis"]["environment"] = {
        "AIRFLOW_CONN_X": '{"conn_type": "aws", "login": "a", "password": "hunter2"}'}
    assert sorted(literal_secrets(leaky)) == [
        "mlflow.MLFLOW_AUTH_ADMIN_PASSWORD", "postgres.DATABASE_URL", "redis.AIRFLOW_CONN_X.password"]


def test_env_files_hold_no_real_secret_and_dot_env_is_not_tracked() -> None:
    for key, value in env_example().items():
        if SECRET_NAME.search(key):
            assert value == "change-me", key
    tracked = subprocess.run(["git", "ls-files", ".env", "docker"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert ".env" not in tracked


# --- the services of our image run commands that exist in it ----------------------------------
def airflow_parse(argv: list[str]) -> Any:
    from airflow.cli.cli_parser import get_parser

    return get_parser().parse_args(argv)


def test_every_airflow_command_and_health_check_parses(raw: dict[str, Any]) -> None:
    services = our_services(raw)
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker", "airflow-worker-gpu", "mlflow"} <= set(services)
    for name, svc in services.items():
        if name == "mlflow":
            continue
        # The image's entrypoint runs `airflow <command>` for anything but bash/python.
        assert "entrypoint" not in svc and svc["command"][0] not in ("bash", "python"), name
        airflow_parse(svc["command"])
        test = svc.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD-SHELL" and test[1].startswith("airflow "):
            airflow_parse(shlex.split(test[1].replace("$${HOSTNAME}", "h"))[1:])
        if test and test[0] == "CMD-SHELL" and test[1].startswith("celery "):
            module, _, attribute = shlex.split(test[1])[2].rpartition(".")
            assert hasattr(import_module(module), attribute), test[1]
    with pytest.raises(SystemExit):
        airflow_parse(["celery", "workr", "--queues", "gpu"])
    with pytest.raises(SystemExit):
        airflow_parse(["celery", "worker", "--gpus", "1"])


def test_mlflow_server_command_parses_with_basic_auth(raw: dict[str, Any]) -> None:
    import click
    from mlflow.cli import server

    svc = raw["services"]["mlflow"]
    script = svc["entrypoint"][-1]
    assert script == "/opt/aire/docker/mlflow-server.sh"
    assert "COPY --chown=airflow:root docker/mlflow-server.sh /opt/aire/docker/mlflow-server.sh" in \
        (ROOT / "Dockerfile").read_text()
    # The script adds --backend-store-uri, then passes the service's command through.
    ctx = server.make_context("server", ["--backend-store-uri", "postgresql+psycopg://u@h/db", *svc["command"]])
    assert ctx.params["app_name"] == "basic-auth" and ctx.params["serve_artifacts"] is True
    import_module("mlflow.server.auth")  # needs mlflow[auth] (Flask-WTF)
    with pytest.raises(click.BadParameter):
        server.make_context("server", ["--app-name=basic_auth"])


def test_dockerfile_builds_from_the_pinned_airflow_and_installs_what_commands_need(raw: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE))
    python = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())
    assert python is not None
    base = re.search(r"^FROM apache/airflow:(?:slim-)?(\S+)-python(\S+)$", dockerfile, re.MULTILINE)
    assert base is not None and base.groups() == (pins["apache-airflow"], python[1])
    assert "-r /opt/aire/requirements.txt -r /opt/aire/requirements-image.txt" in dockerfile
    for source in re.findall(r"^COPY --chown=\S+ (.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path
    image_pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[\w+\])?==(\S+)",
                                 (ROOT / "docker" / "requirements-image.txt").read_text(), re.MULTILINE))
    text = json.dumps(raw)
    needed = {"apache-airflow-providers-celery": '"celery", "worker"',
              "apache-airflow-providers-fab": "airflow.providers.fab.auth_manager",
              "mlflow": "--app-name=basic-auth"}
    for package, used_by in needed.items():
        assert used_by in text and package in image_pins, package
    # The test venv holds the same versions, so the parsing above ran against them.
    for package, pinned in image_pins.items():
        if package != "apache-airflow-providers-fab":  # not in the venv: its CLI is not parsed here
            assert version(package) == pinned, package


# --- wiring between services ------------------------------------------------------------------
def test_airflow_3_components_share_the_execution_api_and_jwt_secret(compose: dict[str, Any]) -> None:
    services = compose["services"]
    airflow = {n: s for n, s in services.items() if n.startswith("airflow-")}
    secrets = {s["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for s in airflow.values()}
    urls = {s["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] for s in airflow.values()}
    assert len(secrets) == 1 and len(urls) == 1
    assert urls == {"http://airflow-apiserver:8080/execution/"}
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def test_gpu_queue_has_its_own_worker_with_a_gpu_reservation(compose: dict[str, Any]) -> None:
    services = compose["services"]
    gpu, default = services["airflow-worker-gpu"], services["airflow-worker"]
    assert gpu["command"][gpu["command"].index("--queues") + 1] == "gpu"
    assert default["command"][default["command"].index("--queues") + 1] == "default"
    assert gpu["environment"]["AIRE_GPU_QUEUE"] == "gpu"
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "deploy" not in default


def test_dependencies_exist_and_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dependency, rule in (svc.get("depends_on") or {}).items():
            assert dependency in services, f"{name} -> {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s health"
        image = svc["image"]
        if not image.startswith("aire-airflow:"):
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image"
    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    for database in ("mlflow", "mlflow_auth", "aire"):
        assert f"CREATE DATABASE {database};" in init_sql
        assert any(f"@postgres/{database}" in value for svc in services.values()
                   for value in (svc.get("environment") or {}).values() if isinstance(value, str))


def test_every_worker_signs_with_the_one_key_the_env_file_holds(raw: dict[str, Any], tmp_path: Path) -> None:
    """A PEM made by .env.example's own command, interpolated as compose does, is the key
    aire_signing hands to every worker (a home on services never makes its own pair)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from aire.trust.keys import keypair_from_pem

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    services = interpolate(raw, {**env_example(), "AIRE_SIGNING_KEY_PEM": pem.replace("\n", "\\n")})["services"]
    airflow = [name for name in our_services(raw) if name.startswith("airflow-")]
    assert "airflow-worker" in airflow and "airflow-worker-gpu" in airflow
    for name in airflow:
        env = services[name]["environment"]
        assert env["AIRE_SIGNING_CONN_ID"] == "aire_signing", name
        connection = json.loads(env["AIRFLOW_CONN_AIRE_SIGNING"])
        assert connection["password"] == pem, name
    pair = keypair_from_pem(connection["password"], None, tmp_path / "keys")
    assert pair.private.read_text() == pem and pair.public.is_file()
