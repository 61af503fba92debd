"""The embedded home: every file a run writes when no services are configured.

``AIRE_HOME`` picks it; the default is ``.aire/`` in the checkout this library was
imported from, so two checkouts never share state. Service URIs (MLflow tracking,
Airflow metadata DB, incident DB) can each be overridden by their usual environment
variables; the home then only holds what still lives locally.

``aire env`` exports the home's own values of those variables too, so a shell that ran
it carries values nobody set by hand. It also exports ``AIRE_DERIVED_FROM=<home>``: a
variable whose value is still what that home derived is the home's, not the user's, and
follows ``AIRE_HOME`` when it changes; a value set by hand (any other value) stays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aire import constants as names

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DERIVED_FROM = "AIRE_DERIVED_FROM"
# The service URIs `aire env` exports with the home's value when the user set none.
EXPORTED_SERVICES = ("MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
HOME_DEFAULT = "home default"


@dataclass(frozen=True)
class Setting:
    """A service URI in force and where it came from (``environment (VAR)`` or the home)."""

    value: str
    source: str


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        raw = os.environ.get("AIRE_HOME")
        root = Path(raw) if raw else PROJECT_ROOT / ".aire"
        return cls(root.expanduser().resolve())

    # --- locations -------------------------------------------------------------
    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def store_dir(self) -> Path:
        """The local object store: what S3 holds in production."""
        return self.root / "store"

    @property
    def postmortems_dir(self) -> Path:
        return self.root / "postmortems"

    @property
    def data_dir(self) -> Path:
        """Example batches made by the generator."""
        return self.root / "data"

    # --- service URIs, overridable ----------------------------------------------
    def defaults(self) -> dict[str, str]:
        """Each service URI as this home alone derives it, whatever the environment says."""
        return {
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.mlflow_dir / 'mlflow.db'}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.airflow_home / 'airflow.db'}",
            "AIRE_INCIDENTS_DB": f"sqlite:///{self.root / 'incidents.db'}",
        }

    def setting(self, variable: str) -> Setting:
        """The value of ``variable`` in force: the user's, else this home's (see the module doc)."""
        default = self.defaults()[variable]
        value = os.environ.get(variable)
        if not value or _derived_by_env(variable, value):
            return Setting(default, HOME_DEFAULT)
        return Setting(value, f"environment ({variable})")

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.setting("MLFLOW_TRACKING_URI").value

    @property
    def mlflow_artifact_root(self) -> str | None:
        """Where new experiments keep artifacts: the home's folder for a local store.

        None for a tracking server: the server's own artifact store (S3 behind
        ``--serve-artifacts``) must hold them, not the worker's disk.
        """
        if self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def incidents_db_url(self) -> str:
        return self.setting("AIRE_INCIDENTS_DB").value

    @property
    def uses_services(self) -> bool:
        """True for a production home: its incident database is PostgreSQL (``AIRE_INCIDENTS_DB``).

        The one switch for what several hosts must share: such a home keeps its ledger and its
        promotion locks in that database and signs only with the key from the secret store;
        an embedded home (the SQLite default) keeps a ledger file, ``fcntl`` locks and its own
        key pair.
        """
        return is_postgresql(self.incidents_db_url)

    @property
    def airflow_db_url(self) -> str:
        return self.setting("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN").value

    def run_dir(self, pipeline: str, run_key: str) -> Path:
        """Everything one pipeline run writes: its reports, decision and candidate model."""
        return self.reports_dir / pipeline / _safe(run_key)

    @property
    def public_key(self) -> Path:
        return self.keys_dir / "signing.pub"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.jsonl"

    def ensure(self) -> Home:
        for path in (self.airflow_home, self.mlflow_dir, self.reports_dir,
                     self.store_dir, self.postmortems_dir, self.data_dir):
            path.mkdir(parents=True, exist_ok=True)
        # The private signing key lives here: nobody else may list or enter it.
        self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.keys_dir, 0o700)
        return self

    def environment(self) -> dict[str, str]:
        """Variables that point ``airflow``, ``mlflow`` and ``aire`` at this home (service
        URIs set by hand stay), and the mark that says which home the rest came from."""
        return {
            "AIRE_HOME": str(self.root),
            DERIVED_FROM: str(self.root),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_db_url,
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            # MLflow checks requirements with `pip install --dry-run`: no network needed.
            "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
            "GX_ANALYTICS_ENABLED": "false",
        }


@dataclass(frozen=True)
class RunLayout:
    """Where each artifact of one pipeline run lives, under ``Home.run_dir``.

    Every stage, the gate, the incident sources and the UI find a run's files here, so a
    file name is written once (in ``aire.constants``).
    """

    root: Path

    @property
    def batch(self) -> Path:
        return self.root / names.BATCH

    @property
    def train(self) -> Path:
        return self.root / names.TRAIN

    @property
    def holdout(self) -> Path:
        return self.root / names.HOLDOUT

    @property
    def validation_dir(self) -> Path:
        return self.root / names.VALIDATION_DIR

    @property
    def validation(self) -> Path:
        return self.validation_dir / names.VALIDATION

    @property
    def analysis_dir(self) -> Path:
        return self.root / names.ANALYSIS_DIR

    @property
    def analysis_summary(self) -> Path:
        return self.analysis_dir / names.ANALYSIS_SUMMARY

    @property
    def model_dir(self) -> Path:
        return self.root / names.MODEL_DIR

    @property
    def signature(self) -> Path:
        return self.root / names.SIGNATURE

    @property
    def signing(self) -> Path:
        return self.root / names.SIGNING

    @property
    def training(self) -> Path:
        return self.root / names.TRAINING

    @property
    def evaluation_dir(self) -> Path:
        return self.root / names.EVALUATION_DIR

    @property
    def evaluation(self) -> Path:
        return self.evaluation_dir / names.EVALUATION

    @property
    def decision(self) -> Path:
        return self.root / names.DECISION

    @property
    def approval(self) -> Path:
        return self.root / names.APPROVAL

    @property
    def quarantined_batch(self) -> Path:
        return self.root / names.QUARANTINE_DIR / names.BATCH

    @property
    def registry_dir(self) -> Path:
        return self.root / names.REGISTRY_DIR


def is_postgresql(url: str) -> bool:
    """Whether a SQLAlchemy URL names PostgreSQL, whatever its driver (``postgresql+psycopg://``)."""
    return url.partition("://")[0].split("+", 1)[0].strip().lower() == "postgresql"


def _derived_by_env(variable: str, value: str) -> bool:
    """True when ``value`` is what `aire env` exported for the home named by the mark."""
    marked = os.environ.get(DERIVED_FROM)
    if not marked or variable not in EXPORTED_SERVICES:
        return False
    return Home(Path(marked)).defaults()[variable] == value


def _safe(run_id: str) -> str:
    """Airflow run ids contain ':' and '+'; keep directory names portable."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
