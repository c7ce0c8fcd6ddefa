"""The emulated AWS: moto plus the hooks of this package, and the synthesized stack deployed into it.

Deployment goes through moto's CloudFormation with the synthesized template. These adaptations
are made for moto, none of them to the state machine, the trigger or the handlers it runs:

* ``AWS::KMS::Key`` tags are renamed ``TagKey``/``TagValue``: moto's KMS reads that shape from
  CloudFormation and fails on the documented ``Key``/``Value``.
* ``VersioningConfiguration`` of a bucket is applied after creation (moto's CloudFormation
  ignores it).
* Custom resources are not created by moto: it would invoke their handlers in Docker and wait
  for a response. ``Custom::S3BucketNotifications`` has its effect (the bucket's
  ``EventBridgeConfiguration``) applied directly. ``Custom::BedrockTeardown`` runs through the
  emulated Provider framework (``provider.py``): its Create once the stack is created, its Delete
  in :meth:`LocalCloud.destroy`. ``Custom::BedrockPreflight`` checks model access and quotas of a
  real account, which the emulated Bedrock cannot answer truthfully: it is listed as not run, and
  stack outputs that read its attributes are left out.
* CloudWatch alarms and the dashboard are not deployed: moto's CloudFormation has no alarms, and the
  dashboard shows them (``stacks/observability.py``; the infrastructure tests check both). The saved
  Logs Insights query is a type moto skips.
* moto puts a state machine created by CloudFormation in a backend that cannot execute; each
  one is re-created, with the same name, role and the definition CloudFormation resolved, in the
  backend that executes.

One fix to moto's interpreter: an execution stopped while a task runs stays stopped (ABORTED, as on
AWS). moto's interpreter clears the execution's stack once stopped while the task's thread still
uses it, and the error that thread then raises would replace the stop (the execution ended FAILED
with "pop from empty list", in about one stop in five).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import re
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws
from moto.cloudformation.models import cloudformation_backends
from moto.core.config import default_user_config
from moto.core.exceptions import AWSError
from moto.core.responses import EmptyResult
from moto.sns.models import sns_backends
from moto.stepfunctions.models import stepfunctions_backends
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends
from moto.stepfunctions.responses import StepFunctionResponse

from finetune.local import bedrock
from finetune.local import logs as cloudwatch_logs
from finetune.local import runtime as bedrock_runtime
from finetune.local.clients import reused_clients
from finetune.local.events import EventRouter
from finetune.local.gate import WaitGate
from finetune.local.jobs import JobTimer
from finetune.local.lambda_runtime import Invocation, LambdaRuntime
from finetune.local.provider import RUN_BY_PROVIDER, CustomResource, ProviderFramework, ProviderResponse
from finetune.local.quotas import preflight_answers
from finetune.local.scenarios import Scenario
from finetune.local.sns import PublishFailures
from finetune.local.template import Synthesized
from finetune.local.timing import Clock

MOTO_CONFIG: dict[str, dict[str, bool]] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"


class DeploymentFailed(RuntimeError):
    """moto's CloudFormation did not create the stack."""


@dataclass(frozen=True)
class Deployment:
    """What the deployed stack is called in the emulation."""

    stack_name: str
    account: str
    region: str
    bucket: str
    state_machine_arn: str
    topic_arn: str
    trigger_rule: str
    #: The definition the executing state machine was created with.
    definition: str
    #: Logical id -> physical id of every resource CloudFormation created.
    physical_ids: dict[str, str] = field(default_factory=dict)
    #: Resource types moto's CloudFormation does not create (resource policies: IAM is not enforced),
    #: and what the emulation leaves out (alarms, the dashboard, custom resources it does not run).
    not_emulated: list[str] = field(default_factory=list)
    #: The stack's ARN (what ``AWS::StackId`` resolves to, and the ``finetune:stack`` tag's value).
    stack_id: str = ""
    #: Custom resources run through the emulated Provider framework, with their physical ids.
    custom_resources: tuple[CustomResource, ...] = ()
    #: Every state machine of the stack (the pipeline's first), as re-created in the executing backend.
    state_machine_arns: tuple[str, ...] = ()

    def notifications(self) -> list[dict[str, Any]]:
        """Messages published to the notification topic, oldest first."""
        topic = sns_backends[self.account][self.region].topics[self.topic_arn]
        return [
            {"messageId": mid, "message": message, "subject": subject, "attributes": attributes or {}}
            for mid, message, subject, attributes, _ in topic.sent_notifications
        ]


@dataclass(frozen=True)
class StackDeletion:
    """What deleting the stack did."""

    #: ``DELETE_COMPLETE``, or ``DELETE_FAILED`` when a custom resource's Delete failed.
    stack_status: str
    #: The failed custom resource and its status reason (``None`` when the deletion completed).
    failure: str | None
    #: The Provider framework's answer to each custom resource's Delete.
    responses: list[ProviderResponse]
    #: Messages published to the notification topic during the deletion.
    notifications: list[dict[str, Any]]
    #: The handler runs of the deletion, with their logs.
    invocations: list[Invocation]


def _references(node: Any, logical_id: str) -> bool:
    """Whether ``node`` uses ``Ref`` or ``Fn::GetAtt`` on ``logical_id``."""
    if isinstance(node, dict):
        if node.get("Ref") == logical_id:
            return True
        att = node.get("Fn::GetAtt")
        if isinstance(att, list) and att and att[0] == logical_id:
            return True
        return any(_references(v, logical_id) for v in node.values())
    if isinstance(node, list):
        return any(_references(v, logical_id) for v in node)
    return False


#: Resource types left out of the template given to moto, and what the summary says of them.
NOT_DEPLOYED = {
    "AWS::CloudWatch::Alarm": "AWS::CloudWatch::Alarm (not deployed)",
    "AWS::CloudWatch::Dashboard": "AWS::CloudWatch::Dashboard (not deployed)",
}


def _substitute(node: Any, logical_id: str, attributes: Mapping[str, str]) -> Any:
    """``node`` with each ``Fn::GetAtt`` of ``logical_id`` that ``attributes`` answers replaced by it."""
    if isinstance(node, dict):
        att = node.get("Fn::GetAtt")
        if isinstance(att, list) and len(att) == 2 and att[0] == logical_id and att[1] in attributes:
            return attributes[att[1]]
        return {k: _substitute(v, logical_id, attributes) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, logical_id, attributes) for v in node]
    return node


def _use_answers(resources: dict[str, Any], logical_id: str, attributes: Mapping[str, str]) -> None:
    """Replace the other resources' uses of ``logical_id``'s attributes that ``attributes`` answers."""
    if attributes:
        for other_id in [k for k in resources if k != logical_id]:
            resources[other_id] = _substitute(resources[other_id], logical_id, attributes)


def template_for_moto(
    synth: Synthesized, answer: Callable[[str, Mapping[str, Any]], Mapping[str, str]] | None = None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The template with the moto adaptations above.

    Returns it with the buckets whose events go to EventBridge and what is neither run nor deployed:
    custom resource types (run neither by moto nor by the emulated Provider framework), alarms and
    the dashboard. ``answer`` gives, for such a custom resource (its type and properties), the
    attributes it would answer: other resources' uses of them get those values (the training queue's
    limit from the preflight).
    """
    template = copy.deepcopy(synth.template)
    resources = template["Resources"]
    for resource in resources.values():
        if resource["Type"] == "AWS::KMS::Key" and "Tags" in resource.get("Properties", {}):
            resource["Properties"]["Tags"] = [
                {"TagKey": t["Key"], "TagValue": t["Value"]} for t in resource["Properties"]["Tags"]
            ]
    event_buckets: list[str] = []
    skipped: list[str] = []
    for logical_id, resource in list(resources.items()):
        if resource["Type"] in NOT_DEPLOYED:
            skipped.append(NOT_DEPLOYED[resource["Type"]])
        elif not resource["Type"].startswith("Custom::"):
            continue
        elif resource["Type"] == "Custom::S3BucketNotifications":
            props = resource["Properties"]
            if "EventBridgeConfiguration" in props.get("NotificationConfiguration", {}):
                event_buckets.append(props["BucketName"]["Ref"])
        elif resource["Type"] not in RUN_BY_PROVIDER:
            skipped.append(f"{resource['Type']} (not run)")
            if answer is not None:
                _use_answers(resources, logical_id, answer(resource["Type"], resource.get("Properties", {})))
        del resources[logical_id]
        for other in resources.values():
            if "DependsOn" in other:
                depends = [other["DependsOn"]] if isinstance(other["DependsOn"], str) else other["DependsOn"]
                other["DependsOn"] = [d for d in depends if d != logical_id]
        outputs = template.get("Outputs", {})
        for name in [n for n, o in outputs.items() if _references(o, logical_id)]:
            del outputs[name]
    return template, event_buckets, sorted(set(skipped))


@contextlib.contextmanager
def _stops_stay_stopped() -> Iterator[None]:
    """An error recorded after StopExecution does not turn the stopped execution into a failed one;
    and StopExecution ends a task waiting for a task token at once, as on AWS (moto's interpreter
    would keep the execution running until the token is answered or times out). SendTaskFailure, like
    SendTaskSuccess, answers only a running execution's token: a stopped one's is TaskDoesNotExist on
    AWS, and moto 5.2.5 would accept it; and it carries its ``cause`` into the execution (moto's
    response drops it)."""
    original = Environment.set_error
    original_stop = Environment.set_stop
    original_failure = StepFunctionsParserBackend.send_task_failure

    def send_task_failure(
        self: StepFunctionsParserBackend, task_token: str, error: Any = None, cause: Any = None
    ) -> Any:
        if any(
            execution.status != ExecutionStatus.RUNNING
            and task_token in getattr(execution.exec_worker.env.callback_pool_manager, "_pool", {})
            for execution in self._get_executions()
            if execution.exec_worker is not None
        ):
            raise AWSError(
                "Task Does Not Exist: the execution waiting on this token has ended", "TaskDoesNotExist"
            )
        return original_failure(self, task_token, error, cause)

    def send_task_failure_response(self: StepFunctionResponse) -> Any:
        backend: Any = self.stepfunction_backend  # the parser's backend, which takes the cause
        backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    def set_error(self: Environment, error: Any) -> None:
        with self._state_mutex:
            if isinstance(self._program_state, ProgramStopped):
                return
            original(self, error)

    def set_stop(self: Environment, stop_date: Any, cause: str | None, error: str | None) -> None:
        original_stop(self, stop_date=stop_date, cause=cause, error=error)
        pool = getattr(self, "callback_pool_manager", None)
        for endpoint in list(getattr(pool, "_pool", {}).values()):
            endpoint.interrupt_all()

    with (
        mock.patch.object(Environment, "set_error", set_error),
        mock.patch.object(Environment, "set_stop", set_stop),
        mock.patch.object(StepFunctionsParserBackend, "send_task_failure", send_task_failure),
        mock.patch.object(StepFunctionResponse, "send_task_failure", send_task_failure_response),
    ):
        yield


class _SkippedResourceFilter(logging.Filter):
    """Drops moto's "No Moto CloudFormation support for X" lines: the deploy lists those types once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No Moto CloudFormation support")


_SKIPPED_RESOURCE_FILTER = _SkippedResourceFilter()


def _quiet_moto_template_parsing() -> None:
    """moto parses the template again on later calls (resource listings, deletion) and logs and warns
    about each skipped resource type every time; the deploy already reports them as not emulated."""
    warnings.filterwarnings(
        "ignore", message=r"Tried to parse \S+ but it's not supported", category=UserWarning
    )
    parsing_log = logging.getLogger("moto")  # moto.cloudformation.parsing logs on "moto"
    if _SKIPPED_RESOURCE_FILTER not in parsing_log.filters:
        parsing_log.addFilter(_SKIPPED_RESOURCE_FILTER)


@contextlib.contextmanager
def _restore_level(logger: logging.Logger, level: int) -> Iterator[None]:
    try:
        yield
    finally:
        logger.setLevel(level)


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "The local emulation runs this asset from its source folder.\n")
    return buffer.getvalue()


class LocalCloud:
    """moto with the Lambda runtime, Bedrock, EventBridge and clock hooks installed."""

    def __init__(
        self,
        synth: Synthesized,
        scenario: Scenario,
        *,
        clock: Clock | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.synth = synth
        self.scenario = scenario
        self.clock = clock or Clock()
        self.endpoint_url = endpoint_url
        extra_env = {"AWS_ENDPOINT_URL": endpoint_url} if endpoint_url else {}
        self.runtime = LambdaRuntime(synth.assets, synth.region, extra_env=extra_env)
        self.router = EventRouter()
        self.jobs = JobTimer(self.clock, self.router, scenario)
        self.publish_failures = PublishFailures(scenario)
        self.provider = ProviderFramework(
            account=synth.account,
            region=synth.region,
            template=synth.template,
            client=self.client,
            sleep=self.clock.sleep,
        )

    def client(self, service: str) -> Any:
        """A boto3 client of the emulated AWS."""
        return boto3.client(
            service,
            region_name=self.synth.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        )

    @contextlib.contextmanager
    def hooks(self) -> Iterator[LocalCloud]:
        """Install the hooks (in-process moto or a moto server thread in this process)."""
        bedrock.configure(self.scenario)
        # The interpreter logs every Fail state as an error; the execution history has it already.
        interpreter_log = logging.getLogger("moto.stepfunctions.parser")
        level = interpreter_log.level
        interpreter_log.setLevel(logging.CRITICAL)
        with (
            _restore_level(interpreter_log, level),
            self.runtime.installed(),
            self.router.installed(),
            self.clock.installed(),
            bedrock.installed(),
            bedrock_runtime.installed(),  # Converse on the emulated endpoints
            cloudwatch_logs.shipped(self.runtime, cloudwatch_logs.LogShipper(self.synth, self.client)),
            reused_clients(),
            self.publish_failures.installed(),
            _stops_stay_stopped(),
            bedrock.timed_jobs(self.jobs),
            contextlib.closing(self.jobs),
        ):
            yield self

    @contextlib.contextmanager
    def in_process(self) -> Iterator[Deployment]:
        """moto in this process (``mock_aws``), hooks installed, the stack deployed."""
        with (
            mock.patch.dict("os.environ", {"AWS_DEFAULT_REGION": self.synth.region}),
            mock_aws(config=MOTO_CONFIG),  # type: ignore[call-overload]
            self.hooks(),
        ):
            deployment = self.deploy()
            if self.scenario.user_acts and self.clock.gate is None:
                # The runner acts at precise points of the run: hold its execution at each Wait state.
                self.clock.gate = WaitGate(deployment.state_machine_arn)
            try:
                yield deployment
            finally:
                # Executions stopped because the emulation closes send no status-change event.
                self.router.send_execution_events = False
                if isinstance(self.clock.gate, WaitGate):
                    self.clock.gate.open()
                self.stop_running(deployment)

    def destroy(self, deployment: Deployment) -> StackDeletion:
        """Delete the stack as ``cdk destroy`` does, custom resources' Delete included.

        The stack goes to ``DELETE_IN_PROGRESS``; each custom resource run by the emulated Provider
        framework gets its Delete (the teardown: onEvent, then isComplete until complete); if one
        fails, the stack is ``DELETE_FAILED`` and stays, as on AWS. Otherwise moto's CloudFormation
        deletes the rest (resources with ``DeletionPolicy: Retain`` stay).

        Differences from AWS: CloudFormation deletes in reverse dependency order, so the pipeline
        functions and the state machine (which depend on the teardown) are gone before it runs, and
        the topic and key (which it depends on) after. Here running executions are stopped first
        (deleting a state machine ends its executions), the teardown runs while the other resources
        still exist, and moto deletes them all afterwards.
        """
        account, region = deployment.account, deployment.region
        notified = len(deployment.notifications())
        invoked = len(self.runtime.invocations)
        self.stop_running(deployment)
        stack = cloudformation_backends[account][region].get_stack(deployment.stack_id)
        stack.status = "DELETE_IN_PROGRESS"
        responses: list[ProviderResponse] = []
        failed: str | None = None
        for resource in reversed(deployment.custom_resources):
            response = self.provider.send(deployment.stack_id, resource, "Delete")
            responses.append(response)
            if not response.succeeded:
                failed = f"{resource.logical_id}: {response.reason}"
                break
        notifications = deployment.notifications()[notified:]
        if failed:
            stack.status = "DELETE_FAILED"
        else:
            self.client("cloudformation").delete_stack(StackName=deployment.stack_id)
            # The state machines re-created in the executing backend go with the stack.
            for arn in deployment.state_machine_arns or (deployment.state_machine_arn,):
                stepfunctions_parser_backends[account][region].delete_state_machine(arn)
        status = self.client("cloudformation").describe_stacks(StackName=deployment.stack_id)["Stacks"][0]
        return StackDeletion(
            stack_status=status["StackStatus"],
            failure=failed,
            responses=responses,
            notifications=notifications,
            invocations=self.runtime.invocations[invoked:],
        )

    def wait_until_settled(
        self, deployment: Deployment, timeout: float, root: str | None = None
    ) -> list[str]:
        """Wait (real time, at most ``timeout`` s) until every execution has ended and its
        status-change event has been delivered; returns the executions that had not (none when
        settled). What those events start (a clean-up's Lambda function or state machine) is thus
        waited for too, and so is what that starts in turn. With ``root``, only that execution and
        what its end started count (a server follows each run on its own)."""
        deadline = time.time() + timeout
        while True:
            running = self.router.running(deployment.account, deployment.region, root)
            if not running or time.time() > deadline:
                return running
            time.sleep(0.01)

    def stop_running(self, deployment: Deployment) -> None:
        """Stop executions still running, so none outlives the emulation (and reaches for AWS)."""
        sfn = self.client("stepfunctions")
        executions = []
        for arn in deployment.state_machine_arns or (deployment.state_machine_arn,):
            try:
                running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")
            except sfn.exceptions.StateMachineDoesNotExist:
                continue  # the stack was destroyed, its state machines with it
            executions.extend(running["executions"])
        for execution in executions:
            for _ in range(200):
                try:
                    sfn.stop_execution(
                        executionArn=execution["executionArn"], cause="the emulation is closing"
                    )
                    break
                except Exception:
                    # moto cannot stop an execution whose worker has not started yet.
                    time.sleep(0.01)
        # A handler that is already running finishes first; no new one starts after a stop.
        with self.runtime.lock:
            pass

    def deploy(self) -> Deployment:
        """Deploy the synthesized template into the emulation."""
        _quiet_moto_template_parsing()
        # moto logs and warns about each resource type it skips, every time it parses the template.
        moto_cfn_log = logging.getLogger("moto")
        level = moto_cfn_log.level
        moto_cfn_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                deployment = self._deploy()
        finally:
            moto_cfn_log.setLevel(level)
        pattern = re.compile(r"parse (\S+) but it's not supported")
        deployment.not_emulated.extend(
            sorted({m.group(1) for w in caught if (m := pattern.search(str(w.message)))})
        )
        return deployment

    def _deploy(self) -> Deployment:
        synth = self.synth
        for key in ("stepfunctions", "lambda"):
            default_user_config.setdefault(key, {}).update(MOTO_CONFIG[key])  # type: ignore[misc]
        self.client("ssm").put_parameter(Name=BOOTSTRAP_VERSION_PARAMETER, Value="30", Type="String")
        s3 = self.client("s3")
        # S3 takes no location constraint for us-east-1 (where the Nova models are fine-tuned).
        location = {} if synth.region == "us-east-1" else {"LocationConstraint": synth.region}
        s3.create_bucket(
            Bucket=synth.bootstrap_bucket, **({"CreateBucketConfiguration": location} if location else {})
        )
        for key in synth.assets:
            s3.put_object(Bucket=synth.bootstrap_bucket, Key=key, Body=_empty_zip())

        template, event_buckets, not_created = template_for_moto(
            synth, lambda kind, properties: preflight_answers(kind, properties, self.scenario)
        )
        cfn = self.client("cloudformation")
        cfn.create_stack(
            StackName=synth.stack_name,
            TemplateBody=json.dumps(template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        stack = cfn.describe_stacks(StackName=synth.stack_name)["Stacks"][0]
        summaries = cfn.list_stack_resources(StackName=synth.stack_name)["StackResourceSummaries"]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            failed = [
                f"{r['LogicalResourceId']}: {r['ResourceStatus']}"
                for r in summaries
                if r["ResourceStatus"] != "CREATE_COMPLETE"
            ]
            raise DeploymentFailed(f"{synth.stack_name}: {stack['StackStatus']}; {'; '.join(failed)}")
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries}
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

        # moto's CloudFormation ignores VersioningConfiguration; the run identity uses version ids.
        for logical_id, bucket in synth.resources_of_type("AWS::S3::Bucket").items():
            versioning = bucket.get("Properties", {}).get("VersioningConfiguration", {})
            if versioning.get("Status") == "Enabled":
                s3.put_bucket_versioning(
                    Bucket=physical[logical_id], VersioningConfiguration={"Status": "Enabled"}
                )
        # moto's CloudFormation has no AWS::Scheduler::ScheduleGroup: create the groups directly.
        for group in synth.resources_of_type("AWS::Scheduler::ScheduleGroup").values():
            self.client("scheduler").create_schedule_group(Name=group["Properties"]["Name"])
        for logical_id in event_buckets:
            s3.put_bucket_notification_configuration(
                Bucket=physical[logical_id], NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

        machines = [
            physical[k] for k in synth.resources_of_type("AWS::StepFunctions::StateMachine") if k in physical
        ]
        pipeline = outputs["StateMachineArn"]
        definitions = {arn: self._recreate_state_machine(arn) for arn in dict.fromkeys([pipeline, *machines])}
        created = self._create_custom_resources(stack["StackId"])
        trigger = next(
            physical[k]
            for k, r in synth.template["Resources"].items()
            if r["Type"] == "AWS::Events::Rule"
            and '"aws.s3"' in json.dumps(r["Properties"].get("EventPattern"))
        )
        return Deployment(
            stack_name=synth.stack_name,
            account=synth.account,
            region=synth.region,
            bucket=outputs["BucketName"],
            state_machine_arn=outputs["StateMachineArn"],
            topic_arn=outputs["TopicArn"],
            trigger_rule=trigger,
            definition=definitions[pipeline],
            physical_ids=physical,
            not_emulated=not_created,
            stack_id=stack["StackId"],
            custom_resources=created,
            state_machine_arns=tuple(definitions),
        )

    def _create_custom_resources(self, stack_id: str) -> tuple[CustomResource, ...]:
        # On AWS they are created in dependency order among the other resources; here after them.
        # The teardown's Create does nothing but return its physical id, so the order does not show.
        created = []
        for resource in self.provider.custom_resources(stack_id):
            response = self.provider.send(stack_id, resource, "Create")
            if not response.succeeded:
                raise DeploymentFailed(f"{resource.logical_id}: CREATE_FAILED: {response.reason}")
            created.append(dataclasses.replace(resource, physical_id=response.physical_id))
        return tuple(created)

    def _recreate_state_machine(self, arn: str) -> str:
        account, region = self.synth.account, self.synth.region
        created = stepfunctions_backends[account][region].describe_state_machine(arn)
        executing = stepfunctions_parser_backends[account][region]
        executing.create_state_machine(
            name=created.name,
            definition=created.definition,
            roleArn=created.roleArn,
            sm_type=getattr(created, "sm_type", None) or "STANDARD",
        )
        return str(executing.describe_state_machine(arn).definition)
