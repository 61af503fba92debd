"""The operating design domain (ODD): where the champion was trained, and each row's verdict.

Learned once per model digest from the model and its training batch (the reference, checked
against the data digest the ledger recorded; ``aire.trust.verify.fetch_reference``):

- numeric ranges: the reference profile's learned range (``ReferenceProfile.learned_range``:
  min..max widened by its tolerance);
- category sets: the categories the model's preprocessor was fit on;
- null rates: a column the reference never had missing may not be missing;
- distance to the training data: the Mahalanobis distance of a row's standardized numeric
  features from the reference's mean under its covariance; "far from anything seen" is beyond
  the reference's own ``distance_quantile`` times ``1 + distance_margin``;
- confidence: a row whose top-class probability is below the reference's
  ``uncertain_quantile`` of the model's confidences on its own training rows is uncertain.

Each row is ``in``, ``out`` (the first rule it breaks, and the column) or ``uncertain``. A
row whose numbers cannot be read (NaN, inf, text) is ``out`` under rule ``finite number``
and cannot be scored by the model at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from aire.scoring.encoding import Encoded

if TYPE_CHECKING:
    import pandas as pd

    from aire.config import Scoring
    from aire.data.reference_profile import ReferenceProfile
    from aire.model.tabular import TrainedModel

IN, OUT, UNCERTAIN = "in", "out", "uncertain"
RULE_FINITE = "finite number"
RULE_NOT_NULL = "not null"
RULE_CATEGORY = "known category"
RULE_RANGE = "in learned range"
RULE_DISTANCE = "near the training data"
RULE_CONFIDENCE = "confidence above learned threshold"


@dataclass(frozen=True)
class OddProfile:
    """What the champion's domain is, as plain JSON (cached per model digest)."""

    digest: str
    ranges: dict[str, tuple[float, float]]
    null_rates: dict[str, float]  # reference null rate per feature
    mean: list[float] = field(default_factory=list)  # of the standardized numeric features
    inverse_covariance: list[list[float]] = field(default_factory=list)
    distance_threshold: float | None = None  # None: not learned (no reference)
    confidence_threshold: float | None = None
    # The model's outputs and inputs on its reference rows (aire.scoring.stats.Distribution).
    reference_stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OddProfile:
        return cls(digest=str(data["digest"]),
                   ranges={k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()},
                   null_rates={k: float(v) for k, v in data["null_rates"].items()},
                   mean=[float(v) for v in data.get("mean", [])],
                   inverse_covariance=[[float(x) for x in row] for row in data.get("inverse_covariance", [])],
                   distance_threshold=data.get("distance_threshold"),
                   confidence_threshold=data.get("confidence_threshold"),
                   reference_stats=dict(data.get("reference_stats") or {}))


def learn_odd(model: TrainedModel, profile: ReferenceProfile | None, reference: pd.DataFrame | None,
              digest: str, settings: Scoring) -> OddProfile:
    """The domain of ``model`` from its signed reference profile and its verified training batch."""
    from aire.scoring.encoding import encode

    prep = model.preprocessor
    ranges = {}
    for column in prep.numeric:
        learned = profile.learned_range(column) if profile is not None else None
        if learned is not None:
            ranges[column] = learned
    if reference is None or len(reference) == 0:
        return OddProfile(digest, ranges, {})
    features = [*prep.numeric, *prep.categorical]
    null_rates = {c: float(reference[c].isna().mean()) for c in features if c in reference.columns}
    encoded = encode(prep, reference)
    good = ~np.any(np.column_stack([encoded.bad_numeric[c] for c in prep.numeric]), axis=1) \
        if prep.numeric else np.ones(len(reference), dtype=bool)
    mean: list[float] = []
    inverse: list[list[float]] = []
    threshold = None
    if prep.numeric and good.sum() > len(prep.numeric):
        z = encoded.matrix[good, :len(prep.numeric)].astype(np.float64)
        centre = z.mean(axis=0)
        covariance = np.atleast_2d(np.cov(z, rowvar=False)) + 1e-6 * np.eye(len(prep.numeric))
        inv = np.linalg.pinv(covariance)
        distances = _mahalanobis(z, centre, inv)
        threshold = float(np.quantile(distances, settings.distance_quantile)) * (1 + settings.distance_margin)
        mean, inverse = centre.tolist(), inv.tolist()
    from aire.scoring.stats import Distribution, quantile_edges

    proba = model.predict_proba_encoded(encoded.matrix[good])
    confidence = proba.max(axis=1)
    confidence_threshold = float(np.quantile(confidence, settings.uncertain_quantile)) if len(confidence) else None
    stats = Distribution([str(c) for c in model.classes],
                         {c: quantile_edges(encoded.raw_numeric[c]) for c in prep.numeric})
    stats.add(proba, encoded.raw_numeric, {c: reference[c] for c in prep.categorical})
    return OddProfile(digest, ranges, null_rates, mean, inverse, threshold, confidence_threshold,
                      stats.to_dict())


def _mahalanobis(z: np.ndarray, centre: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    delta = z - centre
    squared: np.ndarray = ((delta @ inverse) * delta).sum(axis=1)
    root: np.ndarray = np.sqrt(np.maximum(squared, 0.0))
    return root


@dataclass
class Verdicts:
    """Per row: verdict code (0 in, 1 out, 2 uncertain) and the index of the broken rule."""

    code: np.ndarray  # int8
    reason: np.ndarray  # int16 index into ``reasons``; -1 none
    reasons: list[tuple[str, str | None]]
    scorable: np.ndarray  # bool: the model can take the row (its numbers are finite)
    distance: np.ndarray | None  # float32 or None when not learned

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``odd``, ``odd_rule``, ``odd_column`` as object arrays (for the output table)."""
        names = np.array([IN, OUT, UNCERTAIN], dtype=object)
        rules = np.array([r for r, _ in self.reasons] + [None], dtype=object)
        columns = np.array([c for _, c in self.reasons] + [None], dtype=object)
        return names[self.code], rules[self.reason], columns[self.reason]


def judge_inputs(odd: OddProfile, model: TrainedModel, encoded: Encoded) -> Verdicts:
    """The input rules, in order: finite number, not null, known category, range, distance."""
    prep = model.preprocessor
    rows = len(encoded.matrix)
    code = np.zeros(rows, dtype=np.int8)
    reason = np.full(rows, -1, dtype=np.int16)
    reasons: list[tuple[str, str | None]] = []

    def mark(mask: np.ndarray, rule: str, column: str | None) -> None:
        fresh = mask & (code == 0)
        if fresh.any():
            reasons.append((rule, column))
            code[fresh] = 1
            reason[fresh] = len(reasons) - 1

    scorable = np.ones(rows, dtype=bool)
    for column in prep.numeric:
        bad = encoded.bad_numeric[column]
        scorable &= ~bad
        mark(bad, RULE_FINITE, column)
    for column in prep.categorical:
        if odd.null_rates and odd.null_rates.get(column, 0.0) == 0.0:
            mark(encoded.missing_category[column], RULE_NOT_NULL, column)
        mark(encoded.unknown_category[column], RULE_CATEGORY, column)
    for column, (low, high) in odd.ranges.items():
        values = encoded.raw_numeric.get(column)
        if values is not None:
            with np.errstate(invalid="ignore"):
                mark(np.isfinite(values) & ((values < low) | (values > high)), RULE_RANGE, column)
    distance = None
    if odd.distance_threshold is not None and odd.mean:
        # float32: four decimal places of a distance are plenty, and it halves the memory traffic
        z = encoded.matrix[:, :len(prep.numeric)]
        distance = _mahalanobis(z, np.asarray(odd.mean, dtype=np.float32),
                                np.asarray(odd.inverse_covariance, dtype=np.float32))
        mark(scorable & (distance > odd.distance_threshold), RULE_DISTANCE, None)
    return Verdicts(code, reason, reasons, scorable, distance)


def judge_confidence(odd: OddProfile, verdicts: Verdicts, confidence: np.ndarray) -> None:
    """Rows still ``in`` whose confidence is below the learned threshold become ``uncertain``."""
    if odd.confidence_threshold is None:
        return
    low = (verdicts.code == 0) & verdicts.scorable & (confidence < odd.confidence_threshold)
    if low.any():
        verdicts.reasons.append((RULE_CONFIDENCE, None))
        verdicts.code[low] = 2
        verdicts.reason[low] = len(verdicts.reasons) - 1
