"""The model catalog: every model has cited facts, round-trips through the configuration, and
the Region follows the model."""

from __future__ import annotations

import json

import pytest

from bedrock_finetune.catalog import (
    BUILTIN_MODELS,
    CLAUDE_3_HAIKU,
    DATA_FORMATS,
    NOVA_2_LITE,
    NOVA_LITE,
    CatalogError,
    ModelSpec,
)
from stacks.application import cdk_json_context
from stacks.config import ConfigError, load_config

EXPECTED = {
    "anthropic.claude-3-haiku-20240307-v1:0:200k",
    "amazon.nova-micro-v1:0:128k",
    "amazon.nova-lite-v1:0:300k",
    "amazon.nova-pro-v1:0:300k",
    "amazon.nova-2-lite-v1:0:256k",
    "meta.llama3-1-8b-instruct-v1:0:128k",
    "meta.llama3-1-70b-instruct-v1:0:128k",
    "meta.llama3-2-1b-instruct-v1:0:128k",
    "meta.llama3-2-3b-instruct-v1:0:128k",
    "meta.llama3-2-11b-instruct-v1:0:128k",
    "meta.llama3-2-90b-instruct-v1:0:128k",
}


def test_the_catalog_has_every_model_bedrock_fine_tunes():
    assert set(BUILTIN_MODELS) == EXPECTED


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_every_model_is_complete_and_cites_aws_pages(model_id):
    spec = BUILTIN_MODELS[model_id]
    assert spec.regions and spec.data_format in DATA_FORMATS and spec.serving_modes
    assert spec.sources and all(s.startswith("https://") for s in spec.sources)
    assert all("shared/" not in s for s in spec.sources)
    for hp in spec.hyperparameters:
        assert hp.minimum <= hp.default <= hp.maximum
    assert spec.limits.min_train_records <= spec.limits.max_train_records <= spec.limits.max_total_records


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_every_model_round_trips_through_its_dict(model_id):
    spec = BUILTIN_MODELS[model_id]
    again = ModelSpec.from_dict(model_id, json.loads(json.dumps(spec.to_dict())), "models")
    assert again == spec


def test_claude_3_haiku_is_unchanged_and_past_end_of_life_in_us_west_2():
    haiku = BUILTIN_MODELS[CLAUDE_3_HAIKU]
    assert haiku.regions == ("us-west-2",)
    assert haiku.serving_modes == ("provisioned",)
    assert haiku.limits.min_train_records == 32 and haiku.limits.max_tokens_per_record == 32_000
    notice = haiku.lifecycle_in("us-west-2")
    assert notice is not None and notice.status == "EOL" and notice.date == "2026-09-10"


@pytest.mark.parametrize("model_id", sorted(m for m in EXPECTED if m.startswith("meta.llama3-2")))
def test_llama_32_has_no_documented_lifecycle_date_and_says_so(model_id):
    # AWS's lifecycle page gives no Legacy or end-of-life date for Llama 3.2: it stays Active,
    # and the entry says so and where to add a date when one is published
    llama = BUILTIN_MODELS[model_id]
    assert llama.lifecycle == () and llama.lifecycle_in("us-west-2") is None
    assert any("no Legacy or end-of-life date" in note and "Active" in note for note in llama.notes)
    assert any(source.endswith("/model-lifecycle.html") for source in llama.sources)


def test_nova_2_takes_no_validation_file_and_reasoning_content():
    nova2 = BUILTIN_MODELS[NOVA_2_LITE]
    assert not nova2.takes_validation_file and nova2.reasoning_content


def test_a_malformed_spec_names_the_key():
    data = BUILTIN_MODELS[NOVA_LITE].to_dict()
    with pytest.raises(CatalogError, match=r"models\.x\.data_format = 'yaml'"):
        ModelSpec.from_dict("x", {**data, "data_format": "yaml"})
    with pytest.raises(CatalogError, match=r"models\.x\.serving_modes"):
        ModelSpec.from_dict("x", {**data, "serving_modes": ["serverless"]})


def test_the_region_follows_the_model():
    assert load_config(cdk_json_context()).region == "us-west-2"
    config = load_config(cdk_json_context(base_model_id=NOVA_LITE))
    assert config.region == "us-east-1"
    assert config.model.data_format == "bedrock-conversation-2024"
    # The Haiku defaults in cdk.json are keyed by model: they do not apply to Nova
    assert config.hyperparameters == {}


def test_a_region_that_cannot_fine_tune_the_model_fails_with_the_regions_that_can():
    with pytest.raises(
        ConfigError, match=r"region = 'us-west-2': Amazon Nova Lite fine-tuning is offered in us-east-1"
    ):
        load_config(cdk_json_context(base_model_id=NOVA_LITE, region="us-west-2"))


def test_hyperparameters_keyed_by_an_unknown_model_fail():
    with pytest.raises(ConfigError, match="'nope' is not a model in the catalog"):
        load_config(cdk_json_context(hyperparameters={"nope": {"epochCount": 2}}))
    flat = load_config(cdk_json_context(base_model_id=NOVA_LITE, hyperparameters={"epochCount": 3}))
    assert flat.hyperparameters == {"epochCount": 3}
