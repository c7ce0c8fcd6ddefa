"""The people's policies, as deployed in the emulation: a submitter starts a run and cannot approve it.

The emulation does not enforce IAM, so each step is decided with the policy evaluator the IAM report
uses (tools/iam_review/evaluate.py), on the policy documents CloudFormation created: real ARNs, the
bucket, key and stack of this deployment.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from finetune.local.cloud import Deployment, LocalCloud
from finetune.local.runner import follow_delivery, started_execution, upload_run
from finetune.local.scenarios import scenario
from finetune.local.template import Synthesized
from finetune.local.timing import Clock
from iam_review.abilities import Layout, can
from iam_review.evaluate import Request, evaluate

pytestmark = pytest.mark.e2e

START_A_RUN = "start a run (upload datasets/<run>/train.jsonl)"
APPROVE = "answer an approval (send the task token back)"


def _deployed_statements(cloud: LocalCloud, policy_arn: str) -> list[dict[str, Any]]:
    iam = cloud.client("iam")
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _layout(cloud: LocalCloud, deployment: Deployment, run: str) -> Layout:
    """The deployment's real names, where the report uses readable ones."""
    bucket_key = cloud.client("s3").get_bucket_encryption(Bucket=deployment.bucket)
    rule = bucket_key["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    key_arn = rule["KMSMasterKeyID"]  # CloudFormation resolved the key's Arn attribute
    assert key_arn.startswith(f"arn:aws:kms:{deployment.region}:{deployment.account}:key/"), key_arn
    machine = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=deployment.state_machine_arn
    )
    return Layout(
        bucket_arn=f"arn:aws:s3:::{deployment.bucket}",
        train_key=f"datasets/{run}/train.jsonl",
        pipeline_arn=deployment.state_machine_arn,
        pipeline_name=machine["name"],
        key_arn=key_arn,
        # Not checked here: moto gives a log group's Arn attribute without AWS's trailing ":*".
        log_group_arn="",
        region=deployment.region,
        account=deployment.account,
        stack_name=deployment.stack_name,
        stack_tag=deployment.stack_id,
    )


def test_a_submitter_can_start_a_run_and_cannot_approve_it(
    synthesized: Synthesized, run_folder: Path
) -> None:
    cloud = LocalCloud(synthesized, scenario("ok"), clock=Clock(scale=0))
    with cloud.in_process() as deployment:
        stack = cloud.client("cloudformation").describe_stacks(StackName=deployment.stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        submitter = _deployed_statements(cloud, outputs["SubmitterPolicyArn"])
        approver = _deployed_statements(cloud, outputs["ApproverPolicyArn"])
        reader = _deployed_statements(cloud, outputs["ReaderPolicyArn"])
        layout = _layout(cloud, deployment, run_folder.name)

        # Given the submitter's policy as deployed, when they upload the run folder, train.jsonl last,
        assert can(submitter, layout, START_A_RUN)
        for name in ("validation.jsonl", "hyperparameters.json"):
            upload = Request("s3:PutObject", layout.objects(f"datasets/{run_folder.name}/{name}"))
            assert evaluate(submitter, upload).allowed, name
        upload_run(cloud, deployment, run_folder, run_folder.name)

        # then the upload starts a run, which goes through the pipeline;
        run = follow_delivery(cloud, deployment, started_execution(cloud), io.StringIO())
        assert run.status == "SUCCEEDED", run.status

        # and they can read its reports, but cannot answer an approval nor start an execution directly,
        assert can(submitter, layout, "read a run's reports")
        assert not can(submitter, layout, APPROVE)
        assert not can(submitter, layout, "start an execution directly")
        assert not can(submitter, layout, "record a decision (reports/<run>/approval.json)")
        # while an approver, who cannot start a run, can answer it.
        assert can(approver, layout, APPROVE)
        assert not can(approver, layout, START_A_RUN)
        # A reader follows that very execution.
        assert evaluate(reader, Request("states:GetExecutionHistory", str(run.execution_arn))).allowed
        assert not can(reader, layout, START_A_RUN)
