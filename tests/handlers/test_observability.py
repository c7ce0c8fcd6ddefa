"""What the handlers tell operators: the run's keys on every log line, and the metrics the alarms and the
dashboard ask for (stacks/observability.py), with exactly the dimensions they ask for."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bedrock_finetune import metrics
from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU
from bedrock_finetune.settings import ValidateDatasetSettings
from tests.conftest import FakeLambdaContext
from tests.handlers.runs import EXECUTION_ARN, RUN

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "json-mode"


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every line the handlers' Powertools logger writes during the test."""
    from handlers._runtime import logger

    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    yield stream


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def bucket(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the versioned data bucket and the validator's settings in the environment."""
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="data-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_bucket_versioning(Bucket="data-bucket", VersioningConfiguration={"Status": "Enabled"})
    settings = ValidateDatasetSettings(
        base_model_id=CLAUDE_3_HAIKU,
        model_spec=BUILTIN_MODELS[CLAUDE_3_HAIKU].to_dict(),
        default_hyperparameters={"epochCount": 2},
        chars_per_token=3,
    )
    for name, value in settings.to_env(include_runtime=True).items():
        monkeypatch.setenv(name, value)


def _upload(files: dict[str, bytes]) -> str:
    s3 = boto3.client("s3", region_name="us-west-2")
    version = ""
    for name, body in files.items():
        response = s3.put_object(Bucket="data-bucket", Key=f"datasets/run-1/{name}", Body=body)
        if name == "train.jsonl":
            version = response["VersionId"]
    return version


def test_every_log_line_of_a_task_names_its_run_line_version_and_execution(
    bucket: None, log_lines: io.StringIO
) -> None:
    """Given a task payload as the state machine sends it, when the handler logs, then each line carries
    the run, the line, the uploaded version and the execution, and the execution name as correlation id."""
    from handlers.validate_dataset import handler

    version = _upload({p.name: p.read_bytes() for p in SAMPLE.iterdir()})
    handler(
        {"run": {**RUN, "versionId": version}, "executionArn": EXECUTION_ARN, "executionName": "exec-1"},
        FakeLambdaContext(),
    )

    records = _records(log_lines)
    assert [r["message"] for r in records] == ["dataset valid"]
    for record in records:
        assert record["run"] == "run-1"
        assert record["line"] == "run-1"
        assert record["version"] == version
        assert record["execution"] == EXECUTION_ARN
        assert record["correlation_id"] == "exec-1"


def test_a_warm_function_does_not_stamp_the_previous_run_on_the_next_event(log_lines: io.StringIO) -> None:
    """Given a function that just served run-1, when it gets an event about no run (a custom resource
    request), then its lines name no run, version, execution or correlation id."""
    from handlers._runtime import logger

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> None:
        logger.info("working")

    handler({"run": RUN, "executionArn": EXECUTION_ARN, "executionName": "exec-1"}, FakeLambdaContext())
    handler({"RequestType": "Delete", "StackId": "stack"}, FakeLambdaContext())

    first, second = _records(log_lines)
    assert (first["run"], first["version"], first["correlation_id"]) == ("run-1", "v1", "exec-1")
    assert not {"run", "line", "version", "execution", "correlation_id"} & second.keys()


def test_the_clean_up_of_an_ended_execution_logs_under_that_execution(log_lines: io.StringIO) -> None:
    """Given the clean-up machine's payload (its own execution, and the ended one's detail), when the
    handler logs, then the lines are those of the ended execution, the one an operator looks up."""
    from handlers._runtime import logger

    @logger.inject_lambda_context(correlation_id_path="executionName")
    def handler(event: dict[str, Any], context: Any) -> None:
        logger.info("cleaning up")

    handler(
        {
            "run": RUN,
            "detail": {"executionArn": EXECUTION_ARN, "name": "exec-1", "status": "ABORTED"},
            "executionArn": "arn:aws:states:us-west-2:123456789012:execution:CleanUp:cleanup-7",
            "executionName": "cleanup-7",
        },
        FakeLambdaContext(),
    )

    (record,) = _records(log_lines)
    assert (record["execution"], record["correlation_id"]) == (EXECUTION_ARN, "exec-1")
    assert record["run"] == record["line"] == "run-1"


def test_a_rejected_dataset_counts_its_errors_by_code_with_the_dimensions_the_dashboard_asks_for(
    bucket: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a train.jsonl with two errors of one code and one of another, when it is validated, then one
    ValidationErrors metric per code is written (EMF), dimensioned by Code and service only."""
    from bedrock_finetune.errors import DatasetInvalid
    from handlers.validate_dataset import handler

    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    lines = [good] * 40 + ["not json", "{still not json", '{"messages": []}']
    version = _upload({"train.jsonl": ("\n".join(lines) + "\n").encode()})
    capsys.readouterr()
    with pytest.raises(DatasetInvalid):
        handler(
            {"run": {**RUN, "versionId": version}, "executionArn": EXECUTION_ARN, "executionName": "e"},
            FakeLambdaContext(),
        )

    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    counts: dict[str, list[float]] = {}
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        names = [m["Name"] for m in directive["Metrics"]]
        if names != [metrics.VALIDATION_ERRORS]:
            continue
        assert directive["Namespace"] == metrics.NAMESPACE
        assert [sorted(d) for d in directive["Dimensions"]] == [
            sorted([metrics.CODE_DIMENSION, metrics.SERVICE_DIMENSION])
        ]
        assert document[metrics.SERVICE_DIMENSION] == metrics.SERVICE
        counts[document[metrics.CODE_DIMENSION]] = document[metrics.VALIDATION_ERRORS]
    assert counts == {"INVALID_JSON": [2.0], "TOO_FEW_MESSAGES": [1.0]}
