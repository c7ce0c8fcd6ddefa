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


def _evaluation_lines(state: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The evaluation's one-line result (``candidate 0.82 [0.78, 0.86] vs current ...: promoted``)."""
    evaluation = state.get("evaluation") or {}
    return [("Evaluation", evaluation.get("summary")), ("Evaluation report", evaluation.get("reportUri"))]


def _estimate_lines(serving: Mapping[str, Any]) -> list[tuple[str, Any]]:
    estimate = serving.get("estimate") or {}
    return [
        ("Estimated cost per hour", (estimate.get("perHour") or {}).get("text")),
        ("Estimated cost per month", (estimate.get("perMonth") or {}).get("text")),
        (
            "Estimated cost per 1,000 input + 1,000 output tokens",
            (estimate.get("per1kInputAndOutputTokens") or {}).get("text"),
        ),
        ("Estimated model storage per month", (estimate.get("storagePerMonth") or {}).get("text")),
    ]


def _cost_note(endpoint: Mapping[str, Any], line: Mapping[str, Any], region: str) -> str | None:
    if endpoint.get("mode") == "provisioned":
        ttl = line.get("ttl") or {}
        note = "Provisioned Throughput is billed every hour until it is deleted"
        if ttl.get("expiresAt"):
            note += f"; its time to live ends at {ttl['expiresAt']} (reminder at {ttl.get('reminderAt')})"
        return f"{note}. Delete it by hand with: {delete_command(str(endpoint.get('endpointArn')), region)}"
    if endpoint.get("mode") == "on_demand":
        return "The deployment is billed per token only: nothing while idle."
    return None


def success_notice(state: Mapping[str, Any], links: Links, execution_arn: str) -> Notice:
    """The message for a run that ended as planned: its model served at the line's endpoint, or
    trained only (``serving = none``)."""
    run = state["run"]["run"]
    job = state.get("job") or {}
    endpoint = state.get("endpoint") or {}
    serving = state.get("serving") or {}
    line = state.get("line") or {}
    validation = state.get("validation") or {}
    served = bool(endpoint.get("endpointArn"))
    rollback = line.get("rollback") or {}
    body = _lines(
        [
            ("Run (model line)", run),
            (
                "Result",
                "fine-tuned model is in service" if served else "fine-tuned model trained (not served)",
            ),
            ("Line version", line.get("version")),
            ("Endpoint ARN (use as modelId; stable across versions)", endpoint.get("endpointArn")),
            ("Endpoint", f"{endpoint.get('kind')}: {endpoint.get('done')}" if served else None),
            ("Custom model ARN", job.get("outputModelArn")),
            ("Previous model (kept)", endpoint.get("previousModelArn")),
            ("Roll back with", rollback.get("command")),
            ("Customization job", job.get("jobArn")),
            ("Hyperparameters", json.dumps(job.get("hyperparameters") or validation.get("hyperparameters"))),
            *_training_lines(state.get("training")),
            *_evaluation_lines(state),
            *_estimate_lines(serving),
            ("Validation report", validation.get("reportUri")),
            ("Line record", line.get("recordUri")),
            ("Execution", links.execution_console(execution_arn)),
            ("Cost note", _cost_note(endpoint, line, links.region)),
        ]
    )
    what = "model in service" if served else "model trained"
    return Notice(subject=_subject(f"[fine-tuning] {run}: {what}"), body=body, error="", cause="")


def kept_notice(state: Mapping[str, Any], links: Links, execution_arn: str) -> Notice:
    """The message for a run whose model was kept, not served: its approval was rejected or expired."""
    run = state["run"]["run"]
    job = state.get("job") or {}
    line = state.get("line") or {}
    why = line.get("why") or (state.get("notServed") or {}).get("why", "not approved")
    evaluated = (state.get("evaluation") or {}).get("passed") is False
    body = _lines(
        [
            ("Run (model line)", run),
            (
                "Result",
                "model kept, not served: the line is unchanged"
                if evaluated
                else "model kept, not served: nothing was bought",
            ),
            ("Why", error_message(str(why))),
            ("Custom model ARN (kept)", job.get("outputModelArn")),
            *_training_lines(state.get("training")),
            *_evaluation_lines(state),
            *_estimate_lines(state.get("serving") or {}),
            ("Line record", line.get("recordUri")),
            ("Execution", links.execution_console(execution_arn)),
            ("To serve it later", "upload the run's train.jsonl again and approve the request"),
        ]
    )
    return Notice(
        subject=_subject(f"[fine-tuning] {run}: model kept, not served"), body=body, error="", cause=""
    )


def _sentence(text: str) -> str:
    text = text.strip() or "no details"
    return text if text[-1] in ".!?" else f"{text}."


def _explained_by(state: Mapping[str, Any], error: str, why: str, links: Links) -> str:
    """Where the failure is explained, as a sentence (none when ``why`` already says it): the report
    about it, else the logs and the execution history."""
    run = (state.get("run") or {}).get("run")
    if error == "DatasetInvalid" and run:
        uri = (state.get("validation") or {}).get("reportUri") or (
            f"s3://{links.bucket}/{RunLocation(bucket=links.bucket, run=run).report_key}"
        )
        return "" if uri in why else f"The validation report {uri} lists every problem."
    if error == "QualityGateNotMet" and "training report" in why:
        return ""  # Collect training results names the report in its error
    return f"CloudWatch Logs {links.log_group} and the execution history have the details."


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
    cause = f"{step} {outcome}: {_sentence(why)} {_explained_by(state, str(error), why, links)}".rstrip()
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
    endpoint = (state.get("endpoint") or {}).get("endpointArn")
    throughput = endpoint or run.line.throughput_name
    return [
        f"the line's endpoint {throughput} (or deployment {run.line.deployment_name}), if this run "
        f"created it: check with aws bedrock get-provisioned-model-throughput --provisioned-model-id "
        f"{throughput} --region {region}; delete with {delete_command(throughput, region)}",
        f"customization job {run.names.job_name}, if it is still running: aws bedrock "
        f"stop-model-customization-job --job-identifier {run.names.job_name} --region {region}",
    ]


def run_record(state: Mapping[str, Any], outcome: str, execution_arn: str, notice: Notice) -> dict[str, Any]:
    """The run's lineage in one document: dataset, execution, reports, job, models, outcome."""
    run = state.get("run") or {}
    job = state.get("job") or {}
    endpoint = state.get("endpoint") or {}
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
        "endpoint": endpoint.get("endpointArn"),
        "endpointKind": endpoint.get("kind"),
        "endpointStatus": endpoint.get("status"),
        "lineVersion": (state.get("line") or {}).get("version"),
        "estimate": (state.get("serving") or {}).get("estimate"),
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
    build = {"succeeded": success_notice, "kept": kept_notice}.get(outcome, failure_notice)
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
