#!/usr/bin/env python3
"""The smallest app of the same kind, the yardstick of ``bench/synth_bench.py``.

One bucket, one Python function and one state machine that invokes it: what any CDK app with a
Lambda-backed workflow pays for (the CDK CLI, jsii, aws-cdk-lib, asset staging, synthesis).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

HANDLER_CODE = Path(__file__).resolve().parent / "handler"

app = App()
stack = Stack(app, "MinimalBenchApp")
bucket = s3.Bucket(stack, "Bucket")
function = lambda_.Function(
    stack,
    "Function",
    runtime=lambda_.Runtime.PYTHON_3_14,
    handler="index.handler",
    code=lambda_.Code.from_asset(str(HANDLER_CODE)),
    environment={"BUCKET": bucket.bucket_name},
)
bucket.grant_read(function)
sfn.StateMachine(
    stack,
    "StateMachine",
    definition_body=sfn.DefinitionBody.from_chainable(
        tasks.LambdaInvoke(stack, "Invoke", lambda_function=function).next(sfn.Succeed(stack, "Done"))
    ),
)
app.synth()
