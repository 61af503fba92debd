"""Pipeline config: one YAML file per pipeline, validated on load.

Every model forbids unknown keys, so a typo fails loudly with the key's dotted path
instead of being ignored. Run-time knobs (epochs, learning rate) have defaults here and
can be overridden per run by the DAG's Params.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aire.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Features(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.text]


class ColumnRule(_Strict):
    """Rules the config states for one column, on top of what the reference teaches."""

    min: float | None = None
    max: float | None = None
    values: list[str | int] | None = None
    nullable: bool = False


class Dataset(_Strict):
    label: str
    id: str | None = None
    features: Features
    sensitive: list[str] = Field(default_factory=list)
    rules: dict[str, ColumnRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _columns_are_consistent(self) -> Dataset:
        features = self.features.all
        if not features:
            raise ValueError("dataset.features lists no feature column")
        if self.features.text:
            raise ValueError("dataset.features.text: the tabular recipe takes no text columns yet")
        duplicates = sorted({c for c in features if features.count(c) > 1})
        if duplicates:
            raise ValueError(f"dataset.features lists {duplicates} more than once")
        if self.label in features:
            raise ValueError(f"dataset.label '{self.label}' is also listed as a feature")
        known = {*features, self.label, *self.sensitive, *([self.id] if self.id else [])}
        unknown = sorted(set(self.rules) - known)
        if unknown:
            raise ValueError(f"dataset.rules names unknown columns {unknown}")
        return self

    @property
    def columns(self) -> list[str]:
        """Every column a batch must have, in a stable order."""
        ordered = [*([self.id] if self.id else []), *self.features.all, *self.sensitive, self.label]
        return list(dict.fromkeys(ordered))


class Recipe(str, Enum):
    TABULAR = "tabular"


class ModelSpec(_Strict):
    recipe: Recipe = Recipe.TABULAR
    base: str | None = None
    hidden: list[int] = Field(default_factory=lambda: [64, 32])


class Training(_Strict):
    epochs: int = Field(30, ge=1, le=1000)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    batch_size: int = Field(64, ge=1)
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda


class Analysis(_Strict):
    folds: int = Field(5, ge=2, le=50)
    top_k: int = Field(50, ge=1)


class Gates(_Strict):
    """Thresholds of the promotion gate. Every check fails closed on missing evidence."""

    max_drift_share: float = Field(0.3, ge=0, le=1)
    # Evidently drops missing values before testing a column; a feature whose null rate
    # rises by more than this counts as drifted all the same.
    max_null_rate_increase: float = Field(0.1, ge=0, le=1)
    max_noise_rate: float = Field(0.2, ge=0, le=1)
    min_accuracy: float = Field(0.6, ge=0, le=1)
    max_accuracy_drop: float = Field(0.03, ge=0, le=1)
    # Worst of demographic parity and equalized odds differences over sensitive attributes.
    max_fairness_gap: float = Field(0.25, ge=0, le=1)
    # How much larger than the champion's that gap may be (same holdout for both models).
    max_fairness_gap_increase: float = Field(0.05, ge=0, le=1)


class Storage(_Strict):
    """Where reports and data copies go: the home's local store, or ``s3://bucket/prefix``."""

    uri: str | None = None
    endpoint_url: str | None = None
    aws_conn_id: str | None = None
    region: str | None = None


class Signing(_Strict):
    """Where the signing key comes from: the embedded home's pair, or an Airflow connection.

    The connection holds the private key PEM as its password (and may hold the public key
    as ``public_key`` in its extra); a secrets backend can serve that connection.
    """

    conn_id: str | None = None


class PipelineConfig(_Strict):
    name: str
    dataset: Dataset
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: Training = Field(default_factory=Training)
    analysis: Analysis = Field(default_factory=Analysis)
    gates: Gates = Field(default_factory=Gates)
    storage: Storage = Field(default_factory=Storage)
    signing: Signing = Field(default_factory=Signing)

    @model_validator(mode="after")
    def _name_is_a_model_name(self) -> PipelineConfig:
        if not _NAME.match(self.name):
            raise ValueError(f"name '{self.name}' must be 1-63 letters, digits, '.', '_' or '-'")
        return self


def parse_config(data: Any, source: str = "<config>") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "<root>"
            problems.append(f"key '{key}': {err['msg']}")
        raise ConfigError(f"{source}: invalid config: " + "; ".join(problems)) from None


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))
