"""A crafted scored-batch summary, as aire.scoring.score writes one, for the monitor's tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

REFERENCE = {"class_shares": [0.3, 0.7], "numeric_shares": {"age": [0.5, 0.5]},
             "category_shares": {"housing": {"own": 0.7, "rent": 0.3}}}


def summary(batch_id: str, when: datetime, classes: list[float], ages: list[float], housing: dict[str, float],
            out: float = 0.0, uncertain: float = 0.05) -> dict[str, Any]:
    return {"pipeline": "credit-risk", "batch_id": batch_id, "batch_uri": f"/data/{batch_id}.csv",
            "summary_uri": f"/out/{batch_id}.summary.json", "scored_at": when.isoformat(),
            "served_by": {"source": "champion", "version": 1, "digest": "d"},
            "odd": {"counts": {"in": 90, "out": 10, "uncertain": 0}, "violation_rate": out,
                    "uncertain_rate": uncertain, "confidence_threshold": 0.55},
            "outputs": {"class_shares": classes, "numeric_shares": {"age": ages},
                        "category_shares": {"housing": housing}},
            "reference": REFERENCE}
