"""The fine-tuning state machine (Standard workflow), in the CDK chain syntax.

Happy path: Identify run -> Join the training queue -> Let uploads settle -> Validate dataset ->
(Take a training slot -> Waiting for a training slot)* -> Start customization job ->
Wait for the job to end (a task token the job's end wakes, no polling; it gives the training slot
back) -> Collect training results -> Plan serving -> Approval needed? ->
[Request approval] -> Serve model -> [(Handle deployment quota -> Waiting for a deployment quota ->
Serve model)*, when Bedrock refuses a deployment for a quota and deployment_quota_policy is wait] ->
(Wait for endpoint -> Get endpoint status)*, waits growing from a minute -> Record served version ->
Notify success ->
Model in service. With ``serving = none`` the run ends after the training results: Record trained
version -> Notify success -> Model trained.

A rejected or expired approval buys nothing: Record kept version -> Notify model kept -> Model kept,
not served. Every failure (a task's error after its retries; job Failed/Stopped, which fails the
wait; endpoint Failed or not ready in time; quality gate not met, which fails Collect training
results) records ``$.failure = {step, error, cause}`` and goes through Clean up failed run -> Notify
failure -> Run failed, whose error and cause come from the notification step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from bedrock_finetune.errors import TRANSIENT_ERRORS, BedrockQuotaExceeded
from bedrock_finetune.layout import DATASETS_PREFIX, TRAIN_FILE
from stacks.nag import (
    INLINE_POLICY_REASON,
    acknowledge_inline_policy,
    acknowledge_wildcard_resource,
    logical_ref,
)
from stacks.permissions import describe_role
from stacks.queue_states import Catch, TrainingQueueStates

#: Lambda service-side errors worth retrying (the function never ran, or was throttled).
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
]


#: Where the deployment-quota wait keeps its rounds (and, from the catch, Bedrock's refusal).
DEPLOYMENT_QUOTA_PATH = "$.deploymentQuota"
DEPLOYMENT_QUOTA_REFUSAL = f"{DEPLOYMENT_QUOTA_PATH}.refusal"


@dataclass(frozen=True)
class WorkflowFunctions:
    """The Lambdas the state machine invokes, one per task."""

    validate_dataset: lambda_.IFunction
    start_customization_job: lambda_.IFunction
    wait_for_job_to_end: lambda_.IFunction
    collect_training_results: lambda_.IFunction
    plan_serving: lambda_.IFunction
    request_approval: lambda_.IFunction
    serve_model: lambda_.IFunction
    get_endpoint_status: lambda_.IFunction
    record_line_version: lambda_.IFunction
    clean_up_failed_run: lambda_.IFunction
    notify: lambda_.IFunction
    training_queue: lambda_.IFunction
    #: Scores a new version before it is served (None: evaluation is off, or nothing is served).
    evaluate_candidate: lambda_.IFunction | None = None

    def all(self) -> tuple[lambda_.IFunction, ...]:
        found = (getattr(self, f.name) for f in dataclasses.fields(self))
        return tuple(f for f in found if f is not None)


@dataclass(frozen=True)
class WorkflowTiming:
    """Waits and limits, from configuration."""

    settle_seconds: int
    #: The longest a job may run: the timeout of Wait for the job to end.
    max_job_hours: int
    cleanup_retry_seconds: int
    execution_timeout: Duration
    approval_timeout: Duration
    #: ``on_demand``, ``provisioned`` or ``none`` (train only: no serving states).
    serving: str = "provisioned"
    #: Score each new version against the line's current model before it is served.
    evaluation: bool = False
    #: A deployment Bedrock refuses for a quota waits (deployment_quota_policy = wait, on demand) in
    #: "Waiting for a deployment quota"; otherwise the refusal fails the run.
    deployment_quota_wait: bool = False


def _with_execution(fields: dict[str, object]) -> sfn.TaskInput:
    """A task payload: the given fields plus the run (which every task's log lines name) and the
    execution's ARN and name (the correlation id)."""
    return sfn.TaskInput.from_object(
        {
            "run": sfn.JsonPath.object_at("$.run"),
            **fields,
            "executionArn": sfn.JsonPath.string_at("$$.Execution.Id"),
            "executionName": sfn.JsonPath.string_at("$$.Execution.Name"),
        }
    )


def lambda_task(
    scope: Construct,
    name: str,
    function: lambda_.IFunction,
    fields: dict[str, object],
    *,
    result_path: str,
    timeout: Duration = Duration.minutes(2),
    payload: sfn.TaskInput | None = None,
) -> tasks.LambdaInvoke:
    """A Lambda task with explicit retries: Lambda service errors and transient AWS errors are
    retried with exponential back-off and full jitter; everything else fails at once.

    The payload is ``fields`` plus the run and the execution's ARN and name, unless ``payload`` is given."""
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=payload or _with_execution(fields),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(timeout),
    )
    return with_standard_retries(task)


def token_task(
    scope: Construct,
    name: str,
    function: lambda_.IFunction,
    fields: dict[str, object],
    *,
    result_path: str,
    timeout: sfn.Timeout,
) -> tasks.LambdaInvoke:
    """A ``.waitForTaskToken`` Lambda task: ``fields`` plus the task token, the run's execution ARN and
    name; it waits until someone answers the token or ``timeout`` passes, with the standard retries."""
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        payload=_with_execution({**fields, "taskToken": sfn.JsonPath.task_token}),
        retry_on_service_exceptions=False,
        result_path=result_path,
        task_timeout=timeout,
    )
    return with_standard_retries(task)


def with_standard_retries(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
    """Lambda service errors, then transient AWS errors, each retried with exponential back-off and
    full jitter; everything else fails at once (the caller's Catch decides)."""
    task.add_retry(
        errors=LAMBDA_SERVICE_ERRORS,
        interval=Duration.seconds(2),
        max_attempts=6,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )
    task.add_retry(
        errors=list(TRANSIENT_ERRORS),
        interval=Duration.seconds(20),
        max_attempts=6,
        backoff_rate=2,
        max_delay=Duration.minutes(5),
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


class FineTuningWorkflow(Construct):
    """The Standard state machine that runs one fine-tuning run end to end."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: WorkflowFunctions,
        timing: WorkflowTiming,
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)

        notify_failure = self._notify_failure(functions)
        failure_chain = self._failure_chain(functions, timing, notify_failure)

        def caught_failure(name: str, step: str) -> sfn.Pass:
            """A Pass that records the error in ``$.caught`` as ``step`` failing."""
            return sfn.Pass(
                self,
                name,
                parameters={"step": step, "error.$": "$.caught.Error", "cause.$": "$.caught.Cause"},
                result_path="$.failure",
            )

        def record_failure(step: str) -> sfn.Pass:
            return caught_failure(f"{step} failed", step)

        def pipeline_task(
            step: str,
            function: lambda_.IFunction,
            fields: dict[str, object],
            *,
            catches: tuple[Catch, ...] = (),
            **options: Any,
        ) -> tasks.LambdaInvoke:
            """A task whose every error (after its retries, and ``catches`` first) is recorded as ``step``
            failing."""
            task = lambda_task(self, step, function, fields, **options)
            for errors, handler, path in catches:
                task.add_catch(handler, errors=errors, result_path=path)
            task.add_catch(
                record_failure(step).next(failure_chain), errors=["States.ALL"], result_path="$.caught"
            )
            return task

        def status_failure(name: str, step: str, error: str, cause_path: str) -> sfn.Pass:
            return sfn.Pass(
                self,
                name,
                parameters={"step": step, "error": error, "cause.$": cause_path},
                result_path="$.failure",
            )

        # ---- happy path ----
        queue = TrainingQueueStates(
            self, functions.training_queue, pipeline_task=pipeline_task, lambda_task=lambda_task
        )
        identify_run = sfn.Pass(
            self,
            "Identify run",
            comment="The run is the folder name: datasets/<run>/train.jsonl",
            parameters={
                "run": {
                    "bucket.$": "$.bucket",
                    "key.$": "$.key",
                    "etag.$": "$.etag",
                    "versionId.$": "$.versionId",
                    "run.$": "States.ArrayGetItem(States.StringSplit($.key, '/'), 1)",
                    "depth.$": "States.ArrayLength(States.StringSplit($.key, '/'))",
                }
            },
        )
        settle = sfn.Wait(
            self,
            "Let uploads settle",
            comment="Give validation.jsonl and hyperparameters.json time to arrive (aws s3 sync order)",
            time=sfn.WaitTime.duration(Duration.seconds(timing.settle_seconds)),
        )
        # EventBridge wildcards cross "/": datasets/a/b/train.jsonl matches too. Such a key is not a run
        # (it would read as run "a"), so it ends here, before anything is read, bought or reported.
        is_a_run = (
            sfn.Choice(self, "Upload is a run?")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.number_equals("$.run.depth", 3),
                    sfn.Condition.string_matches("$.run.key", f"{DATASETS_PREFIX}*/{TRAIN_FILE}"),
                ),
                queue.join,
            )
            .otherwise(
                sfn.Pass(
                    self,
                    "Not a run",
                    parameters={
                        "step": "Identify run",
                        "error": "NotARunKey",
                        "cause.$": f"States.Format('{{}} is not {DATASETS_PREFIX}<run>/{TRAIN_FILE}: "
                        "nothing was validated, trained or bought. Move the files into their own run "
                        f"folder and upload {TRAIN_FILE} again.', $.run.key)",
                    },
                    result_path="$.failure",
                ).next(notify_failure)
            )
        )
        validate = pipeline_task(
            "Validate dataset",
            functions.validate_dataset,
            {"run": sfn.JsonPath.object_at("$.run")},
            result_path="$.validation",
            timeout=Duration.minutes(15),
        )
        start_job = pipeline_task(
            "Start customization job",
            functions.start_customization_job,
            {
                "run": sfn.JsonPath.object_at("$.run"),
                "validation": sfn.JsonPath.object_at("$.validation"),
            },
            result_path="$.job",
            catches=(queue.on_bedrock_quota(),),
        )
        # The job's end (its state-change event, or the fallback check) answers the token with the job's
        # status; a job that overruns max_job_hours times the state out into the failure chain.
        wait_for_job = token_task(
            self,
            "Wait for the job to end",
            functions.wait_for_job_to_end,
            {"job": sfn.JsonPath.object_at("$.job")},
            result_path="$.job",
            timeout=sfn.Timeout.duration(Duration.hours(timing.max_job_hours)),
        )
        # A job that ended without a model fails the wait with its own error (JobEnded's
        # SendTaskFailure), so no Choice on the job's status follows the wait.
        for error, name in (
            ("CustomizationJobFailed", "Customization job failed"),
            ("CustomizationJobStopped", "Customization job stopped"),
        ):
            wait_for_job.add_catch(
                caught_failure(name, "Customization job").next(failure_chain),
                errors=[error],
                result_path="$.caught",
            )
        wait_for_job.add_catch(
            record_failure("Wait for the job to end").next(failure_chain),
            errors=["States.ALL"],
            result_path="$.caught",
        )
        # A quality gate not met fails Collect training results (QualityGateNotMet, after its report).
        collect = pipeline_task(
            "Collect training results",
            functions.collect_training_results,
            {"run": sfn.JsonPath.object_at("$.run"), "job": sfn.JsonPath.object_at("$.job")},
            result_path="$.training",
            catches=(
                (
                    ["QualityGateNotMet"],
                    caught_failure("Quality gate not met", "Quality gate").next(failure_chain),
                    "$.caught",
                ),
            ),
        )
        notify_success = self._notify_outcome(
            functions,
            "Notify success",
            "succeeded",
            "Model in service (notification not sent)",
            "The run ended as planned (its model is served, or kept when serving is none), but the "
            "success notification could not be published; see the execution output and the Notify "
            "success logs.",
        )

        def record_version(name: str, *, served: bool, why: str | None = None) -> tasks.LambdaInvoke:
            """A Record ... version task: the run's version in its line's record."""
            fields: dict[str, object] = {
                "run": sfn.JsonPath.object_at("$.run"),
                "job": sfn.JsonPath.object_at("$.job"),
                "served": served,
                "mode": timing.serving,
            }
            if served:
                fields["endpoint"] = sfn.JsonPath.object_at("$.endpoint")
                fields["why"] = "passed its gates; now served at the line's endpoint"
            elif why is not None:
                fields["why"] = why
            else:
                fields["why"] = sfn.JsonPath.string_at("$.notServed.why")
                fields["approvalExpired"] = sfn.JsonPath.string_at("$.notServed.expired")
            return pipeline_task(name, functions.record_line_version, fields, result_path="$.line")

        if timing.serving == "none":
            passed: sfn.IChainable = record_version(
                "Record trained version", served=False, why="serving is none: trained only, not served"
            ).next(notify_success.next(sfn.Succeed(self, "Model trained")))
        else:
            passed = self._serving(functions, timing, pipeline_task, status_failure, failure_chain)
            record_served = record_version("Record served version", served=True)
            record_served.next(notify_success.next(sfn.Succeed(self, "Model in service")))
            self._endpoint_ready.when(
                sfn.Condition.string_equals("$.endpoint.state", "ready"),
                self._when_ready(functions, pipeline_task, timing, record_served),
            )
            notify_kept = self._notify_outcome(
                functions,
                "Notify model kept",
                "kept",
                "Model kept (notification not sent)",
                "The model was kept and nothing was bought, but the notification could not be "
                "published; see the Notify model kept logs.",
            )
            self._not_served.next(record_version("Record kept version", served=False)).next(
                notify_kept.next(sfn.Succeed(self, "Model kept, not served"))
            )

        wait_for_job.next(collect)  # the slot was given back as the job ended (JobEnded)
        collect.next(passed)
        definition = identify_run.next(is_a_run)
        queue.around(settle.next(validate), start_job.next(wait_for_job))

        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=timing.execution_timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="Fine-tune a model on Amazon Bedrock: validate, train, serve, report",
        )
        self._acknowledge(functions)

    def _notify_failure(self, functions: WorkflowFunctions) -> tasks.LambdaInvoke:
        """Notify failure -> Run failed, whose error and cause the notification step writes."""
        run_failed = sfn.Fail(self, "Run failed", error_path="$.notice.error", cause_path="$.notice.cause")
        notification_lost = sfn.Fail(
            self,
            "Run failed (notification not sent)",
            error_path="$.failure.error",
            cause_path="$.failure.cause",
        )
        notify_failure = lambda_task(
            self,
            "Notify failure",
            functions.notify,
            {"outcome": "failed", "state": sfn.JsonPath.object_at("$")},
            result_path="$.notice",
        )
        notify_failure.add_catch(notification_lost, errors=["States.ALL"], result_path="$.notifyError")
        notify_failure.next(run_failed)
        return notify_failure

    def _notify_outcome(
        self, functions: WorkflowFunctions, name: str, outcome: str, unsent: str, cause: str
    ) -> tasks.LambdaInvoke:
        """A Notify task for an outcome the run reached as planned: a lost notification ends in the Fail
        state ``unsent`` (NotificationFailed), never in the clean-up."""
        notify = lambda_task(
            self,
            name,
            functions.notify,
            {"outcome": outcome, "state": sfn.JsonPath.object_at("$")},
            result_path="$.notice",
        )
        notify.add_catch(
            sfn.Fail(self, unsent, error="NotificationFailed", cause=cause),
            errors=["States.ALL"],
            result_path="$.notifyError",
        )
        return notify

    def _failure_chain(
        self, functions: WorkflowFunctions, timing: WorkflowTiming, notify_failure: tasks.LambdaInvoke
    ) -> sfn.IChainable:
        """Begin clean-up -> Clean up failed run (again while something settles) -> Notify failure."""
        clean_up = lambda_task(
            self,
            "Clean up failed run",
            functions.clean_up_failed_run,
            {
                "run": sfn.JsonPath.object_at("$.run"),
                "failure": sfn.JsonPath.object_at("$.failure"),
                "previous": sfn.JsonPath.object_at("$.cleanup"),
            },
            result_path="$.cleanup",
        )
        # A failed clean-up must still be reported: record its error and notify anyway (the notice
        # then names what may still be billing).
        clean_up.add_catch(
            sfn.Pass(
                self,
                "Clean-up failed",
                parameters={
                    "failed": True,
                    "summary.$": "States.Format('clean-up failed: {}', $.cleanupError.Cause)",
                },
                result_path="$.cleanup",
            ).next(notify_failure),
            errors=["States.ALL"],
            result_path="$.cleanupError",
        )
        # A throughput that is still Creating cannot be deleted yet: wait for it to settle, then again.
        clean_up_again = sfn.Wait(
            self,
            "Wait before cleaning up again",
            time=sfn.WaitTime.duration(Duration.seconds(timing.cleanup_retry_seconds)),
        ).next(clean_up)
        failure_chain = sfn.Pass(
            self, "Begin clean-up", parameters={"attempt": 0}, result_path="$.cleanup"
        ).next(clean_up)
        clean_up.next(
            sfn.Choice(self, "Clean-up settled?")
            .when(sfn.Condition.boolean_equals("$.cleanup.retry", True), clean_up_again)
            .otherwise(notify_failure)
        )
        return failure_chain

    def _serving(
        self,
        functions: WorkflowFunctions,
        timing: WorkflowTiming,
        pipeline_task: Any,
        status_failure: Any,
        failure_chain: sfn.IChainable,
    ) -> sfn.IChainable:
        """Plan serving -> Approval needed? -> [Request approval] -> Serve model -> the endpoint's
        waiting loop. Sets ``self._endpoint_ready`` (the Choice whose ``ready`` branch the caller adds)
        and ``self._not_served`` (where a rejected or expired approval continues)."""
        plan = pipeline_task(
            "Plan serving",
            functions.plan_serving,
            {"run": sfn.JsonPath.object_at("$.run"), "job": sfn.JsonPath.object_at("$.job")},
            result_path="$.serving",
        )
        # Bedrock refused the deployment for a quota: Handle deployment quota -> Waiting for a
        # deployment quota -> Serve model again, until max_deployment_wait_hours (then the decision fails).
        handle_quota, quota_wait = (
            self._deployment_quota_wait(functions, pipeline_task)
            if timing.deployment_quota_wait
            else (None, None)
        )
        serve = pipeline_task(
            "Serve model",
            functions.serve_model,
            {"run": sfn.JsonPath.object_at("$.run"), "serving": sfn.JsonPath.object_at("$.serving")},
            result_path="$.endpoint",
            catches=(
                (([BedrockQuotaExceeded.__name__], handle_quota, DEPLOYMENT_QUOTA_REFUSAL),)
                if handle_quota
                else ()
            ),
        )
        if quota_wait is not None:
            quota_wait.next(serve)
        # A line's endpoint busy with another version's update is retried, patiently.
        serve.add_retry(
            errors=["EndpointBusy"],
            interval=Duration.minutes(2),
            max_attempts=10,
            backoff_rate=1.5,
            max_delay=Duration.minutes(30),
            jitter_strategy=sfn.JitterType.FULL,
        )
        request = token_task(
            self,
            "Request approval",
            functions.request_approval,
            {
                "run": sfn.JsonPath.object_at("$.run"),
                "serving": sfn.JsonPath.object_at("$.serving"),
                "training": sfn.JsonPath.object_at("$.training"),
            },
            result_path="$.approval",
            timeout=sfn.Timeout.duration(timing.approval_timeout),
        )
        self._not_served = sfn.Pass(self, "Not served")
        request.add_catch(
            sfn.Pass(
                self,
                "Approval rejected",
                parameters={
                    "why.$": "States.Format('approval rejected: {}', $.approvalError.Cause)",
                    "expired": "false",
                },
                result_path="$.notServed",
            ).next(self._not_served),
            errors=["ApprovalRejected"],
            result_path="$.approvalError",
        )
        request.add_catch(
            sfn.Pass(
                self,
                "Approval expired",
                parameters={
                    "why": f"approval not given within {int(timing.approval_timeout.to_hours())} h: nothing "
                    "was bought; the model is kept",
                    "expired": "true",
                },
                result_path="$.notServed",
            ).next(self._not_served),
            errors=["States.Timeout"],
            result_path="$.approvalError",
        )
        request.add_catch(
            sfn.Pass(
                self,
                "Request approval failed",
                parameters={
                    "step": "Request approval",
                    "error.$": "$.caught.Error",
                    "cause.$": "$.caught.Cause",
                },
                result_path="$.failure",
            ).next(failure_chain),
            errors=["States.ALL"],
            result_path="$.caught",
        )
        # Serve model and Get endpoint status say how long to wait next: 1, 2, 4... minutes, up to
        # throughput_poll_seconds (Bedrock sends no event when an endpoint is ready).
        wait = sfn.Wait(self, "Wait for endpoint", time=sfn.WaitTime.seconds_path("$.endpoint.waitSeconds"))
        get_status = pipeline_task(
            "Get endpoint status",
            functions.get_endpoint_status,
            {"endpoint": sfn.JsonPath.object_at("$.endpoint")},
            result_path="$.endpoint",
        )
        self._endpoint_ready = (
            sfn.Choice(self, "Endpoint ready?")
            .when(
                sfn.Condition.string_equals("$.endpoint.state", "failed"),
                status_failure(
                    "Endpoint failed", "Serving", "EndpointFailed", "$.endpoint.failureMessage"
                ).next(failure_chain),
            )
            .when(
                # A later version of the line (or a rollback) asked for another model meanwhile: this
                # version is kept, and its clean-up must not take the endpoint from the later one.
                sfn.Condition.string_equals("$.endpoint.state", "superseded"),
                sfn.Pass(
                    self,
                    "Superseded by a later version",
                    parameters={"why.$": "$.endpoint.failureMessage", "expired": "false"},
                    result_path="$.notServed",
                ).next(self._not_served),
            )
            .otherwise(wait)
        )
        self._evaluating = timing.evaluation and functions.evaluate_candidate is not None
        before_serve: sfn.IChainable = serve
        if self._evaluating and timing.serving == "provisioned":
            before_serve = self._evaluation_loop(functions, pipeline_task, "current", serve)
        request.next(before_serve)
        serve.next(wait)
        wait.next(get_status).next(self._endpoint_ready)
        approval = (
            sfn.Choice(self, "Approval needed?")
            .when(sfn.Condition.boolean_equals("$.serving.approvalNeeded", True), request)
            .otherwise(before_serve)
        )
        if self._evaluating and timing.serving == "on_demand":
            # The candidate is scored on a temporary deployment of its own, beside the line's endpoint.
            return plan.next(self._evaluation_loop(functions, pipeline_task, "both", approval, timing=timing))
        return plan.next(approval)

    def _when_ready(
        self, functions: WorkflowFunctions, pipeline_task: Any, timing: WorkflowTiming, served: sfn.IChainable
    ) -> sfn.IChainable:
        """What follows a ready endpoint: ``served``; on a provisioned line that evaluates, the
        candidate is scored where it now serves first (a failed one is swapped back and kept)."""
        if self._evaluating and timing.serving == "provisioned":
            return self._evaluation_loop(functions, pipeline_task, "candidate", served)
        return served

    def _evaluation_loop(
        self,
        functions: WorkflowFunctions,
        pipeline_task: Any,
        phase: str,
        then: sfn.IChainable,
        timing: WorkflowTiming | None = None,
    ) -> sfn.IChainable:
        """Evaluate ... -> ... scored? -> (again, after a wait while the candidate's deployment is
        created) -> ``then``. Each step scores as many prompts as the Lambda's time allows. Where the
        candidate is scored, the same Choice applies the evaluation gate: a candidate that fails it is
        kept (Evaluation gate not met), the notice says why."""
        name, question = {
            "both": ("Evaluate candidate", "Candidate scored?"),
            "current": ("Evaluate current model", "Current model scored?"),
            "candidate": ("Evaluate candidate", "Candidate scored?"),
        }[phase]
        fields: dict[str, object] = {
            "run": sfn.JsonPath.object_at("$.run"),
            "phase": phase,
            "serving": sfn.JsonPath.object_at("$.serving"),
        }
        if phase == "candidate":
            fields["endpoint"] = sfn.JsonPath.object_at("$.endpoint")
        assert functions.evaluate_candidate is not None
        task = pipeline_task(
            name,
            functions.evaluate_candidate,
            fields,
            result_path="$.evaluation",
            timeout=Duration.minutes(15),
        )
        done = sfn.Condition.boolean_equals("$.evaluation.done", True)
        scored = sfn.Choice(self, question)
        if phase == "current":
            scored.when(done, then)
        else:
            scored.when(
                sfn.Condition.and_(done, sfn.Condition.boolean_equals("$.evaluation.passed", True)), then
            ).when(
                done,
                sfn.Pass(
                    self,
                    "Evaluation gate not met",
                    parameters={"why.$": "$.evaluation.why", "expired": "false"},
                    result_path="$.notServed",
                ).next(self._not_served),
            )
        if timing is not None:
            wait = sfn.Wait(
                self,
                "Wait for candidate deployment",
                time=sfn.WaitTime.seconds_path("$.evaluation.waitSeconds"),
            )
            wait.next(task)
            scored.when(sfn.Condition.boolean_equals("$.evaluation.waiting", True), wait)
        scored.otherwise(task)
        task.next(scored)
        return task

    def _deployment_quota_wait(
        self, functions: WorkflowFunctions, pipeline_task: Any
    ) -> tuple[tasks.LambdaInvoke, sfn.Wait]:
        """Handle deployment quota (the ServeModel function: the next back-off, a notice at the
        first refusal, or QuotaWaitExpired) -> Waiting for a deployment quota; the caller loops it to
        Serve model."""
        decide = pipeline_task(
            "Handle deployment quota",
            functions.serve_model,
            {
                "run": sfn.JsonPath.object_at("$.run"),
                "serving": sfn.JsonPath.object_at("$.serving"),
                "quota": sfn.JsonPath.object_at(DEPLOYMENT_QUOTA_PATH),
            },
            result_path=DEPLOYMENT_QUOTA_PATH,
        )
        wait = sfn.Wait(
            self,
            "Waiting for a deployment quota",
            comment="Back-off chosen by ServeModel: 2, 4, 8 minutes..., at most max(10 min, endpoint poll)",
            time=sfn.WaitTime.seconds_path(f"{DEPLOYMENT_QUOTA_PATH}.waitSeconds"),
        )
        decide.next(wait)
        return decide, wait

    def _acknowledge(self, functions: WorkflowFunctions) -> None:
        """cdk-nag on the role CDK generates for the state machine, and a description for IAM."""
        role = self.state_machine.role
        acknowledge_wildcard_resource(
            role,
            "*",
            "Only X-Ray tracing and CloudWatch Logs vended delivery, whose actions have no resource type.",
        )
        for function in functions.all():
            acknowledge_wildcard_resource(
                role,
                f"<{logical_ref(function)}.Arn>:*",
                "Versions and aliases of the pipeline's own function (granted by the LambdaInvoke task).",
            )
        acknowledge_inline_policy(role, INLINE_POLICY_REASON)
        describe_role(role, "Execution role of the fine-tuning state machine: invokes its Lambdas")
