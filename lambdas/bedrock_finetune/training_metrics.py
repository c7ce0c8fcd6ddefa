"""What training achieved: parse Bedrock's metrics CSVs and apply the optional quality gate.

Bedrock writes, under the job's output URI, ``model-customization-job-<job id>/`` with
``training_artifacts/step_wise_training_metrics.csv`` (step_number, epoch_number, training_loss,
perplexity) and ``validation_artifacts/.../validation_metrics.csv`` (validation_loss instead of
training_loss). Public samples disagree on the exact validation path, so files are found by
listing the prefix, never by a hard-coded key.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_finetune.layout import OUTPUTS_PREFIX
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import CollectTrainingResultsSettings, QualityGate

TRAINING_CSV = "step_wise_training_metrics.csv"
VALIDATION_CSV = "validation_metrics.csv"


@dataclass(frozen=True)
class LossSeries:
    """One metrics CSV: (step, epoch, loss) rows in file order."""

    rows: tuple[tuple[int, int, float], ...]

    @property
    def final(self) -> float | None:
        return self.rows[-1][2] if self.rows else None

    @property
    def best(self) -> float | None:
        return min(r[2] for r in self.rows) if self.rows else None

    @property
    def epochs(self) -> int:
        return len({r[1] for r in self.rows})

    @property
    def steps(self) -> int:
        return max(r[0] for r in self.rows) + 1 if self.rows else 0

    def first_epoch_final(self) -> float | None:
        """The loss at the end of the first epoch (the baseline for the loss-ratio gate)."""
        if not self.rows:
            return None
        first_epoch = self.rows[0][1]
        return [r for r in self.rows if r[1] == first_epoch][-1][2]


def parse_loss_csv(lines: Iterable[str], loss_column: str) -> LossSeries:
    """Parse a metrics CSV; rows with a missing or non-numeric loss are skipped."""
    rows: list[tuple[int, int, float]] = []
    for record in csv.DictReader(lines):
        try:
            loss = float(record[loss_column])
            step = int(float(record.get("step_number") or 0))
            epoch = int(float(record.get("epoch_number") or 0))
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(loss):
            rows.append((step, epoch, loss))
    return LossSeries(tuple(rows))


def find_metrics_keys(s3: Any, bucket: str, prefix: str, job_arn: str) -> dict[str, str]:
    """Keys of the training and validation CSVs under ``prefix`` for this job (by listing)."""
    job_id = job_arn.rsplit("/", 1)[-1]
    found: dict[str, str] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if job_id and f"model-customization-job-{job_id}/" not in key:
                continue
            if key.endswith(TRAINING_CSV):
                found.setdefault("training", key)
            elif key.endswith(VALIDATION_CSV):
                found.setdefault("validation", key)
    return found


def _read_lines(s3: Any, bucket: str, key: str) -> Iterable[str]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    return io.TextIOWrapper(body, encoding="utf-8", newline="")


def evaluate_gate(
    gate: QualityGate, final_validation: float | None, first_epoch_validation: float | None
) -> dict[str, Any]:
    """``{"passed": bool, "reason": str}``: whether to buy throughput for this model."""
    if not gate.enabled:
        return {"passed": True, "reason": "no quality gate configured"}
    if final_validation is None:
        return {
            "passed": False,
            "reason": "a quality gate is configured but the job reported no validation loss; "
            "upload validation.jsonl with the run so the model can be checked",
        }
    if gate.max_validation_loss is not None and final_validation > gate.max_validation_loss:
        return {
            "passed": False,
            "reason": f"final validation loss {final_validation:.4f} is above the configured maximum "
            f"{gate.max_validation_loss:g}; the custom model is kept, no throughput was bought",
        }
    if gate.max_loss_ratio is not None and first_epoch_validation:
        ratio = final_validation / first_epoch_validation
        if ratio > gate.max_loss_ratio:
            return {
                "passed": False,
                "reason": f"final/first-epoch validation loss ratio {ratio:.3f} is above the configured "
                f"maximum {gate.max_loss_ratio:g}; the custom model is kept, no throughput was bought",
            }
    return {"passed": True, "reason": "quality gate met"}


def training_results(
    s3: Any,
    *,
    bucket: str,
    output_prefix: str,
    job: Mapping[str, Any],
    configured_epochs: int | None,
    gate: QualityGate,
) -> dict[str, Any]:
    """Read the job's metrics (from the job and its CSVs) into the training report."""
    keys = find_metrics_keys(s3, bucket, output_prefix, str(job.get("jobArn", "")))
    training = (
        parse_loss_csv(_read_lines(s3, bucket, keys["training"]), "training_loss")
        if "training" in keys
        else LossSeries(())
    )
    validation = (
        parse_loss_csv(_read_lines(s3, bucket, keys["validation"]), "validation_loss")
        if "validation" in keys
        else LossSeries(())
    )
    final_validation = validation.final if validation.rows else job.get("validationLoss")
    epochs = training.epochs
    return {
        "jobArn": job.get("jobArn"),
        "customModelArn": job.get("outputModelArn"),
        "finalTrainingLoss": training.final if training.rows else job.get("trainingLoss"),
        "bestTrainingLoss": training.best,
        "finalValidationLoss": final_validation,
        "bestValidationLoss": validation.best if validation.rows else final_validation,
        "firstEpochValidationLoss": validation.first_epoch_final(),
        "epochs": epochs,
        "steps": training.steps,
        # Fewer epochs than asked for means Bedrock's early stopping ended training.
        "earlyStopped": bool(configured_epochs and training.rows and epochs < configured_epochs),
        "configuredEpochs": configured_epochs,
        "metricsFiles": {name: f"s3://{bucket}/{key}" for name, key in keys.items()},
        "qualityGate": evaluate_gate(gate, final_validation, validation.first_epoch_final()),
    }


def collect_training_results(
    s3: Any,
    run: RunRef,
    job: Mapping[str, Any],
    execution_arn: str,
    settings: CollectTrainingResultsSettings,
) -> dict[str, Any]:
    """The CollectTrainingResults task: what training achieved, written to ``reports/<run>/training.json``.

    Returns the results with ``qualityGate`` and ``reportUri``.
    """
    epochs = (job.get("hyperparameters") or {}).get("epochCount") or settings.default_epochs
    location = run.location
    results = training_results(
        s3,
        bucket=location.bucket,
        output_prefix=f"{OUTPUTS_PREFIX}{location.run}/",
        job=job,
        configured_epochs=int(epochs) if epochs else None,
        gate=settings.quality_gate,
    )
    report = {
        "run": location.run,
        "execution": execution_arn,
        "dataset": run.dataset_uri,
        "datasetVersion": run.version,
        "hyperparameters": job.get("hyperparameters"),
        **results,
    }
    results["reportUri"] = write_json(s3, location.bucket, location.training_report_key, report)
    return results


#: The losses published as CloudWatch metrics, by metric name and results field.
_REPORTED = {
    "FinalTrainingLoss": "finalTrainingLoss",
    "FinalValidationLoss": "finalValidationLoss",
    "BestValidationLoss": "bestValidationLoss",
}


def reported_metrics(results: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``(metric name, value)`` of each loss the results have a number for."""
    return [
        (name, float(results[field]))
        for name, field in _REPORTED.items()
        if isinstance(results.get(field), int | float) and not isinstance(results.get(field), bool)
    ]
