"""Typed settings across the Lambda boundary: what a construct encodes, its handler decodes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU
from bedrock_finetune.settings import (
    CollectTrainingResultsSettings,
    NotifySettings,
    PreflightProperties,
    QualityGate,
    ServeModelSettings,
    ServingSettings,
    Settings,
    SettingsError,
    StartCustomizationJobSettings,
    TeardownProperties,
    ValidateDatasetSettings,
)

REPOSITORY = Path(__file__).resolve().parents[2]

EXAMPLES: list[Settings] = [
    ValidateDatasetSettings(
        base_model_id=CLAUDE_3_HAIKU,
        model_spec=BUILTIN_MODELS[CLAUDE_3_HAIKU].to_dict(),
        default_hyperparameters={"epochCount": 2, "learningRateMultiplier": 0.5},
        chars_per_token=3.5,
    ),
    StartCustomizationJobSettings(
        service_role_arn="arn:aws:iam::123456789012:role/r",
        base_model_id=CLAUDE_3_HAIKU,
        custom_model_kms_key_arn=None,
        stack_tag="arn:aws:cloudformation:us-west-2:123456789012:stack/S/1",
        resource_tags={"team": "ml"},
    ),
    CollectTrainingResultsSettings(
        quality_gate=QualityGate(max_loss_ratio=0.8, optional=True), default_epochs=None
    ),
    ServingSettings(
        base_model_id=CLAUDE_3_HAIKU,
        mode="provisioned",
        approval="always",
        model_units=2,
        commitment="OneMonth",
        prices={CLAUDE_3_HAIKU: {"pt_per_unit_hour": {"OneMonth": 1.5}}},
        stack_tag="t",
    ),
    ServeModelSettings(
        base_model_id="amazon.nova-lite-v1:0:300k",
        mode="on_demand",
        approval="never",
        model_units=1,
        stack_tag="t",
        policy="wait",
        max_wait_seconds=6 * 3600,
        cap_seconds=600,
        topic_arn="arn:t",
    ),
    NotifySettings(topic_arn="arn:t", bucket_name="b", pipeline_log_group="/g", region="eu-west-1"),
    PreflightProperties(
        base_model_id=CLAUDE_3_HAIKU,
        region="us-west-2",
        model_spec={"display_name": "x"},
        model_units=1,
        commitment=None,
        topic_arn="arn:t",
    ),
    TeardownProperties(stack_tag="t", region="us-west-2", topic_arn="arn:t", wait_seconds=1620),
]


@pytest.mark.parametrize("settings", EXAMPLES, ids=lambda s: type(s).__name__)
def test_what_the_construct_encodes_the_handler_decodes(settings: Settings) -> None:
    """Given settings, when encoded as a construct does and decoded as a handler does, then equal."""
    decoded = type(settings).from_env(settings.to_env(include_runtime=True))
    assert decoded == settings
    assert all(isinstance(value, str) for value in settings.to_env().values())


def test_runtime_variables_are_never_set_by_the_construct() -> None:
    """The region is the Lambda runtime's variable: a construct must not set it (Lambda rejects it)."""
    notify = NotifySettings(topic_arn="t", bucket_name="b", pipeline_log_group="g", region="eu-west-1")
    (runtime_name,) = set(notify.to_env(include_runtime=True)) - set(notify.to_env())
    assert notify.to_env(include_runtime=True)[runtime_name] == "eu-west-1"
    assert set(notify.to_env()) == set(NotifySettings.names()) - {runtime_name}


def test_a_missing_or_unreadable_setting_names_the_variable() -> None:
    notify = NotifySettings(topic_arn="t", bucket_name="b", pipeline_log_group="g").to_env()
    topic_name = next(name for name, value in notify.items() if value == "t")
    with pytest.raises(SettingsError, match=rf"{topic_name} is not set for Notify; redeploy"):
        NotifySettings.from_env({k: v for k, v in notify.items() if k != topic_name})
    encoded = ServingSettings(
        base_model_id="m", mode="provisioned", approval="never", model_units=7, stack_tag="t"
    ).to_env()
    units_name = next(name for name, value in encoded.items() if value == "7")
    with pytest.raises(SettingsError, match=rf"{units_name}='one' cannot be read"):
        ServingSettings.from_env({**encoded, units_name: "one"})


def _all_settings_types(base: type[Settings] = Settings) -> set[type[Settings]]:
    found: set[type[Settings]] = set()
    for sub in base.__subclasses__():
        found |= {sub, *_all_settings_types(sub)}
    return found


def test_each_variable_name_is_written_once_in_the_repository() -> None:
    """Every name a construct sets appears in exactly one place of the code: its settings field.

    (The Lambda runtime's own variables, such as the region, are set by the runtime and, offline, by the
    emulation that plays it.)"""
    environment_types = [kind for kind in _all_settings_types() if kind.carried_in == "environment"]
    names = {name for kind in environment_types for name in kind.names(include_runtime=False)}
    assert len(names) >= 10
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py", "Makefile", ".ci/*"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    texts = [(REPOSITORY / f).read_text(errors="replace") for f in files if (REPOSITORY / f).is_file()]
    for name in sorted(names):
        quoted = [f'"{name}"', f"'{name}'"]
        count = sum(text.count(q) for text in texts for q in quoted)
        assert count == 1, f"{name} is written {count} times; read it through its settings type"


def test_a_construct_finds_the_variable_of_a_field_it_sets_itself() -> None:
    from bedrock_finetune.settings import TrainingQueueSettings

    # (the training queue's limit comes from the preflight's answer, a value only CloudFormation knows)
    assert TrainingQueueSettings.variable("max_concurrent_jobs") in TrainingQueueSettings.names()
    with pytest.raises(KeyError):
        TrainingQueueSettings.variable("no_such_field")
