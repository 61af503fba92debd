"""Error analysis: per-sample loss, sorted, and suspected label errors by confident learning.

Probabilities must be out of sample: a model scores rows it never trained on, either the
champion on a new batch or K cross-fitted models (each fold scored by a model trained on
the other folds). In-sample losses would hide label errors the model has memorised.

Suspected label errors follow confident learning (Northcutt et al., as in cleanlab's
``find_label_issues(filter_by="prune_by_noise_rate")``): per-class thresholds, the
confident joint of given vs likely-true labels, calibrated to the label counts; the
calibrated joint's off-diagonal mass is the estimated noise rate, and each off-diagonal
cell flags as many rows (largest margin first) as the calibrated joint implies.

When the evidence cannot be computed (one class only, too few rows to cross-fit) the
result is a documented skip with ``estimated_noise_rate=None``; the gate treats that as
missing evidence and rejects.
"""

from __future__ import annotations

import html
import json
import os
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aire.config import PipelineConfig
from aire.errors import AireError, InputError
from aire.model import ClassLabel, TrainedModel, encode_labels, label_classes

METHOD = "confident_learning:prune_by_noise_rate"
OUTPUT_COLUMNS = ["row_id", "label", "predicted", "loss", "confidence", "suspected"]
_EPS = 1e-12


class AnalysisSkipped(AireError):
    """The analysis cannot produce evidence for this batch; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Action(StrEnum):
    DROP = "drop"
    DOWNWEIGHT = "downweight"
    KEEP = "keep"


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
    per_class: tuple[ClassSummary, ...] = ()
    per_group: tuple[GroupSummary, ...] = ()
    id_column: str | None = None
    sensitive: tuple[str, ...] = ()
    method: str = METHOD
    # One row per sample, sorted by loss (descending); ``position`` indexes the input frame.
    samples: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @classmethod
    def skip(cls, n_rows: int, reason: str) -> ErrorAnalysis:
        return cls(n_rows=n_rows, skipped=True, reason=reason, estimated_noise_rate=None,
                   n_suspected=0)

    @property
    def suspects(self) -> pd.DataFrame:
        if self.samples.empty:
            return self.samples
        return self.samples[self.samples["suspected"]]

    def to_dict(self) -> dict[str, Any]:
        """The summary (what ``summary.json`` holds); JSON-able."""
        return {
            "method": self.method,
            "n_rows": self.n_rows,
            "n_suspected": self.n_suspected,
            "estimated_noise_rate": self.estimated_noise_rate,
            "skipped": self.skipped,
            "reason": self.reason,
            "per_class": [asdict(c) for c in self.per_class],
            "per_group": [asdict(g) for g in self.per_group],
        }


# --- probabilities ---------------------------------------------------------------------


def out_of_sample_proba(df: pd.DataFrame, config: PipelineConfig, *,
                        champion: TrainedModel | None, folds: int | None = None,
                        seed: int | None = None, epochs: int | None = None,
                        learning_rate: float | None = None, batch_size: int | None = None,
                        device: str | None = None) -> np.ndarray:
    """Probabilities for every row from a model that never trained on that row.

    With a champion: the champion scores the new batch (columns = ``champion.classes``).
    Without: stratified K-fold cross-fitting (columns = the batch's sorted classes).
    Raises ``AnalysisSkipped`` when cross-fitting is impossible.
    """
    if champion is not None:
        return champion.predict_proba(df)
    from sklearn.model_selection import StratifiedKFold

    from aire.training import fit  # torch: imported only when cross-fitting

    label = config.dataset.label
    folds = config.analysis.folds if folds is None else folds
    seed = config.training.seed if seed is None else seed
    reason = _cross_fit_skip_reason(df, label, folds)
    if reason:
        raise AnalysisSkipped(reason)
    classes = label_classes(df[label], label)
    proba = np.zeros((len(df), len(classes)), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # a class rarer than `folds` is fine: every fold model still has an output for it
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(splitter.split(np.zeros(len(df)), df[label].astype(str)))
    for fold, (train_rows, held_out) in enumerate(splits):
        result = fit(df.iloc[train_rows], config, epochs=epochs, learning_rate=learning_rate,
                     batch_size=batch_size, seed=seed + fold, device=device, classes=classes)
        proba[held_out] = result.model.predict_proba(df.iloc[held_out])
    return proba


def _cross_fit_skip_reason(df: pd.DataFrame, label: str, folds: int) -> str | None:
    if label not in df.columns:
        raise InputError(f"column '{label}' breaks rule 'required label column': not in the data")
    if len(df) < folds:
        return f"fewer rows ({len(df)}) than cross-fitting folds ({folds})"
    if df[label].nunique(dropna=True) < 2:
        return f"single-class batch: every '{label}' value is {df[label].iloc[0]!r}"
    return None


# --- analysis -------------------------------------------------------------------------


def run_error_analysis(df: pd.DataFrame, config: PipelineConfig, *,
                       champion: TrainedModel | None, folds: int | None = None,
                       seed: int | None = None, epochs: int | None = None,
                       learning_rate: float | None = None, batch_size: int | None = None,
                       device: str | None = None) -> ErrorAnalysis:
    """The stage in one call: out-of-sample probabilities, then ``analyze``; skips documented."""
    try:
        proba = out_of_sample_proba(df, config, champion=champion, folds=folds, seed=seed,
                                    epochs=epochs, learning_rate=learning_rate,
                                    batch_size=batch_size, device=device)
    except AnalysisSkipped as skip:
        return ErrorAnalysis.skip(len(df), skip.reason)
    label = config.dataset.label
    classes = champion.classes if champion is not None else label_classes(df[label], label)
    return analyze(df, proba, classes, config)


def analyze(df: pd.DataFrame, proba: np.ndarray, classes: Sequence[ClassLabel],
            config: PipelineConfig) -> ErrorAnalysis:
    """Per-sample loss and confident-learning suspects for labeled rows and their probabilities."""
    label = config.dataset.label
    labels = _encode_labels(df, label, classes)
    proba = _checked_proba(proba, len(df), len(classes))
    if len(np.unique(labels)) < 2:
        reason = f"single-class batch: every '{label}' value is {classes[labels[0]]!r}" \
            if len(labels) else "empty batch"
        return ErrorAnalysis.skip(len(df), reason)

    n, k = proba.shape
    counts = np.bincount(labels, minlength=k)
    learned = confident_learning(labels, proba)
    suspected, thresholds = learned.suspected, learned.thresholds
    return ErrorAnalysis(
        n_rows=n, skipped=False, reason=None, estimated_noise_rate=learned.noise_rate,
        n_suspected=int(suspected.sum()),
        per_class=tuple(
            ClassSummary(classes[j], int(counts[j]), int(suspected[labels == j].sum()),
                         _rate(suspected[labels == j]),
                         float(thresholds[j]) if counts[j] else None) for j in range(k)),
        per_group=_per_group(df, config, suspected),
        id_column=config.dataset.id,
        sensitive=tuple(c for c in config.dataset.sensitive if c in df.columns),
        samples=_samples_frame(df, config, labels, proba, classes, suspected),
    )


@dataclass(frozen=True)
class ConfidentLearning:
    thresholds: np.ndarray  # t_j per class; inf for a class no row is labeled with
    calibrated_joint: np.ndarray  # counts, [given label, likely true label], sums to n
    noise_rate: float  # off-diagonal share of the calibrated joint
    suspected: np.ndarray  # bool per row


def confident_learning(labels: np.ndarray, proba: np.ndarray) -> ConfidentLearning:
    """Confident learning on out-of-sample probabilities (cleanlab's prune_by_noise_rate).

    1. t_j = mean p_j over rows labeled j.
    2. Confident joint C[j, k]: rows labeled j whose most probable class among those with
       p >= t is k; calibrated so row j sums to the count of label j and the total to n.
    3. For every off-diagonal cell, the round(C[j, k]) rows labeled j with the largest
       margin p_k - p_j are suspects; rows whose argmax is still the given label are not.

    Step 3 pools all rows labeled j, not only the raw off-diagonal of C: calibration only
    ever scales a cell up, so pruning the raw off-diagonal would never bind, and on German
    credit with 10% flips the pooled rule found more flips at a higher precision.
    """
    n, k = proba.shape
    counts = np.bincount(labels, minlength=k)
    thresholds = np.full(k, np.inf)
    for j in np.flatnonzero(counts):
        thresholds[j] = proba[labels == j, j].mean()
    confident = proba >= thresholds - 1e-6  # the epsilon keeps rows sitting on t_j
    has_confident = confident.any(axis=1)
    likely_true = np.where(confident, proba, -np.inf).argmax(axis=1)
    joint = np.zeros((k, k))
    np.add.at(joint, (labels[has_confident], likely_true[has_confident]), 1.0)
    calibrated = _calibrate(joint, counts)
    total = float(calibrated.sum())
    noise_rate = float(1.0 - np.trace(calibrated) / total) if total > 0 else 0.0

    suspected = np.zeros(n, dtype=bool)
    for given, true in zip(*np.nonzero(calibrated * (1 - np.eye(k))), strict=True):
        pool = np.flatnonzero(labels == given)
        # never flag a whole class: keep at least one row of every given label
        keep = min(round(float(calibrated[given, true])), len(pool) - 1)
        margin = proba[pool, true] - proba[pool, given]
        suspected[pool[np.argsort(-margin, kind="stable")[:keep]]] = True
    suspected &= proba.argmax(axis=1) != labels
    return ConfidentLearning(thresholds, calibrated, noise_rate, suspected)


def _calibrate(joint: np.ndarray, counts: np.ndarray) -> np.ndarray:
    # Scale each given-label row to that label's count, then the whole matrix to n rows:
    # rows below every threshold are thereby spread like the confident ones.
    row_sums = joint.sum(axis=1, keepdims=True)
    scaled = np.divide(joint * counts[:, None], row_sums, out=np.zeros_like(joint),
                       where=row_sums > 0)
    total = float(scaled.sum())
    calibrated: np.ndarray = scaled / total * counts.sum() if total > 0 else scaled
    return calibrated


def _encode_labels(df: pd.DataFrame, label: str, classes: Sequence[ClassLabel]) -> np.ndarray:
    if label not in df.columns:
        raise InputError(f"column '{label}' breaks rule 'required label column': not in the data")
    return encode_labels(df[label], classes, label)


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
                   proba: np.ndarray, classes: Sequence[ClassLabel],
                   suspected: np.ndarray) -> pd.DataFrame:
    id_column = config.dataset.id
    if id_column is not None and id_column not in df.columns:
        raise InputError(f"column '{id_column}' breaks rule 'required id column': not in the data")
    class_values = np.array(list(classes), dtype=object)
    self_confidence = proba[np.arange(len(df)), labels]
    frame = pd.DataFrame({
        "row_id": df[id_column].to_numpy() if id_column else np.arange(len(df)),
        "label": class_values[labels],
        "predicted": class_values[proba.argmax(axis=1)],
        "loss": -np.log(np.clip(self_confidence, _EPS, 1.0)),
        "confidence": proba.max(axis=1),
        "self_confidence": self_confidence,
        "suspected": suspected,
        "position": np.arange(len(df)),
    })
    for column in config.dataset.sensitive:
        if column in df.columns:
            frame[column] = df[column].to_numpy()
    return frame.sort_values("loss", ascending=False, kind="stable").reset_index(drop=True)


def _per_group(df: pd.DataFrame, config: PipelineConfig,
               suspected: np.ndarray) -> tuple[GroupSummary, ...]:
    groups: list[GroupSummary] = []
    for column in config.dataset.sensitive:
        if column not in df.columns:
            continue
        values = df[column].astype(str).to_numpy()
        for value in sorted(set(values)):
            members = suspected[values == value]
            groups.append(GroupSummary(column, value, len(members), int(members.sum()),
                                       _rate(members)))
    return tuple(groups)


def _rate(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else 0.0


# --- outputs and actions -----------------------------------------------------------------


def write_outputs(result: ErrorAnalysis, out_dir: str | Path, *,
                  top_k: int = 50) -> dict[str, Path]:
    """Write error_analysis.csv, review_queue.csv, summary.json and report.html atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = [*OUTPUT_COLUMNS, *result.sensitive]
    table = result.samples[columns] if not result.samples.empty else pd.DataFrame(columns=columns)
    review = table[table["suspected"].astype(bool)].drop(columns=["suspected"])
    paths = {
        "error_analysis": out / "error_analysis.csv",
        "review_queue": out / "review_queue.csv",
        "summary": out / "summary.json",
        "report": out / "report.html",
    }
    _atomic_write(paths["error_analysis"], table.to_csv(index=False))
    _atomic_write(paths["review_queue"], review.to_csv(index=False))
    _atomic_write(paths["summary"], json.dumps(result.to_dict(), indent=2) + "\n")
    _atomic_write(paths["report"], _report_html(result, review.head(top_k)))
    return paths


def _atomic_write(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def _report_html(result: ErrorAnalysis, top: pd.DataFrame) -> str:
    def table(frame: pd.DataFrame) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
            for row in frame.itertuples(index=False))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    summary = result.to_dict()
    if result.skipped:
        body = f"<p class='skip'>Skipped: {html.escape(str(result.reason))}</p>"
    else:
        noise = result.estimated_noise_rate or 0.0
        body = (
            f"<p>{result.n_rows} rows, {result.n_suspected} suspected label errors, "
            f"estimated noise rate {noise:.1%} ({html.escape(result.method)}).</p>"
            + _loss_histogram_svg(result.samples["loss"].to_numpy(),
                                 result.samples["suspected"].to_numpy())
            + "<h2>Per class</h2>" + table(pd.DataFrame(summary["per_class"]))
            + ("<h2>Per group</h2>" + table(pd.DataFrame(summary["per_group"]))
               if result.per_group else "")
            + f"<h2>Top {len(top)} suspects (highest loss first)</h2>" + table(top))
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}.skip{color:#a00}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Error analysis</title>"
            f"<style>{style}</style></head><body><h1>Error analysis</h1>{body}</body></html>\n")


def _loss_histogram_svg(loss: np.ndarray, suspected: np.ndarray, bins: int = 30) -> str:
    """Stacked histogram of per-sample loss (suspects in red) as inline SVG: no assets."""
    width, height, pad = 640, 220, 30
    edges = np.linspace(0.0, max(float(loss.max()), 1e-6), bins + 1)
    all_counts = np.histogram(loss, bins=edges)[0]
    suspect_counts = np.histogram(loss[suspected], bins=edges)[0]
    scale = (height - 2 * pad) / max(int(all_counts.max()), 1)
    bar = (width - 2 * pad) / bins
    rects = []
    for i, (total, bad) in enumerate(zip(all_counts, suspect_counts, strict=True)):
        x = pad + i * bar
        for count, base, colour in ((total - bad, bad, "#8aa"), (bad, 0, "#c33")):
            if count:
                y = height - pad - (base + count) * scale
                rects.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar - 1:.1f}' "
                             f"height='{count * scale:.1f}' fill='{colour}'/>")
    axis = (f"<text x='{pad}' y='{height - 8}'>0</text>"
            f"<text x='{width - pad}' y='{height - 8}' text-anchor='end'>"
            f"loss {edges[-1]:.2f}</text>"
            f"<text x='{pad}' y='{pad - 8}'>{int(all_counts.max())} rows (red: suspected)</text>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"font-size='12' role='img' aria-label='loss histogram'>{''.join(rects)}{axis}</svg>")


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def apply_action(df: pd.DataFrame, result: ErrorAnalysis, action: Action | str,
                 weight: float = 0.2) -> tuple[pd.DataFrame, np.ndarray | None]:
    """What fine-tuning trains on: suspects dropped, down-weighted, or kept as they are.

    A skipped analysis has no suspects, so every action returns the batch unchanged.
    """
    try:
        chosen = Action(action)
    except ValueError:
        raise InputError(f"action '{action}' is not one of {[a.value for a in Action]}") from None
    if not 0 < weight <= 1:
        raise InputError(f"downweight weight must be in (0, 1], got {weight}")
    if len(df) != result.n_rows:
        raise InputError(f"the batch has {len(df)} rows but the analysis covered {result.n_rows}")
    suspected = np.zeros(len(df), dtype=bool)
    if not result.samples.empty:
        suspected[result.samples["position"].to_numpy()] = result.samples["suspected"].to_numpy()
        if result.id_column is not None:
            ids = result.samples.sort_values("position")["row_id"].to_numpy()
            if not np.array_equal(ids, df[result.id_column].to_numpy()):
                raise InputError(f"column '{result.id_column}': the batch is not the one analyzed")
    if chosen is Action.DROP:
        return df[~suspected].copy(), None
    if chosen is Action.DOWNWEIGHT:
        return df.copy(), np.where(suspected, weight, 1.0)
    return df.copy(), None
