"""Validate a run in the bucket: stream its files from S3, write the report, gate the run.

The ValidateDataset task's use case. The rules themselves live in :mod:`bedrock_finetune.dataset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.catalog import ModelSpec
from bedrock_finetune.dataset import validate_run
from bedrock_finetune.errors import DatasetInvalid, RunNotFound
from bedrock_finetune.evaluation_set import add_to_report, check_evaluation_file
from bedrock_finetune.layout import EVALUATION_FILE, TRAIN_FILE, VALIDATION_FILE, InvalidRunKey, RunLocation
from bedrock_finetune.metrics import CODE_DIMENSION, VALIDATION_ERRORS, MetricSink
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.s3_source import S3Object, read_hyperparameters
from bedrock_finetune.settings import ValidateDatasetSettings

_FIRST_ERRORS = 5


def _head(s3: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
    params = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        return dict(s3.head_object(**params))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
            return None
        raise


def validate_s3_run(
    s3: Any,
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    model: ModelSpec,
    defaults: Mapping[str, object],
    chars_per_token: float,
    metrics: MetricSink,
) -> dict[str, Any]:
    """Validate the run whose training file is ``s3://bucket/key`` (that exact version).

    Writes ``reports/<run>/validation.json`` whether valid or not. Returns a small summary for
    the state machine; otherwise records each error code's count as :data:`VALIDATION_ERRORS`
    (dimension :data:`CODE_DIMENSION`) and raises DatasetInvalid (with the report URI and first errors).
    """
    try:
        location = RunLocation.from_train_key(bucket, key)
    except InvalidRunKey as exc:
        raise DatasetInvalid(str(exc)) from exc

    train_head = _head(s3, bucket, key, version_id)
    if train_head is None:
        raise RunNotFound(
            f"s3://{bucket}/{key} (version {version_id}) no longer exists; it was deleted or replaced "
            "before the run started. Upload it again to start a new run."
        )
    train = S3Object(s3, bucket, key, version_id=version_id, size=int(train_head.get("ContentLength", 0)))
    # The other files are read at the version found now, and that version is what gets frozen.
    validation_head = _head(s3, bucket, location.validation_key)
    validation_version = (validation_head or {}).get("VersionId")
    validation = (
        S3Object(
            s3,
            bucket,
            location.validation_key,
            version_id=validation_version,
            size=int(validation_head.get("ContentLength", 0)),
        )
        if validation_head is not None
        else None
    )
    hyperparameters_head = _head(s3, bucket, location.hyperparameters_key)
    hyperparameters_version = (hyperparameters_head or {}).get("VersionId")
    hyperparameters = (
        read_hyperparameters(s3, bucket, location.hyperparameters_key, hyperparameters_version)
        if hyperparameters_head is not None
        else None
    )

    report = validate_run(
        train,
        validation,
        hyperparameters,
        model,
        defaults=defaults,
        chars_per_token=chars_per_token,
        bucket=bucket,
    )
    evaluation_head = _head(s3, bucket, location.key(EVALUATION_FILE))
    if evaluation_head is not None:
        evaluation_file = S3Object(
            s3,
            bucket,
            location.key(EVALUATION_FILE),
            version_id=evaluation_head.get("VersionId"),
            size=int(evaluation_head.get("ContentLength", 0)),
        )
        add_to_report(report, check_evaluation_file(evaluation_file, model))
    report_uri = write_json(s3, location.bucket, location.report_key, report.to_dict())
    summary = report.summary(max_errors=_FIRST_ERRORS)
    if not report.valid:
        for code, count in sorted(report.error_counts.items()):
            metrics.count(VALIDATION_ERRORS, count, {CODE_DIMENSION: str(code)})
        first = "; ".join(
            f"{e['file']} line {e['line']}: {e['code']}" if e["line"] else f"{e['file']}: {e['code']}"
            for e in summary["first_errors"]
        )
        raise DatasetInvalid(
            f"run {location.run} has {report.error_count} error(s) and was not started. "
            f"First: {first}. Fix them and upload train.jsonl again. Full report: {report_uri}"
        )
    train_stats = report.train_statistics
    return {
        "run": location.run,
        "reportUri": report_uri,
        "valid": True,
        "records": {
            "train": report.train.records,
            "validation": report.validation.records if report.validation else 0,
        },
        "warnings": report.warning_count,
        "warningCounts": dict(report.warning_counts),
        "estimatedTokens": train_stats.tokens_total if train_stats else 0,
        "estimatedBillableTokens": report.estimated_billable_tokens,
        "hyperparameters": dict(report.hyperparameters),
        "hasValidation": validation is not None,
        "versions": {
            "train": version_id,
            "validation": validation_version if validation is not None else None,
            "hyperparameters": hyperparameters_version if hyperparameters is not None else None,
        },
    }


def freeze(
    s3: Any, run: RunRef, versions: Mapping[str, str | None], *, has_validation: bool
) -> dict[str, str]:
    """Copy the validated versions of the run's data files to ``frozen/<run>/<job name>/``, where only
    the Bedrock service role may read them; returns their URIs (``trainingUri``, ``validationUri``).

    Bedrock's S3 URIs carry no version: training from ``datasets/`` would train whatever was uploaded
    last, not what was validated."""
    uris: dict[str, str] = {}
    for field, name, wanted in (
        ("trainingUri", TRAIN_FILE, True),
        ("validationUri", VALIDATION_FILE, has_validation),
    ):
        if not wanted:
            continue
        source: dict[str, str] = {"Bucket": run.bucket, "Key": run.location.key(name)}
        version = versions.get("train" if name == TRAIN_FILE else "validation")
        if version:
            source["VersionId"] = version
        target = run.frozen_key(name)
        s3.copy(source, run.bucket, target)  # managed: multipart for files over 5 GB
        uris[field] = f"s3://{run.bucket}/{target}"
    return uris


def validate_dataset(
    s3: Any, run: RunRef, settings: ValidateDatasetSettings, *, metrics: MetricSink
) -> dict[str, Any]:
    """The ValidateDataset task: the uploaded version of the run, with the deployment's model and
    defaults; a valid run's files are frozen for training (see :func:`freeze`). A rejected run's
    errors are counted by code in ``metrics``."""
    summary = validate_s3_run(
        s3,
        bucket=run.bucket,
        key=run.key,
        version_id=run.version_id,
        model=ModelSpec.from_dict(settings.base_model_id, settings.model_spec, settings.owner),
        defaults=settings.default_hyperparameters,
        chars_per_token=settings.chars_per_token,
        metrics=metrics,
    )
    return {**summary, **freeze(s3, run, summary["versions"], has_validation=summary["hasValidation"])}
