"""Names that several modules must agree on, each written once.

- a run's artifacts: the files one stage writes and a later one (or the gate, an incident,
  the UI) reads, relative to the run's folder ``<home>/reports/<pipeline>/<run>/``
  (``aire.home.RunLayout`` turns them into paths);
- MLflow tags on runs and registered versions;
- the registry aliases;
- the kinds of ledger entry.

A name only one module uses stays in that module (a model directory's weights file, for
one). Changing a value here changes what existing homes, registries and ledgers hold.
"""

from __future__ import annotations

# --- a run's artifacts ------------------------------------------------------------------
BATCH = "batch.parquet"  # the validated batch, as every later stage reads it
TRAIN = "train.parquet"  # the training split, after the suspects action
HOLDOUT = "holdout.parquet"  # the rows the candidate never trained on
VALIDATION_DIR = "validation"
VALIDATION = "validation.json"  # in VALIDATION_DIR
ANALYSIS_DIR = "analysis"
ANALYSIS_SUMMARY = "summary.json"  # in ANALYSIS_DIR: the gate's error-analysis evidence
MODEL_DIR = "model"  # the candidate directory that is signed
SIGNATURE = "model.sig"  # the candidate's signature bundle, beside MODEL_DIR
SIGNING = "signing.json"  # the signed digest and the key that signed it
TRAINING = "training.json"
EVALUATION_DIR = "evaluation"
EVALUATION = "evaluation.json"  # in EVALUATION_DIR: the gate's evaluation evidence
EVALUATION_HTML = "evaluation.html"
DRIFT_JSON = "drift.json"
DRIFT_HTML = "drift.html"
DECISION = "decision.json"  # the gate's record: every check, value, threshold, verdict
APPROVAL = "approval.json"  # a person's answer, bound to DECISION by its sha256
QUARANTINE_DIR = "quarantine"  # a refused batch, kept for the people who look into it
REGISTRY_DIR = "registry"  # what was downloaded from the registry for this run

# Inside a model directory, beside the recipe's own files: signed with it.
REFERENCE_PROFILE = "reference_profile.json"  # what the training data looked like
MODEL_METRICS = "metrics.json"

# MLflow artifact folder holding a model's training batch (the next run's drift reference).
REFERENCE_ARTIFACT = "reference"

# --- MLflow tags ------------------------------------------------------------------------
TAG_RUN_KEY = "aire.run_key"  # run and version: the pipeline run that made it
TAG_DATA_DIGEST = "aire.data_digest"  # run and version: the batch's table digest
TAG_SIGNED_DIGEST = "aire.signed_digest"  # run and version: the signed manifest digest
TAG_GATE = "aire.gate"  # run: promote | reject
TAG_PINNED_CHAMPION = "aire.pinned_champion"  # run: the champion version compared against, or none
TAG_BATCH_URI = "aire.batch_uri"
TAG_CONFIG = "aire.config"
TAG_BATCH_LANDED_AT = "aire.batch_landed_at"  # run: when the batch landed (SLO freshness)
TAG_APPROVAL = "aire.approval"  # run: approved | rejected | timed_out
TAG_APPROVED_BY = "aire.approved_by"  # run and version

# --- registry aliases -------------------------------------------------------------------
CHAMPION = "champion"
PREVIOUS = "previous"  # the champion before the last move
CHALLENGER = "challenger"  # registered, passed the gate, not (yet) the champion

# --- ledger entry kinds -----------------------------------------------------------------
LEDGER_SIGNED = "model_signed"  # pipeline, run_key, mlflow_run_id, digest
# A registered version bound to what made it: pipeline, version, run, digest, data digest.
# Every load checks the version against it (aire.trust.verify), not the version's tags alone.
LEDGER_REGISTERED = "model_registered"
LEDGER_GATE = "gate_decision"  # pipeline, run_key, mlflow_run_id, decision_sha256, promote
LEDGER_PROMOTION_INTENT = "promotion_intent"  # written before the aliases move (aire.promotion.promote)
LEDGER_PROMOTION = "promotion"
LEDGER_PROMOTION_ABORTED = "promotion_aborted"  # an intent whose aliases never moved
LEDGER_ROLLBACK = "rollback"
# A candidate that passed the gate, held as the challenger until it has scored
# scoring.shadow.required_healthy_batches healthy batches in shadow (aire.promotion.promote):
LEDGER_SHADOW_HOLD = "shadow_hold"  # pipeline, version, digest, judged_against, required
LEDGER_CHALLENGER_ENDED = "challenger_ended"  # pipeline, version, the unhealthy shadow record
