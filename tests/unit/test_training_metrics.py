"""Training results from Bedrock's metrics CSVs, and the quality gate."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from bedrock_finetune.reports import write_json
from bedrock_finetune.settings import QualityGate
from bedrock_finetune.training_metrics import evaluate_gate, parse_loss_csv, training_results

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


@pytest.mark.parametrize(
    ("gate", "final", "first", "passed", "reason"),
    [
        (QualityGate(max_validation_loss=1.5), 1.4, 2.2, True, "quality gate met"),
        (
            QualityGate(max_validation_loss=1.0),
            1.4,
            2.2,
            False,
            "final validation loss 1.4000 is above",
        ),
        (
            QualityGate(max_loss_ratio=0.5),
            1.4,
            2.2,
            False,
            "ratio 0.636 is above the configured maximum 0.5",
        ),
        (QualityGate(max_loss_ratio=0.7), 1.4, 2.2, True, "quality gate met"),
        (QualityGate(max_validation_loss=1.0), None, None, False, "upload validation.jsonl"),
    ],
)
def test_quality_gate(
    gate: QualityGate, final: float | None, first: float | None, passed: bool, reason: str
) -> None:
    verdict = evaluate_gate(gate, final, first)
    assert verdict["passed"] is passed
    assert reason in verdict["reason"]


def test_report_is_written_as_json(aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    uri = write_json(s3, "bkt", "reports/run-1/training.json", {"finalTrainingLoss": 1.2})
    assert uri == "s3://bkt/reports/run-1/training.json"
    body = s3.get_object(Bucket="bkt", Key="reports/run-1/training.json")["Body"].read()
    assert json.loads(body) == {"finalTrainingLoss": 1.2}
