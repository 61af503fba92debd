"""Pipeline config: one YAML file per pipeline, validated on load.

Every model forbids unknown keys, so a typo fails loudly with the key's dotted path
instead of being ignored. Run-time knobs (epochs, learning rate) have defaults here and
can be overridden per run by the DAG's Params.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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
    TRANSFORMER = "transformer"


class Lora(_Strict):
    """Low-rank adapters (peft) instead of full fine-tuning; merged into the weights on save."""

    r: int = Field(8, ge=1, le=256)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelSpec(_Strict):
    recipe: Recipe = Recipe.TABULAR
    # The transformer recipe's pretrained base: a local directory or an s3:// prefix holding
    # safetensors weights, config.json and tokenizer files. Nothing comes from a hub.
    base: str | None = None
    # The base directory's digest (aire.trust.base: sha256 over its files' sha256s, the
    # digest model-signing gives a directory). A base that does not match is refused.
    base_digest: str | None = None
    lora: Lora | None = None  # transformer only; None: full fine-tuning
    max_length: int = Field(128, ge=8, le=512)  # transformer only: tokens per text
    # Bounded so that a config cannot ask for terabytes (4096 x 4096 x 8 layers is ~0.5 GB of weights).
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default_factory=lambda: [64, 32], min_length=1,
                                                              max_length=8)

    @model_validator(mode="after")
    def _recipe_has_its_inputs(self) -> ModelSpec:
        if self.recipe is Recipe.TABULAR:
            extra = [k for k in ("base", "base_digest", "lora") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"model.{extra[0]} belongs to the transformer recipe; "
                                 "the tabular recipe trains from scratch or from its champion")
            return self
        if not self.base:
            raise ValueError("model.base: the transformer recipe needs a pretrained base "
                             "(a local directory or an s3:// prefix)")
        if self.base_digest is None or not _SHA256.match(self.base_digest):
            raise ValueError("model.base_digest: the transformer recipe needs the base's pinned "
                             "digest, 64 lowercase hex characters (`aire base-digest DIR` prints it)")
        return self


class Training(_Strict):
    epochs: int = Field(30, ge=1, le=1000)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    batch_size: int = Field(64, ge=1)
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda


class Analysis(_Strict):
    """Error analysis (``aire.analysis.error_analysis``) and what fine-tuning does with its suspects."""

    folds: int = Field(5, ge=2, le=50)  # cross-fitting folds when there is no champion
    # The fold models when there is no champion: boosted_trees (sklearn's histogram gradient
    # boosting; seconds at 30k rows) or mlp (the tabular network, cross_fit_epochs each).
    # See aire.analysis.error_analysis for the figures behind the default.
    cross_fit_model: str = Field("boosted_trees", pattern="^(boosted_trees|mlp)$")
    # Epochs of each mlp fold model, capped by training.epochs: K models train per analysis.
    cross_fit_epochs: int = Field(20, ge=1, le=1000)
    # With a champion: epochs of a short K-fold cross-fit on the batch whose probabilities
    # are averaged with the champion's (0: the champion alone). See aire.analysis.error_analysis.
    champion_blend_epochs: int = Field(8, ge=0, le=1000)
    top_k: int = Field(50, ge=1)  # suspects listed in report.html
    review_k: int = Field(10, ge=1, le=1000)  # most-confident predictions reviewed per class
    # A single feature whose held-out balanced accuracy reaches this gives the label away.
    leakage_threshold: float = Field(0.95, gt=0.5, le=1)
    scoring_batch_size: int = Field(65536, ge=1)  # rows scored at once: bounds memory
    # keep: train on every row; drop: leave suspects out; downweight: weight them by `downweight`.
    action: str = Field("keep", pattern="^(keep|drop|downweight)$")
    downweight: float = Field(0.2, gt=0, le=1)


class Evaluation(_Strict):
    """How evaluation (``aire.evaluation``) spends its time on large batches."""

    # Rows per side that Evidently's drift report and verdicts see: a seeded uniform sample
    # above this (0: every row). Above 1,000 rows Evidently judges by distances (Wasserstein
    # for numbers, Jensen-Shannon for categories) against 0.1; on 100k rows their sampling
    # error is ~1/sqrt(n) = 0.003, so a verdict moves only for a column within ~0.01 of the
    # threshold. Null rates, unseen categories and the gate's per-feature tests always use
    # every row (bench/drift_scale.py: 1M rows x 20 columns, full vs sampled).
    drift_report_rows: int = Field(100_000, ge=0)


class Gates(_Strict):
    """Thresholds of the promotion gate. Every check fails closed on missing evidence.

    Every check compares the candidate with a baseline on the same rows and allows a
    tolerance plus ``regression_z`` standard errors: the champion (quality, fairness), the
    champion's own error analysis (noise, per-group suspect rates), or a baseline computed on
    the batch itself (the prior model, which predicts the training labels' majority class).
    With no champion (a first run) the champion comparisons are "not applicable" and say so;
    the rest judge the candidate alone (README, "The gate").

    The defaults protect without tuning (``gates: {}``). They were first sized on German
    Credit with the demo's batches (bench/evaluation.py ``spread``: champion on 700 rows,
    then 10 seeds of each kind, 700-row clean batches with 175-row holdouts, 400-row
    defective ones; and a "disjoint" scenario, champion and batches from separate halves):
    clean 10/10 promoted in both; drift=1.0, label_noise=0.3 and group_bias=0.6 0/10 in both
    (group bias was 3/10 before group_suspect_rate_gap). The figures behind each field are
    beside it.
    """

    # Clean batches: 0 of 8 features drifted (0.000); drift=1.0 batches: 0.75-0.875.
    max_drift_share: float = Field(0.3, ge=0, le=1)
    # One feature alone (check feature_shift, aire.evaluation.two_sample): rejected when its
    # Bonferroni-adjusted p-value is at most drift_alpha (a clean batch then fails at most
    # that often) and its effect (KS D; total variation distance of category shares) at least
    # min_drift_effect (Evidently's own distance threshold, 0.1, so that a million-row batch
    # does not fail on a trivial difference). A filtered sub-population moves one or two of
    # ten features: drift_share 0.11-0.25 on the verification half, under max_drift_share.
    # Calibration half (bench/gate_calibration.py record --panel calibration --seeds 5, then
    # features): clean later batches' largest effect 0.027-0.066, smallest adjusted p 0.036
    # (none rejected); drift batches' 0.69-0.84, p < 1e-117 (all rejected).
    drift_alpha: float = Field(0.01, gt=0, le=1)
    min_drift_effect: float = Field(0.1, ge=0, le=1)
    # Evidently drops missing values before testing a column; a feature whose null rate
    # rises by more than this counts as drifted all the same, and fails null_rate_increase
    # on its own when the rise exceeds this plus regression_z standard errors (a 40%-null
    # column is one drifted feature of ten, under max_drift_share: the verification half's
    # nulls batches were promoted 38/40 before that check).
    max_null_rate_increase: float = Field(0.1, ge=0, le=1)
    # Label noise is judged against the champion's own estimate (its training run's error
    # analysis) plus this margin plus regression_z binomial standard errors of the difference
    # of the two estimates (each sqrt(p(1-p)/rows)): data sets differ in how much their
    # classes overlap (German Credit reads 0.28 on clean rows), so an absolute limit either
    # rejects every batch of one data set or waves noise through on another, and a 400-row
    # estimate moves by +-0.02 on its own. German Credit: champion 0.281; clean batches read
    # 0.141-0.179 (the champion has seen ~70% of their rows), 30% flipped labels 0.367-0.418.
    # Calibration half, clean later batches (22 runs): estimate - champion's - 1.645 SEs at
    # most +0.032 (at 2.326 SEs: +0.023); German Credit's 30%-noise batches at least +0.039
    # (at 2.326: +0.017). So 0.035 with noise_z 1.645 separates both, and regression_z's
    # 2.326 could not: any margin that let every clean calibration batch through let some
    # German noisy ones through too. 30% noise on the panel: at least +0.07.
    max_noise_rate_increase: float = Field(0.035, ge=0, le=1)
    # z of the noise check's error bar (one-sided 5%; see the figures above).
    noise_z: float = Field(1.645, ge=0, le=10)
    # The cap, the only noise limit on a first run (no champion, no baseline), and a ceiling
    # after it, so successive promotions cannot ratchet the baseline upwards: this multiple
    # of the no-signal level, what the estimate reads when the labels say nothing about the
    # features (about 1 - 1/K for K classes, aire.promotion.gate._noise). The absolute cap
    # 0.5 it replaces was that level for binary labels and rejected every clean run of the
    # verification half's wage (5 classes: clean 0.58-0.61, no-signal 0.8). Calibration half,
    # clean first runs (bench/gate_calibration.py record --kinds first, 5 seeds): at most 0.54
    # of the level (chile, 4 classes, 0.371-0.405 of 0.75); titanic, mpls_stops, caravan
    # 0.146-0.234 of 0.5. German Credit 0.28 of 0.5; its 30%-noise batches 0.40-0.50.
    max_noise_vs_no_signal: float = Field(0.9, gt=0, le=2)
    # An absolute cap on top (null: none; configs that set it keep it).
    max_noise_rate: float | None = Field(None, ge=0, le=1)
    # The candidate against the prior model (the training labels' class distribution) on the
    # whole holdout: its Brier score gain over the prior must exceed prior_z paired standard
    # errors (the check named "accuracy"). A 95%-majority problem is not "accurate" at 0.9,
    # and a 10-class one is not useless at 0.5. Positive z demands shown skill; the default,
    # negative, rejects a model significantly worse than the prior (one-sided 1%), because
    # clean real data often cannot show skill over it: the calibration half (bench/
    # gate_calibration.py sweep prior_z=...) promoted clean runs 16/16 at -2.326, 15/16 at
    # -1.645, 11/16 at 0 and 10/16 at +1 (caravan, 6% buyers: every clean candidate's Brier
    # score is 0.001-0.011 worse than the prior's); German Credit's demo champion reads a gain
    # of -0.030 with SE 0.043 on its 175-row holdout.
    prior_z: float = Field(-2.326, ge=-10, le=10)
    # An optional absolute accuracy floor on top (null: none; configs that set it keep it).
    min_accuracy: float | None = Field(None, ge=0, le=1)
    # Accuracy may fall below the champion's by this much plus regression_z paired
    # standard errors of the difference (same rows, both models): a 50-row comparison
    # cannot resolve a 2-point drop, a 5,000-row one can. Clean batches, ~50 rows new to
    # the champion: drop -0.041..+0.065 against limits of ~0.11 (SE ~0.055).
    max_accuracy_drop: float = Field(0.02, ge=0, le=1)
    # z for every check against a baseline (accuracy, F1, ROC AUC, calibration error, noise,
    # group suspect rates, fairness); the old name accuracy_drop_z is still read. One-sided
    # 1% per check: four checks on correlated metrics then reject a clean candidate less
    # than ~4% of the time. At 1.645 (5% each) one clean overlap batch in 10 was rejected on
    # ROC AUC (drop 0.129, limit 0.107).
    regression_z: float = Field(2.326, ge=0, le=10,
                                validation_alias=AliasChoices("regression_z", "accuracy_drop_z"))
    # Macro F1 and ROC AUC may fall below the champion's by this much plus regression_z
    # paired bootstrap standard errors (aire.evaluation.bootstrap), on the same rows.
    max_f1_drop: float = Field(0.02, ge=0, le=1)
    max_roc_auc_drop: float = Field(0.02, ge=0, le=1)
    # Top-label expected calibration error (10 bins) may rise above the champion's by this
    # much plus regression_z standard errors: ECE of a ~50-row comparison is noisy.
    max_calibration_error_increase: float = Field(0.03, ge=0, le=1)
    # A feature that alone predicts the label (the error analysis' leakage check) rejects the
    # batch: a leak or a shortcut. Turn off only for a feature known to be that predictive.
    reject_on_leakage: bool = True
    # Suspected label errors concentrating in one sensitive group, relative to the champion's
    # training batch: per group, (its suspect rate - the rest's) now minus the same difference
    # in the champion's error analysis may exceed this by regression_z standard errors (four
    # proportions, each with one pseudo-suspect and one pseudo-clean row added so that a
    # small or suspect-free group has a non-zero error). Groups differ in how ambiguous
    # their labels are (a census set: 0.073 between groups on clean data); what the batch
    # must not do is move that difference. First run: not applicable (nothing to compare).
    # Calibration half (sweep 0, 0.02, 0.05): clean later batches 16/16 at each; 40%-null
    # batches promoted 11, 13, 15 of 16 (labels untouched there, so 0.02 it stays).
    max_group_suspect_rate_gap: float = Field(0.02, ge=0, le=1)
    # A group's share of a label moving against the rest's, relative to the champion's training
    # batch (aire.evaluation.label_shift): labels rewritten for one group only (60% of one
    # group's positives turned negative) leave features, suspects and gaps nearly still. The
    # largest |shift| may exceed this by a family-wise z (regression_z's rate, Bonferroni over
    # the shifts and both directions). First run: not applicable. Calibration half: clean
    # later batches 16/16 promoted at 0, 0.01 and 0.02; mpls_stops' biased batches (race=White,
    # 9 groups) all rejected (shift -0.10 to -0.17, limits ~0.10); caravan's (6% positives:
    # ~14 labels flipped of 1,500) read -0.02 to -0.03 against ~0.066, not separable from
    # clean (|shift| up to 0.026).
    max_group_label_shift: float = Field(0.01, ge=0, le=1)
    # An absolute limit on the worst demographic parity / equalized odds difference: only
    # when set (null: the gap is reported, and judged against the champion's below). Over a
    # 600-row holdout the absolute gap of a 1%-group is mostly sampling noise.
    max_fairness_gap: float | None = Field(None, ge=0, le=1)
    # How much larger than the champion's that gap may be (same holdout rows, both models),
    # plus regression_z paired bootstrap standard errors of the difference. Calibration half,
    # clean later batches: increase minus 2.326 SEs at most -0.006 (19 runs), so 0.02 leaves
    # room; German Credit clean batches read -0.061..+0.078 without an error bar.
    max_fairness_gap_increase: float = Field(0.02, ge=0, le=1)
    # Rows a group's rate needs in its denominator (group rows; actual positives for TPR,
    # actual negatives for FPR) to count; with fewer it is undefined. Below ~600-row batches
    # the minority group of a 25% holdout rarely reaches 20, and the gate rejects for want
    # of a measurable gap: lower this only knowing that rates over fewer rows are noise.
    min_group_count: int = Field(20, ge=1)
    # A sensitive attribute with more distinct values than this is not a group attribute (an
    # id, a zip code, a free-text column): fairness and the group suspect check reject with
    # that reason rather than compare hundreds of tiny groups.
    max_sensitive_groups: int = Field(50, ge=2)


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


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(value: Any) -> float:
    """'90s', '5m', '6h', '7d', '2w' or a plain number of seconds."""
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if match:
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"expected a duration like '30m', '6h' or '7d', got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(_seconds)]  # seconds


class SliKind(str, Enum):
    """What an objective measures; ``aire.reliability.slo`` says how each is computed from run history."""

    SUCCESS_RATE = "success_rate"  # runs that reach a gate decision / finished runs
    FRESHNESS = "freshness"  # time since the last promotion <= threshold (time-based)
    QUALITY = "quality"  # serving model's accuracy on each labeled batch >= threshold
    DRIFT_SHARE = "drift_share"  # share of drifted features per batch <= threshold
    FAIRNESS_GAP = "fairness_gap"  # serving model's worst group gap per batch <= threshold
    PROMOTION_LATENCY = "promotion_latency"  # batch landing to promotion <= threshold
    # Scored batches (aire_monitor; one event per batch, from its summary; aire.scoring.monitor):
    PREDICTION_DRIFT = "prediction_drift"  # TV distance of predicted-class shares vs the reference <= threshold
    INPUT_DRIFT = "input_drift"  # worst feature's PSI (numbers) or TV distance (categories) <= threshold
    CONFIDENCE = "confidence"  # share of rows below the model's learned confidence threshold <= threshold
    ODD_VIOLATION_RATE = "odd_violation_rate"  # share of rows out of the operating domain <= threshold
    SCORING_FRESHNESS = "scoring_freshness"  # time since the last scored batch <= threshold (time-based)
    SERVING_QUALITY = "serving_quality"  # accuracy of what was served, on batches that carry labels >= threshold


class BurnWindow(_Strict):
    """An alert fires when both windows burn budget at least ``factor`` times too fast."""

    long: Duration
    short: Duration
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnWindow:
        if self.short >= self.long:
            raise ValueError(f"short ({self.short:g}s) must be shorter than long ({self.long:g}s)")
        return self


class Objective(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    sli: SliKind
    target: float = Field(gt=0, lt=1)  # fraction of good events (or good time)
    # A number in [0, 1] for quality, drift_share and fairness_gap; a duration for
    # freshness and promotion_latency; none for success_rate.
    threshold: float | None = Field(default=None, validate_default=True)
    window: Duration | None = None  # default: slo.window

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_fits_the_sli(cls, value: Any, info: ValidationInfo) -> float | None:
        sli = info.data.get("sli")
        if sli is None:
            return None  # the sli itself is invalid and reported under its own key
        if sli is SliKind.SUCCESS_RATE:
            if value is not None:
                raise ValueError("success_rate takes no threshold")
            return None
        if value is None:
            raise ValueError(f"sli {sli.value} needs a threshold")
        if sli in (SliKind.FRESHNESS, SliKind.PROMOTION_LATENCY, SliKind.SCORING_FRESHNESS):
            return _seconds(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"sli {sli.value} needs a number in [0, 1], got {value!r}")
        return float(value)


def _default_objectives() -> list[Objective]:
    # Thresholds match the Gates defaults, so a pipeline is judged by the rules it promotes by.
    raw: list[dict[str, Any]] = [
        {"name": "pipeline_success", "sli": "success_rate", "target": 0.9},
        {"name": "data_freshness", "sli": "freshness", "threshold": "7d", "target": 0.9},
        {"name": "champion_quality", "sli": "quality", "threshold": 0.6, "target": 0.9},
        {"name": "drift", "sli": "drift_share", "threshold": 0.3, "target": 0.8},
        {"name": "fairness", "sli": "fairness_gap", "threshold": 0.25, "target": 0.9},
        {"name": "promotion_latency", "sli": "promotion_latency", "threshold": "2h", "target": 0.9},
    ]
    return [Objective.model_validate(item) for item in raw]


class Slo(_Strict):
    """Service-level objectives over the pipeline's run history (see ``aire.reliability.slo``)."""

    window: Duration = 28 * 86400.0
    # Batch pipelines see a few events a day, so the SRE workbook's 1h/5m and 6h/30m
    # windows would hold nothing: these are scaled to daily batches.
    fast_burn: BurnWindow = Field(default_factory=lambda: BurnWindow(long=86400, short=7200,
                                                                     factor=10))
    slow_burn: BurnWindow = Field(default_factory=lambda: BurnWindow(long=7 * 86400,
                                                                     short=86400, factor=2))
    objectives: list[Objective] = Field(default_factory=_default_objectives)

    @model_validator(mode="after")
    def _names_unique_and_windows_fit(self) -> Slo:
        names = [o.name for o in self.objectives]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"slo.objectives names {duplicates} more than once")
        for objective in self.objectives:
            window = objective.window or self.window
            if self.slow_burn.long > window or self.fast_burn.long > window:
                raise ValueError(f"slo.objectives '{objective.name}': window ({window:g}s) is "
                                 f"shorter than a burn-rate window")
        return self


class ChannelKind(str, Enum):
    WEBHOOK = "webhook"  # any JSON receiver
    SLACK = "slack"  # incoming webhook
    PAGERDUTY = "pagerduty"  # Events API v2


class NotifyChannel(_Strict):
    """One receiver; its URL and keys live in the Airflow connection ``conn_id``."""

    kind: ChannelKind
    conn_id: str = Field(min_length=1)
    name: str | None = None  # default: conn_id
    min_severity: str = Field(default="medium", pattern="^(critical|high|medium|low)$")

    @property
    def label(self) -> str:
        return self.name or self.conn_id


class Notify(_Strict):
    """Where incidents are sent after they are stored, and how hard to try."""

    channels: list[NotifyChannel] = Field(default_factory=list)
    attempts: int = Field(default=4, ge=1, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)  # doubled after each failed attempt
    max_backoff_seconds: float = Field(default=30.0, ge=0, le=600)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _labels_unique(self) -> Notify:
        labels = [c.label for c in self.channels]
        duplicates = sorted({n for n in labels if labels.count(n) > 1})
        if duplicates:
            raise ValueError(f"notify.channels names {duplicates} more than once; set 'name'")
        return self


class Approval(_Strict):
    """A human's yes between a passing gate and promotion (``aire.promotion.approval``).

    With ``required`` the run waits at the DAG's ``await_approval`` task, which shows the
    gate's decision record. Approve promotes; reject, or no answer within
    ``timeout_hours``, rejects the candidate (fail closed) with an incident.
    """

    required: bool = False
    timeout_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # Airflow user ids allowed to answer (the auth manager's id: the user name for the
    # simple auth manager); empty: anyone who may act on the DAG's tasks.
    approvers: list[str] = Field(default_factory=list)

    @field_validator("approvers")
    @classmethod
    def _approvers_named_once(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("an approver id cannot be empty")
        duplicates = sorted({n for n in value if value.count(n) > 1})
        if duplicates:
            raise ValueError(f"approval.approvers names {duplicates} more than once")
        return value


class OutOfDomain(str, Enum):
    """What a row outside the champion's operating design domain gets (``aire.scoring.odd``)."""

    FLAG = "flag"  # the champion's prediction, with the verdict beside it
    FALLBACK = "fallback"  # the fallback's prediction (previous verified version, else the baseline)
    WITHHOLD = "withhold"  # no prediction: the row is marked withheld


class Shadow(_Strict):
    """A ``challenger`` scoring the same batch in shadow (``aire.scoring.shadow``).

    ``canary_share`` < 1 scores only that share of rows (a seeded, stable choice by row hash).
    A shadow batch is healthy when agreement with the champion is at least ``min_agreement``
    and the total-variation distance between their predicted-class shares is at most
    ``max_distance``; with ``required_healthy_batches`` > 0 a challenger is promoted only
    after that many healthy batches in a row, and an unhealthy one ends it (a decision record).
    """

    enabled: bool = True
    canary_share: float = Field(1.0, gt=0, le=1)
    min_agreement: float = Field(0.8, ge=0, le=1)
    max_distance: float = Field(0.15, ge=0, le=1)
    required_healthy_batches: int = Field(0, ge=0, le=1000)
    end_unhealthy: bool = True  # an unhealthy shadow batch removes the challenger alias


class Scoring(_Strict):
    """Batch scoring (``aire score``, ``aire_score``): the operating domain and fallbacks."""

    out_of_domain: OutOfDomain = OutOfDomain.FLAG
    # A cell the model cannot take (NaN or inf in a number, text in a numeric column, a
    # missing required value): flag withholds those rows and scores the rest; quarantine
    # refuses the whole batch (nothing written, the batch copied to quarantine, an incident).
    on_bad_input: str = Field("flag", pattern="^(flag|quarantine)$")
    chunk_rows: int = Field(250_000, ge=1, le=10_000_000)  # rows encoded and scored at once: bounds memory
    # Distance to the training data: a row is "far from anything seen" when its Mahalanobis
    # distance (standardized numeric features, the reference's covariance) exceeds the
    # reference's own ``distance_quantile`` times ``1 + distance_margin``.
    distance_quantile: float = Field(0.99, gt=0.5, le=1)
    distance_margin: float = Field(0.25, ge=0, le=10)
    # Uncertain: the top-class probability below the ``uncertain_quantile`` of the champion's
    # own confidences on its training rows (learned per model digest).
    uncertain_quantile: float = Field(0.05, ge=0, lt=0.5)
    # A column the reference never had missing is out of domain when a row has it missing;
    # one that had nulls is flagged in the summary when the batch's null rate exceeds the
    # reference's by more than this.
    null_rate_tolerance: float = Field(0.1, ge=0, le=1)
    # The documented baseline when no version verifies: fixed class probabilities
    # (class label -> probability, summing to 1); null: no baseline, the batch is refused.
    baseline_prior: dict[str, float] | None = None
    shadow: Shadow = Field(default_factory=Shadow)
    # A fast burn of the serving_quality objective (labeled batches scoring below its
    # threshold) moves the champion back to ``previous`` (aire_monitor; a ledger rollback entry).
    rollback_on_fast_burn: bool = False

    @field_validator("baseline_prior")
    @classmethod
    def _prior_is_a_distribution(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value or any(p < 0 for p in value.values()) or abs(sum(value.values()) - 1) > 1e-6:
            raise ValueError("scoring.baseline_prior: probabilities must be >= 0 and sum to 1")
        return value


class PipelineConfig(_Strict):
    name: str
    dataset: Dataset
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: Training = Field(default_factory=Training)
    analysis: Analysis = Field(default_factory=Analysis)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    gates: Gates = Field(default_factory=Gates)
    storage: Storage = Field(default_factory=Storage)
    signing: Signing = Field(default_factory=Signing)
    slo: Slo = Field(default_factory=Slo)
    notify: Notify = Field(default_factory=Notify)
    approval: Approval = Field(default_factory=Approval)
    scoring: Scoring = Field(default_factory=Scoring)

    @model_validator(mode="after")
    def _name_is_a_model_name(self) -> PipelineConfig:
        if not _NAME.match(self.name):
            raise ValueError(f"name '{self.name}' must be 1-63 letters, digits, '.', '_' or '-'")
        return self

    @model_validator(mode="after")
    def _recipe_fits_the_features(self) -> PipelineConfig:
        features = self.dataset.features
        if self.model.recipe is Recipe.TABULAR:
            if features.text:
                raise ValueError("dataset.features.text: the tabular recipe takes no text columns "
                                 "(model.recipe: transformer does)")
            return self
        # The library trains, saves and verifies transformer models (aire.model.text,
        # aire.trust.base); validation, error analysis and evaluation do not read text yet,
        # so a pipeline on this recipe is refused here rather than failing mid-run.
        raise ValueError("model.recipe 'transformer': the pipeline's stages do not take text "
                         "yet; the library API is aire.model.text (docs/transformer.md)")


def parse_config(data: Any, source: str = "<config>") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors()]
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        if len(problems) > _MAX_PROBLEMS:
            shown += f"; and {len(problems) - _MAX_PROBLEMS} more"
        raise ConfigError(f"{source}: invalid config: {shown}") from None


# Errors name keys, never values: a file that is not a config (a secret, a system file)
# must not be echoed into stderr, an incident and its postmortem. An unknown key is named
# only when it looks like a key; anything else is a line of content.
_MAX_PROBLEMS = 10
_KEY_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _problem(err: Any) -> str:
    parts = [str(part) for part in err["loc"]]
    if not all(_KEY_LIKE.fullmatch(part) or part.isdigit() for part in parts):
        parts = [part if _KEY_LIKE.fullmatch(part) or part.isdigit() else "<unknown key>" for part in parts]
    key = ".".join(parts) or "<root>"
    return f"key '{key}': {err['msg']}"


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line: name where it is, not what it says.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    return parse_config(data, str(path))
