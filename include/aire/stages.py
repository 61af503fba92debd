"""The retraining pipeline's stages, one function each.

The DAG's tasks and the ``aire`` command line call these same functions. Each takes a
``RunSpec`` (plus the champion version pinned by ``validate_data``, so a champion that
changes mid-run cannot mix two models' evidence) and returns a small JSON-able dict.
"""

from __future__ import annotations

import logging
from typing import Any

from aire.errors import DataValidationError
from aire.run_context import RunContext, RunSpec

log = logging.getLogger(__name__)


def validate_data(spec: RunSpec) -> dict[str, Any]:
    """Read the batch, check it against config rules and the champion's reference profile."""
    from aire.tables import read_table, table_digest, write_table
    from aire.validation import ReferenceProfile, validate_batch

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


def analyze_errors(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Per-sample loss of the batch under a model that never trained on it."""
    from aire.error_analysis import run_error_analysis, write_outputs
    from aire.model import load_model

    ctx = RunContext(spec)
    frame = ctx.batch()
    verified = ctx.verified_version(champion_version)
    # Cross-fitting (no champion yet) trains K models: a shorter schedule keeps it cheap.
    result = run_error_analysis(
        frame, ctx.config, champion=load_model(verified.model_dir) if verified else None,
        epochs=min(ctx.config.training.epochs, 20),
    )
    write_outputs(result, ctx.path("analysis"))
    ctx.publish(ctx.path("analysis"), "analysis")
    summary = ctx.read_json("analysis", "summary.json")
    ctx.registry.log_metrics(ctx.mlflow_run_id, {
        "analysis.estimated_noise_rate": summary.get("estimated_noise_rate"),
        "analysis.n_suspected": summary.get("n_suspected"),
    })
    return {key: summary.get(key) for key in ("estimated_noise_rate", "n_suspected", "n_rows", "skipped", "method")}


def fine_tune(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Train the candidate on the batch's training split, warm-started from the champion."""
    from sklearn.model_selection import train_test_split

    from aire.model import load_model
    from aire.tables import write_table
    from aire.training import fit
    from aire.validation import learn_profile

    ctx = RunContext(spec)
    frame = ctx.batch()
    training = ctx.config.training
    label = frame[ctx.config.dataset.label]
    stratify = label if label.value_counts().min() >= 2 else None
    train, holdout = train_test_split(
        frame, test_size=training.holdout_fraction, random_state=training.seed, stratify=stratify
    )
    write_table(train.reset_index(drop=True), ctx.path("train.parquet"))
    write_table(holdout.reset_index(drop=True), ctx.path("holdout.parquet"))

    verified = ctx.verified_version(champion_version)
    result = fit(
        train.reset_index(drop=True), ctx.config,
        init_from=load_model(verified.model_dir) if verified else None,
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
    summary = {**result.to_dict(), "warm_start_version": champion_version}
    ctx.write_json(summary, "training.json")
    # The signed copy leaves out wall time: the same run retrained from the same start gives
    # the same weights, and so the same digest, only if every signed byte is reproducible.
    _write(model_dir / "metrics.json", {k: v for k, v in summary.items() if k != "seconds"})
    ctx.registry.log_artifact(ctx.mlflow_run_id, ctx.path("batch.parquet"), "reference")
    ctx.registry.log_params(ctx.mlflow_run_id, {
        "epochs": result.epochs, "learning_rate": spec.learning_rate or training.learning_rate,
        "device": result.device, "warm_start_version": champion_version, "rows_train": len(train),
    })
    return {"device": result.device, "epochs": result.epochs, "seconds": round(result.seconds, 3),
            "rows_train": len(train), "rows_holdout": len(holdout), "warm_start_version": champion_version}


def sign_model(spec: RunSpec) -> dict[str, Any]:
    """Sign the candidate directory with the home's key; record the digest in the ledger."""
    from aire.registry import candidate_artifacts
    from aire.signing import sign_model as sign
    from aire.trust import SIGNED

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


def evaluate(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Drift of batch vs reference, quality of candidate vs champion, per-group metrics."""
    from aire.evaluation import drift, fairness, quality, write_report
    from aire.model import load_model

    ctx = RunContext(spec)
    batch = ctx.batch()
    _, holdout = ctx.split()
    candidate = load_model(_verified_candidate(ctx))
    verified = ctx.verified_version(champion_version)
    champion = load_model(verified.model_dir) if verified else None
    out = ctx.path("evaluation")
    out.mkdir(exist_ok=True)

    drift_result = None
    if verified is not None:
        drift_result = drift(_champion_reference(ctx, verified), batch, ctx.config, out)

    label = ctx.config.dataset.label
    y_true = holdout[label].to_numpy()

    def judge(model: Any) -> tuple[Any, Any]:
        proba = model.predict_proba(holdout)
        predicted = [model.classes[i] for i in proba.argmax(axis=1)]
        positive = max(model.classes)
        return quality(y_true, proba, model.classes), fairness(holdout, y_true, predicted, ctx.config, positive)

    quality_candidate, fairness_candidate = judge(candidate)
    quality_champion, fairness_champion = judge(champion) if champion else (None, None)
    write_report(out, drift_result, quality_candidate, quality_champion, fairness_candidate, fairness_champion)
    ctx.publish(out, "evaluation")
    metrics = {f"candidate.{k}": v for k, v in quality_candidate.to_dict().items() if isinstance(v, float)}
    if drift_result is not None:
        metrics["drift.share"] = drift_result.drift_share
    ctx.registry.log_metrics(ctx.mlflow_run_id, metrics)
    return {"drift_share": drift_result.drift_share if drift_result else None,
            "accuracy": quality_candidate.accuracy,
            "champion_accuracy": quality_champion.accuracy if quality_champion else None}


def gate(spec: RunSpec, champion_version: int | None) -> dict[str, Any]:
    """Read every piece of evidence from its report; missing or unreadable evidence rejects."""
    from dataclasses import replace

    from aire.gate import decide, evidence_from_files

    ctx = RunContext(spec)
    evidence = evidence_from_files(
        ctx.path("evaluation", "evaluation.json"), ctx.path("analysis", "summary.json"),
        ctx.path("signing.json"), first_run=champion_version is None,
        validation_json=ctx.path("validation", "validation.json"),
    )
    # The signature is checked now, on the files as they are, not read from a report.
    evidence = replace(evidence, signature_verified=_candidate_verifies(ctx))
    decision = decide(ctx.config.gates, evidence).to_dict()
    decision.update({"pipeline": ctx.name, "run_key": spec.run_key, "champion_version": champion_version})
    ctx.write_json(decision, "decision.json")
    ctx.publish(ctx.path("decision.json"), "decision")
    ctx.registry.set_run_tags(ctx.mlflow_run_id, {"aire.gate": "promote" if decision["promote"] else "reject"})
    return decision


def promote(spec: RunSpec) -> dict[str, Any]:
    """Register the verified candidate once and move the champion alias to it."""
    from aire.promotion import promote_candidate

    ctx = RunContext(spec)
    decision = ctx.read_json("decision.json")
    if decision.get("promote") is not True:
        raise DataValidationError(str(ctx.path("decision.json")), None, "gate decision is promote",
                                  "the gate did not approve this candidate")
    digest = _verified_candidate_digest(ctx)
    result = promote_candidate(ctx, digest)
    ctx.registry.finish_run(ctx.mlflow_run_id)
    return result


def reject(spec: RunSpec) -> dict[str, Any]:
    """Record the rejection as an incident with a postmortem stub; the champion stays."""
    from aire.incident_hooks import record_gate_rejection

    ctx = RunContext(spec)
    decision = _json_or_none(ctx.path("decision.json")) or {"promote": False, "checks": []}
    _quarantine(ctx, ctx.batch())
    result = record_gate_rejection(ctx, decision)
    ctx.registry.finish_run(ctx.mlflow_run_id, status="FAILED")
    return result


# --- helpers --------------------------------------------------------------------------
_PINNED = "aire.pinned_champion"


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


def _champion_reference(ctx: RunContext, verified: Any) -> Any:
    """The champion's training batch, checked against the data digest its version records."""
    import pandas as pd

    from aire.errors import VerificationError
    from aire.tables import table_digest

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
    from aire.signing import verify_model
    from aire.trust import SIGNED

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
    from aire.tables import write_table

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

    A stage's failure is recorded as an incident exactly as the DAG's callback would.
    """
    from aire.incident_hooks import record_task_failure

    results: dict[str, Any] = {"run_key": spec.run_key}

    def step(name: str, call: Any, *args: Any) -> Any:
        try:
            results[name] = call(spec, *args)
        except Exception as exc:
            record_task_failure(dag_id="aire-cli", run_id=spec.run_key, task_id=name, try_number=1,
                                exception=exc,
                                params={"config": spec.config_path, "batch": spec.batch_uri})
            raise
        return results[name]

    champion = step("validate_data", validate_data)["champion_version"]
    step("analyze_errors", analyze_errors, champion)
    step("fine_tune", fine_tune, champion)
    step("sign_model", sign_model)
    step("evaluate", evaluate, champion)
    decision = step("gate", gate, champion)
    if decision["promote"]:
        step("promote", promote)
        results["outcome"] = "promoted"
    else:
        step("reject", reject)
        results["outcome"] = "rejected"
    return results
