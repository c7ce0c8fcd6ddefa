"""IAM checks run on two configurations: cdk.json as committed, and a variant that turns on the rest.

The default reuses the session's ``synthesized`` fixture (tests/conftest.py). The variant (configured
KMS key, permissions boundary, e-mail subscription, removal_policy=destroy, a throughput time to
live) brings in the CDK-generated roles and settings the default leaves out, so every check sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App

from iam_review.synth import SynthesizedStack, acknowledgments, settings_of, synthesize
from tests.conftest import Synthesized

CONFIGURED_KEY = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VARIANT_CONTEXT: Mapping[str, Any] = {
    "kms_key_arn": CONFIGURED_KEY,
    "permissions_boundary_arn": "arn:aws:iam::111122223333:policy/PlatformBoundary",
    "notification_emails": ["ml-team@example.com"],
    "removal_policy": "destroy",
    "throughput_ttl_hours": "168",
}


@dataclass(frozen=True)
class IamSynth:
    """One synthesized configuration: its (single) stack and the context it was built from."""

    label: str
    stack: SynthesizedStack
    context: Mapping[str, Any]

    @property
    def template(self) -> Mapping[str, Any]:
        return self.stack.template


@pytest.fixture(scope="session")
def default_synth(synthesized: Synthesized) -> IamSynth:
    """cdk.json as committed (the session's synth, with path metadata on, as the CLI does)."""
    app = synthesized.stack.node.root
    assert isinstance(app, App)
    stack = SynthesizedStack(
        name=synthesized.stack.stack_name,
        template=synthesized.json,
        template_file=f"{app.outdir}/{synthesized.stack.template_file}",
        acknowledgments=acknowledgments(app),
        settings=settings_of(synthesized.config),
        config=synthesized.config,
    )
    return IamSynth("default", stack, {})


@pytest.fixture(scope="session")
def variant_synth(tmp_path_factory: pytest.TempPathFactory) -> IamSynth:
    """Every optional setting on."""
    stacks = synthesize(str(tmp_path_factory.mktemp("cdk-variant")), **VARIANT_CONTEXT)
    assert len(stacks) == 1, [s.name for s in stacks]
    return IamSynth("variant", stacks[0], VARIANT_CONTEXT)


@pytest.fixture(scope="session", params=["default", "variant"])
def iam_synth(request: pytest.FixtureRequest) -> IamSynth:
    """Both configurations, for checks that must hold in each."""
    return request.getfixturevalue(f"{request.param}_synth")
