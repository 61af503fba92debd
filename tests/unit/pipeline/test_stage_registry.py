"""The stage registry: the one list the DAG, `aire stage` and `aire run` are built from."""

from __future__ import annotations

import inspect

import pytest

from aire.cli.main import STAGES
from aire.errors import InputError
from aire.pipeline import stages
from aire.pipeline.stage_registry import OUTCOMES, PIPELINE, stage


def test_every_stage_is_a_function_of_the_stages_module_with_the_one_signature() -> None:
    for entry in (*PIPELINE, *OUTCOMES):
        function = getattr(stages, entry.name)
        assert entry.run is function
        parameters = list(inspect.signature(function).parameters)
        assert parameters[:2] == ["spec", "champion_version"], entry.name


def test_a_stage_needs_only_stages_that_run_before_it() -> None:
    order = [entry.name for entry in PIPELINE]
    for position, entry in enumerate(PIPELINE):
        assert set(entry.needs) | set(entry.after) <= set(order[:position]), entry.name
    assert all(set(outcome.needs) == {"gate"} for outcome in OUTCOMES)


def test_only_a_stage_the_gate_can_decide_without_is_not_fatal() -> None:
    assert [entry.name for entry in PIPELINE if not entry.fatal] == ["evaluate"]
    assert stage("fine_tune").accelerator and not stage("evaluate").accelerator


def test_the_cli_offers_exactly_the_registered_stages() -> None:
    assert STAGES == tuple(entry.command for entry in (*PIPELINE, *OUTCOMES))
    assert stage("sign-model") is stage("sign_model")


def test_an_unknown_stage_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="no stage 'train'.*validate-data.*reject"):
        stage("train")
