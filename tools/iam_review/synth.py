"""Synthesize the app exactly as ``cdk synth`` does and collect what the review needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import App, Validations

from stacks.application import build_app, cdk_json_context
from stacks.config import PipelineConfig

#: The CDK CLI turns this on for every synth; in-process synths need it to get ``aws:cdk:path``.
PATH_METADATA_CONTEXT = {"aws:cdk:enable-path-metadata": True}


@dataclass(frozen=True)
class SynthesizedStack:
    """One stack of the assembly: its template and the cdk-nag acknowledgments in its tree."""

    name: str
    template: Mapping[str, Any]
    template_file: str
    acknowledgments: Mapping[str, Mapping[str, str]]
    settings: Mapping[str, str]


def acknowledgments(app: App) -> dict[str, dict[str, str]]:
    """construct path -> {rule id: reason} for every acknowledgment in the app."""
    found: dict[str, dict[str, str]] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY and entry.data:
                rules = found.setdefault(construct.node.path, {})
                for qualified_id, reason in dict(entry.data).items():
                    rules[qualified_id.split("::", 1)[-1]] = str(reason)
    return found


def settings_of(config: PipelineConfig) -> dict[str, str]:
    """The settings that change IAM, as the report's header shows them."""
    return {
        "region": config.region,
        "base model": config.base_model_id,
        "KMS key": config.kms_key_arn or "created by the stack",
        "permissions boundary": config.permissions_boundary_arn or "none",
        "removal policy": config.removal_policy,
    }


def synthesize(outdir: str, **context_overrides: Any) -> list[SynthesizedStack]:
    """Build the app from cdk.json's context (plus overrides), synthesize into ``outdir``."""
    context = cdk_json_context(**{**PATH_METADATA_CONTEXT, **context_overrides})
    app, _stack, config = build_app(context, outdir=outdir)
    settings = settings_of(config)
    assembly = app.synth()
    acks = acknowledgments(app)
    return [
        SynthesizedStack(
            name=artifact.stack_name,
            template=artifact.template,
            template_file=f"{assembly.directory}/{artifact.template_file}",
            acknowledgments=acks,
            settings=settings,
        )
        for artifact in assembly.stacks
    ]
