"""make iam-report: a report a reviewer reads top to bottom, with no intrinsic JSON left in it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from unittest import mock

import pytest

from iam_review import main as report_main
from iam_review.render import Renderer, nag_flat
from iam_review.review import identity_statements, resources_of
from tests.infra.conftest import IamSynth

RESOURCES = {
    "DataBucketE6B0FAA8": {"Type": "AWS::S3::Bucket"},
    "BedrockServiceRole9BA95445": {"Type": "AWS::IAM::Role"},
    "Key961B73FD": {"Type": "AWS::KMS::Key"},
}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            {"Fn::Join": ["", [{"Fn::GetAtt": ["DataBucketE6B0FAA8", "Arn"]}, "/datasets/*"]]},
            "arn:aws:s3:::<DataBucket>/datasets/*",
        ),
        ({"Fn::GetAtt": ["BedrockServiceRole9BA95445", "Arn"]}, "<BedrockServiceRole>"),
        (
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":bedrock:us-west-2:",
                               {"Ref": "AWS::AccountId"}, ":custom-model/*"]]},
            "arn:aws:bedrock:us-west-2:${AWS::AccountId}:custom-model/*",
        ),
        ({"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/X"}, "arn:aws:iam::aws:policy/X"),
        ({"Fn::Sub": "${Key961B73FD.Arn}/x"}, "<Key>/x"),
        ({"Ref": "DataBucketE6B0FAA8"}, "<DataBucket>"),
    ],
)  # fmt: skip
def test_tokens_render_readably(value: object, text: str) -> None:
    assert Renderer(RESOURCES).readable(value) == text


def test_nag_flattening_matches_how_acknowledgments_name_resources() -> None:
    value = {"Fn::Join": ["", [{"Fn::GetAtt": ["DataBucketE6B0FAA8", "Arn"]}, "/datasets/*"]]}
    assert nag_flat(value) == "<DataBucketE6B0FAA8.Arn>/datasets/*"
    assert nag_flat({"Fn::Sub": "arn:${AWS::Partition}:s3:::x"}) == "arn:<AWS::Partition>:s3:::x"


@pytest.fixture(scope="module")
def written(default_synth: IamSynth, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, str]:
    """Run the command (on the session's synth) and return its report, JSON and output."""
    outdir = tmp_path_factory.mktemp("report")
    with (
        mock.patch.object(report_main, "synthesize", return_value=[default_synth.stack]),
        mock.patch("sys.stdout.write") as stdout,
    ):
        code = report_main.main(["--outdir", str(outdir), "--json"])
    printed = "".join(call.args[0] for call in stdout.call_args_list)
    assert code == 0, printed
    return (
        (outdir / "iam-report.md").read_text(),
        json.loads((outdir / "iam-report.json").read_text())[0],
        printed,
    )


def test_it_says_where_it_wrote_the_report(written: tuple[str, dict, str]) -> None:
    _md, _json, printed = written
    assert re.search(r"IAM report written to .*/iam-report\.md", printed)
    assert re.search(r"IAM report \(JSON\) written to .*/iam-report\.json", printed)


def test_no_intrinsic_json_is_left(written: tuple[str, dict, str]) -> None:
    markdown, data, _ = written
    for text in (markdown, json.dumps(data)):
        assert "Fn::" not in text
        assert '"Ref"' not in text and "{Ref" not in text


def test_every_role_has_its_path_purpose_trust_and_statements(
    written: tuple[str, dict, str], default_synth: IamSynth
) -> None:
    markdown, data, _ = written
    template = default_synth.template
    paths = {r["Metadata"]["aws:cdk:path"] for _, r in resources_of(template, "AWS::IAM::Role")}
    assert {r["path"] for r in data["roles"]} == paths
    for role in data["roles"]:
        assert f"`{role['path']}`" in markdown
        assert role["purpose"] in markdown
        assert role["trust"] and role["trust"][0]["principals"]
    # Every statement of every policy is in the report, none dropped.
    assert sum(len(r["statements"]) for r in data["roles"]) == len(list(identity_statements(template)))


def test_trust_conditions_are_shown(written: tuple[str, dict, str]) -> None:
    markdown, data, _ = written
    bedrock = next(r for r in data["roles"] if "Service bedrock.amazonaws.com" in r["trust"][0]["principals"])
    conditions = bedrock["trust"][0]["conditions"]
    assert "StringEquals aws:SourceAccount = ${AWS::AccountId}" in conditions
    assert any(c.startswith("ArnEquals aws:SourceArn = arn:aws:bedrock:") for c in conditions)
    for condition in conditions:
        assert condition in markdown


def test_resource_policies_and_the_wildcard_list_close_the_report(written: tuple[str, dict, str]) -> None:
    markdown, data, _ = written
    kinds = {p["kind"] for p in data["resource_policies"]}
    assert {"KMS key policy", "Bucket policy", "SNS topic policy"} <= kinds
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections[-2:] == ["## Resource policies", "## Remaining wildcards"]
    assert "arn:aws:s3:::<DataBucket>/datasets/*" in markdown
    assert "`<BedrockServiceRole>`" in markdown


def test_an_unexplained_wildcard_fails_the_command(default_synth: IamSynth, tmp_path: Path) -> None:
    """Given a statement with a wildcard nobody explained, then the report flags it and exits non-zero."""
    template = json.loads(json.dumps(default_synth.template))
    policy = next(r for _, r in resources_of(template, "AWS::IAM::Policy"))
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::somewhere/*"}
    )
    stack = type(default_synth.stack)(**{**default_synth.stack.__dict__, "template": template})
    with mock.patch.object(report_main, "synthesize", return_value=[stack]), mock.patch("sys.stdout.write"):
        assert report_main.main(["--outdir", str(tmp_path)]) == 1
    assert "NO REASON RECORDED" in (tmp_path / "iam-report.md").read_text()
