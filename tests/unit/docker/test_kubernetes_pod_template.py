"""docker/kubernetes/: the KubernetesExecutor's pod template and fine_tune's GPU override.

Each file is loaded into the Kubernetes client's own ``V1Pod`` (the models the cncf provider
deserialises ``pod_template_file`` and ``pod_override`` with) and checked for what a
deployment relies on: the container Airflow runs the task in is ``base``, the image is the
compose file's, every credential comes from a Secret, the home is a per-pod emptyDir, the
pod runs as non-root on a read-only root filesystem, requests fit under limits, and the
GPU override asks for a GPU on a GPU node. Every environment variable the template sets
must be one that AIRE, Airflow or MLflow reads, so a renamed setting cannot leave the
template behind silently. No cluster and no service is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, V1Container, V1EnvVar, V1Pod
from kubernetes.utils import parse_quantity

ROOT = Path(__file__).resolve().parents[3]
FOLDER = ROOT / "docker" / "kubernetes"
TEMPLATE = FOLDER / "pod_template.yaml"
GPU_OVERRIDE = FOLDER / "fine_tune_gpu_override.yaml"
FILES = [TEMPLATE, GPU_OVERRIDE]
SOURCES = [ROOT / "include", ROOT / "dags", ROOT / "plugins"]

# A variable with such a name carries a credential: it must come from a Secret.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|ACCESS_KEY|USERNAME|^AIRFLOW_CONN_")
# Database URLs carry their password: the project's ones come from a Secret whole.
DATABASE_URLS = {"AIRE_INCIDENTS_DB", "AIRE_LOCK_URL", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"}
GPU = "nvidia.com/gpu"


def load(path: Path) -> tuple[dict[str, Any], V1Pod]:
    """The file's document and the V1Pod the client's public deserializer makes of it."""
    document = yaml.safe_load(path.read_text())
    with ApiClient() as client:
        # ApiClient.deserialize reads a response's JSON body; the provider's
        # PodGenerator.deserialize_model_dict ends in the same model deserializer.
        pod = client.deserialize(SimpleNamespace(data=json.dumps(document)), "V1Pod")
    assert isinstance(pod, V1Pod)
    return document, pod


def base_container(pod: V1Pod) -> V1Container:
    assert pod.spec is not None and pod.spec.containers
    container = pod.spec.containers[0]
    assert isinstance(container, V1Container)
    return container


def env_vars(pod: V1Pod) -> list[V1EnvVar]:
    return list(base_container(pod).env or [])


@pytest.fixture(scope="module")
def template() -> V1Pod:
    return load(TEMPLATE)[1]


@pytest.fixture(scope="module")
def gpu_override() -> V1Pod:
    return load(GPU_OVERRIDE)[1]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_file_is_exactly_a_v1_pod(path: Path) -> None:
    """The deserializer drops keys it does not know: a misspelt field must not vanish silently."""
    document, pod = load(path)
    assert document["apiVersion"] == "v1" and document["kind"] == "Pod"
    with ApiClient() as client:
        assert client.sanitize_for_serialization(pod) == document


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_task_container_is_named_base(path: Path) -> None:
    """The executor merges its container (args, image) into the first one, named "base"."""
    pod = load(path)[1]
    assert pod.spec is not None
    assert [c.name for c in pod.spec.containers] == ["base"]


def test_the_image_is_the_one_docker_compose_builds(template: V1Pod) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    default = re.fullmatch(r"\$\{AIRE_IMAGE:-(.+)\}", compose["x-airflow-common"]["image"])
    assert default, "docker-compose.yaml names its image ${AIRE_IMAGE:-...}"
    assert base_container(template).image == default[1]


def test_the_gpu_override_keeps_the_templates_image(gpu_override: V1Pod) -> None:
    """An image in the override would win over the template's and pin fine_tune to an old build."""
    assert base_container(gpu_override).image is None


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_credential_is_written_in_the_file(path: Path) -> None:
    text = path.read_text()
    assert "-----BEGIN" not in text
    assert not re.search(r"^\s*(kind:\s*Secret|stringData:|data:)", text, re.MULTILINE)
    assert not re.search(r"://[^\s/@]+:[^\s/@]*@", text), "a URL with a password in it"
    pod = load(path)[1]
    assert base_container(pod).env_from is None  # every variable is named here
    for var in env_vars(pod):
        if var.value is not None:
            assert not SECRET_NAME.search(var.name) and var.name not in DATABASE_URLS, \
                f"{var.name} is given literally; it must come from a secretKeyRef"
            assert "password" not in var.value.lower(), var.name
        else:
            ref = var.value_from.secret_key_ref if var.value_from else None
            assert ref is not None, f"{var.name}: only Secrets feed this pod's variables"
            assert ref.name and ref.key, var.name
            assert not ref.optional, f"{var.name}: a missing Secret must stop the pod, not start the task"


def test_every_credential_comes_from_a_secret(template: V1Pod) -> None:
    from_secret = {v.name for v in env_vars(template) if v.value_from and v.value_from.secret_key_ref}
    assert {"AIRE_INCIDENTS_DB", "MLFLOW_TRACKING_PASSWORD", "AIRFLOW_CONN_AIRE_S3",
            "AIRFLOW_CONN_AIRE_MLFLOW", "AIRFLOW_CONN_AIRE_SIGNING"} <= from_secret
    signing = next(v for v in env_vars(template) if v.name == "AIRFLOW_CONN_AIRE_SIGNING")
    services = next(v for v in env_vars(template) if v.name == "AIRE_INCIDENTS_DB")
    assert signing.value_from.secret_key_ref.name != services.value_from.secret_key_ref.name, \
        "the signing key has a Secret of its own, readable by fewer people"


def test_the_pod_shares_no_storage(template: V1Pod) -> None:
    """Nothing but services is shared: every volume is the pod's own emptyDir (or a Secret)."""
    assert template.spec is not None
    for volume in template.spec.volumes or []:
        assert volume.empty_dir is not None or volume.secret is not None, volume.name


def _volume_at(pod: V1Pod, path: str) -> Any:
    assert pod.spec is not None
    mount = next((m for m in base_container(pod).volume_mounts or [] if m.mount_path == path), None)
    assert mount is not None, f"nothing is mounted at {path}"
    return next(v for v in pod.spec.volumes or [] if v.name == mount.name)


def test_aire_home_is_an_empty_dir(template: V1Pod) -> None:
    home = next(v.value for v in env_vars(template) if v.name == "AIRE_HOME")
    assert _volume_at(template, home).empty_dir is not None


def test_the_pod_runs_as_non_root_on_a_read_only_root(template: V1Pod) -> None:
    assert template.spec is not None and template.spec.security_context is not None
    pod_context = template.spec.security_context
    assert pod_context.run_as_non_root is True and pod_context.run_as_user not in (None, 0)
    context = base_container(template).security_context
    assert context is not None
    assert context.read_only_root_filesystem is True
    assert context.allow_privilege_escalation is False
    assert context.capabilities is not None and context.capabilities.drop == ["ALL"]
    assert template.spec.automount_service_account_token is False


def test_the_places_a_task_writes_are_writable(template: V1Pod) -> None:
    """/tmp: the signing key's private folder (aire_airflow.connections.key_folder) uses tempfile."""
    for path in ("/tmp", "/opt/airflow/logs"):
        assert _volume_at(template, path).empty_dir is not None


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_requests_fit_under_limits(path: Path) -> None:
    resources = base_container(load(path)[1]).resources
    assert resources is not None and resources.requests and resources.limits
    assert {"cpu", "memory"} <= set(resources.requests)
    for name, request in resources.requests.items():
        assert name in resources.limits, f"{name} is requested without a limit"
        assert parse_quantity(request) <= parse_quantity(resources.limits[name]), name


def test_the_gpu_override_asks_for_one_gpu_on_a_gpu_node(gpu_override: V1Pod) -> None:
    resources = base_container(gpu_override).resources
    assert resources is not None and resources.limits is not None and resources.requests is not None
    # Extended resources are not overcommitted: request and limit must be equal.
    assert parse_quantity(resources.limits[GPU]) == parse_quantity(resources.requests[GPU]) == 1
    spec = gpu_override.spec
    assert spec is not None and spec.node_selector and any(GPU in key for key in spec.node_selector)
    assert any(t.key == GPU and t.effect == "NoSchedule" for t in spec.tolerations or [])


def test_the_gpu_override_restates_cpu_and_memory(template: V1Pod, gpu_override: V1Pod) -> None:
    """The provider replaces the template's whole ``resources`` with the override's, so the
    override must carry every resource the template requests, not only the GPU."""
    wanted = base_container(template).resources
    given = base_container(gpu_override).resources
    assert wanted is not None and given is not None
    assert set(wanted.requests or {}) <= set(given.requests or {})
    assert set(wanted.limits or {}) <= set(given.limits or {})


# --- every variable the template sets is one somebody reads ------------------------------

def _project_reads(name: str) -> bool:
    quoted = re.compile(rf"[\"']{re.escape(name)}[\"']")
    return any(quoted.search(path.read_text()) for root in SOURCES for path in root.rglob("*.py"))


def _production_pipeline_config() -> dict[str, Any]:
    """The pipeline config docs/production.md gives for this stack (storage and signing)."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "production.md").read_text(), re.DOTALL)
    configs = [doc for doc in map(yaml.safe_load, blocks) if isinstance(doc, dict) and "signing" in doc]
    assert len(configs) == 1, "docs/production.md has one pipeline config block with storage and signing"
    return configs[0]


def _named_connections(template: V1Pod) -> set[str]:
    """Connection ids AIRE reads: AIRE_*_CONN_ID values here, and the pipeline config's fields."""
    from aire.config import Signing, Storage

    config = _production_pipeline_config()
    storage, signing = Storage(**config["storage"]), Signing(**config["signing"])
    ids = {v.value for v in env_vars(template) if re.fullmatch(r"AIRE_\w+_CONN_ID", v.name) and v.value}
    return ids | {storage.aws_conn_id, signing.conn_id} - {None}


def test_every_variable_is_read_by_aire_airflow_or_mlflow(template: V1Pod) -> None:
    import mlflow.environment_variables as mlflow_env
    from airflow.configuration import retrieve_configuration_description

    airflow_options = retrieve_configuration_description()
    mlflow_names = {getattr(value, "name", None) for value in vars(mlflow_env).values()}
    connections = _named_connections(template)
    unread = []
    for var in env_vars(template):
        name = var.name
        if name.startswith("AIRE_"):
            known = _project_reads(name)
        elif name.startswith("MLFLOW_"):
            known = name in mlflow_names
        elif name.startswith("AIRFLOW_CONN_"):
            known = name.removeprefix("AIRFLOW_CONN_").lower() in connections
        elif match := re.fullmatch(r"AIRFLOW__([A-Z_]+?)__([A-Z_]+)", name):
            section, option = match[1].lower(), match[2].lower()
            known = option in airflow_options.get(section, {}).get("options", {})
        else:
            known = False
        if not known:
            unread.append(name)
    assert unread == [], f"set by the pod template but read by nobody: {unread}"


def test_the_drift_check_sees_a_renamed_variable() -> None:
    """The check above is not vacuous: a name nobody reads is caught."""
    assert _project_reads("AIRE_INCIDENTS_DB")
    assert not _project_reads("AIRE_INCIDENT_DB")
