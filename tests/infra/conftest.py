"""Synthesize once per session: the default configuration, and a variant that turns on everything else.

The variant (configured KMS key, permissions boundary, e-mail subscription, removal_policy=destroy)
brings in the CDK-generated roles and settings the default leaves out, so every check sees them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from iam_review.synth import SynthesizedStack, synthesize

CONFIGURED_KEY = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VARIANT_CONTEXT: Mapping[str, Any] = {
    "kms_key_arn": CONFIGURED_KEY,
    "permissions_boundary_arn": "arn:aws:iam::111122223333:policy/PlatformBoundary",
    "notification_emails": ["ml-team@example.com"],
    "removal_policy": "destroy",
}


@dataclass(frozen=True)
class Synthesized:
    """One synthesized configuration: its (single) stack and the context it was built from."""

    label: str
    stack: SynthesizedStack
    context: Mapping[str, Any]

    @property
    def template(self) -> Mapping[str, Any]:
        return self.stack.template


def _synth(tmp_path_factory: pytest.TempPathFactory, label: str, context: Mapping[str, Any]) -> Synthesized:
    outdir = tmp_path_factory.mktemp(f"cdk-{label}")
    stacks = synthesize(str(outdir), **context)
    assert len(stacks) == 1, [s.name for s in stacks]
    return Synthesized(label, stacks[0], context)


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """cdk.json as committed."""
    return _synth(tmp_path_factory, "default", {})


@pytest.fixture(scope="session")
def variant_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Every optional setting on."""
    return _synth(tmp_path_factory, "variant", VARIANT_CONTEXT)


@pytest.fixture(scope="session", params=["default", "variant"])
def synthesized(request: pytest.FixtureRequest) -> Synthesized:
    """Both configurations, for checks that must hold in each."""
    return request.getfixturevalue(f"{request.param}_synth")
