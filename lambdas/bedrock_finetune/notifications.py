"""What the pipeline tells people: the success and failure messages, and publishing them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_finetune.cleanup import delete_command, still_billing_lines
from bedrock_finetune.layout import RunLocation
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import NotifySettings

_SUBJECT_MAX = 100  # SNS limit for e-mail subjects

#: How a failure reads in the subject and cause ("<step> failed" unless named here).
_OUTCOMES = {
    "CustomizationJobStopped": "stopped",
    "QualityGateNotMet": "not met",
    "ExecutionAborted": "aborted",
    "ExecutionTimedOut": "timed out",
    "QuotaWaitExpired": "gave up waiting",
}


@dataclass(frozen=True)
class Links:
    """Where to look: the run's reports and the execution in the console."""

    region: str
    bucket: str
    log_group: str

    def execution_console(self, execution_arn: str) -> str:
        return (
            f"https://{self.region}.console.aws.amazon.com/states/home?region={self.region}"
            f"#/v2/executions/details/{execution_arn}"
        )


@dataclass(frozen=True)
class Notice:
    """A message ready to publish, plus the error and cause for the state machine's Fail state."""

    subject: str
    body: str
    error: str
    cause: str

    def as_output(self) -> dict[str, str]:
        return {"subject": self.subject, "error": self.error, "cause": self.cause}


def error_message(cause: str) -> str:
    """The human part of a Step Functions error cause (a Lambda error's cause is JSON)."""
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return cause or "no details"
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return str(parsed["errorMessage"])
    return cause


def _lines(pairs: list[tuple[str, Any]]) -> str:
    return "\n".join(f"{label}: {value}" for label, value in pairs if value not in (None, "", {}, []))


def _subject(text: str) -> str:
    return text if len(text) <= _SUBJECT_MAX else text[: _SUBJECT_MAX - 3] + "..."


def _training_lines(training: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    if not training:
        return []
    return [
        ("Final training loss", training.get("finalTrainingLoss")),
        ("Final validation loss", training.get("finalValidationLoss")),
        ("Best validation loss", training.get("bestValidationLoss")),
        ("Epochs / steps", f"{training.get('epochs')} / {training.get('steps')}")
        if training.get("steps") is not None
        else ("Epochs / steps", None),
        ("Training report", training.get("reportUri")),
    ]


def success_notice(state: Mapping[str, Any], links: Links, execution_arn: str) -> Notice:
    """The message for a run that ended with its Provisioned Throughput in service."""
    run = state["run"]["run"]
    job = state.get("job") or {}
    pt = state.get("throughput") or {}
    validation = state.get("validation") or {}
    body = _lines(
        [
            ("Run", run),
            ("Result", "fine-tuned model is in service"),
            ("Provisioned model ARN (use as modelId)", pt.get("provisionedModelArn")),
            ("Custom model ARN", job.get("outputModelArn")),
            ("Customization job", job.get("jobArn")),
            ("Hyperparameters", json.dumps(job.get("hyperparameters") or validation.get("hyperparameters"))),
            ("Model units / commitment", f"{pt.get('modelUnits')} / {pt.get('commitment', 'none')}"),
            *_training_lines(state.get("training")),
            ("Validation report", validation.get("reportUri")),
            ("Execution", links.execution_console(execution_arn)),
            (
                "Cost note",
                "Provisioned Throughput is billed every hour until you delete it: "
                + delete_command(str(pt.get("provisionedModelArn")), links.region),
            ),
        ]
    )
    return Notice(subject=_subject(f"[fine-tuning] {run}: model in service"), body=body, error="", cause="")


def failure_notice(state: Mapping[str, Any], links: Links, execution_arn: str) -> Notice:
    """The message for a failed run: which step, why, and where to look."""
    run_info = state.get("run") or {}
    run = run_info.get("run") or run_info.get("key") or "unknown run"
    if run_info.get("key") and not RunRef.from_state({**run_info, "run": run}).is_run_key:
        run = f"upload {run_info['key']}"
    failure = state.get("failure") or {}
    step = failure.get("step", "unknown step")
    error = failure.get("error", "Error")
    why = error_message(str(failure.get("cause", "")))
    validation = state.get("validation") or {}
    report_uri = validation.get("reportUri") or failure.get("reportUri")
    cleanup = state.get("cleanup") or {}
    billing = still_billing_lines(cleanup) or _maybe_billing(state, cleanup, links.region)
    where = report_uri or f"CloudWatch Logs {links.log_group} and the execution history"
    outcome = _OUTCOMES.get(str(error), "failed")
    body = _lines(
        [
            ("Run", run),
            ("Failed step", step),
            ("Error", error),
            ("Why", why),
            ("Validation report", report_uri),
            ("Customization job", (state.get("job") or {}).get("jobArn")),
            ("Clean-up", cleanup.get("summary")),
            ("Execution", links.execution_console(execution_arn)),
            ("Logs", links.log_group),
        ]
    )
    if billing:
        body += "\n\nSTILL BILLING (delete by hand if it is not needed):\n" + "\n".join(
            f"- {b}" for b in billing
        )
    cause = f"{step} {outcome}: {why.strip()} Look at: {where}."
    return Notice(
        subject=_subject(f"[fine-tuning] {run}: {step} {outcome}"),
        body=body,
        error=str(error)[:256],
        cause=cause[:32768],
    )


def _maybe_billing(state: Mapping[str, Any], cleanup: Mapping[str, Any], region: str) -> list[str]:
    """When the clean-up itself failed, what the run may have left billing, by its exact identifier."""
    if not cleanup.get("failed") or not (state.get("run") or {}).get("key"):
        return []
    run = RunRef.from_state(state["run"])
    throughput = (state.get("throughput") or {}).get(
        "provisionedModelArn"
    ) or run.names.provisioned_model_name
    return [
        f"provisioned throughput {throughput}, if it exists: check with aws bedrock "
        f"get-provisioned-model-throughput --provisioned-model-id {throughput} --region {region}; "
        f"delete with {delete_command(throughput, region)}",
        f"customization job {run.names.job_name}, if it is still running: aws bedrock "
        f"stop-model-customization-job --job-identifier {run.names.job_name} --region {region}",
    ]


def run_record(state: Mapping[str, Any], outcome: str, execution_arn: str, notice: Notice) -> dict[str, Any]:
    """The run's lineage in one document: dataset, execution, reports, job, models, outcome."""
    run = state.get("run") or {}
    job = state.get("job") or {}
    pt = state.get("throughput") or {}
    training = state.get("training") or {}
    return {
        "run": run.get("run"),
        "outcome": outcome,
        "error": notice.error or None,
        "cause": notice.cause or None,
        "dataset": {
            "uri": f"s3://{run.get('bucket')}/{run.get('key')}" if run.get("key") else None,
            "versionId": run.get("versionId"),
            "etag": run.get("etag"),
        },
        "execution": execution_arn,
        "validationReport": (state.get("validation") or {}).get("reportUri"),
        "trainingReport": training.get("reportUri"),
        "customizationJob": job.get("jobArn"),
        "hyperparameters": job.get("hyperparameters")
        or (state.get("validation") or {}).get("hyperparameters"),
        "customModel": job.get("outputModelArn") or None,
        "provisionedModel": pt.get("provisionedModelArn"),
        "provisionedModelStatus": pt.get("status"),
        "cleanup": (state.get("cleanup") or {}).get("summary"),
        "stillBilling": (state.get("cleanup") or {}).get("stillBilling") or [],
    }


def publish(sns: Any, topic_arn: str, notice: Notice, outcome: str, run: str) -> str:
    """Publish ``notice`` to the topic; returns the message id."""
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=notice.subject,
        Message=notice.body,
        MessageAttributes={
            "outcome": {"DataType": "String", "StringValue": outcome},
            "run": {"DataType": "String", "StringValue": run or "unknown"},
        },
    )
    return str(response["MessageId"])


def publish_message(sns: Any, topic_arn: str, subject: str, body: str) -> str:
    """Publish a plain message (deploy-time guards); returns the message id."""
    return str(sns.publish(TopicArn=topic_arn, Subject=_subject(subject), Message=body)["MessageId"])


def links_for(settings: NotifySettings) -> Links:
    return Links(region=settings.region, bucket=settings.bucket_name, log_group=settings.pipeline_log_group)


def notify_outcome(
    s3: Any, sns: Any, settings: NotifySettings, *, outcome: str, state: Mapping[str, Any], execution_arn: str
) -> dict[str, Any]:
    """The Notify task: write ``reports/<run>/run.json`` and publish the outcome.

    Returns ``subject``, ``error`` and ``cause`` (the Fail state reads them), ``messageId`` and
    ``runRecord``.
    """
    build = success_notice if outcome == "succeeded" else failure_notice
    notice = build(state, links_for(settings), execution_arn)
    run = (state.get("run") or {}).get("run", "")
    record_uri = None
    # A key that is not datasets/<run>/train.jsonl names no run: its record would overwrite another's.
    if run and RunRef.from_state(state["run"]).is_run_key:
        location = RunLocation(bucket=settings.bucket_name, run=run)
        record = run_record(state, outcome, execution_arn, notice)
        record_uri = write_json(s3, location.bucket, location.run_record_key, record)
    message_id = publish(sns, settings.topic_arn, notice, outcome, run)
    return {**notice.as_output(), "messageId": message_id, "runRecord": record_uri}
