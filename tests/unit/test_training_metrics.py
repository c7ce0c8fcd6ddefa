"""Training results from Bedrock's metrics CSVs, and the quality gate."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import boto3
import pytest

from bedrock_finetune.errors import QualityGateNotMet
from bedrock_finetune.reports import write_json
from bedrock_finetune.settings import QualityGate
from bedrock_finetune.training_metrics import (
    LossSeries,
    evaluate_gate,
    parse_loss_csv,
    require_quality_gate,
    training_results,
)

BASE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
JOB_ARN = f"arn:aws:bedrock:us-west-2:123456789012:model-customization-job/{BASE}/abc123def456"
TRAINING_CSV = """step_number,epoch_number,training_loss,perplexity
0,0,2.5,12.18
1,0,2.0,7.39
2,1,1.5,4.48
3,1,1.2,3.32
"""
VALIDATION_CSV = """step_number,epoch_number,validation_loss,perplexity
1,0,2.2,9.03
3,1,1.4,4.06
"""


def test_parse_loss_csv_reads_rows_and_skips_bad_ones() -> None:
    series = parse_loss_csv((TRAINING_CSV + "4,1,nan,0\n5,1,oops,1\n").splitlines(), "training_loss")
    assert series.unusable_lines == (6, 7)
    assert series.final == 1.2
    assert series.best == 1.2
    assert series.epochs == 2
    assert series.steps == 4
    assert series.first_epoch_final() == 2.0


@pytest.fixture
def s3_with_metrics(aws: None) -> Any:
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    base = "outputs/run-1/model-customization-job-abc123def456"
    s3.put_object(
        Bucket="bkt", Key=f"{base}/training_artifacts/step_wise_training_metrics.csv", Body=TRAINING_CSV
    )
    # The extra "validation/" level some samples show: found by listing, not by a fixed path.
    s3.put_object(
        Bucket="bkt",
        Key=f"{base}/validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv",
        Body=VALIDATION_CSV,
    )
    # Another job's metrics under the same run prefix must be ignored.
    s3.put_object(
        Bucket="bkt",
        Key="outputs/run-1/model-customization-job-zzz999zzz999/training_artifacts/step_wise_training_metrics.csv",
        Body="step_number,epoch_number,training_loss,perplexity\n0,0,9.9,1\n",
    )
    return s3


def test_training_results_summarise_final_and_best_losses(s3_with_metrics: Any) -> None:
    results = training_results(
        s3_with_metrics,
        bucket="bkt",
        output_prefix="outputs/run-1/",
        job={"jobArn": JOB_ARN, "outputModelArn": "arn:model", "trainingLoss": 0.0},
        configured_epochs=3,
        gate=QualityGate(),
    )
    assert results["finalTrainingLoss"] == 1.2
    assert results["bestTrainingLoss"] == 1.2
    assert results["finalValidationLoss"] == 1.4
    assert results["bestValidationLoss"] == 1.4
    assert results["firstEpochValidationLoss"] == 2.2
    assert (results["epochs"], results["steps"]) == (2, 4)
    assert results["earlyStopped"] is True  # 2 of 3 configured epochs ran
    assert results["qualityGate"] == {"passed": True, "reason": "no quality gate configured"}
    assert results["metricsFiles"]["training"].endswith(
        "abc123def456/training_artifacts/step_wise_training_metrics.csv"
    )


def test_without_csvs_the_jobs_own_metrics_are_used(aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    results = training_results(
        s3,
        bucket="bkt",
        output_prefix="outputs/run-1/",
        job={"jobArn": JOB_ARN, "trainingLoss": 0.8, "validationLoss": 0.9},
        configured_epochs=2,
        gate=QualityGate(),
    )
    assert (results["finalTrainingLoss"], results["finalValidationLoss"]) == (0.8, 0.9)
    assert results["earlyStopped"] is False


CSV_URI = "s3://bkt/outputs/run-1/model-customization-job-abc123def456/validation_metrics.csv"
SEARCHED = "s3://bkt/outputs/run-1/model-customization-job-abc123def456/"


def _validation(csv_text: str | None) -> LossSeries:
    """The validation CSV as read from CSV_URI, or no file at all (None)."""
    if csv_text is None:
        return LossSeries(())
    return parse_loss_csv(csv_text.splitlines(), "validation_loss", CSV_URI)


@pytest.mark.parametrize(
    ("gate", "passed", "reason"),
    [
        (QualityGate(max_validation_loss=1.5), True, "quality gate met"),
        (QualityGate(max_validation_loss=1.0), False, "final validation loss 1.4000 is above"),
        (QualityGate(max_loss_ratio=0.5), False, "ratio 0.636 is above the configured maximum 0.5"),
        (QualityGate(max_loss_ratio=0.7), True, "quality gate met"),
        (
            QualityGate(max_validation_loss=1.5, max_loss_ratio=0.5),
            False,
            "ratio 0.636 is above the configured maximum 0.5; the custom model is kept",
        ),
    ],
)
def test_quality_gate_on_usable_metrics(gate: QualityGate, passed: bool, reason: str) -> None:
    verdict = evaluate_gate(gate, _validation(VALIDATION_CSV), searched=SEARCHED)
    assert verdict["passed"] is passed
    assert reason in verdict["reason"]


# Each way the gate can have nothing to measure, and the words that say what is missing.
NOTHING_TO_MEASURE = [
    pytest.param(
        QualityGate(max_validation_loss=1.0),
        None,
        None,
        f"the job wrote no validation_metrics.csv under {SEARCHED} and reported no validation loss",
        id="no-csv-no-job-loss",
    ),
    pytest.param(
        QualityGate(max_loss_ratio=0.9),
        None,
        1.2,
        f"the loss ratio needs the per-epoch validation losses of validation_metrics.csv, and the job "
        f"wrote none under {SEARCHED}",
        id="ratio-without-csv",
    ),
    pytest.param(
        QualityGate(max_loss_ratio=0.9),
        "step_number,epoch_number,validation_loss,perplexity\n",
        None,
        f"{CSV_URI} has no rows",
        id="header-only",
    ),
    pytest.param(
        QualityGate(max_loss_ratio=0.9),
        "step_number,epoch_number,perplexity\n1,0,9.0\n3,1,4.0\n",
        None,
        f"{CSV_URI} has no validation_loss column",
        id="no-loss-column",
    ),
    pytest.param(
        QualityGate(max_loss_ratio=0.9),
        VALIDATION_CSV + "5,2,nan,1\n7,2,,1\n",
        None,
        f"{CSV_URI}: line(s) 4, 5 have no usable validation_loss (missing, not a number, or not finite)",
        id="unusable-final-rows",
    ),
    pytest.param(
        QualityGate(max_validation_loss=2.0),
        "step_number,epoch_number,validation_loss,perplexity\n1,0,inf,1\n3,1,1.4,4.06\n",
        None,
        f"{CSV_URI}: line(s) 2 have no usable validation_loss (missing, not a number, or not finite)",
        id="unusable-first-row",
    ),
    pytest.param(
        QualityGate(max_loss_ratio=0.9),
        "step_number,epoch_number,validation_loss,perplexity\n1,0,0,1\n3,1,1.4,4.06\n",
        None,
        f"{CSV_URI}: the first epoch's validation loss is 0.0, so the ratio is undefined",
        id="zero-baseline",
    ),
]


@pytest.mark.parametrize(("gate", "csv_text", "job_loss", "missing"), NOTHING_TO_MEASURE)
def test_a_gate_with_nothing_to_measure_fails_closed_naming_what_is_missing(
    gate: QualityGate, csv_text: str | None, job_loss: float | None, missing: str
) -> None:
    # Given a configured gate and metrics it cannot measure
    verdict = evaluate_gate(gate, _validation(csv_text), job_loss, searched=SEARCHED)
    # Then the run does not pass, and the reason names the file or the lines
    assert verdict["passed"] is False
    assert f"the quality gate has nothing to measure: {missing}" in verdict["reason"]
    assert "quality_gate_optional" in verdict["reason"]
    assert verdict["reason"].endswith("the custom model is kept, no throughput was bought")


@pytest.mark.parametrize(("gate", "csv_text", "job_loss", "missing"), NOTHING_TO_MEASURE)
def test_an_optional_gate_with_nothing_to_measure_lets_the_run_through_and_says_why(
    gate: QualityGate, csv_text: str | None, job_loss: float | None, missing: str
) -> None:
    optional = dataclasses.replace(gate, optional=True)
    verdict = evaluate_gate(optional, _validation(csv_text), job_loss, searched=SEARCHED)
    assert verdict == {
        "passed": True,
        "reason": f"quality gate skipped (quality_gate_optional is set): {missing}",
    }


def test_an_optional_gate_still_fails_on_what_it_can_measure() -> None:
    # Given an optional gate whose loss limit is measurable (the job reported it) but whose ratio is not
    gate = QualityGate(max_validation_loss=1.0, max_loss_ratio=0.9, optional=True)
    verdict = evaluate_gate(gate, _validation(None), 1.2, searched=SEARCHED)
    # Then the measurable limit still decides
    assert verdict["passed"] is False
    assert verdict["reason"].startswith("final validation loss 1.2000 is above the configured maximum 1")


def test_without_a_csv_the_loss_limit_uses_the_jobs_own_validation_loss() -> None:
    verdict = evaluate_gate(QualityGate(max_validation_loss=1.0), _validation(None), 0.9, searched=SEARCHED)
    assert verdict == {"passed": True, "reason": "quality gate met"}


def test_training_results_name_the_missing_validation_csv(aws: None) -> None:
    # Given a job whose output has a training CSV but no validation CSV, and a loss-ratio gate
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_object(
        Bucket="bkt",
        Key="outputs/run-1/model-customization-job-abc123def456/training_artifacts/step_wise_training_metrics.csv",
        Body=TRAINING_CSV,
    )
    results = training_results(
        s3,
        bucket="bkt",
        output_prefix="outputs/run-1/",
        job={"jobArn": JOB_ARN, "validationLoss": 0.9},
        configured_epochs=2,
        gate=QualityGate(max_loss_ratio=0.9),
    )
    # Then the gate fails and says where the CSV was looked for
    assert results["qualityGate"]["passed"] is False
    assert f"wrote none under {SEARCHED}" in results["qualityGate"]["reason"]


def test_training_results_name_the_unusable_rows(s3_with_metrics: Any) -> None:
    key = "outputs/run-1/model-customization-job-abc123def456/validation_artifacts/validation_metrics.csv"
    s3_with_metrics.put_object(Bucket="bkt", Key=key, Body=VALIDATION_CSV + "5,2,NaN,1\n")
    s3_with_metrics.delete_object(
        Bucket="bkt",
        Key="outputs/run-1/model-customization-job-abc123def456/validation_artifacts/"
        "post_fine_tuning_validation/validation/validation_metrics.csv",
    )
    results = training_results(
        s3_with_metrics,
        bucket="bkt",
        output_prefix="outputs/run-1/",
        job={"jobArn": JOB_ARN},
        configured_epochs=2,
        gate=QualityGate(max_validation_loss=3.0),
    )
    assert results["qualityGate"]["passed"] is False
    assert f"s3://bkt/{key}: line(s) 4 have no usable validation_loss" in results["qualityGate"]["reason"]


def test_report_is_written_as_json(aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    uri = write_json(s3, "bkt", "reports/run-1/training.json", {"finalTrainingLoss": 1.2})
    assert uri == "s3://bkt/reports/run-1/training.json"
    body = s3.get_object(Bucket="bkt", Key="reports/run-1/training.json")["Body"].read()
    assert json.loads(body) == {"finalTrainingLoss": 1.2}


@pytest.mark.parametrize(
    ("gate", "raises"),
    [
        ({"passed": True, "reason": "no quality gate configured"}, None),
        ({"passed": True, "reason": "skipped: no validation loss (quality_gate_optional)"}, None),
        ({"passed": False, "reason": "final validation loss 2.1 is above the configured maximum 1.5"},
         "final validation loss 2.1 is above the configured maximum 1.5. The training report "
         "s3://b/reports/r/training.json has the losses."),
        ({}, "the quality gate was not evaluated. The training report"),
    ],
)  # fmt: skip
def test_a_gate_not_met_fails_collect_training_results_naming_the_report(
    gate: dict[str, object], raises: str | None
) -> None:
    # Given the results of a run, with its gate's verdict
    results = {"qualityGate": gate, "reportUri": "s3://b/reports/r/training.json"}
    # When Collect training results checks it
    if raises is None:
        require_quality_gate(results)  # Then a passed gate lets the run go on
        return
    # Then a gate not met (or never evaluated) fails the task with QualityGateNotMet
    with pytest.raises(QualityGateNotMet) as error:
        require_quality_gate(results)
    assert str(error.value).startswith(raises)
