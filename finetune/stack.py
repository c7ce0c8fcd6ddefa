"""Finding the deployed pipeline: the stack's name, Region and endpoint, and its CloudFormation outputs.

Every command that talks to a deployment (``submit``, ``runs``, ``status``, ``report``, ``invoke``,
``logs``, and the serving commands) takes the same options, from :func:`add_stack_arguments`, and
gets the bucket, state machine, topic and log groups from the stack's outputs through
:func:`connect`; nothing is typed by hand. Against ``finetune local-server``, pass its
``--endpoint-url``: any credentials work there, and without any the emulation's are used.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.output import CommandFailed, UsageError

DEFAULT_STACK_NAME = "BedrockFineTuning"
#: The outputs every command needs; the others are read when a command needs them.
REQUIRED_OUTPUTS = ("BucketName", "StateMachineArn")
#: The emulation accepts any credentials; these are used when none are configured.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """``--stack``, ``--region``, ``--profile``, ``--endpoint-url``, ``--config``."""
    group = parser.add_argument_group("the deployment")
    group.add_argument(
        "--stack",
        metavar="NAME",
        help=f"CloudFormation stack name (default: cdk.json's stack_name, else {DEFAULT_STACK_NAME})",
    )
    group.add_argument(
        "--region", help="AWS Region (default: the profile's or AWS_REGION, else the one cdk.json deploys to)"
    )
    group.add_argument("--profile", help="AWS CLI profile for credentials and Region")
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="an AWS endpoint to use instead of AWS's, e.g. http://127.0.0.1:4566 for finetune local-server",
    )
    group.add_argument(
        "--config",
        metavar="CDK_JSON",
        help="the deployment's cdk.json, for the default stack name and Region (default: ./cdk.json)",
    )


@dataclass(frozen=True)
class StackTarget:
    """Where the stack is: its name, and how to reach the account and Region it is in."""

    name: str
    region: str
    profile: str | None = None
    endpoint_url: str | None = None

    def session(self) -> Any:
        import boto3  # noqa: PLC0415 - the dataset commands never need boto3

        try:
            session = boto3.Session(profile_name=self.profile, region_name=self.region)
        except Exception as exc:  # botocore.exceptions.ProfileNotFound
            raise UsageError(f"--profile {self.profile}: {exc}") from exc
        if self.endpoint_url and session.get_credentials() is None:
            session = boto3.Session(region_name=self.region, **LOCAL_CREDENTIALS)
        return session


class Clients:
    """boto3 clients of one target, created on first use."""

    def __init__(self, target: StackTarget) -> None:
        self.target = target
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                self._session = self.target.session()
            self._clients[service] = self._session.client(service, endpoint_url=self.target.endpoint_url)
        return self._clients[service]


@dataclass(frozen=True)
class PipelineStack:
    """The deployed pipeline, as its CloudFormation outputs describe it."""

    name: str
    region: str
    outputs: Mapping[str, str] = field(default_factory=dict)

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise CommandFailed(
                f"stack {self.name} has no {key} output; it was deployed by an older version of this "
                "app: redeploy it (make deploy)"
            )
        return value

    @property
    def bucket(self) -> str:
        return self.output("BucketName")

    @property
    def state_machine_arn(self) -> str:
        return self.output("StateMachineArn")

    @property
    def topic_arn(self) -> str:
        return self.output("TopicArn")

    @property
    def log_groups(self) -> tuple[str, ...]:
        return tuple(name for name in self.output("LogGroupNames").split(",") if name)

    @property
    def validate_function(self) -> str:
        return self.output("ValidateFunctionName")

    @property
    def queue_table(self) -> str | None:
        """The training queue's table; None for a stack deployed before the queue existed."""
        return self.outputs.get("TrainingQueueTableName") or None


def config_context(config: str | None) -> tuple[Path | None, dict[str, Any]]:
    """cdk.json's context (``--config``, else ./cdk.json if present; ``{}`` without one)."""
    path = Path(config) if config else Path("cdk.json")
    if not path.is_file():
        if config:
            raise UsageError(f"--config {config}: no such file")
        return None, {}
    try:
        context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    return path, context if isinstance(context, dict) else {}


def _config_region(path: Path, context: Mapping[str, Any]) -> str | None:
    from stacks.config import load_config  # noqa: PLC0415 - only when no Region is given

    try:
        return load_config(context).region
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: {exc}") from exc


def resolve_target(args: argparse.Namespace) -> StackTarget:
    """The target of the command line's options (see :func:`add_stack_arguments`)."""
    path, context = config_context(getattr(args, "config", None))
    name = args.stack or str(context.get("stack_name") or DEFAULT_STACK_NAME)
    region = args.region
    if not region:
        import boto3  # noqa: PLC0415

        try:
            region = boto3.Session(profile_name=args.profile).region_name
        except Exception as exc:  # botocore.exceptions.ProfileNotFound
            raise UsageError(f"--profile {args.profile}: {exc}") from exc
    if not region and path is not None:
        region = _config_region(path, context)
    if not region:
        raise UsageError("no AWS Region: pass --region (or set AWS_REGION, or run where cdk.json is)")
    return StackTarget(name=name, region=region, profile=args.profile, endpoint_url=args.endpoint_url)


def describe_stack(cloudformation: Any, target: StackTarget) -> PipelineStack:
    """The stack's outputs; CommandFailed saying what to do when it is not there."""
    try:
        stacks = cloudformation.describe_stacks(StackName=target.name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        where = f" at {target.endpoint_url}" if target.endpoint_url else ""
        raise CommandFailed(
            f"stack {target.name} does not exist in {target.region}{where}: deploy it (make deploy), or "
            "pass the right --stack and --region"
            + (" (is finetune local-server running there?)" if target.endpoint_url else "")
        ) from exc
    stack = stacks[0]
    if not str(stack.get("StackStatus", "")).endswith("_COMPLETE") or "DELETE" in stack["StackStatus"]:
        raise CommandFailed(
            f"stack {target.name} is {stack['StackStatus']}; wait until it is deployed (CREATE_COMPLETE "
            "or UPDATE_COMPLETE)"
        )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    found = PipelineStack(name=target.name, region=target.region, outputs=outputs)
    for key in REQUIRED_OUTPUTS:
        found.output(key)
    return found


def connect(args: argparse.Namespace) -> tuple[Clients, PipelineStack]:
    """The clients of the command line's target and its stack's outputs."""
    target = resolve_target(args)
    clients = Clients(target)
    return clients, describe_stack(clients("cloudformation"), target)
