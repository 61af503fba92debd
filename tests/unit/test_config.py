from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aire.config import load_config, parse_config
from aire.errors import ConfigError
from aire.home import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_config_loads_with_every_column() -> None:
    config = load_config(EXAMPLE)
    assert config.name == "credit-risk"
    assert config.dataset.columns[0] == "row_id" and config.dataset.columns[-1] == "risk"
    assert "sex" in config.dataset.columns and "sex" not in config.dataset.features.all


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["dataset"].update(featurs=d["dataset"].pop("features")), "dataset.featurs"),
        (lambda d: d.update(gatez={}), "gatez"),
        (lambda d: d["training"].update(epochs=0), "training.epochs"),
        (lambda d: d["training"].update(holdout_fraction=1.5), "training.holdout_fraction"),
        (lambda d: d["model"].update(recipe="gpt"), "model.recipe"),
        (lambda d: d["gates"].update(max_drift_share="lots"), "gates.max_drift_share"),
        (lambda d: d.pop("name"), "name"),
    ],
)
def test_invalid_config_names_the_key(edit, key: str) -> None:
    data = example()
    edit(data)
    with pytest.raises(ConfigError, match=rf"key '{key}'"):
        parse_config(data, "pipeline.yaml")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["dataset"]["features"].update(numeric=["age", "age"]), "more than once"),
        (lambda d: d["dataset"]["features"]["numeric"].append("risk"), "also listed as a feature"),
        (lambda d: d["dataset"]["rules"].update(colour={"min": 0}), "unknown columns"),
        (lambda d: d.update(name="has spaces"), "name 'has spaces'"),
        (lambda d: d["dataset"]["features"].update(text=["purpose_text"]),
         "the tabular recipe takes no text columns"),
        (lambda d: d["model"].update(base="/bases/minilm"), "model.base belongs to the transformer recipe"),
        (lambda d: d["model"].update(lora={"r": 8}), "model.lora belongs to the transformer recipe"),
        (lambda d: d["model"].update(recipe="transformer"), "needs a pretrained base"),
        (lambda d: d["model"].update(recipe="transformer", base="/bases/minilm"), "aire base-digest DIR"),
        (lambda d: d["model"].update(recipe="transformer", base="/bases/minilm", base_digest="ABC"),
         "64 lowercase hex"),
    ],
)
def test_inconsistent_config_is_refused(edit, message: str) -> None:
    data = example()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "pipeline.yaml")


def test_unreadable_and_non_mapping_configs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listy)


def test_errors_name_keys_and_lines_never_the_file_s_content(tmp_path: Path) -> None:
    """The attack (issue 13, case 10): `aire status --config <not a config>` printed its lines."""
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("".join(f"db password {n} = hunter{n}: x\n" for n in range(30)))
    with pytest.raises(ConfigError) as caught:
        load_config(secrets)
    message = str(caught.value)
    assert "hunter" not in message and "password" not in message
    assert "<unknown key>" in message and "and " in message  # counted, capped, not listed
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: ok\ntoken: [s3cr3t-value\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+$") as caught:
        load_config(broken)
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize("hidden", [[1_000_000, 1_000_000], [0], [], [16] * 9])
def test_model_size_is_bounded(hidden: list[int]) -> None:
    """The attack (issue 13, case 7): a config whose model.hidden tried to allocate 4 TB."""
    with pytest.raises(ConfigError, match="model.hidden"):
        parse_config({**example(), "model": {"hidden": hidden}}, "pipeline.yaml")


def test_a_transformer_pipeline_is_refused_until_its_stages_read_text() -> None:
    # The recipe's model settings parse (the library trains on them); a pipeline does not yet.
    data = example()
    data["model"] = {"recipe": "transformer", "base": "/bases/minilm", "base_digest": "0" * 64,
                     "lora": {"r": 4, "alpha": 8}, "max_length": 64}
    with pytest.raises(ConfigError, match="the pipeline's stages do not take text yet"):
        parse_config(data, "pipeline.yaml")
    from aire.config import ModelSpec

    spec = ModelSpec.model_validate(data["model"])
    assert spec.lora is not None and (spec.lora.r, spec.lora.alpha, spec.lora.dropout) == (4, 8, 0.05)
