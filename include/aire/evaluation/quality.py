"""Quality of class probabilities against true labels, and of a candidate against the champion.

``quality`` scores class probabilities against true labels. The positive class of a binary
problem (for ROC AUC and, in the pipeline, for fairness selection rates) is the largest
class value: ``positive_label(classes)``. For the German credit data that is 1 = good risk,
the favourable outcome whose rate fairness compares between groups.

``compare_quality`` scores candidate and champion on the same rows: the holdout rows the
champion never saw in training, when there are enough of them. A batch that repeats rows
of the champion's training data (re-sent records, overlapping extraction windows, or the
example generator drawing every batch from the same 1,000 applicants) otherwise flatters
the champion: on 700-row German Credit batches it scored 0.80-0.90 on the ~95 holdout rows
it had trained on and 0.69-0.82 on the rest, which made every clean candidate look 1-11
points worse. The paired standard error of the accuracy difference goes into the report,
so the gate can tell a regression from the noise of a small comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aire.errors import InputError
from aire.evaluation.bootstrap import paired_drop_errors
from aire.evaluation.metrics import expected_calibration_error

# Fewer holdout rows than this unseen by the champion: compare on the whole holdout instead.
MIN_COMPARISON_ROWS = 30
# Probabilities are softmax outputs in float32: rows may miss 1.0 by rounding only.
_ROW_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class QualityResult:
    n_rows: int
    classes: tuple[Any, ...]
    positive_label: Any
    accuracy: float
    macro_f1: float
    roc_auc: float | None
    roc_auc_reason: str | None
    ece: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows, "classes": [_json_label(c) for c in self.classes],
            "positive_label": _json_label(self.positive_label), "accuracy": self.accuracy,
            "macro_f1": self.macro_f1, "roc_auc": self.roc_auc, "roc_auc_reason": self.roc_auc_reason,
            "ece": self.ece,
        }


def positive_label(classes: Sequence[Any]) -> Any:
    """The class whose rate is compared: the largest class value (1 of 0/1)."""
    if not classes:
        raise InputError("classes is empty: no positive class to choose")
    return max(classes)


def quality(y_true: Sequence[Any] | np.ndarray | pd.Series, proba: np.ndarray,
            classes: Sequence[Any]) -> QualityResult:
    """Accuracy, macro F1, ROC AUC and expected calibration error of ``proba`` (columns in
    ``classes`` order) against ``y_true``."""
    from sklearn.metrics import f1_score, roc_auc_score

    keys = [label_key(c) for c in classes]
    if len(keys) < 2 or len(set(keys)) != len(keys):
        raise InputError(f"classes {list(classes)} break rule 'two or more distinct classes'")
    index_of = {k: i for i, k in enumerate(keys)}
    labels = [label_key(v) for v in np.asarray(y_true, dtype=object).ravel()]
    unknown = sorted({str(v) for v in labels if v not in index_of})
    if unknown:
        raise InputError(f"y_true breaks rule 'label in classes {keys}': unknown value(s) {unknown}")
    probabilities = _checked_proba(proba, len(labels), len(keys))

    y = np.array([index_of[v] for v in labels], dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    pos = index_of[label_key(positive_label(classes))]
    auc: float | None = None
    reason: str | None = None
    present = np.unique(y)
    if len(present) < 2:
        reason = f"y_true holds one class only ({keys[int(present[0])]!r}): ROC AUC is undefined"
    elif len(keys) == 2:
        auc = float(roc_auc_score(y == pos, probabilities[:, pos]))
    elif len(present) < len(keys):
        absent = [keys[i] for i in range(len(keys)) if i not in set(present.tolist())]
        reason = f"y_true lacks class(es) {absent}: one-vs-rest ROC AUC needs every class"
    else:
        auc = float(roc_auc_score(y, probabilities, multi_class="ovr", labels=list(range(len(keys)))))
    return QualityResult(
        n_rows=len(y), classes=tuple(keys), positive_label=keys[pos],
        accuracy=float(np.mean(predicted == y)),
        macro_f1=float(f1_score(y, predicted, average="macro", zero_division=0.0)),
        roc_auc=auc, roc_auc_reason=reason, ece=expected_calibration_error(y, probabilities),
    )


def _checked_proba(proba: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    values = np.asarray(proba, dtype=np.float64)
    if n_rows == 0:
        raise InputError("y_true breaks rule 'row count >= 1': nothing to score")
    if values.shape != (n_rows, n_classes):
        raise InputError(f"proba breaks rule 'shape (rows, classes) = ({n_rows}, {n_classes})': "
                         f"got {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        raise InputError("proba breaks rule 'finite probabilities in [0, 1]'")
    worst = float(np.abs(values.sum(axis=1) - 1.0).max())
    if worst > _ROW_SUM_TOLERANCE:
        raise InputError(f"proba breaks rule 'rows sum to 1': a row is off by {worst:.4g}")
    return values


def label_key(value: object) -> Any:
    # Labels read back from CSV/Parquet as 1.0 or numpy scalars must match int classes.
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json_label(value: object) -> Any:
    value = label_key(value)
    return value if isinstance(value, (int, str, float, bool)) or value is None else str(value)



# --- candidate vs champion ---------------------------------------------------------------
@dataclass(frozen=True)
class QualityComparison:
    basis: str  # which rows both models were scored on, in words
    n_rows: int
    n_excluded: int  # holdout rows left out because the champion trained on them
    candidate: QualityResult
    champion: QualityResult
    accuracy_drop: float  # champion accuracy - candidate accuracy, on the same rows
    accuracy_drop_se: float  # paired standard error of that difference
    # Paired bootstrap standard errors (aire.evaluation.bootstrap) of champion - candidate macro
    # F1 and ROC AUC, and of candidate - champion calibration error; None: not estimable.
    macro_f1_drop_se: float | None = None
    roc_auc_drop_se: float | None = None
    ece_increase_se: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, "n_rows": self.n_rows, "n_excluded": self.n_excluded,
                "candidate": self.candidate.to_dict(), "champion": self.champion.to_dict(),
                "accuracy_drop": self.accuracy_drop, "accuracy_drop_se": self.accuracy_drop_se,
                "macro_f1_drop_se": self.macro_f1_drop_se, "roc_auc_drop_se": self.roc_auc_drop_se,
                "ece_increase_se": self.ece_increase_se}


def unseen_rows(holdout: pd.DataFrame, reference: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Mask of ``holdout`` rows whose values in ``columns`` match no row of ``reference``.

    Rows are matched by content, not by id: a record re-sent under a new id is still one
    the champion has learned.
    """
    shared = [c for c in columns if c in holdout.columns and c in reference.columns]
    if not shared:
        return np.ones(len(holdout), dtype=bool)

    def keys(frame: pd.DataFrame) -> np.ndarray:
        # Numbers as float64, so that an int column read back as float (a NaN elsewhere)
        # still matches; everything else as text.
        normalized = pd.DataFrame({c: frame[c].astype("float64") if pd.api.types.is_numeric_dtype(frame[c])
                                   else frame[c].astype("string") for c in shared})
        return np.asarray(pd.util.hash_pandas_object(normalized, index=False).to_numpy())

    return ~np.isin(keys(holdout), keys(reference))


def compare_quality(y_true: Sequence[Any] | np.ndarray, candidate: tuple[np.ndarray, Sequence[Any]],
                    champion: tuple[np.ndarray, Sequence[Any]], unseen: np.ndarray | None = None,
                    min_rows: int = MIN_COMPARISON_ROWS) -> QualityComparison:
    """Both models on the same rows: those in ``unseen`` when there are ``min_rows`` of them,
    else all (then the comparison is tilted towards the champion, and ``basis`` says so).
    Each model is a pair (probabilities, classes in column order)."""
    truth = np.asarray(y_true, dtype=object).ravel()
    rows = np.ones(len(truth), dtype=bool)
    if unseen is None:
        basis = "every holdout row (the champion's training rows are unknown)"
    elif int(unseen.sum()) >= min_rows:
        rows = np.asarray(unseen, dtype=bool)
        basis = "holdout rows the champion never trained on"
    else:
        basis = (f"every holdout row: only {int(unseen.sum())} (< {min_rows}) are new to the champion, "
                 "so the comparison favours it")
    scored = [(np.asarray(proba)[rows], list(classes)) for proba, classes in (candidate, champion)]
    results = [quality(truth[rows], proba, classes) for proba, classes in scored]
    # Each model's class index of every true label: both models may order classes differently.
    indexed = [(_class_indices(truth[rows], c), proba, c.index(positive_label(c))) for proba, c in scored]
    correct = [proba.argmax(axis=1) == y for y, proba, _ in indexed]
    paired = correct[1].astype(np.float64) - correct[0].astype(np.float64)
    se = float(paired.std(ddof=1) / math.sqrt(len(paired))) if len(paired) > 1 else 0.0
    errors = paired_drop_errors(*indexed[0], *indexed[1])
    return QualityComparison(basis, int(rows.sum()), int(len(truth) - rows.sum()), results[0], results[1],
                             float(paired.mean()), se, errors.macro_f1, errors.roc_auc, errors.ece)


def _class_indices(values: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """Index in ``classes`` of each value (``quality`` has checked that every one is there);
    each distinct value is looked up once, not each row."""
    index_of = {label_key(c): i for i, c in enumerate(classes)}
    inverse, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    lookup = np.array([index_of[label_key(v)] for v in uniques], dtype=np.int64)
    return lookup[inverse] if len(lookup) else np.zeros(0, dtype=np.int64)


# --- candidate vs the prior model ------------------------------------------------------------
@dataclass(frozen=True)
class PriorBaseline:
    """The prior model: it predicts the training labels' class distribution for every row, so
    its accuracy is that of always answering their majority class. Scored on the same holdout
    rows as the candidate, with paired standard errors of the candidate's gains over it."""

    label: Any  # the majority class of the training labels
    source: str  # which labels gave the prior, in words
    n_rows: int
    accuracy: float
    candidate_accuracy: float
    accuracy_gain_se: float  # paired standard error of candidate - prior accuracy
    brier: float  # the prior's mean multi-class Brier score (sum over classes of (p - onehot)^2)
    candidate_brier: float
    brier_gain_se: float  # paired standard error of prior - candidate Brier score

    def to_dict(self) -> dict[str, Any]:
        return {"label": _json_label(self.label), "source": self.source, "n_rows": self.n_rows,
                "accuracy": self.accuracy, "candidate_accuracy": self.candidate_accuracy,
                "accuracy_gain": self.candidate_accuracy - self.accuracy,
                "accuracy_gain_se": self.accuracy_gain_se, "brier": self.brier,
                "candidate_brier": self.candidate_brier, "brier_gain": self.brier - self.candidate_brier,
                "brier_gain_se": self.brier_gain_se}


def prior_baseline(y_true: Sequence[Any] | np.ndarray, proba: np.ndarray, classes: Sequence[Any],
                   train_labels: Sequence[Any] | np.ndarray | None = None) -> PriorBaseline:
    """The prior's accuracy and Brier score on ``y_true``, and the paired SEs of the candidate's gains.

    The prior comes from ``train_labels`` (the rows the candidate trained on) when given;
    otherwise from ``y_true`` itself, which flatters the prior slightly (it has seen the
    holdout's label counts) and so errs towards rejecting. Ties go to the first class in
    ``classes`` order."""
    truth = np.array([label_key(v) for v in np.asarray(y_true, dtype=object).ravel()], dtype=object)
    names = [label_key(c) for c in classes]
    values = _checked_proba(proba, len(truth), len(names))
    source_labels = truth if train_labels is None else np.array(
        [label_key(v) for v in np.asarray(train_labels, dtype=object).ravel()], dtype=object)
    counts = np.array([np.sum(source_labels == c) for c in names], dtype=np.float64)
    if counts.sum() == 0:
        raise InputError("train_labels break rule 'at least one label of the model's classes'")
    prior = counts / counts.sum()
    majority = names[int(np.argmax(counts))]  # argmax keeps the first of equal counts
    onehot = (truth[:, None] == np.array(names, dtype=object)[None, :]).astype(np.float64)
    candidate_right = onehot[np.arange(len(truth)), values.argmax(axis=1)]
    prior_right = (truth == majority).astype(np.float64)
    candidate_brier = ((values - onehot) ** 2).sum(axis=1)
    prior_brier = ((prior[None, :] - onehot) ** 2).sum(axis=1)
    source = ("the training labels" if train_labels is not None
              else "the holdout's own labels (no training labels given)")
    return PriorBaseline(majority, source, len(truth), float(prior_right.mean()), float(candidate_right.mean()),
                         _paired_se(candidate_right - prior_right), float(prior_brier.mean()),
                         float(candidate_brier.mean()), _paired_se(prior_brier - candidate_brier))


def _paired_se(differences: np.ndarray) -> float:
    return float(differences.std(ddof=1) / math.sqrt(len(differences))) if len(differences) > 1 else 0.0
