"""Deterministic names stay inside Bedrock's limits, and change exactly when the upload changes."""

from __future__ import annotations

import re

import botocore.session
import pytest

from bedrock_finetune.naming import RunIdentity, names_for

_MODEL = botocore.session.get_session().get_service_model("bedrock")


def _pattern(operation: str, member: str) -> tuple[re.Pattern[str], int]:
    shape = _MODEL.operation_model(operation).input_shape.members[member]
    return re.compile(f"^(?:{shape.metadata['pattern']})$"), int(shape.metadata["max"])


JOB_NAME = _pattern("CreateModelCustomizationJob", "jobName")
MODEL_NAME = _pattern("CreateModelCustomizationJob", "customModelName")
TOKEN = _pattern("CreateModelCustomizationJob", "clientRequestToken")
PT_NAME = _pattern("CreateProvisionedModelThroughput", "provisionedModelName")


def _identity(key: str = "datasets/run-1/train.jsonl", version: str | None = "v1") -> RunIdentity:
    return RunIdentity(bucket="bucket", key=key, version_id=version, etag='"abc"')


@pytest.mark.parametrize(
    "run",
    ["json-mode", "a", "R", "x" * 100, "under_score.and.dots", "--a--b__c..d", "9lives", "UPPER-lower_09.x"],
)
def test_names_match_the_botocore_patterns_and_lengths(run: str) -> None:
    names = names_for(run, _identity(f"datasets/{run}/train.jsonl"))
    for value, (pattern, maximum) in (
        (names.job_name, JOB_NAME),
        (names.custom_model_name, MODEL_NAME),
        (names.provisioned_model_name, PT_NAME),
        (names.job_token, TOKEN),
        (names.throughput_token, TOKEN),
    ):
        assert len(value) <= maximum, value
        assert pattern.match(value), value


def test_same_upload_gives_same_names() -> None:
    assert names_for("run-1", _identity()) == names_for("run-1", _identity())


def test_new_version_of_the_same_key_is_a_new_run() -> None:
    first, second = names_for("run-1", _identity(version="v1")), names_for("run-1", _identity(version="v2"))
    assert first.job_name != second.job_name
    assert first.provisioned_model_name != second.provisioned_model_name
    assert first.job_token != second.job_token


def test_unversioned_buckets_fall_back_to_the_etag() -> None:
    a = RunIdentity(bucket="b", key="datasets/r/train.jsonl", version_id=None, etag='"e1"')
    b = RunIdentity(bucket="b", key="datasets/r/train.jsonl", version_id=None, etag='"e2"')
    assert names_for("r", a).job_name != names_for("r", b).job_name


def test_names_say_which_run_they_belong_to() -> None:
    names = names_for("json-mode", _identity("datasets/json-mode/train.jsonl"))
    assert names.job_name.startswith("ft-json-mode-")
    assert names.custom_model_name.endswith("-model")
    assert names.provisioned_model_name.endswith("-pt")
