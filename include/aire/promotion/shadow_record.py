"""The shadow record a challenger earns before promotion: one JSON line per scored batch.

``aire.scoring.shadow`` appends a line per batch a challenger scored in shadow (agreement,
distance, quality once labeled, healthy or not) to ``<home>/scoring/<pipeline>/shadow.jsonl``;
promotion reads it back here (promotion sits below scoring, so the reader lives with it).
"""

from __future__ import annotations

import json
from pathlib import Path

from aire.home import Home

SHADOW_LOG = "shadow.jsonl"


def shadow_log(home: Home, pipeline: str) -> Path:
    return home.root / "scoring" / pipeline / SHADOW_LOG


def healthy_streak(home: Home, pipeline: str, version: int, since: str | None = None) -> int:
    """Healthy shadow batches of ``version`` in a row, counting back from its latest one;
    with ``since`` (ISO time), only batches recorded after it (a hold counts from its start)."""
    path = shadow_log(home, pipeline)
    if not path.exists():
        return 0
    streak = 0
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line of a killed writer
        if entry.get("challenger", {}).get("version") != version:
            continue
        if since is not None and str(entry.get("recorded_at", "")) <= since:
            break
        if not entry.get("healthy"):
            break
        streak += 1
    return streak
