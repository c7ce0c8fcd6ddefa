"""Builds the CDK app: typed configuration in, stacks out, cdk-nag on every synth.

``app.py`` and the tests both call :func:`build_app`, so tests check exactly what deploys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks

from stacks.config import PipelineConfig, load_config
from stacks.pipeline_stack import FineTuningPipelineStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context(**overrides: Any) -> dict[str, Any]:
    """The context in cdk.json, with overrides: what ``cdk synth -c key=value`` would see."""
    context = dict(json.loads(CDK_JSON.read_text())["context"])
    context.update(overrides)
    return context


def build_app(
    context: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
    outdir: str | None = None,
) -> tuple[App, FineTuningPipelineStack, PipelineConfig]:
    """Create the app and the pipeline stack from context (plus cdk.json's when run by the CLI)."""
    app = App(context=dict(context or {}), outdir=outdir)
    config = load_config(app.node.get_all_context(), environment)
    stack = FineTuningPipelineStack(
        app,
        config.stack_name,
        config=config,
        env=Environment(account=config.account, region=config.region),
        description="Fine-tune Claude on Amazon Bedrock: validate, train, provision, report",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app), NIST80053R5Checks(app))
    return app, stack, config
