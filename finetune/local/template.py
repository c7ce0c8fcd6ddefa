"""Synthesize the CDK app for the local emulation, exactly as ``cdk synth`` would (cdk-nag included).

The only context given on top of cdk.json's is the emulated account and
``aws:cdk:disable-asset-staging`` (so the Lambda code asset is the repository's ``lambdas/``
folder itself, and the handlers run from there).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The repository this package is installed from (editable install): where ``stacks`` lives.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: moto's default account: the emulated AWS account.
LOCAL_ACCOUNT = "123456789012"

# jsii prints a banner per synth on Node 20 (end of life since 2026-04-30).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@dataclass(frozen=True)
class Synthesized:
    """One synthesized stack: its template and where its file assets come from."""

    stack_name: str
    account: str
    region: str
    template: dict[str, Any]
    #: Asset object key in the bootstrap bucket -> local source folder or file.
    assets: dict[str, Path]
    outdir: Path
    #: The cache key when this is a template reused from the same inputs (``synth_cache``).
    reused: str | None = None

    @property
    def bootstrap_bucket(self) -> str:
        return f"cdk-hnb659fds-assets-{self.account}-{self.region}"

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == resource_type}


def synthesize(outdir: Path, **overrides: Any) -> Synthesized:
    """Synthesize the app with cdk.json's context plus ``overrides`` into ``outdir``."""
    # The `finetune` script does not run from the repository; the CDK app lives there.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    # After the jsii settings above; the CDK is loaded only when something is synthesized.
    from stacks.application import build_app, cdk_json_context  # noqa: PLC0415

    context = cdk_json_context(account=LOCAL_ACCOUNT, **overrides)
    context["aws:cdk:disable-asset-staging"] = True
    app, stack, config = build_app(context, outdir=str(outdir))
    assembly = app.synth()
    artifact = assembly.get_stack_by_name(stack.stack_name)
    template = json.loads(Path(artifact.template_full_path).read_text())
    manifest_path = Path(assembly.directory) / f"{artifact.id}.assets.json"
    manifest = json.loads(manifest_path.read_text())
    assets: dict[str, Path] = {}
    for entry in manifest.get("files", {}).values():
        source = Path(entry["source"]["path"])
        if not source.is_absolute():
            source = Path(assembly.directory) / source
        for destination in entry["destinations"].values():
            assets[destination["objectKey"]] = source
    return Synthesized(
        stack_name=stack.stack_name,
        account=LOCAL_ACCOUNT,
        region=config.region,
        template=template,
        assets=assets,
        outdir=Path(assembly.directory),
    )


def resolve(value: Any, physical: dict[str, dict[str, str]], pseudo: dict[str, str]) -> Any:
    """Resolve ``Ref``, ``Fn::GetAtt`` and ``Fn::Join`` the way CloudFormation does.

    ``physical`` maps a logical id to ``{"Ref": ..., "<attribute>": ...}``. Used to compute, from
    the template alone, the definition CloudFormation would give the state machine.
    """
    if isinstance(value, list):
        return [resolve(v, physical, pseudo) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = value["Ref"]
        return pseudo[name] if name in pseudo else physical[name]["Ref"]
    if set(value) == {"Fn::GetAtt"}:
        logical, attribute = value["Fn::GetAtt"]
        return physical[logical][attribute]
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(p, physical, pseudo)) for p in parts)
    return {k: resolve(v, physical, pseudo) for k, v in value.items()}
