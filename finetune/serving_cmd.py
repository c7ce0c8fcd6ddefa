"""``finetune approve | reject | extend | rollback``: act on a deployed stack's model lines.

Each command finds the stack's resources from its CloudFormation outputs (``--stack``, ``--region``,
``--profile``, and ``--endpoint-url`` for ``finetune local-server``) and prints what it changed.
Exit codes: 0 done, 1 the thing could not be done (the message says why and what to do), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1
DEFAULT_STACK = "BedrockFineTuning"


@dataclass(frozen=True)
class Stack:
    """A deployed pipeline stack: its name, Region, outputs, and clients of its account."""

    name: str
    region: str
    outputs: dict[str, str]
    session: Any
    endpoint_url: str | None

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=self.region, endpoint_url=self.endpoint_url)

    @property
    def bucket(self) -> str:
        return self.outputs["BucketName"]


class StackNotFound(RuntimeError):
    """The stack (or one of its outputs) cannot be found; the message says what to check."""


def default_stack_name() -> str:
    """``stack_name`` from the repository's cdk.json, else the app's default."""
    from pathlib import Path  # noqa: PLC0415

    path = Path(__file__).resolve().parent.parent / "cdk.json"
    try:
        return str(json.loads(path.read_text())["context"].get("stack_name") or DEFAULT_STACK)
    except (OSError, ValueError, KeyError):
        return DEFAULT_STACK


def connect(args: argparse.Namespace) -> Stack:
    """The stack ``args`` select, with its outputs read from CloudFormation."""
    import boto3  # noqa: PLC0415 - only commands that talk to AWS pay for it
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
    region = args.region or session.region_name
    if not region:
        raise StackNotFound(
            "no Region: pass --region (the Region the stack is deployed in) or set AWS_REGION"
        )
    cfn = session.client("cloudformation", region_name=region, endpoint_url=args.endpoint_url)
    try:
        stacks = cfn.describe_stacks(StackName=args.stack)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise StackNotFound(
            f"stack {args.stack!r} not found in {region} ({exc}); "
            "pass --stack NAME and --region of the deployment"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if "BucketName" not in outputs:
        raise StackNotFound(
            f"stack {args.stack!r} has no BucketName output: is it a fine-tuning pipeline stack?"
        )
    return Stack(args.stack, region, outputs, session, args.endpoint_url)


def _who(stack: Stack) -> str:
    try:
        return str(stack.client("sts").get_caller_identity()["Arn"])
    except Exception:
        return "unknown caller"


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", default=default_stack_name(), help="stack name (default: cdk.json's stack_name)"
    )
    parser.add_argument("--region", help="the stack's Region (default: the AWS CLI's)")
    parser.add_argument("--profile", help="AWS CLI profile to use")
    parser.add_argument(
        "--endpoint-url", help="AWS endpoint (e.g. http://localhost:4566 for finetune local-server)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document (with schema_version)")


def register(subparsers: Any) -> None:
    """Add the approve, reject, extend and rollback commands."""
    approve = subparsers.add_parser(
        "approve", help="approve a line's open approval request (buys what it asks)"
    )
    approve.add_argument("run", metavar="RUN", help="the run folder's name (the model line)")
    approve.set_defaults(handler=lambda args: _run(args, _approve))
    reject = subparsers.add_parser("reject", help="reject a line's open approval request (nothing is bought)")
    reject.add_argument("run", metavar="RUN")
    reject.add_argument("--reason", default="", help="why (goes into the notice and the request's record)")
    reject.set_defaults(handler=lambda args: _run(args, _reject))
    extend = subparsers.add_parser("extend", help="move a line's throughput time to live later")
    extend.add_argument("run", metavar="RUN")
    extend.add_argument("--hours", type=int, required=True, help="hours to add to the deadline")
    extend.set_defaults(handler=lambda args: _run(args, _extend))
    rollback = subparsers.add_parser("rollback", help="put a line's previous model back behind its endpoint")
    rollback.add_argument("run", metavar="RUN")
    rollback.set_defaults(handler=lambda args: _run(args, _rollback))
    for parser in (approve, reject, extend, rollback):
        _add_stack_options(parser)


def _answer(stack: Stack, args: argparse.Namespace, *, approve: bool) -> dict[str, Any]:
    """Answer the line's waiting approval request (the one approvals.answer call both verbs make)."""
    from bedrock_finetune import approvals  # noqa: PLC0415

    return approvals.answer(
        stack.client("stepfunctions"),
        stack.client("s3"),
        stack.bucket,
        args.run,
        approve=approve,
        by=_who(stack),
        reason="" if approve else args.reason,
    )


def _approve(stack: Stack, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    request = _answer(stack, args, approve=True)
    return request, f"approved: {request['what']} (the run goes on; `finetune status {args.run}` follows it)"


def _reject(stack: Stack, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    request = _answer(stack, args, approve=False)
    return request, f"rejected: {request['what']}; nothing is bought and the model is kept"


def _extend(stack: Stack, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from bedrock_finetune import lines  # noqa: PLC0415

    result = lines.extend(
        stack.client("scheduler"), stack.client("s3"), stack.bucket, args.run, hours=args.hours
    )
    return result, (
        f"time to live of line {args.run} moved from {result['from']} to {result['to']} "
        f"(reminder at {result['reminderAt']}); the throughput bills every hour until then"
    )


def _rollback(stack: Stack, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from bedrock_finetune import lines  # noqa: PLC0415

    result = lines.rollback(
        stack.client("bedrock"),
        stack.client("s3"),
        stack.bucket,
        args.run,
        stack_name=stack.name,
        region=stack.region,
    )
    text = (
        f"line {args.run}: version {result['to']} is going back behind {result['endpointArn']} (it was "
        f"serving version {result['from']}); the ARN stays the same. "
        f"`finetune rollback {args.run}` again undoes it."
    )
    return {k: v for k, v in result.items() if k != "record"}, text


def _run(args: argparse.Namespace, action: Any) -> int:
    from bedrock_finetune.approvals import ApprovalError  # noqa: PLC0415
    from bedrock_finetune.errors import PipelineError  # noqa: PLC0415
    from bedrock_finetune.lines import LineError  # noqa: PLC0415

    try:
        stack = connect(args)
        result, text = action(stack, args)
    except (StackNotFound, ApprovalError, LineError, PipelineError) as exc:
        if args.json:
            print(json.dumps({"schema_version": SCHEMA_VERSION, "ok": False, "error": str(exc)}))
        else:
            print(f"finetune {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"schema_version": SCHEMA_VERSION, "ok": True, "result": result}, default=str))
    else:
        print(text)
    return 0
