"""The CDK custom-resource Provider framework, emulated for the custom resources the emulation runs.

moto's CloudFormation cannot run a custom resource (it would invoke the service token in Docker and
wait for an HTTP response), so this module does what CloudFormation and the framework's Node.js
relay functions (``framework.js`` in aws-cdk-lib's ``custom-resources/lib/provider-framework``) do:

1. CloudFormation sends the request (``RequestType``, ``StackId``, ``LogicalResourceId``,
   ``PhysicalResourceId`` on Update/Delete, ``ResourceType``, ``ResourceProperties`` resolved, with
   ``ServiceToken``) to the service token, the framework's onEvent function.
2. The framework invokes the user's onEvent function (``USER_ON_EVENT_FUNCTION_ARN`` in the
   framework function's environment) and merges its result into the request; on Delete the physical
   id may not change.
3. With an isComplete function, the framework's waiter state machine invokes it with that merged
   event, again after ``IntervalSeconds`` (times ``BackoffRate``) while it answers
   ``IsComplete: false``, at most ``MaxAttempts`` more times (read from the deployed waiter's
   definition); then the response merges its ``Data``. Running out of attempts fails with
   "Operation timed out".
4. An error of a user function fails the request with its message (plus the log group, as the
   framework does); CloudFormation reports it as the resource's status reason.

:class:`ProviderFramework` is owned by the emulated cloud, which gives it what it needs: the
deployed template, a client factory of the emulated AWS and the emulation's clock. The user
functions are the deployed ones, invoked through the emulated Lambda (the real handlers with their
template environment). The relays themselves are not run (they are Node.js), and the
waiter's interval passes on the emulation's clock, so a handler that measures real time (the
teardown's own deadline) sees less time pass than on AWS.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.cloudformation.models import cloudformation_backends
from moto.cloudformation.parsing import clean_json
from moto.stepfunctions.models import stepfunctions_backends

#: Custom resource types the emulation runs through this module. The preflight is not among them:
#: it asks Bedrock (GetFoundationModel) and Service Quotas about a real account, which the
#: emulated Bedrock does not answer.
RUN_BY_PROVIDER = frozenset({"Custom::BedrockTeardown"})

#: CloudFormation's pre-signed response URL; the framework only PUTs the response there.
_RESPONSE_URL = "https://cloudformation-custom-resource-response-local.s3.amazonaws.com/emulated"


class ProviderError(RuntimeError):
    """The framework cannot serve the request (a template or deployment problem, not a handler's)."""


@dataclass(frozen=True)
class CustomResource:
    """A custom resource of the deployed stack, as CloudFormation knows it."""

    logical_id: str
    resource_type: str
    #: Resolved ``Properties`` (``ServiceToken`` included), as CloudFormation sends them.
    properties: dict[str, Any]
    physical_id: str = ""


@dataclass(frozen=True)
class ProviderResponse:
    """What the framework answers CloudFormation for one request."""

    request_type: str
    status: str
    reason: str
    physical_id: str
    data: dict[str, Any] = field(default_factory=dict)
    #: How many times isComplete was invoked, and the AWS seconds the waiter waited in between.
    polls: int = 0
    waited_seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"


@dataclass(frozen=True)
class _Waiter:
    interval: float
    max_attempts: int
    backoff: float


class ProviderFramework:
    """The framework for the custom resources of one synthesized stack, in the emulated account.

    ``client`` makes a boto3 client of the emulated AWS (the framework reads its functions' settings
    and invokes them through it); ``sleep`` waits on the emulation's clock between isComplete polls.
    """

    def __init__(
        self,
        *,
        account: str,
        region: str,
        template: Mapping[str, Any],
        client: Callable[[str], Any],
        sleep: Callable[[float], None],
    ) -> None:
        self.account = account
        self.region = region
        self.template = template
        self._client = client
        self._sleep = sleep

    def custom_resources(self, stack_id: str) -> list[CustomResource]:
        """The stack's custom resources this framework runs, with properties resolved by moto's
        CloudFormation."""
        stack = cloudformation_backends[self.account][self.region].get_stack(stack_id)
        found = []
        for logical_id, resource in self.template["Resources"].items():
            if resource["Type"] in RUN_BY_PROVIDER:
                properties = clean_json(resource.get("Properties", {}), stack.resource_map)
                found.append(CustomResource(logical_id, resource["Type"], json.loads(json.dumps(properties))))
        return found

    def send(self, stack_id: str, resource: CustomResource, request_type: str) -> ProviderResponse:
        """Send ``request_type`` (Create, Update or Delete) for ``resource`` through the framework."""
        request: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": resource.properties["ServiceToken"],
            "ResponseURL": _RESPONSE_URL,
            "StackId": stack_id,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": resource.logical_id,
            "ResourceType": resource.resource_type,
            "ResourceProperties": resource.properties,
        }
        if request_type != "Create":
            request["PhysicalResourceId"] = resource.physical_id
        env = self._framework_environment(resource.properties["ServiceToken"])
        ok, result = self._invoke(env["USER_ON_EVENT_FUNCTION_ARN"], request)
        if not ok:
            return _failed(request, result)
        result = result or {}
        physical_id = result.get("PhysicalResourceId") or (
            request["RequestId"] if request_type == "Create" else request["PhysicalResourceId"]
        )
        if request_type == "Delete" and physical_id != request["PhysicalResourceId"]:
            return _failed(
                request,
                f'DELETE: cannot change the physical resource ID from "{request["PhysicalResourceId"]}" '
                f'to "{physical_id}" during deletion',
            )
        event = {**request, **result, "PhysicalResourceId": physical_id}
        if "USER_IS_COMPLETE_FUNCTION_ARN" not in env:
            return ProviderResponse(
                request_type, "SUCCESS", "SUCCESS", physical_id, dict(event.get("Data") or {})
            )
        return self._wait(env, event)

    def _wait(self, env: dict[str, str], event: dict[str, Any]) -> ProviderResponse:
        """The waiter state machine: isComplete until it answers complete, fails, or attempts run out."""
        waiter = self._waiter(env["WAITER_STATE_MACHINE_ARN"])
        waited = 0.0
        for attempt in range(waiter.max_attempts + 1):
            if attempt:
                seconds = waiter.interval * waiter.backoff ** (attempt - 1)
                self._sleep(seconds)
                waited += seconds
            ok, answer = self._invoke(env["USER_IS_COMPLETE_FUNCTION_ARN"], event)
            if not ok:
                return _failed(event, answer, attempt + 1, waited)
            answer = answer or {}
            if answer.get("IsComplete"):
                data = {**(event.get("Data") or {}), **(answer.get("Data") or {})}
                physical_id = answer.get("PhysicalResourceId") or event["PhysicalResourceId"]
                return ProviderResponse(
                    event["RequestType"], "SUCCESS", "SUCCESS", physical_id, data, attempt + 1, waited
                )
            if answer.get("Data"):
                return _failed(event, '"Data" is not allowed if "IsComplete" is "False"', attempt + 1, waited)
        return _failed(event, "Operation timed out", waiter.max_attempts + 1, waited)

    def _framework_environment(self, service_token: str) -> dict[str, str]:
        """The framework onEvent function's environment: where the user functions and the waiter are."""
        config = self._client("lambda").get_function_configuration(FunctionName=service_token)
        env: dict[str, str] = (config.get("Environment") or {}).get("Variables") or {}
        if "USER_ON_EVENT_FUNCTION_ARN" not in env:
            raise ProviderError(f"{service_token} is not a CDK Provider framework onEvent function")
        return env

    def _waiter(self, arn: str) -> _Waiter:
        """Poll interval, attempts and back-off of the deployed waiter state machine's isComplete task."""
        # moto's CloudFormation puts state machines in the backend that does not execute (see cloud.py).
        machine = stepfunctions_backends[self.account][self.region].describe_state_machine(arn)
        definition = json.loads(machine.definition)
        task = definition["States"][definition["StartAt"]]
        retry = next(r for r in task.get("Retry", []) if "States.ALL" in r["ErrorEquals"])
        return _Waiter(
            float(retry["IntervalSeconds"]), int(retry["MaxAttempts"]), float(retry["BackoffRate"])
        )

    def _invoke(self, function_arn: str, payload: dict[str, Any]) -> tuple[bool, Any]:
        """Invoke a user function as the framework does: ``(True, result)`` or ``(False, failure reason)``."""
        response = self._client("lambda").invoke(
            FunctionName=function_arn, Payload=json.dumps(payload).encode()
        )
        body = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            name = function_arn.rsplit(":", maxsplit=1)[-1]
            message = (body or {}).get("errorMessage") or "error"
            return False, "\n".join([message, "", f"Logs: /aws/lambda/{name}", ""])
        return True, body


def _failed(event: dict[str, Any], reason: str, polls: int = 0, waited: float = 0.0) -> ProviderResponse:
    physical_id = event.get("PhysicalResourceId") or ""
    return ProviderResponse(
        event["RequestType"], "FAILED", reason, physical_id, polls=polls, waited_seconds=waited
    )
