"""cdk-nag: three rule packs on every synth; every acknowledgment narrow, reasoned and actually needed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aws_cdk import App, Duration, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks

import stacks.nag
from stacks.application import build_app, cdk_json_context
from tests.infra.conftest import VARIANT_CONTEXT, IamSynth

PACKS = (AwsSolutionsChecks, ServerlessChecks, NIST80053R5Checks)


class _RecordingValidations:
    """Stands in for ``aws_cdk.Validations`` inside stacks.nag: records acknowledgments, applies none."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, str, str]] = []

    def of(self, construct: Any) -> Any:
        recorder = self

        class _Scope:
            def acknowledge(self, ack: Any) -> None:
                recorder.acks.append((construct.node.path, ack.id, ack.reason))

        return _Scope()


def _unacknowledged_build(context: Mapping[str, Any]) -> tuple[App, list[tuple[str, str, str]]]:
    recorder = _RecordingValidations()
    with mock.patch.object(stacks.nag, "Validations", recorder):
        app, _stack, _config = build_app(cdk_json_context(**context))
    return app, recorder.acks


def _findings(app: App) -> set[tuple[str, str]]:
    """(rule id, construct path) of every finding of the three packs, as if nothing were acknowledged."""
    found = set()
    for pack in PACKS:
        report = pack().validate_scope(app)
        for violation in report.violations:
            for resource in violation.violating_resources:
                found.add((violation.rule_name, resource.construct_path))
    return found


@pytest.fixture(scope="module", params=["default", "variant"])
def raw_findings(request: pytest.FixtureRequest) -> tuple[set[tuple[str, str]], list[tuple[str, str, str]]]:
    context = {} if request.param == "default" else VARIANT_CONTEXT
    app, acks = _unacknowledged_build(context)
    return _findings(app), acks


def _covers(ack_path: str, finding_path: str) -> bool:
    return finding_path == ack_path or finding_path.startswith(ack_path + "/")


def test_every_finding_is_acknowledged_on_its_own_construct(raw_findings: Any) -> None:
    """Given all three packs, when acknowledgments are set aside, then each finding has one."""
    findings, acks = raw_findings
    unacknowledged = sorted(
        (rule, path)
        for rule, path in findings
        if not any(rule == ack_rule and _covers(ack_path, path) for ack_path, ack_rule, _ in acks)
    )
    assert not unacknowledged, "findings without an acknowledgment:\n" + "\n".join(map(str, unacknowledged))


def test_every_acknowledgment_is_needed(raw_findings: Any) -> None:
    """An acknowledgment that matches no finding is stale: it would silently excuse a future one."""
    findings, acks = raw_findings
    stale = [
        (path, rule)
        for path, rule, _ in acks
        if not any(rule == f_rule and _covers(path, f_path) for f_rule, f_path in findings)
    ]
    assert not stale, "acknowledgments that match no finding:\n" + "\n".join(map(str, stale))


def test_acknowledgments_are_narrow_and_explained(raw_findings: Any) -> None:
    """No stack- or app-wide acknowledgment; every reason says why, in a sentence."""
    acks = raw_findings[1]
    app, _ = _unacknowledged_build({})
    scopes = {c.node.path for c in app.node.find_all() if isinstance(c, Stack | Stage | App)}
    too_broad = [(path, rule) for path, rule, _ in acks if path in scopes or path == ""]
    assert not too_broad, f"acknowledged on a whole stack or app: {too_broad}"
    thin = [(path, rule, reason) for path, rule, reason in acks if len(reason.split()) < 8]
    assert not thin, f"reasons too short to explain anything: {thin}"


def test_every_acknowledgment_goes_through_stacks_nag(default_synth: IamSynth) -> None:
    """Acknowledgments made around the helpers would escape the checks above."""
    _app, acks = _unacknowledged_build({})
    recorded = {(path, rule) for path, rule, _ in acks}
    applied = {(path, rule) for path, rules in default_synth.stack.acknowledgments.items() for rule in rules}
    assert applied == recorded


def test_the_three_packs_run_on_every_synth(tmp_path: Path) -> None:
    """Given a function that breaks rules of each pack, when the app synthesizes, then synth fails."""
    app, stack, _config = build_app(cdk_json_context(), outdir=str(tmp_path))
    lambda_.Function(
        stack,
        "Unreviewed",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
        timeout=Duration.seconds(3),
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    failing = {
        plugin["pluginName"]: {v["ruleName"] for v in plugin["violations"]}
        for plugin in report["pluginReports"]
        if plugin["conclusion"] == "failure"
    }
    assert set(failing) == {"AwsSolutions", "Serverless", "NIST.800.53.R5"}
    assert "Serverless-LambdaDLQ" in failing["Serverless"]
