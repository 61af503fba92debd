"""The error analysis' files: tables for people and tools, a summary for the gate, a page.

- ``error_analysis.csv``  every row, highest loss first: row_id, label, predicted, loss,
  confidence, suspected (and the sensitive columns, for slicing);
- ``review_queue.csv``    the suspects, in the same order: the relabeling queue;
- ``most_confident.csv``  the K most confident predictions per class and their drivers;
- ``summary.json``        noise estimate, counts, per-class, per-group and leakage figures;
- ``report.html``         a self-contained page: loss histogram, summaries, top suspects.

Each file is written under a temporary name and renamed, so a killed task leaves the last
complete one. Tables go to disk through pandas in chunks, never as one string in memory.

The CSV files are opened in spreadsheets, and their text cells come from the batch: a cell
that starts like a formula (``=HYPERLINK(...)``, ``+``, ``-``, ``@``, a tab or carriage
return) is written with a leading ``'``, which spreadsheets show as text and never run.
Numbers are left as numbers.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from aire import atomic
from aire.analysis.error_analysis import OUTPUT_COLUMNS, ErrorAnalysis

REVIEW_COLUMNS = ["predicted", "rank", "row_id", "label", "confidence", "loss", "drivers"]
FILES = {"error_analysis": "error_analysis.csv", "review_queue": "review_queue.csv",
         "most_confident": "most_confident.csv", "summary": "summary.json",
         "report": "report.html"}


def write_outputs(result: ErrorAnalysis, out_dir: str | Path, *,
                  top_k: int = 50) -> dict[str, Path]:
    """Write every file above into ``out_dir``; returns their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / file for name, file in FILES.items()}
    columns = [*OUTPUT_COLUMNS, *result.sensitive]
    table = result.samples[columns] if not result.samples.empty else pd.DataFrame(columns=columns)
    review = table[table["suspected"].astype(bool)].drop(columns=["suspected"])
    confident = (result.review[REVIEW_COLUMNS] if not result.review.empty
                 else pd.DataFrame(columns=REVIEW_COLUMNS))
    with atomic.replacing(paths["error_analysis"]) as temp:
        spreadsheet_safe(table).to_csv(temp, index=False, chunksize=100_000)
    with atomic.replacing(paths["review_queue"]) as temp:
        spreadsheet_safe(review).to_csv(temp, index=False)
    with atomic.replacing(paths["most_confident"]) as temp:
        spreadsheet_safe(confident).to_csv(temp, index=False)
    atomic.write_json(paths["summary"], result.to_dict(), newline=True)
    page = _report_html(result, review.head(top_k), confident)
    atomic.write_text(paths["report"], page)
    return paths



_FORMULA_START = r"^[=+\-@\t\r]"


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet would run as a formula quoted as text."""
    safe = frame.copy(deep=False)
    safe.columns = [_quoted(c) if isinstance(c, str) else c for c in frame.columns]
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if not (column.dtype == object or isinstance(column.dtype, (pd.CategoricalDtype, pd.StringDtype))):
            continue  # numbers and booleans cannot hold a formula
        text = column.astype(object)
        risky = text.map(lambda value: isinstance(value, str) and re.match(_FORMULA_START, value) is not None)
        if risky.any():
            safe.isetitem(position, text.where(~risky.astype(bool), "'" + text.astype(str)))
    return safe


def _quoted(value: str) -> str:
    return "'" + value if re.match(_FORMULA_START, value) else value


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _report_html(result: ErrorAnalysis, top: pd.DataFrame, confident: pd.DataFrame) -> str:
    summary = result.to_dict()
    if result.skipped:
        body = f"<p class='skip'>Skipped: {html.escape(str(result.reason))}</p>"
    else:
        noise = result.estimated_noise_rate or 0.0
        leakage = pd.DataFrame(summary["leakage"]["features"])
        flagged = summary["leakage"]["flagged"]
        warning = (f"<p class='skip'>Possible leakage: {html.escape(', '.join(flagged))} alone "
                   f"predict(s) the label (held-out balanced accuracy &ge; "
                   f"{result.leakage_threshold}).</p>" if flagged else "")
        body = (
            f"<p>{result.n_rows} rows scored by {html.escape(result.source)}, "
            f"{result.n_suspected} suspected label errors, estimated noise rate {noise:.1%} "
            f"({html.escape(result.method)}).</p>" + warning
            + _loss_histogram_svg(result.samples["loss"].to_numpy(),
                                  result.samples["suspected"].to_numpy())
            + "<h2>Per class</h2>" + _table(pd.DataFrame(summary["per_class"]))
            + ("<h2>Per group</h2>" + _table(pd.DataFrame(summary["per_group"]))
               if result.per_group else "")
            + f"<h2>Top {len(top)} suspects (highest loss first)</h2>" + _table(top)
            + "<h2>Most confident predictions per class</h2><p>Drivers: the drop in the "
              "predicted class's probability when the feature takes other rows' values.</p>"
            + _table(confident)
            + "<h2>Leakage check (one feature at a time)</h2>" + _table(leakage))
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
