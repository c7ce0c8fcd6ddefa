"""cdk-nag acknowledgments: each on the narrowest construct, each with its reason.

Rule packs are added in :mod:`stacks.application`; unacknowledged findings fail synthesis. Findings
that name a resource are built from the construct's logical ID at synth time, never hard-coded.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Token, Validations
from constructs import IConstruct

#: Why the approvers' ``states:SendTask*`` name ``Resource: "*"``.
APPROVAL_ANSWER_REASON = (
    "Answers an approval (Step Functions task token); the action has no resource type: the token in the "
    "request is the control, readable only from reports/<run>/approval.json in the dataset bucket."
)

#: Actions that have no resource type in the Service Authorization Reference, so IAM only accepts
#: ``Resource: "*"`` for them. This is the one list of such exceptions; tests check every "*" against it.
ACTIONS_WITHOUT_RESOURCE_TYPE: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray trace upload (Lambda active tracing, state machine tracing)",
    "xray:PutTelemetryRecords": "X-Ray telemetry upload (Lambda active tracing, state machine tracing)",
    "xray:GetSamplingRules": "X-Ray sampling rules (state machine tracing)",
    "xray:GetSamplingTargets": "X-Ray sampling targets (state machine tracing)",
    "logs:CreateLogDelivery": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "logs:GetLogDelivery": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "logs:UpdateLogDelivery": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "logs:DeleteLogDelivery": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "logs:ListLogDeliveries": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "logs:PutResourcePolicy": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "logs:DescribeResourcePolicies": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "logs:DescribeLogGroups": "CloudWatch Logs vended delivery for the state machine's execution logs",
    "bedrock:ListModelCustomizationJobs": (
        "Teardown finds the stack's running jobs (filtered by tag in code); the training queue counts "
        "the account's running jobs when Bedrock refuses one for a quota"
    ),
    "bedrock:ListProvisionedModelThroughputs": "Teardown finds the stack's throughput (filtered by tag)",
    "bedrock:ListCustomModels": "Teardown finds the stack's custom models (filtered by tag in code)",
    "bedrock:ListCustomModelDeployments": "Teardown finds the stack's deployments (filtered by tag in code)",
    "servicequotas:ListServiceQuotas": "Preflight reads the Bedrock model-units quota (read-only)",
    "servicequotas:ListAWSDefaultServiceQuotas": "Preflight reads the Bedrock model-units quota default",
    "states:SendTaskSuccess": (
        f"{APPROVAL_ANSWER_REASON} JobEnded and Wait for the job to end also wake a run waiting on its "
        "job with it: that token is readable only from reports/_waiting/ in the dataset bucket."
    ),
    "states:SendTaskFailure": (
        f"{APPROVAL_ANSWER_REASON} JobEnded and Wait for the job to end also fail a run's wait with it "
        "when its job failed or was stopped: that token is readable only from reports/_waiting/."
    ),
}

#: Action wildcards that CDK's own custom-resource providers receive through resource policies (which
#: cdk-nag does not inspect), by provider construct ID. The IAM report and the least-privilege tests
#: take their reasons from here; the reason applies only when the grantee is that provider's role.
GENERATED_POLICY_WILDCARDS: dict[str, dict[str, str]] = {
    "Custom::S3AutoDeleteObjectsCustomResourceProvider": {
        "s3:DeleteObject*": (
            "CDK's S3 auto-delete custom resource (removal_policy=destroy only) deletes every object "
            "version of this bucket when the stack is deleted; granted in this bucket's policy only."
        ),
        "s3:GetBucket*": (
            "CDK's S3 auto-delete custom resource reads this bucket's tags and policy (destroy only)."
        ),
        "s3:List*": (
            "CDK's S3 auto-delete custom resource lists this bucket's object versions (destroy only)."
        ),
    },
}


def logical_ref(construct: IConstruct) -> str:
    """The ``<LogicalId.Arn>``-style name cdk-nag uses for a construct's CloudFormation resource."""
    child = construct.node.default_child if not isinstance(construct, CfnElement) else construct
    assert isinstance(child, CfnElement), f"{construct.node.path} has no CloudFormation resource"
    return str(Stack.of(construct).get_logical_id(child))


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (e.g. ``AwsSolutions-IAM5[Resource::*]``) on one construct."""
    Validations.of(construct).acknowledge(Acknowledgment(id=finding, reason=reason))


def acknowledge_inline_policy(role: IConstruct, reason: str) -> None:
    """Acknowledge NIST 800-53 R5 ``IAMNoInlinePolicy`` on the inline policy CDK created for ``role``."""
    policy = role.node.try_find_child("DefaultPolicy")
    assert policy is not None, f"{role.node.path} has no default policy to acknowledge"
    acknowledge(policy, "NIST.800.53.R5-IAMNoInlinePolicy", reason)


#: Why the pipeline's roles keep CDK's one-role inline policy (NIST 800-53 R5 IAMNoInlinePolicy).
INLINE_POLICY_REASON = (
    "This policy is attached to this one role only and is created and deleted with it; a "
    "customer-managed policy would be a reusable object that no other principal should attach."
)


def acknowledge_synchronous_only(function: IConstruct, caller: str) -> None:
    """Acknowledge the Lambda DLQ rules (Serverless, NIST) on a function that only ``caller`` invokes,
    synchronously."""
    for rule in ("Serverless-LambdaDLQ", "NIST.800.53.R5-LambdaDLQ"):
        acknowledge(
            function,
            rule,
            f"Only {caller} invokes this function, synchronously; the caller sees and handles every "
            "error. A Lambda DLQ only receives asynchronous invocations.",
        )


def acknowledge_wildcard_resource(construct: IConstruct, resource: str, reason: str) -> None:
    """Acknowledge ``AwsSolutions-IAM5[Resource::<resource>]`` on ``construct``."""
    acknowledge(construct, f"AwsSolutions-IAM5[Resource::{resource}]", reason)


def nag_arn(stack: Stack, service: str, resource: str) -> str:
    """How cdk-nag prints ``arn:<partition>:<service>:<region>:<account>:<resource>`` for this stack."""
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    return f"arn:<AWS::Partition>:{service}:{region}:{account}:{resource}"
