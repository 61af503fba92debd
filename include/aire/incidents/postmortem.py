"""Blameless postmortem stubs in Markdown, pre-filled from an incident's evidence.

The stub states only what the evidence holds and writes "TBD" everywhere else: a
postmortem that invents a root cause is worse than an empty one. Evidence the renderer
does not recognise is shown verbatim as JSON rather than dropped, so nothing vanishes.

Evidence keys understood (all optional; see ``PostmortemEvidence``):
``failed_task`` {dag_id, run_id, task_id, try_number, log_url}, ``log_url``,
``exception`` {type, message, traceback} or a string, ``validation_failures`` [{file,
column, rule, detail}], ``drift`` and ``fairness`` {name: number or {champion, candidate,
delta, ...}}, ``gate`` {decision, checks: [{name, passed, value, threshold, detail}]},
``suspected_rows`` [{row, label, loss, ...}], ``model_digests`` {name: digest},
``champion`` {version, digest or signed_digest}, ``slo`` (an ``aire.reliability.slo.ObjectiveReport``
as a dict, with its ``burn`` windows). Any other key is listed under "Other
evidence" as recorded (long values cut), so nothing the caller gathered is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from aire import atomic
from aire.errors import AireError
from aire.incidents.types import Incident, Status

TBD = "TBD"
MAX_SUSPECTED_ROWS = 10
MAX_RAW_CHARS = 2000  # per unrecognised evidence value; the full record stays in the store
_KNOWN_KEYS = {"failed_task", "log_url", "exception", "validation_failures", "drift", "fairness",
               "gate", "suspected_rows", "model_digests", "champion", "slo"}


class PostmortemEvidence(TypedDict, total=False):
    failed_task: dict[str, Any]
    log_url: str
    exception: dict[str, str] | str
    validation_failures: list[dict[str, Any]]
    drift: dict[str, Any]
    fairness: dict[str, Any]
    gate: dict[str, Any]
    suspected_rows: list[dict[str, Any]]
    model_digests: dict[str, str]
    champion: dict[str, Any]
    slo: dict[str, Any]


def write_postmortem(incident: Incident, out_dir: Path, *, evidence: Mapping[str, Any]) -> Path:
    """Write ``<date>-<pipeline>-<id>.md`` atomically under ``out_dir``; returns its path.

    ``evidence`` is laid over the incident's stored evidence (the argument wins per key).
    Raises AireError naming the path when the directory cannot be written; the incident
    itself is already stored, so callers log this and carry on.
    """
    facts = {**incident.evidence, **evidence}
    name = f"{incident.first_seen:%Y-%m-%d}-{_slug(incident.pipeline)}-{incident.id}.md"
    target = Path(out_dir) / name
    try:
        atomic.write_text(target, render_postmortem(incident, facts))
    except OSError as err:
        raise AireError(f"cannot write postmortem {target}: {err}") from err
    return target


def render_postmortem(incident: Incident, evidence: Mapping[str, Any]) -> str:
    sections = [
        f"# Postmortem: {_text(incident.title)}",
        (f"> Blameless postmortem stub written by AIRE for incident #{incident.id}. "
         f"Describe systems, signals and decisions, not people. Replace every {TBD}."),
        _summary(incident), _impact(evidence), _detection(incident, evidence),
        _root_cause(evidence), _trigger(evidence), _resolution(incident),
        "## Action items\n\n" + _table(["Action", "Kind", "Owner", "Tracking"],
                                       [[TBD, "prevent / mitigate / detect", TBD, TBD]]),
        "## Timeline\n\n" + _table(["Time (UTC)", "Event", "Detail"],
                                   [[e.time.isoformat(), e.event, e.detail]
                                    for e in incident.timeline]),
        (f"## Lessons\n\n### What went well\n\n{TBD}\n\n### What went wrong\n\n{TBD}\n\n"
         f"### Where we got lucky\n\n{TBD}"),
    ]
    return "\n\n".join(sections) + "\n"


# --- sections -----------------------------------------------------------------------
def _summary(incident: Incident) -> str:
    rows: list[list[Any]] = [["Incident", f"#{incident.id}"], ["Pipeline", incident.pipeline],
            ["Severity", incident.severity.value], ["Status", incident.status.value],
            ["Source", incident.source.kind], ["First seen", incident.first_seen.isoformat()],
            ["Last seen", incident.last_seen.isoformat()], ["Occurrences", incident.count],
            ["Dedup key", _code(incident.dedup_key)]]
    return f"## Summary\n\n{_table(['Field', 'Value'], rows)}\n\nWhat happened: {TBD}"


def _impact(evidence: Mapping[str, Any]) -> str:
    parts = ["## Impact", f"User-facing impact: {TBD}"]
    champion = evidence.get("champion")
    digest = isinstance(champion, Mapping) and (champion.get("digest")
                                                or champion.get("signed_digest"))
    if isinstance(champion, Mapping) and (digest or "version" in champion):
        parts.append(f"Champion at the time: version {_text(str(champion.get('version', TBD)))}, "
                     f"digest {_code(str(digest or TBD))}")
    else:
        parts.append(f"Champion at the time: {TBD}" if champion is None
                     else _raw("champion", champion))
    digests = evidence.get("model_digests")
    if digests is not None:
        parts.append("### Model digests\n\n" + _mapping_table(digests, "model_digests"))
    return "\n\n".join(parts)


def _detection(incident: Incident, evidence: Mapping[str, Any]) -> str:
    source = incident.source
    task = evidence.get("failed_task")
    # A bare string is taken as the task id, the form a callback has at hand.
    task = dict(task) if isinstance(task, Mapping) else {"task_id": task} if task else {}
    where = [f"{label} {_code(str(value))}" for label, value in (
        ("DAG", task.get("dag_id", source.dag_id)), ("run", task.get("run_id", source.run_id)),
        ("task", task.get("task_id", source.task_id)),
        ("try", task.get("try_number", source.try_number))) if value is not None]
    log_url = task.get("log_url") or evidence.get("log_url")
    detected = f"Detected by: {source.kind}" + (f" in {', '.join(where)}" if where else "")
    parts = ["## Detection", detected,
             f"Log: {_link(str(log_url)) if log_url else TBD}",
             f"Time to detect: {TBD} (first seen {incident.first_seen.isoformat()})"]
    slo = evidence.get("slo")
    if isinstance(slo, Mapping) and _is_records(slo.get("burn", [])):
        # An SLO breach (aire.reliability.slo.ObjectiveReport): the objective, then its burn-rate windows.
        summary = {key: value for key, value in slo.items() if key != "burn"}
        parts.append(f"### SLO: {_text(str(slo.get('name', TBD)))}\n\n" + _mapping_table(summary, "slo")
                     + "\n\n" + _records_table(slo["burn"], ["alert", "long_seconds",
                                                               "long_rate", "short_seconds",
                                                               "short_rate", "factor", "firing"]))
    elif slo is not None:
        parts.append(_raw("slo", slo))
    gate = evidence.get("gate")
    if isinstance(gate, Mapping) and _is_records(gate.get("checks", [])):
        parts.append(f"### Gate decision: {_text(str(gate.get('decision', TBD)))}\n\n"
                     + _records_table(gate.get("checks", []),
                                      ["name", "passed", "value", "threshold", "detail"]))
    elif gate is not None:
        parts.append(_raw("gate", gate))
    return "\n\n".join(parts)


def _root_cause(evidence: Mapping[str, Any]) -> str:
    parts = ["## Root cause", f"{TBD}. The evidence below is a lead, not a conclusion."]
    for key, heading in (("drift", "Drift"), ("fairness", "Fairness deltas")):
        if key in evidence:
            parts.append(f"### {heading}\n\n" + _mapping_table(evidence[key], key))
    rows = evidence.get("suspected_rows")
    if _is_records(rows) and rows:
        shown = list(rows)[:MAX_SUSPECTED_ROWS]
        parts.append(f"### Top suspected rows ({len(shown)} of {len(rows)})\n\n"
                     + _records_table(shown))
    elif rows is not None:
        parts.append(_raw("suspected_rows", rows))
    others = [key for key in evidence if key not in _KNOWN_KEYS]
    if others:
        parts.append("### Other evidence (as recorded)\n\n"
                     + "\n\n".join(_raw(key, evidence[key], label="") for key in others))
    return "\n\n".join(parts)


def _trigger(evidence: Mapping[str, Any]) -> str:
    parts = ["## Trigger"]
    error = evidence.get("exception")
    if isinstance(error, str):
        parts.append(f"Exception: {_inline(error)}")
    elif isinstance(error, Mapping):
        parts.append(f"Exception: {_code(str(error.get('type', 'Exception')))}: "
                     f"{_inline(str(error.get('message', '')))}")
        if error.get("traceback"):
            parts.append(_fenced(str(error["traceback"])))
    elif error is not None:
        parts.append(_raw("exception", error))
    failures = evidence.get("validation_failures")
    if isinstance(error, Mapping) and error.get("rule") and failures is None:
        # A DataValidationError carries file, column and rule; show it as a failure row.
        failures = [{key: error.get(key) for key in ("file", "column", "rule")}]
    if _is_records(failures) and failures:
        parts.append("### Validation failures\n\n"
                     + _records_table(failures, ["file", "column", "rule", "detail"]))
    elif failures:
        parts.append(_raw("validation_failures", failures))
    if len(parts) == 1:
        parts.append(TBD)
    return "\n\n".join(parts)


def _resolution(incident: Incident) -> str:
    resolved = [e for e in incident.timeline if e.event in ("resolved", "expired")]
    if incident.status is Status.RESOLVED and resolved:
        last = resolved[-1]
        return f"## Resolution\n\n{last.time.isoformat()}: {last.event} {_inline(last.detail)}"
    return f"## Resolution\n\n{TBD} (status: {incident.status.value})"


# --- Markdown helpers -----------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (Mapping, list)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return _text(text).replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, Mapping) for item in value)


def _records_table(records: Sequence[Mapping[str, Any]], preferred: Sequence[str] = ()) -> str:
    """Columns: the preferred ones that occur, then any others in first-seen order."""
    seen = list(dict.fromkeys(key for record in records for key in record))
    columns = [c for c in preferred if c in seen] + [c for c in seen if c not in preferred]
    return _table(columns, [[record.get(c) for c in columns] for record in records])


def _mapping_table(value: Any, key: str) -> str:
    if not isinstance(value, Mapping) or not value:
        return _raw(key, value)
    if all(isinstance(v, Mapping) for v in value.values()):
        records = [{"name": name, **dict(v)} for name, v in value.items()]
        return _records_table(records, ["name", "champion", "candidate", "reference",
                                        "current", "delta"])
    return _table(["Name", "Value"], [[name, v] for name, v in value.items()])


def _raw(key: str, value: Any, label: str = " (shape not recognised, shown as recorded)") -> str:
    body = json.dumps(value, indent=2, default=str)
    if len(body) > MAX_RAW_CHARS:
        body = body[:MAX_RAW_CHARS] + f"\n... cut at {MAX_RAW_CHARS} characters"
    return f"`{key}`{label}:\n\n" + _fenced(body, "json")


def _fenced(body: str, language: str = "") -> str:
    # A fence longer than any backtick run inside, so a traceback cannot close it early.
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{body.rstrip()}\n{fence}"


def _inline(text: str) -> str:
    return _text(text)


# Control characters (but tab and newline, which split() turns into spaces), DEL, C1 controls,
# line and paragraph separators, and the bidirectional overrides that reorder what a reader sees.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What makes Markdown markup of a value: HTML, links and images, code spans, escapes.
_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]", "`": "\\`",
                         "\\": "\\\\"})


def _text(value: str) -> str:
    """A value as inert Markdown text on one line."""
    return " ".join(_INVISIBLE.sub("", value).split()).translate(_MARKUP)


def _code(value: str) -> str:
    """A value as one code span, with a fence longer than any backtick run inside it."""
    flat = " ".join(_INVISIBLE.sub("", value).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _link(url: str) -> str:
    """An autolink for an http(s) URL; anything else (javascript:, data:) as code, not a link."""
    if re.fullmatch(r"https?://[^\s<>`]+", url):
        return f"<{url}>"
    return _code(url)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "pipeline"

