"""Evaluation of a candidate: every part, none of which may stop the others.

``evaluate_candidate`` computes drift (``aire.evaluation.drift``: the new batch against the
champion's training reference), quality of both models on the holdout and their paired
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
from aire.evaluation.fairness import fairness
from aire.evaluation.quality import compare_quality, label_key, positive_label, quality, unseen_rows
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
                       batch: pd.DataFrame | None = None) -> dict[str, Path]:
    """Drift of ``batch`` against ``reference`` (the champion's training data), quality and
    fairness of both models on ``holdout``; writes evaluation.json/.html (and the drift
    files) into ``out_dir``. A part that fails is listed under ``not_computed``."""
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
                                          min_group_count=config.gates.min_group_count)))

    cand_scores, cand_quality, cand_fair = judge(candidate, "candidate")
    champ_scores, champ_quality, champ_fair = judge(champion, "champion") if champion else (None, None, None)
    comparison = None
    if cand_scores is not None and champ_scores is not None and not one_class:
        unseen = None if reference is None else unseen_rows(
            holdout, reference, [*config.dataset.features.all, *config.dataset.sensitive, label])
        comparison = _attempt(problems, "comparison with the champion",
                              lambda: compare_quality(y_true, cand_scores, champ_scores, unseen))  # type: ignore[arg-type]
    return write_report(out_dir, drifted, cand_quality, champ_quality, cand_fair, champ_fair,
                        comparison=comparison, problems=problems, first_run=champion is None)


def _attempt(problems: list[tuple[str, str]], what: str, compute: Callable[[], _T]) -> _T | None:
    """Run one part of the evaluation; a failure becomes a 'not computed' entry, not a crash."""
    try:
        return compute()
    except Exception as exc:  # any failure is missing evidence, and the gate rejects
        log.warning("evaluation: %s could not be computed", what, exc_info=True)
        problems.append((what, f"{type(exc).__name__}: {exc}"))
        return None
