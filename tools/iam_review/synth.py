"""Synthesize the app exactly as ``cdk synth`` does and collect what the review needs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations

from stacks.application import CDK_JSON, build_app
from stacks.config import PipelineConfig

#: The CDK CLI turns this on for every synth; in-process synths need it to get ``aws:cdk:path``.
PATH_METADATA_CONTEXT = {"aws:cdk:enable-path-metadata": True}
#: Context files the CDK CLI reads besides cdk.json: the project's cached context, the user's defaults.
PROJECT_CONTEXT = CDK_JSON.parent / "cdk.context.json"
USER_DEFAULTS = Path("~/.cdk.json")


def _context_in(path: Path, *, nested: bool) -> dict[str, Any]:
    path = path.expanduser()
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return dict(data.get("context", {}) if nested else data)


def cli_context(
    overrides: Mapping[str, Any] | None = None, *, user_defaults: Path = USER_DEFAULTS
) -> dict[str, Any]:
    """The context ``cdk synth -c key=value`` gives the app, in the CDK CLI's order of precedence:
    ``-c`` values, then cdk.json's context, then cdk.context.json, then ~/.cdk.json's context."""
    context: dict[str, Any] = {}
    for layer in (
        _context_in(user_defaults, nested=True),
        _context_in(PROJECT_CONTEXT, nested=False),
        _context_in(CDK_JSON, nested=True),
        dict(overrides or {}),
    ):
        context.update(layer)
    return context


@dataclass(frozen=True)
class SynthesizedStack:
    """One stack of the assembly: its template and the cdk-nag acknowledgments in its tree."""

    name: str
    template: Mapping[str, Any]
    template_file: str
    acknowledgments: Mapping[str, Mapping[str, str]]
    settings: Mapping[str, str]
    #: The configuration the stack was built from (the people's abilities and key grants need it).
    config: PipelineConfig | None = None


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
    """The configuration the report was built from, as its header shows it."""
    # ``serving`` and ``approval`` are read only where the configuration has them.
    serving = getattr(config, "serving", None) or "provisioned"
    approval = getattr(config, "approval", None) or "required before buying throughput"
    return {
        "stack": config.stack_name,
        "account": config.account or "the CLI's (CDK_DEFAULT_ACCOUNT)",
        "model": config.base_model_id,
        "Region": config.region,
        "serving": str(serving),
        "model units": str(config.model_units),
        "commitment": config.commitment or "none",
        "approval": str(approval),
        "boundary": config.permissions_boundary_arn or "none",
        "key": config.kms_key_arn or "created by the stack",
        "removal policy": config.removal_policy,
    }


def synthesize(outdir: str, **context_overrides: Any) -> list[SynthesizedStack]:
    """Build the app from the context ``cdk synth`` would read (:func:`cli_context`, with
    ``context_overrides`` as its ``-c`` values) and synthesize it into ``outdir``."""
    context = cli_context({**PATH_METADATA_CONTEXT, **context_overrides})
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
            config=config,
        )
        for artifact in assembly.stacks
    ]
