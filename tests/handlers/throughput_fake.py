"""Provisioned Throughput for tests: the operations moto 5.2.5 lacks, on top of a moto bedrock client.

A botocore Stubber answers every call of a client from a fixed queue, so it cannot share a client
with moto, and it has no state. Teardown needs both: moto for jobs, custom models and their tags,
and throughput that stays listed for a while after DeleteProvisionedModelThroughput (deletion is
asynchronous). This fake hooks the same botocore events as the Stubber (parameters are validated
by botocore before they reach it, and every response is validated against the operation's output
shape, as the Stubber does) and answers only the throughput operations and the tags of throughput
ARNs; every other call goes to moto.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters

ACCOUNT = "123456789012"
REGION = "us-west-2"


@dataclass
class FakeThroughput:
    summary: dict[str, Any]
    tags: list[dict[str, str]]
    #: Listings that still show it after deletion was requested (None: not being deleted).
    rounds_left: int | None = None


@dataclass
class ThroughputFake:
    """Stateful Provisioned Throughput operations for one bedrock client."""

    deletion_rounds: int = 1
    throughputs: dict[str, FakeThroughput] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Error code to answer DeleteProvisionedModelThroughput with, per ARN.
    delete_errors: dict[str, str] = field(default_factory=dict)

    def attach(self, client: Any) -> Any:
        client.meta.events.register_first("before-parameter-build.bedrock.*", self._remember_params)
        client.meta.events.register("before-call.bedrock.*", self._answer)
        return client

    def add(
        self,
        name: str,
        *,
        tags: dict[str, str],
        commitment: str | None = None,
        expires: datetime | None = None,
        status: str = "InService",
        model_arn: str = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/ft-model",
    ) -> str:
        arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/{secrets.token_hex(6)}"
        now = datetime(2026, 11, 1, tzinfo=UTC)
        summary: dict[str, Any] = {
            "provisionedModelName": name,
            "provisionedModelArn": arn,
            "modelArn": model_arn,
            "desiredModelArn": model_arn,
            "foundationModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-3-haiku",
            "modelUnits": 1,
            "desiredModelUnits": 1,
            "status": status,
            "creationTime": now,
            "lastModifiedTime": now,
        }
        if commitment:
            summary["commitmentDuration"] = commitment
            summary["commitmentExpirationTime"] = expires or datetime(2027, 5, 1, tzinfo=UTC)
        self.throughputs[arn] = FakeThroughput(summary, [{"key": k, "value": v} for k, v in tags.items()])
        return arn

    def deletes(self) -> list[str]:
        return [p["provisionedModelId"] for op, p in self.calls if op == "DeleteProvisionedModelThroughput"]

    # ---- botocore event handlers ----

    def _remember_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fake_api_params"] = dict(params)

    def _answer(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        params = context.get("fake_api_params", {})
        handler = getattr(self, f"_op_{model.name}", None)
        if handler is None:
            return None
        result = handler(params)
        if result is None:  # not ours (e.g. tags of a job): moto answers
            return None
        self.calls.append((model.name, params))
        if "Error" in result:
            return AWSResponse(None, 400, {}, None), {**result, "ResponseMetadata": {"HTTPStatusCode": 400}}
        validate_parameters(result, model.output_shape)
        return AWSResponse(None, 200, {}, None), {**result, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _op_ListProvisionedModelThroughputs(self, params: dict[str, Any]) -> dict[str, Any]:
        start = int(params.get("nextToken") or 0)
        if start == 0:  # a new listing: throughput being deleted gets one round closer to gone
            for arn, pt in list(self.throughputs.items()):
                if pt.rounds_left is not None:
                    if pt.rounds_left <= 0:
                        del self.throughputs[arn]
                    else:
                        pt.rounds_left -= 1
        listed = [pt.summary for pt in self.throughputs.values()]
        # Two per page, so that teardown must follow nextToken.
        page: dict[str, Any] = {"provisionedModelSummaries": listed[start : start + 2]}
        if start + 2 < len(listed):
            page["nextToken"] = str(start + 2)
        return page

    def _op_ListCustomModelDeployments(self, params: dict[str, Any]) -> dict[str, Any]:
        # Deployments are tested in the emulation (tests/e2e); here the stack has none.
        return {"modelDeploymentSummaries": []}

    def _op_DeleteProvisionedModelThroughput(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["provisionedModelId"]
        if arn in self.delete_errors:
            return {"Error": {"Code": self.delete_errors[arn], "Message": "injected by the test"}}
        pt = self.throughputs.get(arn)
        if pt is None:
            return {"Error": {"Code": "ResourceNotFoundException", "Message": f"{arn} not found"}}
        if pt.summary.get("commitmentDuration"):
            return {"Error": {"Code": "ConflictException", "Message": "commitment term not over"}}
        if pt.rounds_left is None:
            pt.rounds_left = self.deletion_rounds
        return {}

    def _op_ListTagsForResource(self, params: dict[str, Any]) -> dict[str, Any] | None:
        arn = params["resourceARN"]
        if ":provisioned-model/" not in arn:
            return None
        pt = self.throughputs.get(arn)
        if pt is None:
            return {"Error": {"Code": "ResourceNotFoundException", "Message": f"{arn} not found"}}
        return {"tags": pt.tags}
