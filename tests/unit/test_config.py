"""Configuration: every bad key or value fails synth with a message naming key, value and what is allowed."""

from __future__ import annotations

import json

import pytest

from bedrock_finetune.catalog import CLAUDE_3_HAIKU
from bedrock_finetune.pricing import prices_for
from stacks.application import cdk_json_context
from stacks.config import CLI_ACCOUNT_VARIABLE, ConfigError, load_config

HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0:200k"


def _spec_for_new_model() -> dict[str, object]:
    return {
        "display_name": "Claude Haiku 4.5",
        "regions": ["us-west-2"],
        "limits": {
            "min_train_records": 32,
            "max_train_records": 20000,
            "max_validation_records": 1000,
            "max_total_records": 20000,
            "max_tokens_per_record": 64000,
            "max_train_bytes": 10 * 1024**3,
            "max_validation_bytes": 1024**3,
        },
        "hyperparameters": {"epochCount": {"kind": "int", "min": 1, "max": 5, "default": 2}},
    }


def test_defaults_from_cdk_json_give_haiku_in_us_west_2() -> None:
    # Given the committed cdk.json
    # When it is loaded
    config = load_config(cdk_json_context())
    # Then the defaults are the documented ones
    assert config.base_model_id == CLAUDE_3_HAIKU
    assert config.region == "us-west-2"
    assert config.model_units == 1
    assert config.commitment is None
    assert config.hyperparameters == {"epochCount": 2, "batchSize": 32, "learningRateMultiplier": 1.0}
    assert config.removal_policy == "retain"
    assert config.default_epochs == 2
    assert config.quality_gate.optional is False  # a gate with nothing to measure fails the run


def test_alarms_go_to_the_notification_topic_unless_an_ops_topic_is_configured() -> None:
    assert load_config(cdk_json_context()).ops_topic_arn is None
    ops = "arn:aws:sns:us-west-2:111122223333:ops-alerts"
    assert load_config(cdk_json_context(ops_topic_arn=ops)).ops_topic_arn == ops


def test_account_comes_from_the_cdk_environment() -> None:
    config = load_config(cdk_json_context(), {CLI_ACCOUNT_VARIABLE: "123456789012"})
    assert config.account == "123456789012"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("model_units", "0", "model_units = '0': must be an integer from 1 to 1000"),
        ("model_units", "two", "model_units = 'two': must be an integer from 1 to 1000"),
        ("commitment", "OneYear", "commitment = 'OneYear': allowed values are none, OneMonth, SixMonths"),
        ("removal_policy", "snapshot", "removal_policy = 'snapshot': allowed values are retain, destroy"),
        ("job_poll_seconds", "5", "job_poll_seconds = '5': must be an integer from 60 to 3600"),
        ("settle_seconds", "-1", "settle_seconds = '-1': must be an integer from 0 to 900"),
        ("max_job_hours", "1000", "max_job_hours = '1000': must be an integer from 1 to 720"),
        (
            "notification_emails",
            "not-an-email",
            "notification_emails: 'not-an-email' is not an e-mail address",
        ),
        ("kms_key_arn", "alias/mine", "kms_key_arn = 'alias/mine': must be a KMS key ARN"),
        ("ops_topic_arn", "ops-alerts", "ops_topic_arn = 'ops-alerts': must be a standard SNS topic ARN"),
        (
            "ops_topic_arn",
            "arn:aws:sns:us-east-1:111122223333:ops",
            "ops_topic_arn = 'arn:aws:sns:us-east-1:111122223333:ops': the topic is in us-east-1, the stack "
            "in us-west-2; CloudWatch alarms notify topics in their own Region",
        ),
        ("permissions_boundary_arn", "boundary", "permissions_boundary_arn = 'boundary': must be an IAM"),
        (
            "region",
            "us-east-1",
            "region = 'us-east-1': Anthropic Claude 3 Haiku fine-tuning is offered in us-west-2",
        ),
        ("region", "mars-1", "region = 'mars-1': not an AWS region name"),
        ("preflight", "maybe", "preflight = 'maybe': must be true or false"),
        ("quality_gate_optional", "sometimes", "quality_gate_optional = 'sometimes': must be true or false"),
        ("log_retention_days", "10", "log_retention_days = 10: CloudWatch accepts"),
        ("tags", '{"aws:owner": "x"}', "tags: key 'aws:owner' is not a valid tag key"),
        ("account", "12345", "account = '12345': must be a 12-digit AWS account ID"),
    ],
)
def test_bad_values_name_the_key_value_and_what_is_allowed(key: str, value: str, expected: str) -> None:
    # Given a -c override with a bad value (the CLI passes strings)
    context = cdk_json_context(**{key: value})
    # When the configuration is loaded, Then the error names key, value and the allowed values
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    assert expected in str(caught.value)


def test_unknown_key_is_rejected_with_the_list_of_allowed_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown configuration key\(s\): model_unit\. Allowed keys: .*model_units"
    ):
        load_config(cdk_json_context(model_unit=2))


def test_cdk_feature_flags_are_not_mistaken_for_unknown_keys() -> None:
    config = load_config(cdk_json_context(**{"@aws-cdk/core:newStyleStackSynthesis": True, "aws:cdk:x": 1}))
    assert config.stack_name == "BedrockFineTuning"


def test_command_line_strings_are_coerced() -> None:
    # Given -c overrides as the CDK CLI passes them: strings
    config = load_config(
        cdk_json_context(
            model_units="3",
            commitment="SixMonths",
            notification_emails="a@example.com, b@example.org",
            hyperparameters='{"epochCount": "4"}',
            quality_gate_max_validation_loss="1.5",
            quality_gate_optional="true",
            preflight="false",
        )
    )
    assert config.model_units == 3
    assert config.commitment == "SixMonths"
    assert config.notification_emails == ("a@example.com", "b@example.org")
    assert config.hyperparameters == {"epochCount": 4}
    assert config.quality_gate.max_validation_loss == 1.5
    assert config.quality_gate.optional is True
    assert config.preflight is False


@pytest.mark.parametrize(
    ("hyperparameters", "expected"),
    [
        ({"epochCount": 11}, "epochCount = 11 is out of range: it must be an integer from 1 to 10"),
        ({"batchSize": 2.5}, "batchSize = 2.5 is not valid: it must be an integer from 4 to 256"),
        ({"learningRate": 0.1}, "does not take hyperparameter 'learningRate'"),
    ],
)
def test_hyperparameter_defaults_are_checked_against_the_catalog(
    hyperparameters: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cdk_json_context(hyperparameters=hyperparameters))
    assert str(caught.value).startswith("hyperparameters: ")
    assert expected in str(caught.value)


def test_model_outside_the_catalog_fails_with_how_to_add_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cdk_json_context(base_model_id=HAIKU_45))
    message = str(caught.value)
    assert f"base_model_id = '{HAIKU_45}'" in message
    assert "add it under the 'models' context key in cdk.json" in message


def test_a_newly_fine_tunable_model_can_be_added_in_configuration() -> None:
    # Given a model spec under the models key, and defaults within its ranges
    config = load_config(
        cdk_json_context(
            base_model_id=HAIKU_45,
            models={HAIKU_45: _spec_for_new_model()},
            hyperparameters={"epochCount": 3},
        )
    )
    # Then the configured limits and ranges are used
    assert config.model.limits.max_tokens_per_record == 64000
    assert config.model.hyperparameter_names == ("epochCount",)
    assert config.hyperparameters == {"epochCount": 3}


def test_a_malformed_model_spec_names_the_bad_key() -> None:
    spec = _spec_for_new_model()
    spec["limits"] = {**spec["limits"], "max_train_records": -5}  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match=rf"models\.{HAIKU_45}\.limits\.max_train_records = -5"):
        load_config(cdk_json_context(base_model_id=HAIKU_45, models={HAIKU_45: spec}))


def test_prices_from_the_command_line_set_the_estimates_figures() -> None:
    # Given -c prices as the CDK CLI passes it: one JSON string
    raw = json.dumps(
        {CLAUDE_3_HAIKU: {"training_per_1k_tokens": 0.01, "pt_per_unit_hour": {"SixMonths": 30}}}
    )
    # When the configuration is loaded
    config = load_config(cdk_json_context(prices=raw))
    # Then the figures are parsed, and prices_for reads them for the deployment's model
    assert config.prices == {
        CLAUDE_3_HAIKU: {"training_per_1k_tokens": 0.01, "pt_per_unit_hour": {"SixMonths": 30.0}}
    }
    prices = prices_for(config.base_model_id, config.prices)
    assert prices.training_per_1k_tokens == 0.01
    assert prices.pt_for("SixMonths") == 30.0
    assert load_config(cdk_json_context()).prices == {}


def test_prices_may_name_a_model_configured_under_models() -> None:
    config = load_config(
        cdk_json_context(
            base_model_id=HAIKU_45,
            models={HAIKU_45: _spec_for_new_model()},
            prices={HAIKU_45: {"storage_per_month": 2}},
        )
    )
    assert prices_for(HAIKU_45, config.prices).storage_per_month == 2.0


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ("cheap", "prices = 'cheap': must be a JSON object, e.g. {\"amazon.nova-lite-v1:0:300k\""),
        (
            {HAIKU_45: {"storage_per_month": 2}},
            f"prices: '{HAIKU_45}' is not a model in the catalog or under models",
        ),
        (
            {CLAUDE_3_HAIKU: {"storage_per_month": "two"}},
            f"prices.{CLAUDE_3_HAIKU}.storage_per_month = 'two': must be a non-negative number of US dollars",
        ),
        ({CLAUDE_3_HAIKU: {"per_hour": 2}}, f"prices.{CLAUDE_3_HAIKU}: unknown field(s) per_hour"),
    ],
)
def test_bad_prices_name_the_key_and_the_field(prices: object, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cdk_json_context(prices=prices))
    assert expected in str(caught.value)


def test_readme_documents_every_configuration_key() -> None:
    from pathlib import Path

    from stacks.config import DEFAULTS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [key for key in DEFAULTS if f"| `{key}` |" not in readme]
    assert missing == [], f"README configuration table lacks {missing}"


@pytest.mark.parametrize(
    ("context", "quota_hours"),
    [
        ({}, 0),  # Claude 3 Haiku: Provisioned Throughput, whose model units never free up by waiting
        ({"base_model_id": "amazon.nova-lite-v1:0:300k"}, 0),  # on demand, but the policy is fail
        ({"base_model_id": "amazon.nova-lite-v1:0:300k", "deployment_quota_policy": "wait"}, 2 * 6),
        (
            {
                "base_model_id": "amazon.nova-lite-v1:0:300k",
                "deployment_quota_policy": "wait",
                "evaluation": "false",
            },
            6,
        ),
    ],
)
def test_the_execution_timeout_leaves_room_for_every_wait_for_a_deployment_quota(
    context: dict[str, str], quota_hours: int
) -> None:
    # Given a configuration, then the execution's timeout is the job's maximum, the approval's, the
    # deployment-quota waits (the line's, and the evaluation's temporary deployment's) and the margin,
    # so a run whose job used most of max_job_hours does not time out while it waits for a quota
    config = load_config(cdk_json_context(**context))
    assert config.deployment_quota_wait_hours == quota_hours
    approval = config.approval_timeout_hours if config.approval_possible else 0
    assert config.execution_timeout_hours == config.max_job_hours + approval + quota_hours + 2
