"""Evaluation of a candidate: every part, none of which may stop the others.

``evaluate_candidate`` computes drift (``aire.evaluation.drift``: the new batch against the
champion's training reference), per-group label shares against that reference
(``aire.evaluation.label_shift``), quality of both models on the holdout and their paired
comparison (``aire.evaluation.quality``), and group fairness (``aire.evaluation.fairness``),
then writes the report (``aire.evaluation.report``: evaluation.json, the gate's evidence,
and a self-contained evaluation.html). What could not be computed is listed with the
reason in the report, and the gate rejects on the evidence it lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from aire.config import PipelineConfig
from aire.evaluation.drift import drift
from aire.evaluation.fairness import fairness, paired_gap_errors
from aire.evaluation.label_shift import group_label_shift
from aire.evaluation.quality import (
    compare_quality,
    label_key,
    positive_label,
    prior_baseline,
    quality,
    unseen_rows,
)
from aire.evaluation.report import write_report

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class Scorer(Protocol):
    """What evaluation needs of a model: class probabilities, columns in ``classes`` order."""

    @property
    def classes(self) -> Sequence[Any]: ...

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray: ...


def evaluate_candidate(config: PipelineConfig, holdout: pd.DataFrame, candidate: Scorer, out_dir: Path, *,
                       champion: Scorer | None = None, reference: pd.DataFrame | None = None,
                       batch: pd.DataFrame | None = None,
                       train_labels: Sequence[Any] | np.ndarray | None = None) -> dict[str, Path]:
    """Drift of ``batch`` against ``reference`` (the champion's training data), quality and
    fairness of both models on ``holdout``, the candidate against the prior model (the
    majority class of ``train_labels``, the labels it trained on) and the bootstrap errors of
    the fairness gaps; writes evaluation.json/.html (and the drift files) into ``out_dir``.
    A part that fails is listed under ``not_computed``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # A report from an earlier try must never stand in for this one, even if this one dies.
    (out_dir / "evaluation.json").unlink(missing_ok=True)
    problems: list[tuple[str, str]] = []
    drifted = None
    if reference is not None:
        current = holdout if batch is None else batch
        drifted = _attempt(problems, "drift", lambda: drift(reference, current, config, out_dir))
    label = config.dataset.label
    y_true = holdout[label].to_numpy() if label in holdout.columns else None
    if y_true is None:
        problems.append(("quality and fairness", f"label column '{label}' is missing from the holdout"))
    present = sorted({str(label_key(v)) for v in y_true}) if y_true is not None else []
    one_class = len(present) == 1
    if one_class:  # accuracy would be one class's recall, and AUC is undefined
        why = f"the holdout holds a single class {present}: quality and the comparison are not measurable"
        problems.append(("quality", why))

    gates = config.gates

    def judge(model: Scorer, role: str) -> tuple[Any, Any, Any]:
        if y_true is None:
            return None, None, None
        proba = _attempt(problems, f"{role} predictions", lambda: np.asarray(model.predict_proba(holdout)))
        if proba is None:
            return None, None, None
        classes = list(model.classes)
        predicted = [classes[i] for i in proba.argmax(axis=1)]
        measured = None if one_class else _attempt(problems, f"{role} quality", lambda: quality(y_true, proba, classes))
        return ((proba, classes), measured,
                _attempt(problems, f"{role} fairness",
                         lambda: fairness(holdout, y_true, predicted, config, positive_label(classes),
                                          min_group_count=gates.min_group_count, classes=classes,
                                          max_groups=gates.max_sensitive_groups)))

    cand_scores, cand_quality, cand_fair = judge(candidate, "candidate")
    champ_scores, champ_quality, champ_fair = judge(champion, "champion") if champion else (None, None, None)
    comparison = None
    if cand_scores is not None and champ_scores is not None and not one_class:
        unseen = None if reference is None else unseen_rows(
            holdout, reference, [*config.dataset.features.all, *config.dataset.sensitive, label])
        comparison = _attempt(problems, "comparison with the champion",
                              lambda: compare_quality(y_true, cand_scores, champ_scores, unseen))  # type: ignore[arg-type]
    baseline = None
    if cand_scores is not None and y_true is not None and not one_class:
        baseline = _attempt(problems, "the prior baseline",
                            lambda: prior_baseline(y_true, cand_scores[0], cand_scores[1], train_labels))
    gap_errors = None
    if cand_fair is not None and cand_fair.max_gap is not None:
        def chosen(scores: tuple[np.ndarray, list[Any]]) -> list[Any]:
            return [scores[1][i] for i in scores[0].argmax(axis=1)]

        champion_pred = chosen(champ_scores) if champ_scores is not None and champ_fair is not None \
            and champ_fair.max_gap is not None else None
        gap_errors = _attempt(problems, "fairness gap errors", lambda: paired_gap_errors(
            holdout, y_true, chosen(cand_scores), champion_pred, config,  # type: ignore[arg-type]
            positive_label(cand_scores[1]), gates.min_group_count, classes=cand_scores[1],
            max_groups=gates.max_sensitive_groups))
    shifted = None
    if reference is not None and label in reference.columns:
        current = holdout if batch is None else batch
        classes = sorted({label_key(v) for v in reference[label].dropna()}, key=str)
        shifted = _attempt(problems, "per-group label shift", lambda: group_label_shift(
            reference, current, label, config.dataset.sensitive, positive_label(classes),
            min_group_count=gates.min_group_count, max_groups=gates.max_sensitive_groups))
    return write_report(out_dir, drifted, cand_quality, champ_quality, cand_fair, champ_fair,
                        comparison=comparison, problems=problems, first_run=champion is None,
                        baseline=baseline, gap_errors=gap_errors, label_shift=shifted)


def _attempt(problems: list[tuple[str, str]], what: str, compute: Callable[[], _T]) -> _T | None:
    """Run one part of the evaluation; a failure becomes a 'not computed' entry, not a crash."""
    try:
        return compute()
    except Exception as exc:  # any failure is missing evidence, and the gate rejects
        log.warning("evaluation: %s could not be computed", what, exc_info=True)
        problems.append((what, f"{type(exc).__name__}: {exc}"))
        return None
