"""A failed run's cause: whole sentences that point at the report that explains the failure."""

from __future__ import annotations

import json

import pytest

from bedrock_finetune.notifications import Links, failure_notice

LINKS = Links(region="us-west-2", bucket="data-bucket", log_group="/pipeline/logs")
EXECUTION = "arn:aws:states:us-west-2:123456789012:execution:sm:exec-1"
RUN = {"bucket": "data-bucket", "key": "datasets/run-1/train.jsonl", "run": "run-1", "versionId": "v1"}
VALIDATED = {"reportUri": "s3://data-bucket/reports/run-1/validation.json"}
TRAINED = {"reportUri": "s3://data-bucket/reports/run-1/training.json"}


def _cause(step: str, error: str, message: str, **state: object) -> str:
    cause = json.dumps({"errorType": error, "errorMessage": message})
    notice = failure_notice(
        {"run": RUN, "failure": {"step": step, "error": error, "cause": cause}, **state}, LINKS, EXECUTION
    )
    return notice.cause


@pytest.mark.parametrize(
    ("step", "error", "message", "state", "points_at"),
    [
        pytest.param(
            "Validate dataset",
            "DatasetInvalid",
            "run run-1 has 40 error(s) and was not started",
            {},
            "The validation report s3://data-bucket/reports/run-1/validation.json lists every problem.",
            id="invalid data: the validation report",
        ),
        pytest.param(
            "Create provisioned throughput",
            "BedrockQuotaExceeded",
            "no model units; ask AWS Support",
            {"validation": VALIDATED, "training": TRAINED},
            "CloudWatch Logs /pipeline/logs and the execution history have the details.",
            id="anything else: the logs, not a report that does not explain it",
        ),
    ],
)
def test_a_cause_ends_with_a_sentence_naming_what_explains_the_failure(
    step, error, message, state, points_at
):
    # Given a run that failed at a step, with the reports it had written by then
    # When its failure notice is built
    cause = _cause(step, error, message, **state)
    # Then the cause states the failure as a sentence and ends with the one place that explains it
    assert cause.startswith(f"{step} ")
    assert f": {message}. " in cause
    assert cause.endswith(points_at)
    assert "Look at:" not in cause


def test_a_quality_gate_not_met_points_at_the_training_report_its_error_names():
    # Given Collect training results' error for a gate not met, which names the report it wrote
    message = (
        "final validation loss 2.1 is above the configured maximum 1.5. The training report "
        "s3://data-bucket/reports/run-1/training.json has the losses."
    )
    # When the cause is built (the run had a validation report too)
    cause = _cause("Quality gate", "QualityGateNotMet", message, validation=VALIDATED)
    # Then it ends with the training report, named once, and not the validation report or the logs
    assert cause == f"Quality gate not met: {message}"
    assert "validation.json" not in cause and "CloudWatch" not in cause


def test_a_message_that_already_names_its_report_is_not_repeated():
    # Given the validator's own message, which ends with the report's address
    message = "run run-1 has 1 error(s). Full report: s3://data-bucket/reports/run-1/validation.json"
    # When the cause is built
    cause = _cause("Validate dataset", "DatasetInvalid", message)
    # Then the address appears once, and the cause is a sentence
    assert cause.count("reports/run-1/validation.json") == 1
    assert cause.endswith("validation.json.")
