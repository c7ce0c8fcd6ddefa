"""Issue 7 end to end: deploy, run, delete the stack; the teardown leaves no throughput billing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bedrock_finetune.lineage import TAG_STACK
from finetune.local import bedrock as emulated_bedrock
from finetune.local.cloud import LocalCloud
from finetune.local.runner import follow_delivery, started_execution, upload_run
from finetune.local.scenarios import Scenario, scenario
from finetune.local.template import Synthesized
from finetune.local.timing import Clock
from tests.e2e.conftest import run_in_emulation

pytestmark = pytest.mark.e2e

OTHER_STACK = (
    "arn:aws:cloudformation:us-west-2:123456789012:stack/OtherFineTuning/0a1b2c3d-0000-4000-8000-000000000000"
)


def _throughput_arns(bedrock: Any) -> set[str]:
    return {
        pt["provisionedModelArn"]
        for pt in bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"]
    }


def _buy(bedrock: Any, name: str, model_arn: str, stack_tag: str, **extra: Any) -> str:
    """A throughput bought outside the pipeline, tagged as belonging to ``stack_tag``."""
    response = bedrock.create_provisioned_model_throughput(
        modelUnits=1,
        provisionedModelName=name,
        modelId=model_arn,
        tags=[{"key": TAG_STACK, "value": stack_tag}],
        **extra,
    )
    return str(response["provisionedModelArn"])


def test_destroying_the_stack_deletes_its_throughput_and_keeps_the_custom_model(
    synthesized: Synthesized, run_folder: Path
) -> None:
    # Given a run that ended with its throughput in service
    with run_in_emulation(synthesized, run_folder, "ok") as (result, cloud):
        assert result.status == "SUCCEEDED"
        throughput_arn = result.final_state["endpoint"]["endpointArn"]
        model_arn = result.final_state["job"]["outputModelArn"]
        bedrock = cloud.client("bedrock")
        assert (
            bedrock.get_provisioned_model_throughput(provisionedModelId=throughput_arn)["status"]
            == "InService"
        )
        # When the stack is deleted (cdk destroy)
        deletion = cloud.destroy(result.deployment)
        # Then the teardown ran through the Provider framework and the stack is gone
        assert deletion.stack_status == "DELETE_COMPLETE"
        assert deletion.failure is None
        [response] = deletion.responses
        assert (response.request_type, response.status) == ("Delete", "SUCCESS")
        assert [(i.handler, i.error_type) for i in deletion.invocations] == [
            ("handlers.teardown.handler", None),
            ("handlers.teardown.is_complete", None),
        ]
        # And no provisioned throughput is left billing
        assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
        # And the custom model is kept (the default)
        assert bedrock.get_custom_model(modelIdentifier=model_arn)["modelArn"] == model_arn
        # And the notification says what was deleted
        [notice] = deletion.notifications
        assert notice["subject"] == f"[fine-tuning] {result.deployment.stack_name} deleted"
        assert f"Provisioned throughputs deleted:\n- {throughput_arn}" in notice["message"]
        # The kept custom model is named with the key that encrypts it (which the stack keeps).
        assert "Kept: custom models, encrypted with KMS key arn:aws:kms:" in notice["message"]


def test_destroying_the_stack_leaves_other_stacks_throughput_and_reports_a_committed_one(
    synthesized: Synthesized, run_folder: Path
) -> None:
    with run_in_emulation(synthesized, run_folder, "ok") as (result, cloud):
        assert result.status == "SUCCEEDED"
        deployment = result.deployment
        ours = result.final_state["endpoint"]["endpointArn"]
        model_arn = result.final_state["job"]["outputModelArn"]
        bedrock = cloud.client("bedrock")
        # Given a throughput of another stack, and one of this stack bought with a commitment term
        foreign = _buy(bedrock, "other-stack-pt", model_arn, OTHER_STACK)
        committed = _buy(
            bedrock, "committed-pt", model_arn, deployment.stack_id, commitmentDuration="OneMonth"
        )
        # When the stack is deleted
        deletion = cloud.destroy(deployment)
        # Then the deletion completes: the committed throughput cannot be deleted but is no error
        assert deletion.stack_status == "DELETE_COMPLETE"
        # And only this stack's no-commitment throughput is gone
        assert _throughput_arns(bedrock) == {foreign, committed}
        assert ours not in _throughput_arns(bedrock)
        # And the notification asks for action on the committed one and never names the other stack's
        [notice] = deletion.notifications
        assert notice["subject"] == f"[fine-tuning] {deployment.stack_name} deleted: throughput still billing"
        assert f"- {ours}" in notice["message"]
        assert "ACTION NEEDED" in notice["message"]
        assert f"committed-pt ({committed}) has a OneMonth commitment" in notice["message"]
        assert foreign not in notice["message"]


def test_a_failed_teardown_fails_the_deletion_with_what_to_delete_and_a_retry_finishes_it(
    synthesized: Synthesized, run_folder: Path
) -> None:
    # Given Bedrock denies the deletion of throughput (a permission boundary, say)
    denied = Scenario(
        "delete-denied",
        "As ok, but DeleteProvisionedModelThroughput is denied.",
        errors=(("DeleteProvisionedModelThroughput", "AccessDeniedException", "Denied by a boundary.", 403),),
    )
    cloud = LocalCloud(synthesized, denied, clock=Clock(scale=0))
    with cloud.in_process() as deployment:
        upload_run(cloud, deployment, run_folder, run_folder.name)
        result = follow_delivery(cloud, deployment, started_execution(cloud), io.StringIO())
        assert result.status == "SUCCEEDED"
        ours = result.final_state["endpoint"]["endpointArn"]
        cfn, bedrock = cloud.client("cloudformation"), cloud.client("bedrock")
        # When the stack is deleted
        deletion = cloud.destroy(deployment)
        # Then the deletion fails, the stack stays, and the reason says what to delete by hand
        assert deletion.stack_status == "DELETE_FAILED"
        assert (
            cfn.describe_stacks(StackName=deployment.stack_id)["Stacks"][0]["StackStatus"] == "DELETE_FAILED"
        )
        assert deletion.failure is not None
        assert "AccessDeniedException: Denied by a boundary." in deletion.failure
        assert (
            f"aws bedrock delete-provisioned-model-throughput --provisioned-model-id {ours}"
            in deletion.failure
        )
        assert _throughput_arns(bedrock) == {ours}
        # When the permission is fixed and the deletion retried
        emulated_bedrock.configure(scenario("ok"))
        retried = cloud.destroy(deployment)
        # Then the teardown finishes the job and the stack is gone
        assert retried.stack_status == "DELETE_COMPLETE"
        assert _throughput_arns(bedrock) == set()
