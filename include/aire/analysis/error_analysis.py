"""Error analysis: per-sample loss, sorted, suspected label errors, and what to train on.

Probabilities must be out of sample: a model scores rows it never trained on, either the
champion on a new batch or K cross-fitted models (each fold scored by a model trained on
the other folds). In-sample losses would hide label errors the model has memorised.
Scoring goes through ``predict_proba`` in slices of ``analysis.scoring_batch_size`` rows,
so beyond the batch itself memory holds a slice's encoding plus the per-row outputs.

Without a champion the fold models are ``analysis.cross_fit_model``: ``boosted_trees``
(the default; sklearn's histogram gradient boosting over the same encoding,
``aire.model.boosted``) or ``mlp`` (the tabular network, ``cross_fit_epochs`` each). Why
(bench/error_analysis_panel.py: up to 15,000 rows of each real panel set, 10% of labels
moved to another class, 3 seeds, no champion): chosen on the calibration half (titanic,
chile, mpls_stops, caravan), boosted trees minus mlp precision@k +0.001 ± 0.013 at a
median 0.19x the wall; checked on the verification half (wage, health_insurance,
ncbirths, tv16, seeds 10-12): -0.006 ± 0.005 at 0.16x, and +0.033 ± 0.009 over cleanlab's
own recipe (5-fold HistGradientBoosting probabilities, find_label_issues) on 12 of 12
batches at a median 0.45x its wall (tv16, 15,000 rows: 0.95 s vs 0.90 s). At 30,000 rows
the first run's analysis went from 66 s (mlp) to about 5 s.

With a champion, its probabilities are averaged with those of a short K-fold cross-fit
on the batch (``analysis.champion_blend_epochs`` epochs, cold start, each fold model
trained on at most ``BLEND_MAX_TRAIN_ROWS`` rows of the other folds). Both halves are out
of sample: the champion never saw the batch, and a fold model never saw its held-out rows,
so their mean is too. Why (bench/error_analysis.py on seeds 0-39, champion protocol:
500-row batches, the champion trained on 500 other rows; the commands are in its
docstring under "How the champion blend was chosen"): the champion alone ranks label
errors worse than a cross-fit at low noise (precision@k at 5% flips 0.246 vs 0.266
uniform, 0.272 vs 0.315 class-conditional), since one model's mistakes on the batch are
its own. Averaging it with an independent, briefly trained model of the same family
cancels part of them: 0.298 and 0.349 there, and at least the 20-epoch cross-fit's
precision@k in all six settings, for 8 epochs instead of 20 (blends with 2-, 4- and
8-epoch cross-fits: +0.005, +0.023, +0.034 over it at 5% class-conditional; short
training memorises fewer flipped labels). The 8-epoch cross-fit alone nearly matches the
blend at 5% (0.301, 0.354) but not where the champion is strong (20% flips: 0.509 vs
0.531 uniform, 0.372 vs 0.542 class-conditional). Fold models warm-started from the
champion did worse than the champion alone (they inherit its mistakes; a trial not kept
in bench/). A single-class batch, or one with fewer rows than folds, gets the champion
alone. The review's drivers are the champion's: it is the model deployed and fine-tuned
from.

Suspects come from confident learning (``aire.analysis.confident_learning``); the most-confident
review and the leakage check from ``aire.analysis.review``; the files from ``aire.analysis.report``.

When the evidence cannot be computed (one class only, too few rows to cross-fit) the
result is a documented skip with ``estimated_noise_rate=None``; the gate treats that as
missing evidence and rejects.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aire.analysis.confident_learning import confident_learning
from aire.analysis.leakage import LeakageFinding, leakage_check
from aire.analysis.review import most_confident, occlusion_drivers
from aire.config import PipelineConfig
from aire.errors import AireError, InputError
from aire.model.tabular import ClassLabel, TrainedModel, encode_labels, label_classes

if TYPE_CHECKING:
    from aire.model.boosted import BoostedFoldModel

    # What scores a batch's rows out of sample: the champion, an MLP or a boosted fold model.
    FoldModel = TrainedModel | BoostedFoldModel

METHOD = "confident_learning:prune_by_noise_rate"
OUTPUT_COLUMNS = ["row_id", "label", "predicted", "loss", "confidence", "suspected"]
_EPS = 1e-12
MLP, BOOSTED_TREES = "mlp", "boosted_trees"  # analysis.cross_fit_model
# Rows each blend fold model trains on, at most: bounds the blend's cost on large batches
# (the fold models still score every held-out row).
BLEND_MAX_TRAIN_ROWS = 5_000


class AnalysisSkipped(AireError):
    """The analysis cannot produce evidence for this batch; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ClassSummary:
    label: ClassLabel
    n_rows: int
    n_suspected: int
    suspect_rate: float
    threshold: float | None  # mean self-confidence of the class; None when absent


@dataclass(frozen=True)
class GroupSummary:
    column: str
    value: str
    n_rows: int
    n_suspected: int
    suspect_rate: float


@dataclass(frozen=True)
class ErrorAnalysis:
    n_rows: int
    skipped: bool
    reason: str | None
    estimated_noise_rate: float | None
    n_suspected: int
    # "champion", "champion+cross_fit:KxE" or "cross_fit:K": which models gave the probabilities
    source: str = "none"
    per_class: tuple[ClassSummary, ...] = ()
    per_group: tuple[GroupSummary, ...] = ()
    leakage: tuple[LeakageFinding, ...] = ()
    leakage_threshold: float | None = None
    id_column: str | None = None
    sensitive: tuple[str, ...] = ()
    method: str = METHOD
    # One row per sample, sorted by loss (descending); ``position`` indexes the input frame.
    samples: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)
    # The most confident predictions per class, with the features that drive them.
    review: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @classmethod
    def skip(cls, n_rows: int, reason: str, source: str = "none") -> ErrorAnalysis:
        return cls(n_rows=n_rows, skipped=True, reason=reason, estimated_noise_rate=None,
                   n_suspected=0, source=source)

    @property
    def suspects(self) -> pd.DataFrame:
        if self.samples.empty:
            return self.samples
        return self.samples[self.samples["suspected"]]

    def suspected_mask(self) -> np.ndarray:
        """Suspected or not, per row of the analysed frame in its own order."""
        mask = np.zeros(self.n_rows, dtype=bool)
        if not self.samples.empty:
            mask[self.samples["position"].to_numpy()] = self.samples["suspected"].to_numpy()
        return mask

    def to_dict(self) -> dict[str, Any]:
        """The summary (what ``summary.json`` holds); JSON-able."""
        return {
            "method": self.method,
            "source": self.source,
            "n_rows": self.n_rows,
            "n_suspected": self.n_suspected,
            "estimated_noise_rate": self.estimated_noise_rate,
            "skipped": self.skipped,
            "reason": self.reason,
            "per_class": [asdict(c) for c in self.per_class],
            "per_group": [asdict(g) for g in self.per_group],
            "leakage": {"threshold": self.leakage_threshold,
                        "flagged": [f.feature for f in self.leakage if f.flagged],
                        "features": [f.to_dict() for f in self.leakage]},
        }


@dataclass(frozen=True)
class OutOfSample:
    """Probabilities for every row from a model that never trained on it, and which model."""

    proba: np.ndarray = field(repr=False)
    classes: list[ClassLabel]
    models: tuple[FoldModel, ...] = field(repr=False)
    model_of_row: np.ndarray = field(repr=False)  # index into ``models`` per row
    source: str


def out_of_sample(df: pd.DataFrame, config: PipelineConfig, *, champion: TrainedModel | None,
                  folds: int | None = None, seed: int | None = None, epochs: int | None = None,
                  learning_rate: float | None = None, batch_size: int | None = None,
                  device: str | None = None) -> OutOfSample:
    """The champion (blended, see above) scores the new batch; without one, K-fold cross-fitting.

    Raises ``AnalysisSkipped`` when cross-fitting is impossible without a champion.
    ``epochs`` defaults to ``min(training.epochs, analysis.cross_fit_epochs)``: K models
    train per analysis; the blend's are ``min(training.epochs, champion_blend_epochs)``.
    """
    label = config.dataset.label
    folds = config.analysis.folds if folds is None else folds
    seed = config.training.seed if seed is None else seed
    if champion is not None:
        return _champion_blend(df, config, champion, folds=folds, seed=seed,
                               learning_rate=learning_rate, batch_size=batch_size, device=device)
    if epochs is None:
        epochs = min(config.training.epochs, config.analysis.cross_fit_epochs)
    reason = _cross_fit_skip_reason(df, label, folds)
    if reason:
        raise AnalysisSkipped(reason)
    classes = label_classes(df[label], label)
    kind = config.analysis.cross_fit_model
    proba, models, model_of_row = _cross_fit(df, config, classes, folds=folds, seed=seed,
                                             epochs=epochs, learning_rate=learning_rate,
                                             batch_size=batch_size, device=device, kind=kind)
    source = f"cross_fit:{folds}" if kind == MLP else f"cross_fit:{folds}:{kind}"
    return OutOfSample(proba, classes, models, model_of_row, source)


def _champion_blend(df: pd.DataFrame, config: PipelineConfig, champion: TrainedModel, *,
                    folds: int, seed: int, learning_rate: float | None,
                    batch_size: int | None, device: str | None) -> OutOfSample:
    classes = list(champion.classes)
    proba = champion.predict_proba(df, batch_size=config.analysis.scoring_batch_size)
    scored = OutOfSample(proba, classes, (champion,), np.zeros(len(df), dtype=np.int16),
                         "champion")
    epochs = min(config.training.epochs, config.analysis.champion_blend_epochs)
    if epochs == 0 or _cross_fit_skip_reason(df, config.dataset.label, folds):
        return scored
    champion.encode_labels(df[config.dataset.label])  # a label it has no class for: InputError
    fitted, _, _ = _cross_fit(df, config, classes, folds=folds, seed=seed, epochs=epochs,
                              learning_rate=learning_rate, batch_size=batch_size,
                              device=device, max_train_rows=BLEND_MAX_TRAIN_ROWS)
    return OutOfSample((proba + fitted) / 2, classes, scored.models, scored.model_of_row,
                       f"champion+cross_fit:{folds}x{epochs}")


def _cross_fit(df: pd.DataFrame, config: PipelineConfig, classes: list[ClassLabel], *,
               folds: int, seed: int, epochs: int, learning_rate: float | None,
               batch_size: int | None, device: str | None,
               max_train_rows: int | None = None, kind: str = MLP,
               ) -> tuple[np.ndarray, tuple[FoldModel, ...], np.ndarray]:
    """Out-of-fold probabilities, the fold models and which one scored each row.

    ``kind`` is ``mlp`` (``aire.model.training.fit`` for ``epochs``) or ``boosted_trees``
    (``aire.model.boosted``; ``epochs``, ``learning_rate`` and ``batch_size`` do not apply).
    """
    from sklearn.model_selection import StratifiedKFold

    scoring = config.analysis.scoring_batch_size
    proba = np.zeros((len(df), len(classes)), dtype=np.float64)
    model_of_row = np.zeros(len(df), dtype=np.int16)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # a class rarer than `folds` is fine: every fold model still has an output for it
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(splitter.split(np.zeros(len(df)), df[config.dataset.label].astype(str)))
    rng = np.random.default_rng(seed)
    models = []
    for fold, (train_rows, held_out) in enumerate(splits):
        if max_train_rows is not None and len(train_rows) > max_train_rows:
            train_rows = np.sort(rng.choice(train_rows, size=max_train_rows, replace=False))
        model = _fit_fold(df.iloc[train_rows], config, classes, kind=kind, seed=seed + fold,
                          epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                          device=device)
        proba[held_out] = model.predict_proba(df.iloc[held_out], batch_size=scoring)
        model_of_row[held_out] = fold
        models.append(model)
    return proba, tuple(models), model_of_row


def _fit_fold(train_df: pd.DataFrame, config: PipelineConfig, classes: list[ClassLabel], *,
              kind: str, seed: int, epochs: int, learning_rate: float | None,
              batch_size: int | None, device: str | None) -> FoldModel:
    if kind == BOOSTED_TREES:
        from aire.model.boosted import fit_boosted

        return fit_boosted(train_df, config.dataset.features, config.dataset.label, classes,
                           seed=seed)
    from aire.model.training import fit  # torch: imported only when cross-fitting

    return fit(train_df, config, epochs=epochs, learning_rate=learning_rate,
               batch_size=batch_size, seed=seed, device=device, classes=classes).model


def _cross_fit_skip_reason(df: pd.DataFrame, label: str, folds: int) -> str | None:
    if label not in df.columns:
        raise InputError(f"column '{label}' breaks rule 'required label column': not in the data")
    if len(df) < folds:
        return f"fewer rows ({len(df)}) than cross-fitting folds ({folds})"
    if df[label].nunique(dropna=True) < 2:
        return f"single-class batch: every '{label}' value is {df[label].iloc[0]!r}"
    return None


def run_error_analysis(df: pd.DataFrame, config: PipelineConfig, *,
                       champion: TrainedModel | None, folds: int | None = None,
                       seed: int | None = None, epochs: int | None = None,
                       learning_rate: float | None = None, batch_size: int | None = None,
                       device: str | None = None) -> ErrorAnalysis:
    """The stage in one call: out-of-sample probabilities, then ``analyze``; skips documented."""
    try:
        scored = out_of_sample(df, config, champion=champion, folds=folds, seed=seed,
                               epochs=epochs, learning_rate=learning_rate,
                               batch_size=batch_size, device=device)
    except AnalysisSkipped as skip:
        return ErrorAnalysis.skip(len(df), skip.reason, "cross_fit")
    return analyze(df, scored.proba, scored.classes, config, scored=scored)


def analyze(df: pd.DataFrame, proba: np.ndarray, classes: list[ClassLabel],
            config: PipelineConfig, *, scored: OutOfSample | None = None) -> ErrorAnalysis:
    """Per-sample loss, confident-learning suspects, review and leakage for labeled rows.

    ``scored`` (the models behind ``proba``) adds the drivers of the most-confident rows.
    """
    label = config.dataset.label
    if label not in df.columns:
        raise InputError(f"column '{label}' breaks rule 'required label column': not in the data")
    labels = encode_labels(df[label], classes, label)
    proba = _checked_proba(proba, len(df), len(classes))
    source = scored.source if scored is not None else "given"
    if len(np.unique(labels)) < 2:
        reason = f"single-class batch: every '{label}' value is {classes[labels[0]]!r}" \
            if len(labels) else "empty batch"
        return ErrorAnalysis.skip(len(df), reason, source)

    k = len(classes)
    counts = np.bincount(labels, minlength=k)
    learned = confident_learning(labels, proba)
    suspected = learned.suspected
    samples = _samples_frame(df, config, labels, proba, classes, suspected)
    features = [c for c in config.dataset.features.all if c in df.columns]
    return ErrorAnalysis(
        n_rows=len(df), skipped=False, reason=None, estimated_noise_rate=learned.noise_rate,
        n_suspected=int(suspected.sum()), source=source,
        per_class=tuple(
            ClassSummary(classes[j], int(counts[j]), int(suspected[labels == j].sum()),
                         _rate(suspected[labels == j]),
                         float(learned.thresholds[j]) if counts[j] else None) for j in range(k)),
        per_group=_per_group(df, config, suspected),
        leakage=leakage_check(df, features, labels, k, config.analysis.leakage_threshold,
                              config.training.seed),
        leakage_threshold=config.analysis.leakage_threshold,
        id_column=config.dataset.id,
        sensitive=tuple(c for c in config.dataset.sensitive if c in df.columns),
        samples=samples,
        review=_review(df, samples, proba, features, config.analysis.review_k, scored,
                       config.training.seed),
    )


def _checked_proba(proba: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (n_rows, n_classes):
        raise InputError(f"probabilities have shape {proba.shape}, "
                         f"expected ({n_rows}, {n_classes})")
    if not np.isfinite(proba).all() or (proba < 0).any() \
            or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-4):
        raise InputError("probabilities must be finite, >= 0 and sum to 1 per row")
    return proba


def _samples_frame(df: pd.DataFrame, config: PipelineConfig, labels: np.ndarray,
                   proba: np.ndarray, classes: list[ClassLabel],
                   suspected: np.ndarray) -> pd.DataFrame:
    id_column = config.dataset.id
    if id_column is not None and id_column not in df.columns:
        raise InputError(f"column '{id_column}' breaks rule 'required id column': not in the data")
    self_confidence = proba[np.arange(len(df)), labels]
    loss = -np.log(np.clip(self_confidence, _EPS, 1.0))
    # Sorted once by index, column by column: sorting a built frame would copy all of it.
    order = np.argsort(-loss, kind="stable")
    class_values = np.asarray(classes)  # ints or strings, never object: 1M rows stay small
    columns = {
        "row_id": df[id_column].to_numpy()[order] if id_column else order,  # else: position
        "label": class_values[labels[order]],
        "predicted": class_values[proba.argmax(axis=1)[order]],
        "loss": loss[order],
        "confidence": proba.max(axis=1)[order],
        "self_confidence": self_confidence[order],
        "suspected": suspected[order],
        "position": order,
    }
    for column in config.dataset.sensitive:
        if column in df.columns:
            columns[column] = df[column].to_numpy()[order]
    return pd.DataFrame(columns, copy=False)


def _per_group(df: pd.DataFrame, config: PipelineConfig,
               suspected: np.ndarray) -> tuple[GroupSummary, ...]:
    groups: list[GroupSummary] = []
    for column in config.dataset.sensitive:
        if column not in df.columns:
            continue
        codes, values = pd.factorize(df[column].astype(str), sort=True)
        totals = np.bincount(codes, minlength=len(values))
        flagged = np.bincount(codes, weights=suspected, minlength=len(values))
        for i, value in enumerate(values):
            groups.append(GroupSummary(column, str(value), int(totals[i]), int(flagged[i]),
                                       float(flagged[i] / totals[i]) if totals[i] else 0.0))
    return tuple(groups)


def _rate(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else 0.0


def _review(df: pd.DataFrame, samples: pd.DataFrame, proba: np.ndarray, features: list[str],
            per_class: int, scored: OutOfSample | None, seed: int) -> pd.DataFrame:
    top = most_confident(samples, per_class)
    if scored is None:
        return top.assign(drivers="")
    predicted = proba[top["position"].to_numpy()].argmax(axis=1)
    return top.assign(drivers=occlusion_drivers(top, df, features, scored.models,
                                                scored.model_of_row, predicted, seed))
