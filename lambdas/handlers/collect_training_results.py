"""CollectTrainingResults: what training achieved, the training report, and the quality gate."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.layout import OUTPUTS_PREFIX, RunLocation
from bedrock_finetune.training_metrics import QualityGateSettings, training_results, write_report
from handlers._runtime import CORRELATION_ID_PATH, client, env, env_json, logger, metrics, tracer

_REPORTED = {
    "FinalTrainingLoss": "finalTrainingLoss",
    "FinalValidationLoss": "finalValidationLoss",
    "BestValidationLoss": "bestValidationLoss",
}


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``job`` (completed). Output: the training summary with ``qualityGate``."""
    run, job = event["run"], event["job"]
    location = RunLocation(bucket=run["bucket"], run=run["run"])
    gate = env_json("QUALITY_GATE", {})
    epochs = (job.get("hyperparameters") or {}).get("epochCount") or env("DEFAULT_EPOCHS", "")
    s3 = client("s3")
    results = training_results(
        s3,
        bucket=location.bucket,
        output_prefix=f"{OUTPUTS_PREFIX}{location.run}/",
        job=job,
        configured_epochs=int(epochs) if epochs else None,
        gate=QualityGateSettings(
            max_validation_loss=gate.get("max_validation_loss"), max_loss_ratio=gate.get("max_loss_ratio")
        ),
    )
    report = {
        "run": location.run,
        "execution": event["executionArn"],
        "dataset": f"s3://{run['bucket']}/{run['key']}",
        "datasetVersion": run.get("versionId") or run.get("etag"),
        "hyperparameters": job.get("hyperparameters"),
        **results,
    }
    results["reportUri"] = write_report(s3, location.bucket, location.training_report_key, report)
    for metric_name, field in _REPORTED.items():
        value = results.get(field)
        if isinstance(value, int | float):
            # The run as a dimension, so each run's losses can be charted and compared.
            with single_metric(name=metric_name, unit=MetricUnit.NoUnit, value=float(value)) as metric:
                metric.add_dimension(name="run", value=location.run)
    metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
    logger.info("training results", extra=results)
    return results
