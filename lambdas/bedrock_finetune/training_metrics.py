"""What training achieved: parse Bedrock's metrics CSVs and apply the optional quality gate.

Bedrock writes, under the job's output URI, ``model-customization-job-<job id>/`` with
``training_artifacts/step_wise_training_metrics.csv`` (step_number, epoch_number, training_loss,
perplexity) and ``validation_artifacts/.../validation_metrics.csv`` (validation_loss instead of
training_loss). Public samples disagree on the exact validation path, so files are found by
listing the prefix, never by a hard-coded key.

A configured gate fails closed: when it has nothing to measure (no validation CSV, unusable rows,
no first-epoch baseline), the run fails with a reason that names the file or the lines, unless the
gate is configured optional.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_finetune import metrics
from bedrock_finetune.errors import QualityGateNotMet
from bedrock_finetune.layout import OUTPUTS_PREFIX
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import CollectTrainingResultsSettings, QualityGate

TRAINING_CSV = "step_wise_training_metrics.csv"
VALIDATION_CSV = "validation_metrics.csv"


@dataclass(frozen=True)
class LossSeries:
    """One metrics CSV: (step, epoch, loss) rows in file order, and what could not be read."""

    rows: tuple[tuple[int, int, float], ...]
    #: Line numbers (the header is line 1) whose loss is missing, not a number or not finite.
    unusable_lines: tuple[int, ...] = ()
    #: The header has no loss column at all.
    column_missing: bool = False
    #: Where the rows were read from; None when the job wrote no such file.
    uri: str | None = None

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


def parse_loss_csv(lines: Iterable[str], loss_column: str, uri: str | None = None) -> LossSeries:
    """Parse a metrics CSV; rows with a missing, non-numeric or non-finite loss are skipped and their
    line numbers kept in ``unusable_lines``."""
    rows: list[tuple[int, int, float]] = []
    unusable: list[int] = []
    reader = csv.DictReader(lines)
    for record in reader:
        try:
            loss = float(record[loss_column])
            step = int(float(record.get("step_number") or 0))
            epoch = int(float(record.get("epoch_number") or 0))
        except (KeyError, TypeError, ValueError):
            unusable.append(reader.line_num)
            continue
        if math.isfinite(loss):
            rows.append((step, epoch, loss))
        else:
            unusable.append(reader.line_num)
    missing = reader.fieldnames is not None and loss_column not in reader.fieldnames
    return LossSeries(tuple(rows), tuple(unusable), column_missing=missing, uri=uri)


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


_KEPT = "the custom model is kept, no throughput was bought"


def _csv_problem(series: LossSeries, column: str) -> str | None:
    """Why a metrics CSV that exists gives nothing reliable to measure, or None."""
    if series.column_missing:
        return f"{series.uri} has no {column} column"
    if series.unusable_lines:
        shown = ", ".join(map(str, series.unusable_lines[:5]))
        more = f" and {len(series.unusable_lines) - 5} more" if len(series.unusable_lines) > 5 else ""
        why = "missing, not a number, or not finite"
        return f"{series.uri}: line(s) {shown}{more} have no usable {column} ({why})"
    if not series.rows:
        return f"{series.uri} has no rows"
    return None


def _final_loss(validation: LossSeries, job_loss: float | None, searched: str) -> tuple[float | None, str]:
    """The final validation loss, or why it cannot be measured."""
    if validation.uri is None:
        if job_loss is None:
            return None, f"the job wrote no {VALIDATION_CSV} under {searched} and reported no validation loss"
        return float(job_loss), ""
    problem = _csv_problem(validation, "validation_loss")
    return (None, problem) if problem else (validation.final, "")


def _loss_ratio(validation: LossSeries, final: float | None, searched: str) -> tuple[float | None, str]:
    """Final / first-epoch validation loss, or why it cannot be measured."""
    if validation.uri is None:
        return None, (
            f"the loss ratio needs the per-epoch validation losses of {VALIDATION_CSV}, and the job wrote "
            f"none under {searched}"
        )
    problem = _csv_problem(validation, "validation_loss")
    if problem:
        return None, problem
    first = validation.first_epoch_final()
    if final is None or first is None or first <= 0:
        return (
            None,
            f"{validation.uri}: the first epoch's validation loss is {first}, so the ratio is undefined",
        )
    return final / first, ""


def evaluate_gate(
    gate: QualityGate,
    validation: LossSeries,
    job_validation_loss: float | None = None,
    *,
    searched: str = "the job's output",
) -> dict[str, Any]:
    """``{"passed": bool, "reason": str}``: whether to buy throughput for this model.

    ``validation`` is the job's validation CSV (``uri`` None when there was none), ``job_validation_loss``
    the final validation loss the job itself reported, ``searched`` where the CSV was looked for.
    A limit that cannot be measured fails the gate, naming what is missing, unless ``gate.optional``.
    """
    if not gate.enabled:
        return {"passed": True, "reason": "no quality gate configured"}
    final, final_missing = _final_loss(validation, job_validation_loss, searched)
    failures: list[str] = []
    missing: list[str] = []
    if gate.max_validation_loss is not None:
        if final is None:
            missing.append(final_missing)
        elif final > gate.max_validation_loss:
            failures.append(
                f"final validation loss {final:.4f} is above the configured maximum "
                f"{gate.max_validation_loss:g}"
            )
    if gate.max_loss_ratio is not None:
        ratio, ratio_missing = (
            _loss_ratio(validation, final, searched) if final is not None else (None, final_missing)
        )
        if ratio is None:
            missing.append(ratio_missing)
        elif ratio > gate.max_loss_ratio:
            failures.append(
                f"final/first-epoch validation loss ratio {ratio:.3f} is above the configured maximum "
                f"{gate.max_loss_ratio:g}"
            )
    unmeasured = "; ".join(dict.fromkeys(missing))
    if missing and not gate.optional:
        failures.append(
            f"the quality gate has nothing to measure: {unmeasured}. Upload validation.jsonl with the run so "
            "the model can be checked, or set quality_gate_optional to let such runs through"
        )
    if failures:
        return {"passed": False, "reason": f"{'; '.join(failures)}; {_KEPT}"}
    if missing:
        return {
            "passed": True,
            "reason": f"quality gate skipped (quality_gate_optional is set): {unmeasured}",
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
    job_arn = str(job.get("jobArn", ""))
    keys = find_metrics_keys(s3, bucket, output_prefix, job_arn)
    job_id = job_arn.rsplit("/", 1)[-1]
    searched = f"s3://{bucket}/{output_prefix}" + (f"model-customization-job-{job_id}/" if job_id else "")

    def read(name: str, column: str) -> LossSeries:
        if name not in keys:
            return LossSeries(())
        return parse_loss_csv(_read_lines(s3, bucket, keys[name]), column, f"s3://{bucket}/{keys[name]}")

    training = read("training", "training_loss")
    validation = read("validation", "validation_loss")
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
        "qualityGate": evaluate_gate(gate, validation, job.get("validationLoss"), searched=searched),
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


def require_quality_gate(results: Mapping[str, Any]) -> None:
    """Raise :class:`QualityGateNotMet` (the run fails, its model is kept, nothing is bought) unless
    the results passed the quality gate; the error's message is the gate's reason and the report."""
    gate = results.get("qualityGate") or {}
    if gate.get("passed") is True:
        return
    reason = str(gate.get("reason") or "the quality gate was not evaluated").rstrip(".")
    raise QualityGateNotMet(f"{reason}. The training report {results.get('reportUri')} has the losses.")


#: The losses published as CloudWatch metrics, by metric name and results field.
_REPORTED = {
    metrics.FINAL_TRAINING_LOSS: "finalTrainingLoss",
    metrics.FINAL_VALIDATION_LOSS: "finalValidationLoss",
    metrics.BEST_VALIDATION_LOSS: "bestValidationLoss",
}


def reported_metrics(results: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``(metric name, value)`` of each loss the results have a number for."""
    return [
        (name, float(results[field]))
        for name, field in _REPORTED.items()
        if isinstance(results.get(field), int | float) and not isinstance(results.get(field), bool)
    ]
