"""The evaluation report: evaluation.json (the gate's evidence) and evaluation.html.

The page is rendered from the JSON record, not from the result objects, so the page and
the gate's evidence can never disagree. No scripts, no external assets: the page opens
from an MLflow artifact view or a file system alike. Every value is HTML-escaped. Both
files are written atomically (temporary name, then rename).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire import atomic
from aire.constants import EVALUATION, EVALUATION_HTML

if TYPE_CHECKING:
    from aire.evaluation.drift import DriftResult
    from aire.evaluation.fairness import FairnessResult, GapErrors
    from aire.evaluation.label_shift import LabelShift
    from aire.evaluation.quality import PriorBaseline, QualityComparison, QualityResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:75em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}
.bad{color:#a40000;font-weight:600} .na{color:#777;font-style:italic}
"""

_QUALITY_ROWS = (("accuracy", "Accuracy"), ("macro_f1", "Macro F1"), ("roc_auc", "ROC AUC"),
                 ("ece", "Expected calibration error (10 bins)"), ("n_rows", "Rows scored"))
_PAIRED_SE = {"accuracy": "accuracy_drop_se", "macro_f1": "macro_f1_drop_se", "roc_auc": "roc_auc_drop_se",
              "ece": "ece_increase_se"}


def write_report(out_dir: Path, drift: DriftResult | None, candidate: QualityResult | None,
                 champion: QualityResult | None, fairness_candidate: FairnessResult | None,
                 fairness_champion: FairnessResult | None, *, comparison: QualityComparison | None = None,
                 problems: Sequence[tuple[str, str]] = (), first_run: bool | None = None,
                 baseline: PriorBaseline | None = None, gap_errors: GapErrors | None = None,
                 label_shift: LabelShift | None = None) -> dict[str, Path]:
    """Write evaluation.json and evaluation.html into ``out_dir``; returns their paths.

    A None result is a part that was not computed: on a first run (no champion, so no
    reference data and nothing to compare with) or because it failed, in which case
    ``problems`` holds (what, why). ``first_run`` defaults to "no champion quality".
    """
    first = champion is None if first_run is None else first_run
    record: dict[str, Any] = {
        "schema": "aire.evaluation/2",
        "drift": drift.to_dict() if drift else None,
        "quality": {"candidate": candidate.to_dict() if candidate else None,
                    "champion": champion.to_dict() if champion else None,
                    "comparison": comparison.to_dict() if comparison else None,
                    "baseline": baseline.to_dict() if baseline else None},
        "fairness": {"candidate": fairness_candidate.to_dict() if fairness_candidate else None,
                     "champion": fairness_champion.to_dict() if fairness_champion else None,
                     "errors": gap_errors.to_dict() if gap_errors else None,
                     "label_shift": label_shift.to_dict() if label_shift else None},
        "not_computed": [*_not_computed(first, drift, candidate, champion, fairness_candidate, fairness_champion),
                         *({"what": what, "reason": why} for what, why in problems)],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / EVALUATION, "html": out_dir / EVALUATION_HTML}
    # The page first: the JSON is the gate's evidence, and its presence means "complete".
    atomic.write_text(paths["html"], render_evaluation(record))
    atomic.write_json(paths["json"], record, allow_nan=False, newline=True)
    return paths




def _not_computed(first_run: bool, drift: DriftResult | None, candidate: QualityResult | None,
                  champion: QualityResult | None, fairness_candidate: FairnessResult | None,
                  fairness_champion: FairnessResult | None) -> list[dict[str, str]]:
    gaps: list[dict[str, str]] = []
    if first_run:
        gaps.append({"what": "drift", "reason": "no reference data (first run: there is no champion yet)"})
        gaps.append({"what": "champion quality and fairness", "reason": "no champion to compare with"})
    if drift is not None:
        gaps.extend({"what": f"drift of column '{column}'", "reason": drift.per_feature[column].method}
                    for column in drift.untestable_columns)
    for role, result in (("candidate", candidate), ("champion", champion)):
        if result is not None and result.roc_auc is None:
            gaps.append({"what": f"{role} ROC AUC", "reason": result.roc_auc_reason or "unknown"})
    for role, fair in (("candidate", fairness_candidate), ("champion", fairness_champion)):
        if fair is not None:
            gaps.extend({"what": f"{role} {what}", "reason": why} for what, why in fair.not_computable())
    return gaps


def render_evaluation(record: Mapping[str, Any]) -> str:
    quality = record.get("quality") or {}
    fairness = record.get("fairness") or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>AIRE evaluation</title>",
        f"<style>{_STYLE}</style></head><body><h1>Evaluation of the candidate</h1>",
        _quality_section(quality.get("candidate") or {}, quality.get("champion")),
        _baseline_section(quality.get("baseline")),
        _comparison_section(quality.get("comparison")),
        _drift_section(record.get("drift")),
        _fairness_section(fairness.get("candidate"), "candidate"),
        _gap_errors_section(fairness.get("errors")),
        _label_shift_section(fairness.get("label_shift")),
        _fairness_section(fairness.get("champion"), "champion"),
        _not_computed_section(record.get("not_computed") or []),
        "</body></html>",
    ]
    return "\n".join(parts)


def _quality_section(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None) -> str:
    rows = []
    for key, label in _QUALITY_ROWS:
        ours, theirs = candidate.get(key), (champion or {}).get(key)
        delta: float | None = None
        if isinstance(ours, float) and isinstance(theirs, float):
            delta = ours - theirs
        shown = _num(theirs) if champion else _na("no champion")
        rows.append([label, _num(ours), shown, _num(delta, signed=True)])
    positive = escape(str(candidate.get("positive_label")))
    note = f"<p>Positive class (ROC AUC, selection rate): <code>{positive}</code></p>"
    header = ["metric", "candidate", "champion", "Δ"]
    return "<h2>Quality on the whole holdout</h2>" + note + _table(header, rows)


def _baseline_section(baseline: Mapping[str, Any] | None) -> str:
    title = "<h2>Candidate vs the prior model</h2>"
    if not baseline:
        return title + "<p class='na'>Not computed (see below).</p>"
    return (title + f"<p>The prior model always answers <code>{escape(str(baseline.get('label')))}</code>, the "
            f"majority class of {escape(str(baseline.get('source')))}: accuracy {_num(baseline.get('accuracy'))} "
            f"against the candidate's {_num(baseline.get('candidate_accuracy'))} on the same "
            f"{_num(baseline.get('n_rows'))} rows (gain {_num(baseline.get('accuracy_gain'), signed=True)}, paired "
            f"SE {_num(baseline.get('accuracy_gain_se'))}).</p>")


def _gap_errors_section(errors: Mapping[str, Any] | None) -> str:
    if not errors:
        return ""
    return (f"<p>Bootstrap over holdout rows ({_num(errors.get('replicates'))} replicates with every gap "
            f"measurable): SE of the candidate's worst gap {_num(errors.get('candidate_gap_se'))}; paired SE of "
            f"the candidate's minus the champion's {_num(errors.get('increase_se'))}.</p>")


def _label_shift_section(shift: Mapping[str, Any] | None) -> str:
    if not shift:
        return ""
    worst = sorted(shift.get("shifts") or [], key=lambda s: -abs(s.get("shift") or 0))[:10]
    rows = [[escape(str(s.get("column"))), escape(str(s.get("group"))), escape(str(s.get("label"))),
             f"{_num(s.get('share'))} vs {_num(s.get('rest_share'))}",
             f"{_num(s.get('reference_share'))} vs {_num(s.get('reference_rest_share'))}",
             _num(s.get("shift"), signed=True), _num(s.get("se"))] for s in worst]
    return ("<h2>Label shares per group, against the champion's batch</h2>"
            + _table(["attribute", "group", "label", "share: group vs rest", "reference: group vs rest",
                      "shift", "SE"], rows))


def _comparison_section(comparison: Mapping[str, Any] | None) -> str:
    title = "<h2>Candidate vs champion, on the same rows</h2>"
    if not comparison:
        return title + "<p class='na'>Not compared (see below).</p>"
    ours, theirs = comparison.get("candidate") or {}, comparison.get("champion") or {}
    rows = []
    for key, label in _QUALITY_ROWS:
        a, b = ours.get(key), theirs.get(key)
        delta = a - b if isinstance(a, float) and isinstance(b, float) else None
        se = comparison.get(_PAIRED_SE[key]) if key in _PAIRED_SE else None
        rows.append([label, _num(a), _num(b), _num(delta, signed=True), _num(se)])
    return (title + f"<p>Rows: {escape(str(comparison.get('basis')))} ({comparison.get('n_rows')} scored, "
            f"{comparison.get('n_excluded')} left out). The paired standard error is that of the "
            "difference between the two models on these rows; the gate allows a regression of its "
            "tolerance plus z of them.</p>"
            + _table(["metric", "candidate", "champion", "Δ", "paired SE of Δ"], rows))


def _drift_section(drift: Mapping[str, Any] | None) -> str:
    if not drift:
        return "<h2>Drift</h2><p class='na'>Not computed (see the list at the end).</p>"
    nulls = drift.get("null_rate_change") or {}
    rows = []
    for column, d in (drift.get("per_feature") or {}).items():
        rate = nulls.get(column) or {}
        verdict = "<span class='bad'>drifted</span>" if d.get("drifted") else "no"
        rows.append([escape(column), escape(str(d.get("method"))), _num(d.get("score")), _num(d.get("threshold")),
                     verdict, escape("; ".join(d.get("reasons") or [])),
                     f"{_num(rate.get('reference'))} → {_num(rate.get('current'))}"])
    new = drift.get("new_categories") or {}
    new_html = "".join(f"<li><code>{escape(c)}</code>: {escape(', '.join(map(str, v)))}</li>" for c, v in new.items())
    return (
        f"<h2>Drift</h2><p>Share of drifted feature columns: <b>{_num(drift.get('drift_share'))}</b> "
        f"(Evidently alone: {_num(drift.get('evidently_drift_share'))}); reference {drift.get('n_reference')} rows, "
        f"current {drift.get('n_current')} rows. Full Evidently report: <a href='drift.html'>drift.html</a>.</p>"
        + _table(["column", "method", "score", "threshold", "drifted", "why", "null rate ref → cur"], rows)
        + (f"<p>Values never seen in the reference:</p><ul>{new_html}</ul>" if new_html else "")
    )


def _fairness_section(result: Mapping[str, Any] | None, role: str) -> str:
    title = f"<h2>Fairness of the {role}</h2>"
    if result is None:
        return title + "<p class='na'>Not computed (see the list at the end).</p>"
    why = f" — {escape(str(result['reason']))}" if result.get("reason") else ""
    summary = (f"<p>Worst gap over attributes: <b>{_num(result.get('max_gap'))}</b>{why}; "
               f"groups under {result.get('min_group_count')} rows are undefined.</p>")
    parts = [title, summary]
    for name, attribute in (result.get("attributes") or {}).items():
        parts.append(f"<h3>{escape(name)}</h3>")
        if not attribute.get("computable"):
            parts.append(f"<p class='bad'>Not computable: {escape(str(attribute.get('reason')))}</p>")
        rows = [[escape(str(g.get("group"))), _num(g.get("count")), _num(g.get("selection_rate")), _num(g.get("tpr")),
                 _num(g.get("fpr")), _num(g.get("accuracy")),
                 _undefined(g.get("undefined") or {})]
                for g in attribute.get("groups") or []]
        if rows:
            parts.append(_table(["group", "rows", "selection rate", "TPR", "FPR", "accuracy", "undefined"], rows))
        parts.append(f"<p>Demographic parity difference {_num(attribute.get('demographic_parity_difference'))}, "
                     f"equalized odds difference {_num(attribute.get('equalized_odds_difference'))}.</p>")
    return "".join(parts)


def _undefined(reasons: Mapping[str, str]) -> str:
    """One line per distinct reason: a small group's four metrics share one."""
    by_reason: dict[str, list[str]] = {}
    for metric, why in reasons.items():
        by_reason.setdefault(str(why), []).append(str(metric))
    return escape("; ".join(f"{', '.join(metrics)}: {why}" for why, metrics in by_reason.items()))


def _not_computed_section(items: Sequence[Mapping[str, str]]) -> str:
    if not items:
        return "<h2>Not computed</h2><p>Everything was computed.</p>"
    rows = [[escape(str(i.get("what"))), escape(str(i.get("reason")))] for i in items]
    return "<h2>Not computed</h2>" + _table(["what", "why"], rows)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(value: Any, signed: bool = False) -> str:
    if value is None:
        return _na("n/a")
    if isinstance(value, bool) or not _is_number(value):
        return escape(str(value))
    if isinstance(value, int):
        return str(value)
    if value != 0 and abs(value) < 1e-4:
        return f"{value:.2e}"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _na(text: str) -> str:
    return f"<span class='na'>{escape(text)}</span>"


def evaluation_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The few figures of an evaluation record that the stage returns and the task log shows."""
    quality, comparison = record["quality"]["candidate"] or {}, record["quality"]["comparison"] or {}
    return {
        "drift_share": (record["drift"] or {}).get("drift_share"), "accuracy": quality.get("accuracy"),
        "accuracy_drop": comparison.get("accuracy_drop"), "accuracy_drop_se": comparison.get("accuracy_drop_se"),
        "fairness_gap": (record["fairness"]["candidate"] or {}).get("max_gap"),
        "not_computed": [item["what"] for item in record["not_computed"]],
    }


def evaluation_metrics(record: dict[str, Any]) -> dict[str, float | None]:
    """An evaluation record as MLflow metrics: the candidate's quality, drift, fairness, and
    the drops against the champion (champion - candidate; for ECE, candidate - champion)."""
    summary = evaluation_summary(record)
    quality, comparison = record["quality"]["candidate"] or {}, record["quality"]["comparison"] or {}
    metrics: dict[str, float | None] = {f"candidate.{k}": v for k, v in quality.items() if isinstance(v, float)}
    metrics.update({"drift.share": summary["drift_share"], "fairness.max_gap": summary["fairness_gap"],
                    "comparison.accuracy_drop": summary["accuracy_drop"]})
    for metric in ("macro_f1", "roc_auc", "ece"):
        mine, theirs = ((comparison.get(role) or {}).get(metric) for role in ("candidate", "champion"))
        if isinstance(mine, float) and isinstance(theirs, float):
            metrics[f"comparison.{metric}_{'increase' if metric == 'ece' else 'drop'}"] = (
                mine - theirs if metric == "ece" else theirs - mine)
    return metrics

