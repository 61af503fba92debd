"""The retraining pipeline's stages, one function each: they wire, the domain modules decide.

The DAG's tasks, ``aire stage`` and ``aire run`` call these same functions, through
``aire.pipeline.stage_registry``. Every stage has one signature, ``(spec, champion_version)``:
the champion pinned by ``validate_data``, so a champion that changes mid-run cannot mix
two models' evidence; stages that do not compare with a champion ignore it. Each returns
a small JSON-able ``TypedDict`` (what the DAG passes on through XCom); files go to the
run's folder (``RunContext.files``) and to MLflow.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

from aire.constants import REFERENCE_ARTIFACT, REFERENCE_PROFILE, TAG_DATA_DIGEST, TAG_GATE, TAG_SIGNED_DIGEST
from aire.errors import AireError, DataValidationError
from aire.pipeline.run_context import RunContext, RunSpec

if TYPE_CHECKING:
    from aire.incidents.notifiers import ChannelResolver

log = logging.getLogger(__name__)

_Stage = TypeVar("_Stage", bound=Callable[..., Any])


class Validated(TypedDict):
    rows: int
    data_digest: str
    mlflow_run_id: str
    champion_version: int | None
    first_run: bool
    run_dir: str


class Analyzed(TypedDict):
    estimated_noise_rate: float | None
    n_suspected: int | None
    n_rows: int | None
    skipped: bool | None
    reason: str | None
    method: str | None
    source: str | None
    leakage_flagged: list[str]


class Trained(TypedDict):
    device: str
    epochs: int
    seconds: float
    rows_train: int
    rows_holdout: int
    warm_start_version: int | None
    analysis_action: dict[str, Any]


class Signed(TypedDict):
    digest: str


class Evaluated(TypedDict):
    drift_share: float | None
    accuracy: float | None
    accuracy_drop: float | None
    accuracy_drop_se: float | None
    fairness_gap: float | None
    not_computed: list[str]


def timed(stage: _Stage) -> _Stage:
    """Record the stage's wall time and outcome as the OpenTelemetry histogram aire.stage.duration."""

    @functools.wraps(stage)
    def timed(spec: RunSpec, *args: Any, **kwargs: Any) -> Any:
        from aire.config import load_config
        from aire.telemetry import get_telemetry

        try:
            pipeline = load_config(spec.config_path).name
        except AireError:
            pipeline = "unknown"  # the stage itself reports the config error
        with get_telemetry().timed_stage(pipeline, stage.__name__):
            return stage(spec, *args, **kwargs)

    return cast(_Stage, timed)


@timed
def validate_data(spec: RunSpec, champion_version: int | None = None) -> Validated:
    """Read the batch, check it against config rules and the champion's reference profile.

    It pins the champion (``champion_version`` is ignored: this stage decides it).
    """
    from aire.data.reference_profile import ReferenceProfile
    from aire.data.tables import read_table, table_digest, write_table
    from aire.data.validation import validate_batch

    ctx = RunContext(spec)
    files = ctx.files
    pinned = ctx.registry.pinned_champion(ctx.mlflow_run_id, ctx.name)
    verified = ctx.verified_version(pinned)
    profile = None
    if verified is not None:
        profile = ReferenceProfile.from_dict(ctx.read_json(verified.model_dir / REFERENCE_PROFILE))

    try:
        frame = read_table(spec.batch_uri, s3=ctx.s3)
    except DataValidationError as exc:
        ctx.write_json({"success": False, "source": spec.batch_uri, "checks": [
            {"column": exc.column, "rule": exc.rule, "success": False, "detail": exc.detail}]}, files.validation)
        ctx.publish(files.validation_dir, "validation")
        raise
    digest = table_digest(frame)
    report = validate_batch(frame, ctx.config, profile, source=spec.batch_uri)
    ctx.write_json({**report.to_dict(), "data_digest": digest, "reference_version": pinned}, files.validation)
    ctx.publish(files.validation_dir, "validation")
    if not report.success:
        ctx.quarantine(frame)
        report.raise_for_failures()

    write_table(frame, files.batch)
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {TAG_DATA_DIGEST: digest})
    ctx.store.put_file(files.batch, ctx.store_key("batches", files.batch.name))
    ctx.hand_over("validate_data", files.validation_dir, files.batch)
    return {
        "rows": len(frame), "data_digest": digest, "mlflow_run_id": ctx.mlflow_run_id,
        "champion_version": pinned, "first_run": pinned is None, "run_dir": str(ctx.run_dir),
    }


@timed
def analyze_errors(spec: RunSpec, champion_version: int | None) -> Analyzed:
    """Per-sample loss of the batch under a model that never trained on it.

    A skip (one class, fewer rows than folds) is written like any result: summary.json
    says ``skipped`` with the reason and no noise estimate, which the gate rejects.
    """
    from aire.analysis.error_analysis import run_error_analysis
    from aire.analysis.report import write_outputs
    from aire.model.tabular import load_model

    ctx = RunContext(spec)
    ctx.receive("validate_data")
    frame = ctx.batch()
    verified = ctx.verified_version(champion_version)
    # Without a champion, K fold models are trained for min(training.epochs,
    # analysis.cross_fit_epochs) epochs each: a shorter schedule keeps cross-fitting cheap.
    # With one, its probabilities are averaged with a K-fold cross-fit of
    # analysis.champion_blend_epochs epochs (0: the champion alone); see aire.analysis.error_analysis.
    result = run_error_analysis(
        frame, ctx.config, champion=load_model(verified.model_dir) if verified else None)
    write_outputs(result, ctx.files.analysis_dir, top_k=ctx.config.analysis.top_k)
    ctx.publish(ctx.files.analysis_dir, "analysis")
    ctx.hand_over("analyze_errors", ctx.files.analysis_dir)
    summary = ctx.read_json(ctx.files.analysis_summary)
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
    return cast(Analyzed, {**{key: summary.get(key) for key in keys}, "leakage_flagged": leaking})


@timed
def fine_tune(spec: RunSpec, champion_version: int | None) -> Trained:
    """Train the candidate on the batch's training split, warm-started from the champion.

    ``analysis.action`` decides what happens to the split's suspected label errors (see
    ``aire.analysis.suspects``); the holdout is left as it came.
    """
    from aire import atomic
    from aire.analysis.suspects import training_set
    from aire.constants import MODEL_METRICS
    from aire.data.reference_profile import learn_profile
    from aire.data.split import split_batch
    from aire.data.tables import write_table
    from aire.model.tabular import label_classes, load_model
    from aire.model.training import fit

    ctx = RunContext(spec)
    ctx.receive("validate_data", "analyze_errors")
    files = ctx.files
    frame = ctx.batch()
    training, analysis = ctx.config.training, ctx.config.analysis
    label = ctx.config.dataset.label
    train, holdout = split_batch(frame, label, holdout_fraction=training.holdout_fraction, seed=training.seed)
    trained_on = training_set(train, frame, files.analysis_dir, action=analysis.action,
                              weight=analysis.downweight, id_column=ctx.config.dataset.id)
    log.info("analysis.action=%s on %d training rows: %s suspected, %d dropped, %d down-weighted",
             trained_on.action, len(train), trained_on.n_suspected, trained_on.n_dropped,
             trained_on.n_downweighted)
    write_table(trained_on.frame.reset_index(drop=True), files.train)
    write_table(holdout.reset_index(drop=True), files.holdout)

    verified = ctx.verified_version(champion_version)
    learning_rate = spec.learning_rate or training.learning_rate
    result = fit(
        trained_on.frame.reset_index(drop=True), ctx.config,
        init_from=load_model(verified.model_dir) if verified else None,
        sample_weight=trained_on.sample_weight,
        # a cold start keeps every class of the batch even if dropping emptied one
        classes=label_classes(frame[label], label),
        epochs=spec.epochs or training.epochs, learning_rate=learning_rate,
        batch_size=training.batch_size, seed=training.seed, device=training.device,
        on_epoch=lambda epoch, metrics: ctx.registry.log_metrics(ctx.mlflow_run_id, metrics, step=epoch),
    )
    result.model.save(files.model_dir)
    # The batch becomes the reference for the next batch if this candidate is promoted:
    # its profile travels inside the signed model directory, its rows as an artifact.
    atomic.write_json(files.model_dir / REFERENCE_PROFILE, learn_profile(frame, ctx.config).to_dict(), default=str)
    summary = {**result.to_dict(), "warm_start_version": champion_version,
               "analysis_action": trained_on.to_dict()}
    ctx.write_json(summary, files.training)
    # The signed copy leaves out wall time: the same run retrained from the same start gives
    # the same weights, and so the same digest, only if every signed byte is reproducible.
    atomic.write_json(files.model_dir / MODEL_METRICS, {k: v for k, v in summary.items() if k != "seconds"},
                      default=str)
    ctx.registry.log_artifact(ctx.mlflow_run_id, files.batch, REFERENCE_ARTIFACT)
    ctx.registry.log_params(ctx.mlflow_run_id, {
        "epochs": result.epochs, "learning_rate": learning_rate, "device": result.device,
        "warm_start_version": champion_version, "rows_train": len(trained_on.frame),
        "analysis_action": trained_on.action,
    })
    ctx.hand_over("fine_tune", files.train, files.holdout, files.model_dir, files.training)
    return {"device": result.device, "epochs": result.epochs, "seconds": round(result.seconds, 3),
            "rows_train": len(trained_on.frame), "rows_holdout": len(holdout), "warm_start_version": champion_version,
            "analysis_action": trained_on.to_dict()}


@timed
def sign_model(spec: RunSpec, champion_version: int | None = None) -> Signed:
    """Sign the candidate directory with the run's key; record the digest in the ledger."""
    from aire.constants import LEDGER_SIGNED
    from aire.registry.mlflow_registry import candidate_artifacts
    from aire.trust.signing import sign_model as sign

    ctx = RunContext(spec)
    ctx.receive("fine_tune")
    files, keys = ctx.files, ctx.keys
    signed = sign(files.model_dir, files.signature, private_key=keys.private)
    # One entry per run and digest: a load checks that the digest was signed by the very run
    # that holds it, so another run that trained to the same bytes gets its own entry.
    if not ctx.ledger.find(LEDGER_SIGNED, pipeline=ctx.name, digest=signed.digest, mlflow_run_id=ctx.mlflow_run_id,
                           run_key=spec.run_key):
        ctx.ledger.append(LEDGER_SIGNED, {"pipeline": ctx.name, "run_key": spec.run_key, "digest": signed.digest,
                                          "mlflow_run_id": ctx.mlflow_run_id})
    ctx.write_json({"digest": signed.digest, "files": len(signed.files), "public_key": str(keys.public)},
                   files.signing)
    model_path, signature_path = candidate_artifacts(signed.digest)
    ctx.registry.log_artifacts(ctx.mlflow_run_id, files.model_dir, model_path)
    ctx.registry.log_artifact(ctx.mlflow_run_id, files.signature, signature_path)
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {TAG_SIGNED_DIGEST: signed.digest})
    ctx.hand_over("sign_model", files.signature, files.signing)
    return {"digest": signed.digest}


@timed
def evaluate(spec: RunSpec, champion_version: int | None) -> Evaluated:
    """Drift of batch vs reference, quality of candidate vs champion, per-group metrics.

    Whatever can be computed is; what cannot is listed in the report, and the gate rejects
    on the evidence it lacks. Only a model that fails verification stops the stage: no
    unverified model is ever scored.
    """
    from aire.evaluation.candidate import evaluate_candidate
    from aire.evaluation.report import evaluation_metrics, evaluation_summary
    from aire.model.tabular import load_model
    from aire.trust.verify import fetch_reference

    ctx = RunContext(spec)
    files = ctx.files
    # An earlier try's report must not survive this try's failure: the gate would read it,
    # here or (through the hand-off) on another host.
    files.evaluation.unlink(missing_ok=True)
    ctx.withdraw("evaluate", files.evaluation_dir)
    ctx.receive("validate_data", "fine_tune", "sign_model")
    batch = ctx.batch()
    train, holdout = ctx.split()
    ctx.verified_candidate()
    candidate = load_model(files.model_dir)
    verified = ctx.verified_version(champion_version)
    reference = fetch_reference(ctx.registry, verified, files.registry_dir / REFERENCE_ARTIFACT) if verified else None
    evaluate_candidate(ctx.config, holdout, candidate, files.evaluation_dir, batch=batch,
                       champion=load_model(verified.model_dir) if verified else None, reference=reference,
                       train_labels=train[ctx.config.dataset.label] if ctx.config.dataset.label in train else None)
    ctx.publish(files.evaluation_dir, "evaluation")
    ctx.hand_over("evaluate", files.evaluation_dir)
    record = ctx.read_json(files.evaluation)
    ctx.registry.log_metrics(ctx.mlflow_run_id, evaluation_metrics(record))
    return cast(Evaluated, evaluation_summary(record))


@timed
def gate(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Read every piece of evidence from its report; missing or unreadable evidence rejects.

    It never needs an earlier stage to have succeeded: after a failed evaluation it reads
    a missing report as missing evidence and writes a reject decision. Returns the
    decision record (``aire.promotion.gate.GateDecision.to_dict`` plus who and what).
    """
    from dataclasses import replace

    from aire.promotion.decision_record import record_decision
    from aire.promotion.evidence import champion_analysis, champion_noise_rate, evidence_from_files
    from aire.promotion.gate import decide

    ctx = RunContext(spec)
    # Whatever failed handed nothing over: the gate reads it as missing evidence.
    ctx.receive("validate_data", "analyze_errors", "fine_tune", "sign_model", "evaluate", optional=True)
    files = ctx.files
    evidence = evidence_from_files(files.evaluation, files.analysis_summary, files.signing,
                                   first_run=champion_version is None, validation_json=files.validation)
    baseline, why = champion_noise_rate(ctx.registry, ctx.name, champion_version)
    # The champion's own error analysis: the noise estimate's row count and per-group rates.
    reference, unread = champion_analysis(ctx.registry, ctx.name, champion_version,
                                          files.registry_dir / "champion-analysis")
    # The signature is checked now, on the files as they are, not read from a report.
    evidence = replace(evidence, signature_verified=ctx.candidate_verifies(), champion_noise_rate=baseline,
                       **reference,
                       missing={**evidence.missing, **unread, **({"champion_noise_rate": why} if why else {})})
    decision = decide(ctx.config.gates, evidence).to_dict()
    decision.update({"pipeline": ctx.name, "run_key": spec.run_key, "champion_version": champion_version,
                     "evidence": evidence.to_dict()})
    ctx.write_json(decision, files.decision)
    record_decision(ctx.ledger, files.decision, decision, mlflow_run_id=ctx.mlflow_run_id)
    ctx.publish(files.decision, "decision")
    ctx.hand_over("gate", files.decision)
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {TAG_GATE: "promote" if decision["promote"] else "reject"})
    return decision


@timed
def promote(spec: RunSpec, champion_version: int | None = None) -> dict[str, Any]:
    """Register the verified candidate once and move the champion alias to it.

    Only the decision the gate recorded in the ledger counts (``aire.promotion.decision_record``):
    an edited ``decision.json`` is refused. With ``approval.required`` it then checks that a
    person approved this very decision.
    """
    from aire.promotion.approval import approval_for, require_approved
    from aire.promotion.promote import Candidate, promote_candidate

    ctx = RunContext(spec)
    ctx.receive("validate_data", "fine_tune", "sign_model", "gate")
    ctx.receive("approval", optional=True)  # only with approval.required
    files = ctx.files
    decision = ctx.read_json(files.decision)
    if decision.get("promote") is not True:
        raise DataValidationError(str(files.decision), None, "gate decision is promote",
                                  "the gate did not approve this candidate")
    _recorded_decision(ctx)
    approval = approval_for(files.approval, files.decision)
    require_approved(approval, ctx.config.approval, str(files.approval))
    candidate = Candidate(
        pipeline=ctx.name, run_key=spec.run_key, mlflow_run_id=ctx.mlflow_run_id,
        signed_digest=ctx.verified_candidate(), decision=decision,
        data_digest=ctx.read_json(files.validation).get("data_digest") or "")
    result = promote_candidate(ctx.home, ctx.registry, ctx.ledger, candidate, approval=approval,
                               shadow_batches=ctx.config.scoring.shadow.required_healthy_batches)
    ctx.registry.finish_run(ctx.mlflow_run_id)
    return result


@timed
def reject(spec: RunSpec, champion_version: int | None = None, *,
           resolver: ChannelResolver | None = None) -> dict[str, Any]:
    """Record the rejection as an incident with a postmortem stub; the champion stays.

    ``resolver`` turns the config's notify channels into endpoints (the DAG passes the one
    that reads Airflow connections); without it the sweep DAG delivers the notification.
    """
    from aire.incidents.sources import RejectedRun, record_gate_rejection
    from aire.promotion.approval import approval_for

    ctx = RunContext(spec)
    # The incident's evidence is every report there is (aire.incidents.sources.evidence_from_run).
    ctx.receive("validate_data", "analyze_errors", "sign_model", "evaluate", "gate", "approval", optional=True)
    files = ctx.files
    decision = ctx.read_json_or_none(files.decision) or {"promote": False, "checks": []}
    approval = approval_for(files.approval, files.decision)
    ctx.quarantine(ctx.batch())
    run = RejectedRun(pipeline=ctx.name, run_key=spec.run_key, batch_uri=spec.batch_uri,
                      config_path=str(spec.config_path), run_dir=ctx.run_dir, notify=ctx.config.notify)
    result = record_gate_rejection(ctx.home, run, decision, resolver=resolver, object_store=ctx.store,
                                   approval=approval.to_dict() if approval else None)
    ctx.registry.finish_run(ctx.mlflow_run_id, status="FAILED")
    return result


def _recorded_decision(ctx: RunContext) -> str:
    from aire.promotion.decision_record import recorded_decision

    return recorded_decision(ctx.ledger, ctx.files.decision, pipeline=ctx.name, run_key=ctx.spec.run_key,
                             mlflow_run_id=ctx.mlflow_run_id)


def after_gate(spec: RunSpec, decision: dict[str, Any]) -> str:
    """The task the run goes on to: ``promote``, ``await_approval`` (config ``approval``) or ``reject``."""
    from aire.config import load_config
    from aire.promotion.approval import next_step

    return next_step(decision, load_config(spec.config_path).approval).value
