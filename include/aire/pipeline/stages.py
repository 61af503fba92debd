"""The retraining pipeline's stages, one function each.

The DAG's tasks and the ``aire`` command line call these same functions. Each takes a
``RunSpec`` (plus the champion version pinned by ``validate_data``, so a champion that
changes mid-run cannot mix two models' evidence) and returns a small JSON-able dict.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aire.errors import DataValidationError
from aire.pipeline.run_context import RunContext, RunSpec

if TYPE_CHECKING:
    from aire.promotion.promote.approval import ApprovalRecord

log = logging.getLogger(__name__)

_Stage = TypeVar("_Stage", bound=Callable[..., dict[str, Any]])


def _timed(stage: _Stage) -> _Stage:
    """Record the stage's wall time and outcome as the OpenTelemetry histogram aire.stage.duration."""

    @functools.wraps(stage)
    def timed(spec: RunSpec, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from aire.config import load_config
        from aire.errors import AireError
        from aire.telemetry import get_telemetry

        try:
            pipeline = load_config(spec.config_path).name
        except AireError:
            pipeline = "unknown"  # the stage itself reports the config error
        with get_telemetry().timed_stage(pipeline, stage.__name__):
            return stage(spec, *args, **kwargs)

    return cast(_Stage, timed)


@_timed
def validate_data(spec: RunSpec) -> dict[str, Any]:
    """Read the batch, check it against config rules and the champion's reference profile."""
    from aire.data.tables import read_table, table_digest, write_table
    from aire.data.validation import ReferenceProfile, validate_batch

    ctx = RunContext(spec)
    champion_version = _pinned_champion(ctx)
    verified = ctx.verified_version(champion_version)
    profile = None
    if verified is not None:
        profile = ReferenceProfile.from_dict(_json(verified.model_dir / "reference_profile.json"))

    try:
        frame = read_table(spec.batch_uri, s3=spec.s3)
    except DataValidationError as exc:
        ctx.write_json({"success": False, "source": spec.batch_uri, "checks": [
            {"column": exc.column, "rule": exc.rule, "success": False, "detail": exc.detail}]},
            "validation", "validation.json")
        ctx.publish(ctx.path("validation"), "validation")
        raise
    digest = table_digest(frame)
    report = validate_batch(frame, ctx.config, profile, source=spec.batch_uri)
    ctx.write_json({**report.to_dict(), "data_digest": digest, "reference_version": champion_version},
                   "validation", "validation.json")
    ctx.publish(ctx.path("validation"), "validation")
    if not report.success:
        _quarantine(ctx, frame)
        report.raise_for_failures()

    write_table(frame, ctx.path("batch.parquet"))
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {"aire.data_digest": digest})
    ctx.store.put_file(ctx.path("batch.parquet"), f"batches/{ctx.name}/{ctx.run_dir.name}/batch.parquet")
    return {
        "rows": len(frame), "data_digest": digest, "mlflow_run_id": ctx.mlflow_run_id,
        "champion_version": champion_version, "first_run": champion_version is None,
        "run_dir": str(ctx.run_dir),
    }


@_timed
def analyze_errors(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Per-sample loss of the batch under a model that never trained on it.

    A skip (one class, fewer rows than folds) is written like any result: summary.json
    says ``skipped`` with the reason and no noise estimate, which the gate rejects.
    """
    from aire.analysis.error_analysis import run_error_analysis
    from aire.analysis.report import write_outputs
    from aire.model.tabular import load_model

    ctx = RunContext(spec)
    frame = ctx.batch()
    verified = ctx.verified_version(champion_version)
    # Without a champion, K fold models are trained for min(training.epochs,
    # analysis.cross_fit_epochs) epochs each: a shorter schedule keeps cross-fitting cheap.
    # With one, its probabilities are averaged with a K-fold cross-fit of
    # analysis.champion_blend_epochs epochs (0: the champion alone); see aire.analysis.error_analysis.
    result = run_error_analysis(
        frame, ctx.config, champion=load_model(verified.model_dir) if verified else None)
    write_outputs(result, ctx.path("analysis"), top_k=ctx.config.analysis.top_k)
    ctx.publish(ctx.path("analysis"), "analysis")
    summary = ctx.read_json("analysis", "summary.json")
    leaking = summary["leakage"]["flagged"]
    if result.skipped:
        log.warning("error analysis skipped: %s (no noise estimate: the gate will reject)", result.reason)
    if leaking:
        log.warning("leakage check: %s alone predict(s) the label", ", ".join(leaking))
    ctx.registry.log_metrics(ctx.mlflow_run_id, {
        "analysis.estimated_noise_rate": summary.get("estimated_noise_rate"),
        "analysis.n_suspected": summary.get("n_suspected"),
        "analysis.leakage_flagged": len(leaking),
    })
    keys = ("estimated_noise_rate", "n_suspected", "n_rows", "skipped", "reason", "method", "source")
    return {**{key: summary.get(key) for key in keys}, "leakage_flagged": leaking}


@_timed
def fine_tune(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Train the candidate on the batch's training split, warm-started from the champion.

    ``analysis.action`` decides what happens to the split's suspected label errors (see
    ``aire.analysis.suspects``); the holdout is left as it came.
    """
    from sklearn.model_selection import train_test_split

    from aire.analysis.suspects import training_set
    from aire.data.tables import write_table
    from aire.data.validation import learn_profile
    from aire.model.tabular import label_classes, load_model
    from aire.model.training import fit

    ctx = RunContext(spec)
    frame = ctx.batch()
    training = ctx.config.training
    label = frame[ctx.config.dataset.label]
    stratify = label if label.value_counts().min() >= 2 else None
    train, holdout = train_test_split(
        frame, test_size=training.holdout_fraction, random_state=training.seed, stratify=stratify
    )
    analysis = ctx.config.analysis
    trained_on = training_set(train, frame, ctx.path("analysis"), action=analysis.action,
                              weight=analysis.downweight, id_column=ctx.config.dataset.id)
    log.info("analysis.action=%s on %d training rows: %s suspected, %d dropped, %d down-weighted",
             trained_on.action, len(train), trained_on.n_suspected, trained_on.n_dropped,
             trained_on.n_downweighted)
    write_table(trained_on.frame.reset_index(drop=True), ctx.path("train.parquet"))
    write_table(holdout.reset_index(drop=True), ctx.path("holdout.parquet"))

    verified = ctx.verified_version(champion_version)
    result = fit(
        trained_on.frame.reset_index(drop=True), ctx.config,
        init_from=load_model(verified.model_dir) if verified else None,
        sample_weight=trained_on.sample_weight,
        # a cold start keeps every class of the batch even if dropping emptied one
        classes=label_classes(label, ctx.config.dataset.label),
        epochs=spec.epochs or training.epochs,
        learning_rate=spec.learning_rate or training.learning_rate,
        batch_size=training.batch_size, seed=training.seed, device=training.device,
        on_epoch=lambda epoch, metrics: ctx.registry.log_metrics(ctx.mlflow_run_id, metrics, step=epoch),
    )
    model_dir = ctx.path("model")
    result.model.save(model_dir)
    # The batch becomes the reference for the next batch if this candidate is promoted:
    # its profile travels inside the signed model directory, its rows as an artifact.
    _write(model_dir / "reference_profile.json", learn_profile(frame, ctx.config).to_dict())
    summary = {**result.to_dict(), "warm_start_version": champion_version,
               "analysis_action": trained_on.to_dict()}
    ctx.write_json(summary, "training.json")
    # The signed copy leaves out wall time: the same run retrained from the same start gives
    # the same weights, and so the same digest, only if every signed byte is reproducible.
    _write(model_dir / "metrics.json", {k: v for k, v in summary.items() if k != "seconds"})
    ctx.registry.log_artifact(ctx.mlflow_run_id, ctx.path("batch.parquet"), "reference")
    ctx.registry.log_params(ctx.mlflow_run_id, {
        "epochs": result.epochs, "learning_rate": spec.learning_rate or training.learning_rate,
        "device": result.device, "warm_start_version": champion_version, "rows_train": len(trained_on.frame),
        "analysis_action": trained_on.action,
    })
    return {"device": result.device, "epochs": result.epochs, "seconds": round(result.seconds, 3),
            "rows_train": len(trained_on.frame), "rows_holdout": len(holdout), "warm_start_version": champion_version,
            "analysis_action": trained_on.to_dict()}


@_timed
def sign_model(spec: RunSpec) -> dict[str, Any]:
    """Sign the candidate directory with the home's key; record the digest in the ledger."""
    from aire.registry.mlflow_registry import candidate_artifacts
    from aire.trust.signing import sign_model as sign
    from aire.trust.verify import SIGNED

    ctx = RunContext(spec)
    keys = ctx.keys
    signed = sign(ctx.path("model"), ctx.path("model.sig"), private_key=keys.private)
    if not ctx.ledger.find(SIGNED, pipeline=ctx.name, digest=signed.digest):
        ctx.ledger.append(SIGNED, {"pipeline": ctx.name, "run_key": spec.run_key, "digest": signed.digest,
                                   "mlflow_run_id": ctx.mlflow_run_id})
    ctx.write_json({"digest": signed.digest, "files": len(signed.files), "public_key": str(keys.public)},
                   "signing.json")
    model_path, signature_path = candidate_artifacts(signed.digest)
    ctx.registry.log_artifacts(ctx.mlflow_run_id, ctx.path("model"), model_path)
    ctx.registry.log_artifact(ctx.mlflow_run_id, ctx.path("model.sig"), signature_path)
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {"aire.signed_digest": signed.digest})
    return {"digest": signed.digest}


@_timed
def evaluate(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Drift of batch vs reference, quality of candidate vs champion, per-group metrics.

    Whatever can be computed is; what cannot is listed in the report, and the gate rejects
    on the evidence it lacks. Only a model that fails verification stops the stage: no
    unverified model is ever scored.
    """
    from aire.evaluation.candidate import evaluate_candidate
    from aire.model.tabular import load_model

    ctx = RunContext(spec)
    out = ctx.path("evaluation")
    # An earlier try's report must not survive this try's failure: the gate would read it.
    (out / "evaluation.json").unlink(missing_ok=True)
    batch = ctx.batch()
    _, holdout = ctx.split()
    candidate = load_model(_verified_candidate(ctx))
    verified = ctx.verified_version(champion_version)
    evaluate_candidate(ctx.config, holdout, candidate, out, batch=batch,
                       champion=load_model(verified.model_dir) if verified else None,
                       reference=_champion_reference(ctx, verified) if verified else None)
    ctx.publish(out, "evaluation")
    record = ctx.read_json("evaluation", "evaluation.json")
    quality, comparison = record["quality"]["candidate"] or {}, record["quality"]["comparison"] or {}
    summary: dict[str, Any] = {
        "drift_share": (record["drift"] or {}).get("drift_share"), "accuracy": quality.get("accuracy"),
        "accuracy_drop": comparison.get("accuracy_drop"), "accuracy_drop_se": comparison.get("accuracy_drop_se"),
        "fairness_gap": (record["fairness"]["candidate"] or {}).get("max_gap"),
        "not_computed": [item["what"] for item in record["not_computed"]],
    }
    metrics: dict[str, float | None] = {f"candidate.{k}": v for k, v in quality.items() if isinstance(v, float)}
    metrics.update({"drift.share": summary["drift_share"], "fairness.max_gap": summary["fairness_gap"],
                    "comparison.accuracy_drop": summary["accuracy_drop"]})
    for metric in ("macro_f1", "roc_auc", "ece"):  # champion - candidate (ECE: candidate - champion)
        mine, theirs = ((comparison.get(role) or {}).get(metric) for role in ("candidate", "champion"))
        if isinstance(mine, float) and isinstance(theirs, float):
            metrics[f"comparison.{metric}_{'increase' if metric == 'ece' else 'drop'}"] = (
                mine - theirs if metric == "ece" else theirs - mine)
    ctx.registry.log_metrics(ctx.mlflow_run_id, metrics)
    return summary


@_timed
def gate(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Read every piece of evidence from its report; missing or unreadable evidence rejects.

    It never needs an earlier stage to have succeeded: after a failed evaluation it reads
    a missing report as missing evidence and writes a reject decision.
    """
    from dataclasses import replace

    from aire.promotion.promote.gate import decide, evidence_from_files

    ctx = RunContext(spec)
    evidence = evidence_from_files(
        ctx.path("evaluation", "evaluation.json"), ctx.path("analysis", "summary.json"),
        ctx.path("signing.json"), first_run=champion_version is None,
        validation_json=ctx.path("validation", "validation.json"),
    )
    baseline, why = _champion_noise_rate(ctx, champion_version)
    # The signature is checked now, on the files as they are, not read from a report.
    evidence = replace(evidence, signature_verified=_candidate_verifies(ctx), champion_noise_rate=baseline,
                       missing={**evidence.missing, **({"champion_noise_rate": why} if why else {})})
    decision = decide(ctx.config.gates, evidence).to_dict()
    decision.update({"pipeline": ctx.name, "run_key": spec.run_key, "champion_version": champion_version,
                     "evidence": evidence.to_dict()})
    ctx.write_json(decision, "decision.json")
    ctx.publish(ctx.path("decision.json"), "decision")
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {"aire.gate": "promote" if decision["promote"] else "reject"})
    return decision


@_timed
def promote(spec: RunSpec) -> dict[str, Any]:
    """Register the verified candidate once and move the champion alias to it.

    With ``approval.required`` it first checks that a person approved this very decision.
    """
    from aire.promotion.promote.approval import require_approved
    from aire.promotion.promote.promote import promote_candidate

    ctx = RunContext(spec)
    decision = ctx.read_json("decision.json")
    if decision.get("promote") is not True:
        raise DataValidationError(str(ctx.path("decision.json")), None, "gate decision is promote",
                                  "the gate did not approve this candidate")
    approval = _approval_record(ctx)
    require_approved(approval, ctx.config.approval, str(ctx.path("approval.json")))
    digest = _verified_candidate_digest(ctx)
    result = promote_candidate(ctx, digest, approval=approval)
    ctx.registry.finish_run(ctx.mlflow_run_id)
    return result


@_timed
def reject(spec: RunSpec, resolver: Any = None) -> dict[str, Any]:
    """Record the rejection as an incident with a postmortem stub; the champion stays.

    ``resolver`` turns the config's notify channels into endpoints (the DAG passes the one
    that reads Airflow connections); without it the sweep DAG delivers the notification.
    """
    from aire.incidents.sources import record_gate_rejection

    ctx = RunContext(spec)
    decision = _json_or_none(ctx.path("decision.json")) or {"promote": False, "checks": []}
    approval = _approval_record(ctx)
    _quarantine(ctx, ctx.batch())
    result = record_gate_rejection(ctx, decision, resolver=resolver,
                                   approval=approval.to_dict() if approval else None)
    ctx.registry.finish_run(ctx.mlflow_run_id, status="FAILED")
    return result


def after_gate(spec: RunSpec, decision: dict[str, Any]) -> str:
    """The task the run goes on to: ``promote``, ``await_approval`` (config ``approval``) or ``reject``."""
    from aire.config import load_config
    from aire.promotion.promote.approval import next_step

    return next_step(decision, load_config(spec.config_path).approval).value


@_timed
def request_approval(spec: RunSpec) -> dict[str, Any]:
    """Open the approval request for the gate's decision: subject, body, timeout, approvers.

    ``approval.json`` says ``pending`` and holds the decision's sha256 until the answer.
    """
    from aire.promotion.promote import approval as approvals

    ctx = RunContext(spec)
    decision_path = ctx.path("decision.json")
    decision = ctx.read_json("decision.json")
    if decision.get("promote") is not True:
        raise DataValidationError(str(decision_path), None, "gate decision is promote",
                                  "only a candidate the gate passed is put to a person")
    config = ctx.config.approval
    record = approvals.pending(approvals.digest_of(decision_path), config)
    ctx.write_json(record.to_dict(), "approval.json")
    subject, body = approvals.request_text(decision, config, batch_uri=spec.batch_uri)
    return {"subject": subject, "body": body, "timeout_seconds": config.timeout_hours * 3600,
            "approvers": list(config.approvers), "decision_sha256": record.decision_sha256}


@_timed
def record_approval(spec: RunSpec, response: dict[str, Any]) -> dict[str, Any]:
    """Write the answer (or the timeout) into ``approval.json``, publish it, tag the run."""
    from aire.promotion.promote import approval as approvals

    ctx = RunContext(spec)
    request = approvals.bound(_json_or_none(ctx.path("approval.json")),
                              _digest_or_none(ctx.path("decision.json")))
    if request is None:
        raise DataValidationError(str(ctx.path("approval.json")), None, "approval answers this decision",
                                  "no approval request for the current gate decision")
    record = approvals.answered(request, response)
    ctx.write_json(record.to_dict(), "approval.json")
    ctx.publish(ctx.path("approval.json"), "approval")
    ctx.registry.set_run_tags(ctx.mlflow_run_id, record.tags())
    log.info("approval: %s", record.summary())
    return record.to_dict()


# --- helpers --------------------------------------------------------------------------
_PINNED = "aire.pinned_champion"


def _approval_record(ctx: RunContext) -> ApprovalRecord | None:
    """The approval answer for the current gate decision, if any (``aire.promotion.approval.bound``)."""
    from aire.promotion.promote.approval import bound

    return bound(_json_or_none(ctx.path("approval.json")), _digest_or_none(ctx.path("decision.json")))


def _digest_or_none(path: Any) -> str | None:
    from aire.promotion.promote.approval import digest_of

    try:
        return digest_of(path)
    except OSError:
        return None


def _pinned_champion(ctx: RunContext) -> int | None:
    """The champion this run compares against and warm-starts from, fixed on its first pass.

    A cleared and re-run run must not pick up the champion it promoted itself: it pins
    the same one again, so it retrains from the same start and reaches the same decision.
    """
    pinned = ctx.registry.client.get_run(ctx.mlflow_run_id).data.tags.get(_PINNED)
    if pinned is not None:
        return None if pinned == "none" else int(pinned)
    champion = ctx.registry.champion(ctx.name)
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {_PINNED: str(champion.version) if champion else "none"})
    return champion.version if champion else None


def _champion_noise_rate(ctx: RunContext, champion_version: int | None) -> tuple[float | None, str | None]:
    """The noise estimate the champion's own training run logged, or None and why."""
    if champion_version is None:
        return None, None
    try:
        run_id = ctx.registry.version(ctx.name, champion_version).run_id
        value = ctx.registry.client.get_run(run_id).data.metrics.get("analysis.estimated_noise_rate")
    except Exception as exc:  # noqa: BLE001 - the gate must decide, not crash: the check fails
        log.warning("cannot read the champion's noise baseline: %s", exc)
        return None, f"champion v{champion_version}'s run is unreadable: {type(exc).__name__}"
    if value is None:
        return None, f"champion v{champion_version}'s run logged no analysis.estimated_noise_rate"
    return float(value), None


def _champion_reference(ctx: RunContext, verified: Any) -> Any:
    """The champion's training batch, checked against the data digest its version records."""
    import pandas as pd

    from aire.data.tables import table_digest
    from aire.errors import VerificationError

    folder = ctx.registry.download(verified.version.run_id, "reference", ctx.path("registry", "reference"))
    reference = pd.read_parquet(folder / "batch.parquet")
    recorded = verified.version.data_digest
    if recorded and table_digest(reference) != recorded:
        raise VerificationError(f"reference data of version {verified.version.version} does not match "
                                f"its recorded data digest {recorded[:12]}…")
    return reference


def _verified_candidate(ctx: RunContext) -> Any:
    _verified_candidate_digest(ctx)
    return ctx.path("model")


def _verified_candidate_digest(ctx: RunContext) -> str:
    """The candidate is loaded only after its signature and its ledger digest check out."""
    from aire.errors import VerificationError
    from aire.trust.signing import verify_model
    from aire.trust.verify import SIGNED

    recorded = _json_or_none(ctx.path("signing.json")) or {}
    digest = recorded.get("digest")
    if not digest or not ctx.ledger.find(SIGNED, pipeline=ctx.name, digest=digest):
        raise VerificationError(f"{ctx.path('model')}: no signing record in the ledger for this candidate")
    verify_model(ctx.path("model"), ctx.path("model.sig"), public_key=ctx.keys.public, expected_digest=digest)
    return str(digest)


def _candidate_verifies(ctx: RunContext) -> bool:
    from aire.errors import AireError

    try:
        _verified_candidate_digest(ctx)
    except (AireError, OSError) as exc:
        log.warning("candidate signature check failed: %s", exc)
        return False
    return True


def _quarantine(ctx: RunContext, frame: Any) -> None:
    """Keep a copy of a refused batch for the people who will look into it."""
    from aire.data.tables import write_table

    path = ctx.path("quarantine", "batch.parquet")
    path.parent.mkdir(exist_ok=True)
    write_table(frame, path)
    ctx.store.put_file(path, f"quarantine/{ctx.name}/{ctx.run_dir.name}/batch.parquet")


def _json(path: Any) -> dict[str, Any]:
    import json
    from pathlib import Path

    return dict(json.loads(Path(path).read_text()))


def _json_or_none(path: Any) -> dict[str, Any] | None:
    try:
        return _json(path)
    except (OSError, ValueError):
        return None


def _write(path: Any, data: dict[str, Any]) -> None:
    import json

    path.write_text(json.dumps(data, indent=2, default=str))


def run_all(spec: RunSpec) -> dict[str, Any]:
    """Every stage in order in this process (what the DAG does, without a scheduler).

    A stage's failure is recorded as an incident exactly as the DAG's callback would. As in
    the DAG, a failed evaluation does not stop the run: the gate reads the missing report as
    missing evidence and the reject stage records why (``failed`` lists the stage). Any
    other failure leaves no candidate to decide on and is raised. With ``approval.required``
    a passing run stops at ``awaiting_approval``: a person answers only through the DAG.
    """
    from aire.incidents.sources import record_task_failure

    results: dict[str, Any] = {"run_key": spec.run_key, "failed": []}

    def step(name: str, call: Any, *args: Any, fatal: bool = True) -> Any:
        try:
            results[name] = call(spec, *args)
        except Exception as exc:
            record_task_failure(dag_id="aire-cli", run_id=spec.run_key, task_id=name, try_number=1,
                                exception=exc,
                                params={"config": spec.config_path, "batch": spec.batch_uri})
            if fatal:
                raise
            log.warning("%s failed (%s: %s); the gate decides on the evidence there is",
                        name, type(exc).__name__, exc)
            results["failed"].append(name)
            return None
        return results[name]

    champion = step("validate_data", validate_data)["champion_version"]
    step("analyze_errors", analyze_errors, champion)
    step("fine_tune", fine_tune, champion)
    step("sign_model", sign_model)
    step("evaluate", evaluate, champion, fatal=False)
    decision = step("gate", gate, champion)
    after = after_gate(spec, decision)
    if after == "promote":
        step("promote", promote)
        results["outcome"] = "promoted"
    elif after == "await_approval":
        # Nobody can be asked from here: with approval.required, promotion goes through the
        # DAG's await_approval task. The candidate stays unregistered; the champion is untouched.
        results["outcome"] = "awaiting_approval"
    else:
        step("reject", reject)
        results["outcome"] = "rejected"
    return results
