"""Guards around the pipeline: a deploy-time preflight and a teardown on stack deletion.

Two CloudFormation custom resources built with the CDK custom-resource Provider framework:

- ``Preflight`` (Create, Update) fails the deployment when Bedrock cannot fine-tune or serve the
  configured base model in this region, and reports softer problems as the ``PreflightWarnings``
  stack output. Skipped entirely with ``preflight = false``.
- ``Teardown`` (Delete) stops this stack's customization jobs and deletes its no-commitment
  Provisioned Throughputs (and its custom models with ``delete_custom_models_on_destroy``), waiting
  until they are gone.

Deletion order matters: CloudFormation deletes a resource before the resources it depends on. The
teardown resource depends on the topic and the key it uses to report, so they still exist when it
runs; the pipeline functions that create billed resources depend on it, so they are gone (and no
run can start a job or buy throughput) before it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, CfnOutput, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from bedrock_finetune.settings import PreflightProperties, TeardownProperties
from stacks.config import PipelineConfig
from stacks.nag import (
    ACTIONS_WITHOUT_RESOURCE_TYPE,
    INLINE_POLICY_REASON,
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_wildcard_resource,
    logical_ref,
    nag_arn,
)
from stacks.permissions import (
    BedrockArns,
    delete_deployments_of_this_stack,
    delete_throughput_of_this_stack,
    owned_by_stack,
    publish_statements,
    stop_jobs_of_this_stack,
)
from stacks.pipeline_function import FunctionRuntime, PipelineFunction

#: How long stack deletion may wait for Bedrock to delete throughputs (the Provider's total timeout).
TEARDOWN_TIMEOUT = Duration.minutes(30)
#: The teardown gives up (with a message naming what is left) this long before the framework's own
#: timeout, whose status reason would only say "Operation timed out".
_TEARDOWN_MARGIN = Duration.minutes(3)
TEARDOWN_POLL = Duration.seconds(30)

_LIST_REASON = (
    "Only list actions that have no resource type (stacks/nag.py ACTIONS_WITHOUT_RESOURCE_TYPE): "
    "read-only; teardown keeps only what carries this stack's finetune:stack tag."
)


class _Provider(Construct):
    """A Provider framework with its own roles and one encrypted log group (no managed policies)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        on_event: lambda_.IFunction,
        key: kms.IKey,
        retention: logs.RetentionDays,
        removal: RemovalPolicy,
        is_complete: lambda_.IFunction | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=retention, encryption_key=key, removal_policy=removal
        )
        self.on_event_role = self._role("OnEventRole", "Provider framework: relays CloudFormation events")
        self.waiter_role = (
            self._role("WaitRole", "Provider framework: polls isComplete and reports timeouts")
            if is_complete is not None
            else None
        )
        # The waiter state machine's execution log: every state, without the execution data (the
        # CloudFormation request, whose ResponseURL is a pre-signed URL that answers the request).
        self.waiter_log_group = (
            logs.LogGroup(self, "WaiterLogs", retention=retention, encryption_key=key, removal_policy=removal)
            if is_complete is not None
            else None
        )
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=on_event,
            is_complete_handler=is_complete,
            query_interval=TEARDOWN_POLL if is_complete is not None else None,
            total_timeout=TEARDOWN_TIMEOUT if is_complete is not None else None,
            log_group=self.log_group,
            framework_on_event_role=self.on_event_role,
            framework_complete_and_timeout_role=self.waiter_role,
            provider_function_env_encryption=key,
            # CDK leaves the waiter's logging off unless told otherwise, log options or not.
            disable_waiter_state_machine_logging=False if self.waiter_log_group is not None else None,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=self.waiter_log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            )
            if self.waiter_log_group is not None
            else None,
        )
        self._acknowledge(on_event, is_complete)

    def _role(self, construct_id: str, description: str) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            description=description,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn, f"{self.log_group.log_group_arn}:log-stream:*"],
            )
        )
        return role

    @staticmethod
    def _acknowledge_framework_function(fn: lambda_.Function) -> None:
        """The Provider framework's relay functions: CDK builds them and exposes none of these settings."""
        relay = "a relay of the CDK custom-resource Provider framework, which exposes no setting for it"
        reasons = {
            "Serverless-LambdaDLQ": (
                f"This is {relay}; CloudFormation and the framework's waiter invoke it and report its "
                "failures as the custom resource's failure."
            ),
            "NIST.800.53.R5-LambdaDLQ": (
                f"This is {relay}; CloudFormation and the framework's waiter invoke it and report its "
                "failures as the custom resource's failure."
            ),
            "NIST.800.53.R5-LambdaConcurrency": (
                f"This is {relay}; it runs only during stack deployment and deletion, once per event."
            ),
            "NIST.800.53.R5-LambdaInsideVPC": (
                f"This is {relay}; it only calls CloudFormation, Lambda and Step Functions APIs over TLS."
            ),
            "Serverless-LambdaDefaultMemorySize": (
                f"This is {relay}; it only forwards one CloudFormation event, 128 MB is enough."
            ),
            "Serverless-LambdaTracing": (
                f"This is {relay}; the handlers it relays to (preflight, teardown) are traced."
            ),
        }
        for rule, reason in reasons.items():
            acknowledge(fn, rule, reason)

    @staticmethod
    def _log_delivery_only(waiter_role: IConstruct) -> None:
        """Keep only the log-delivery actions in the statement CDK grants the waiter for its logging.

        CDK grants them together with logs:CreateLogStream and logs:PutLogEvents on "*", which a state
        machine does not need: Step Functions writes its execution log through CloudWatch Logs vended
        delivery, whose actions have no resource type
        (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html#cloudwatch-iam-policy).
        """
        policy = waiter_role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(policy, iam.CfnPolicy), f"{waiter_role.node.path} has no default policy"
        document = Stack.of(waiter_role).resolve(policy.policy_document)
        delivery = [
            (index, actions)
            for index, statement in enumerate(document["Statement"])
            if "logs:CreateLogDelivery" in (actions := statement["Action"])
        ]
        assert len(delivery) == 1, f"expected one log-delivery statement in {waiter_role.node.path}"
        index, actions = delivery[0]
        policy.add_property_override(
            f"PolicyDocument.Statement.{index}.Action",
            [action for action in actions if action in ACTIONS_WITHOUT_RESOURCE_TYPE],
        )
        acknowledge_wildcard_resource(
            waiter_role,
            "*",
            "Only CloudWatch Logs vended delivery for the waiter's execution log, whose actions have no "
            "resource type (see stacks/nag.py).",
        )

    def _acknowledge(self, on_event: lambda_.IFunction, is_complete: lambda_.IFunction | None) -> None:
        for child in self.provider.node.children:
            if isinstance(child, lambda_.Function):
                self._acknowledge_framework_function(child)
        log_streams = f"<{logical_ref(self.log_group)}.Arn>:log-stream:*"
        handlers = [fn for fn in (on_event, is_complete) if fn is not None]
        roles = [r for r in (self.on_event_role, self.waiter_role) if r is not None]
        for role in roles:
            acknowledge_inline_policy(role, INLINE_POLICY_REASON)
            acknowledge_wildcard_resource(
                role, log_streams, "Log streams are created at run time; scoped to the provider's log group."
            )
            for fn in handlers:
                acknowledge_wildcard_resource(
                    role,
                    f"<{logical_ref(fn)}.Arn>:*",
                    "Versions of this custom resource's own handler (granted by the Provider framework).",
                )
        waiter = self.provider.node.try_find_child("waiter-state-machine")
        if waiter is not None:
            self._log_delivery_only(waiter.node.find_child("Role"))
            acknowledge(
                waiter,
                "AwsSolutions-SF2",
                "The Provider framework's waiter state machine offers no X-Ray option; it only polls "
                "the teardown's isComplete handler, which is traced.",
            )
            acknowledge(
                waiter,
                "Serverless-StepFunctionStateMachineXray",
                "The Provider framework's waiter state machine offers no X-Ray option; it only polls "
                "the teardown's isComplete handler, which is traced.",
            )
            waiter_role = waiter.node.find_child("Role")
            acknowledge_inline_policy(waiter_role, INLINE_POLICY_REASON)
            cfn_role = waiter_role.node.default_child
            assert isinstance(cfn_role, iam.CfnRole)
            cfn_role.add_property_override(
                "Description", "Provider framework waiter: runs the teardown's isComplete until it is done"
            )
            for child in self.provider.node.children:
                # The waiter invokes the isComplete and onTimeout relays, not onEvent.
                if isinstance(child, lambda_.Function) and child.node.id != "framework-onEvent":
                    acknowledge_wildcard_resource(
                        waiter.node.find_child("Role"),
                        f"<{logical_ref(child)}.Arn>:*",
                        "Versions of the Provider framework's own isComplete/onTimeout relay functions.",
                    )


class BedrockGuards(Construct):
    """The preflight (optional) and teardown custom resources of the pipeline stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        runtime: FunctionRuntime,
        arns: BedrockArns,
        topic: sns.ITopic,
        billing_functions: Sequence[IConstruct] = (),
    ) -> None:
        """``billing_functions``: the pipeline functions that start jobs or buy throughput. They are
        created after preflight passed and deleted before teardown runs."""
        super().__init__(scope, construct_id)
        self._config = config
        self._runtime = runtime
        self._key = runtime.key
        self._topic = topic
        self._retention = runtime.log_retention
        self._removal = runtime.removal_policy
        self.foundation_model_arn = arns.foundation_model
        self._arns = arns
        self.jobs_arn = arns.jobs
        self.provisioned_models_arn = arns.provisioned_models
        self.custom_models_arn = arns.custom_models

        self.preflight: CustomResource | None = self._preflight() if config.preflight else None
        self.teardown = self._teardown()
        for fn in billing_functions:
            fn.node.add_dependency(self.teardown)
            if self.preflight is not None:
                fn.node.add_dependency(self.preflight)

    # ---- preflight ----

    def _preflight(self) -> CustomResource:
        config = self._config
        fn = self._function(
            "PreflightFunction",
            "preflight",
            "Deploy-time check that Bedrock can fine-tune and serve the configured base model",
        )
        fn.add_to_policy(
            iam.PolicyStatement(
                sid="ReadBaseModel",
                actions=["bedrock:GetFoundationModel"],
                resources=[self.foundation_model_arn],
            ),
            *self._publish_statements(),
        )
        quotas = self._unscoped_policy(
            "PreflightQuotaPolicy",
            fn,
            iam.PolicyStatement(
                sid="ReadBedrockQuotas",
                actions=["servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas"],
                resources=["*"],
            ),
        )
        provider = _Provider(
            self,
            "PreflightProvider",
            on_event=fn.function,
            key=self._key,
            retention=self._retention,
            removal=self._removal,
        )
        resource = CustomResource(
            self,
            "Preflight",
            service_token=provider.provider.service_token,
            resource_type="Custom::BedrockPreflight",
            properties=PreflightProperties(
                base_model_id=config.base_model_id,
                region=Aws.REGION,
                model_spec=config.model.to_dict(),
                hyperparameters=dict(config.hyperparameters),
                model_units=config.model_units,
                commitment=config.commitment,
                topic_arn=self._topic.topic_arn,
                stack_name=Aws.STACK_NAME,
                max_concurrent_jobs=config.max_concurrent_jobs,
            ).to_properties(),
        )
        resource.node.add_dependency(self._topic, quotas)
        CfnOutput(
            Stack.of(self),
            "PreflightWarnings",
            value=resource.get_att_string("Warnings"),
            description="Deploy-time warnings about the base model and model-units quota ('none' if none)",
        )
        return resource

    # ---- teardown ----

    def _teardown(self) -> CustomResource:
        config = self._config
        on_event = self._function(
            "TeardownFunction",
            "teardown",
            "On stack deletion: stops this stack's jobs, deletes its no-commitment throughput, reports",
            timeout=Duration.minutes(5),
        )
        on_event.add_to_policy(
            iam.PolicyStatement(
                sid="TellDeletionFromReplacement",
                actions=["cloudformation:DescribeStacks"],
                resources=[Aws.STACK_ID],
            ),
            iam.PolicyStatement(
                sid="ReadTags",
                actions=["bedrock:ListTagsForResource"],
                resources=[self.jobs_arn, self.provisioned_models_arn, self._arns.deployments],
            ),
            stop_jobs_of_this_stack(self._arns),
            delete_throughput_of_this_stack(self._arns),
            delete_deployments_of_this_stack(self._arns),
            *self._publish_statements(),
        )
        on_event_lists = self._unscoped_policy(
            "TeardownListPolicy",
            on_event,
            iam.PolicyStatement(
                sid="ListJobsAndThroughput",
                actions=[
                    "bedrock:ListModelCustomizationJobs",
                    "bedrock:ListProvisionedModelThroughputs",
                    "bedrock:ListCustomModelDeployments",
                ],
                resources=["*"],
            ),
        )
        wait = self._function(
            "TeardownWaitFunction",
            "teardown",
            "On stack deletion: waits until this stack's throughput is gone; deletes custom models if set",
            timeout=Duration.minutes(5),
        )
        # Same module, second entry point: the Provider framework's isComplete handler.
        cfn_wait = wait.function.node.default_child
        assert isinstance(cfn_wait, lambda_.CfnFunction)
        cfn_wait.handler = "handlers.teardown.is_complete"
        list_actions = ["bedrock:ListProvisionedModelThroughputs", "bedrock:ListCustomModelDeployments"]
        tagged = [self.provisioned_models_arn, self._arns.deployments]
        if config.delete_custom_models_on_destroy:
            list_actions.append("bedrock:ListCustomModels")
            tagged.append(self.custom_models_arn)
        wait_lists = self._unscoped_policy(
            "TeardownWaitListPolicy",
            wait,
            iam.PolicyStatement(sid="ListThroughput", actions=list_actions, resources=["*"]),
        )
        wait.add_to_policy(
            iam.PolicyStatement(sid="ReadTags", actions=["bedrock:ListTagsForResource"], resources=tagged),
            delete_throughput_of_this_stack(self._arns),
            delete_deployments_of_this_stack(self._arns),
        )
        if config.delete_custom_models_on_destroy:
            wait.add_to_policy(
                iam.PolicyStatement(
                    sid="DeleteCustomModelsOfThisStack",
                    actions=["bedrock:DeleteCustomModel"],
                    resources=[self.custom_models_arn],
                    conditions=owned_by_stack(),
                )
            )
        provider = _Provider(
            self,
            "TeardownProvider",
            on_event=on_event.function,
            is_complete=wait.function,
            key=self._key,
            retention=self._retention,
            removal=self._removal,
        )
        resource = CustomResource(
            self,
            "Teardown",
            service_token=provider.provider.service_token,
            resource_type="Custom::BedrockTeardown",
            properties=TeardownProperties(
                stack_tag=Aws.STACK_ID,
                region=Aws.REGION,
                topic_arn=self._topic.topic_arn,
                delete_custom_models=config.delete_custom_models_on_destroy,
                wait_seconds=int(TEARDOWN_TIMEOUT.minus(_TEARDOWN_MARGIN).to_seconds()),
                key_arn=self._key.key_arn,
            ).to_properties(),
        )
        # Explicit, so they outlive the teardown even if the properties stop referencing them.
        resource.node.add_dependency(self._topic, on_event_lists, wait_lists)
        if isinstance(self._key, kms.Key):
            resource.node.add_dependency(self._key)
        self._acknowledge_teardown(on_event, wait)
        #: onEvent and isComplete, for the alarms on their errors (stacks/observability.py).
        self.teardown_functions = (on_event.function, wait.function)
        return resource

    def _acknowledge_teardown(self, on_event: PipelineFunction, wait: PipelineFunction) -> None:
        stack = Stack.of(self)
        reasons = {
            "model-customization-job/*": (
                "Job IDs are generated by Bedrock; this account and region only, and stopping is limited "
                "to jobs tagged with this stack."
            ),
            "provisioned-model/*": (
                "Provisioned model IDs are generated by Bedrock; this account and region only, and deletion "
                "is limited to throughput tagged with this stack."
            ),
            "custom-model/*": (
                "Custom model IDs are generated by Bedrock; this account and region only, and deletion is "
                "limited to models tagged with this stack."
            ),
            "custom-model-deployment/*": (
                "Deployment IDs are generated by Bedrock; this account and region only, and deletion is "
                "limited to deployments tagged with this stack."
            ),
        }
        used = {
            on_event: ("model-customization-job/*", "provisioned-model/*", "custom-model-deployment/*"),
            wait: ("provisioned-model/*", "custom-model-deployment/*", "custom-model/*")
            if self._config.delete_custom_models_on_destroy
            else ("provisioned-model/*", "custom-model-deployment/*"),
        }
        for fn, resources in used.items():
            for resource in resources:
                acknowledge_wildcard_resource(fn.role, nag_arn(stack, "bedrock", resource), reasons[resource])

    # ---- shared ----

    def _function(
        self, construct_id: str, module: str, description: str, timeout: Duration = Duration.seconds(60)
    ) -> PipelineFunction:
        return PipelineFunction(
            self,
            construct_id,
            runtime=self._runtime,
            module=module,
            description=description,
            timeout=timeout,
            invoked_synchronously_by="the custom-resource Provider framework",
        )

    def _unscoped_policy(
        self, construct_id: str, fn: PipelineFunction, statement: iam.PolicyStatement
    ) -> iam.Policy:
        """Actions IAM only grants on Resource "*", in a policy of their own so that the
        acknowledgment sits on exactly these statements (the custom resource depends on it)."""
        for action in statement.actions:
            assert action in ACTIONS_WITHOUT_RESOURCE_TYPE, f"{action} has a resource type; scope it"
        policy = iam.Policy(self, construct_id, statements=[statement], roles=[fn.role])
        acknowledge_wildcard_resource(policy, "*", _LIST_REASON)
        acknowledge(
            policy,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "Kept as a separate inline policy of this one role so that the acknowledgment of Resource '*' "
            "covers exactly these list actions; created and deleted with the role.",
        )
        return policy

    def _publish_statements(self) -> list[iam.PolicyStatement]:
        return publish_statements(self, self._topic, self._key, sid="Report")
