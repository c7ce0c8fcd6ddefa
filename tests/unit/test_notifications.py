"""Notices name what is still billing, with the exact command that deletes it."""

from __future__ import annotations

from bedrock_finetune.notifications import Links, failure_notice, success_notice

LINKS = Links(region="us-west-2", bucket="b", log_group="/g")
RUN = {"bucket": "b", "key": "datasets/run-1/train.jsonl", "run": "run-1", "versionId": "v1", "etag": "e"}
PT = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abc"
DELETE = "aws bedrock delete-provisioned-model-throughput --provisioned-model-id"
EXECUTION = "arn:aws:states:us-west-2:123456789012:execution:P:e"


def test_a_throughput_the_clean_up_could_not_delete_is_named_with_its_command() -> None:
    cleanup = {
        "summary": f"provisioned throughput {PT} is Creating and cannot be deleted yet",
        "stillBilling": [
            {
                "arn": PT,
                "status": "Creating",
                "why": "Bedrock cannot delete it while it is Creating",
                "deleteCommand": f"{DELETE} {PT}",
            }
        ],
    }
    failure = {"step": "Execution", "error": "ExecutionAborted", "cause": "aborted"}
    notice = failure_notice({"run": RUN, "failure": failure, "cleanup": cleanup}, LINKS, EXECUTION)
    assert "STILL BILLING" in notice.body
    assert f"--provisioned-model-id {PT}" in notice.body
    assert "<ARN>" not in notice.body


def test_a_failed_clean_up_names_what_may_still_bill_by_its_real_identifiers() -> None:
    state = {
        "run": RUN,
        "failure": {"step": "Get endpoint status", "error": "BedrockTransientError", "cause": "x"},
        "endpoint": {"endpointArn": PT, "mode": "provisioned"},
        "cleanup": {"failed": True, "summary": "clean-up failed: throttled"},
    }
    notice = failure_notice(state, LINKS, EXECUTION)
    assert (
        f"delete-provisioned-model-throughput --provisioned-model-id {PT} --region us-west-2" in notice.body
    )
    assert "stop-model-customization-job --job-identifier ft-run-1-" in notice.body


def test_the_success_notice_gives_the_delete_command_with_the_real_arn() -> None:
    state = {"run": RUN, "job": {}, "endpoint": {"endpointArn": PT, "mode": "provisioned"}}
    notice = success_notice(state, LINKS, EXECUTION)
    assert f"--provisioned-model-id {PT} --region us-west-2" in notice.body
    assert "<ARN>" not in notice.body


def test_an_on_demand_endpoint_says_nothing_bills_while_idle_and_train_only_says_not_served() -> None:
    on_demand = {"run": RUN, "job": {}, "endpoint": {"endpointArn": "arn:dep", "mode": "on_demand"}}
    assert "billed per token only: nothing while idle" in success_notice(on_demand, LINKS, EXECUTION).body
    trained = success_notice({"run": RUN, "job": {"outputModelArn": "arn:m"}}, LINKS, EXECUTION)
    assert trained.subject == "[fine-tuning] run-1: model trained"
    assert "Result: fine-tuned model trained (not served)" in trained.body


def test_a_kept_model_notice_says_why_and_that_nothing_was_bought() -> None:
    from bedrock_finetune.notifications import kept_notice

    state = {
        "run": RUN,
        "job": {"outputModelArn": "arn:m"},
        "notServed": {"why": "approval rejected: no budget"},
    }
    notice = kept_notice(state, LINKS, EXECUTION)
    assert notice.subject == "[fine-tuning] run-1: model kept, not served"
    assert "Result: model kept, not served: nothing was bought" in notice.body
    assert "Why: approval rejected: no budget" in notice.body


def test_a_key_that_is_no_run_is_named_by_its_key_not_by_another_run() -> None:
    run = {**RUN, "key": "datasets/run-1/x/train.jsonl"}
    failure = {"step": "Identify run", "error": "NotARunKey", "cause": "not a run"}
    notice = failure_notice({"run": run, "failure": failure}, LINKS, EXECUTION)
    assert notice.subject.startswith("[fine-tuning] upload datasets/run-1/x/train.jsonl:")


def test_the_teardown_notice_says_what_was_kept_and_under_which_key() -> None:
    from bedrock_finetune.teardown import TeardownReport, report_message

    key = "arn:aws:kms:us-west-2:123456789012:key/11111111-2222-3333-4444-555555555555"
    _, body = report_message(TeardownReport(), "Stack", "us-west-2", key_arn=key, models_kept=True)
    assert f"Kept: custom models, encrypted with KMS key {key}" in body
    _, body = report_message(TeardownReport(), "Stack", "us-west-2", key_arn=key, models_kept=False)
    assert "Kept:" not in body
