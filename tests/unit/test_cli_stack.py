"""Finding the stack: its name, Region and endpoint from the options, cdk.json or the defaults."""

from __future__ import annotations

import argparse
import json

import boto3
import pytest

from finetune.output import CommandFailed, UsageError
from finetune.stack import (
    DEFAULT_STACK_NAME,
    StackTarget,
    add_stack_arguments,
    describe_stack,
    resolve_target,
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def no_region(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    return tmp_path


def test_options_win(no_region) -> None:
    target = resolve_target(_args("--stack", "Mine", "--region", "eu-west-1", "--endpoint-url", "http://x:1"))
    assert target == StackTarget(name="Mine", region="eu-west-1", profile=None, endpoint_url="http://x:1")


def test_cdk_json_gives_the_stack_name_and_the_region_it_deploys_to(no_region) -> None:
    # Given a cdk.json for a Nova deployment under another stack name
    (no_region / "cdk.json").write_text(
        json.dumps({"context": {"stack_name": "TeamA", "base_model_id": "amazon.nova-lite-v1:0:300k"}})
    )
    # Then the stack and the Region are that deployment's
    target = resolve_target(_args())
    assert (target.name, target.region) == ("TeamA", "us-east-1")


def test_without_cdk_json_the_default_stack_and_the_environments_region(no_region, monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    target = resolve_target(_args())
    assert (target.name, target.region) == (DEFAULT_STACK_NAME, "us-west-2")


def test_no_region_anywhere_is_a_usage_error_that_says_what_to_pass(no_region) -> None:
    with pytest.raises(UsageError, match="pass --region"):
        resolve_target(_args())


def test_a_missing_stack_says_how_to_deploy_or_name_it(aws) -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-west-2")
    with pytest.raises(
        CommandFailed, match=r"stack Nope does not exist in us-west-2: deploy it \(make deploy\)"
    ):
        describe_stack(cloudformation, StackTarget(name="Nope", region="us-west-2"))


def test_the_stacks_outputs_are_what_the_commands_read(aws) -> None:
    # Given a deployed stack with the pipeline's outputs (a bucket here; the state machine ARN as a value)
    template = {
        "Resources": {"Data": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {
            "BucketName": {"Value": {"Ref": "Data"}},
            "StateMachineArn": {"Value": "arn:aws:states:us-west-2:123456789012:stateMachine:p"},
            "LogGroupNames": {"Value": "/a,/b"},
        },
    }
    cloudformation = boto3.client("cloudformation", region_name="us-west-2")
    cloudformation.create_stack(StackName="BedrockFineTuning", TemplateBody=json.dumps(template))
    # When it is described
    stack = describe_stack(cloudformation, StackTarget(name="BedrockFineTuning", region="us-west-2"))
    # Then the commands get the resources from its outputs, and a missing one says to redeploy
    assert stack.bucket.startswith("bedrockfinetuning-data")
    assert stack.log_groups == ("/a", "/b")
    with pytest.raises(CommandFailed, match=r"has no TopicArn output.*redeploy it"):
        _ = stack.topic_arn
