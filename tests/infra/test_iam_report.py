"""make iam-report: a report a reviewer reads top to bottom, with no intrinsic JSON left in it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from unittest import mock

import pytest

from iam_review import main as report_main
from iam_review import synth as synth_module
from iam_review.markdown import DETAIL_HEADING
from iam_review.render import Renderer, nag_flat
from iam_review.review import NO_REASON, identity_statements, normalised_iam, resources_of, review, wildcards
from iam_review.spending import SPENDING_ACTIONS, UPLOAD_STARTS_A_RUN
from iam_review.summary import snapshot_changes
from iam_review.synth import cli_context
from tests.infra.conftest import CONFIGURED_KEY, VARIANT_CONTEXT, IamSynth

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
    # Every statement of every policy is in the report (the roles', then the people's), none dropped.
    shown = sum(len(r["statements"]) for r in data["roles"]) + sum(
        len(p["statements"]) for p in data["people"]
    )
    assert shown == len(list(identity_statements(template)))


def test_trust_conditions_are_shown(written: tuple[str, dict, str]) -> None:
    markdown, data, _ = written
    bedrock = next(r for r in data["roles"] if "Service bedrock.amazonaws.com" in r["trust"][0]["principals"])
    conditions = bedrock["trust"][0]["conditions"]
    assert "StringEquals aws:SourceAccount = ${AWS::AccountId}" in conditions
    assert any(c.startswith("ArnEquals aws:SourceArn = arn:aws:bedrock:") for c in conditions)
    for condition in conditions:
        assert condition in markdown


def test_the_summary_opens_the_report_and_the_detail_follows(written: tuple[str, dict, str]) -> None:
    markdown, data, _ = written
    kinds = {p["kind"] for p in data["resource_policies"]}
    assert {"KMS key policy", "Bucket policy", "SNS topic policy"} <= kinds
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Summary: stack BedrockFineTuning",
        "## Roles of stack BedrockFineTuning",
        "## People",
        "## Resource policies",
        "## Remaining wildcards",
    ]
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


def summary_of(markdown: str) -> list[str]:
    """The report's first page: every line before the detail starts."""
    lines = markdown.splitlines()
    return lines[: next(i for i, line in enumerate(lines) if line.startswith(DETAIL_HEADING))]


def test_the_summary_fits_on_one_page(written: tuple[str, dict, str]) -> None:
    """Given cdk.json's configuration, then the summary an admin approves from is under 60 lines."""
    markdown, _, _ = written
    summary = summary_of(markdown)
    assert len(summary) < 60, "\n".join(summary)


def _section(summary: list[str], title: str) -> list[str]:
    start = next(i for i, line in enumerate(summary) if line.startswith(f"**{title}"))
    end = next((i for i in range(start + 1, len(summary)) if not summary[i].startswith("- ")), len(summary))
    return summary[start + 1 : end]


def _configuration(markdown: str) -> list[str]:
    """The configuration table at the top of the summary: header, separator, values."""
    summary = summary_of(markdown)
    start = next(i for i, line in enumerate(summary) if line.startswith("| stack |"))
    return summary[start : start + 3]


def test_the_summary_names_the_configuration(written: tuple[str, dict, str]) -> None:
    markdown, _, _ = written
    header, _, values = _configuration(markdown)
    shown = dict(zip(header.strip("| ").split(" | "), values.strip("| ").split(" | "), strict=True))
    assert shown["model"] == "`anthropic.claude-3-haiku-20240307-v1:0:200k`"
    assert shown["Region"] == "`us-west-2`"
    assert shown["serving"] == "`provisioned`"
    assert shown["model units"] == "`1`"
    assert shown["commitment"] == "`none`"
    assert shown["boundary"] == "`none`"
    assert shown["key"] == "`created by the stack`"
    assert "approval" in shown


def test_the_summary_says_who_can_spend_and_under_which_condition(written: tuple[str, dict, str]) -> None:
    """Every principal whose policies allow a spending action, or uploading a train.jsonl, is listed."""
    markdown, data, _ = written
    spenders = {e["principal"]: e for e in data["spending"]}
    assert set(spenders) == {
        "Submitter",
        "Approver",
        "StartCustomizationJobRole",
        "ServeModelRole",
        "EvaluateCandidateRole",  # the candidate's temporary deployment; a failed candidate's swap back
        "WorkflowStateMachineEventsRole",
    }
    assert spenders["Submitter"]["person"] and spenders["Submitter"]["spends"] == [UPLOAD_STARTS_A_RUN]
    rollback = next(
        e for e in data["spending"] if SPENDING_ACTIONS["bedrock:UpdateCustomModelDeployment"] in e["spends"]
    )
    assert rollback["conditions"] == ["StringEquals aws:ResourceTag/finetune:stack = ${AWS::StackId}"]
    assert spenders["WorkflowStateMachineEventsRole"]["resources"] == ["<WorkflowStateMachine>"]
    lines = _section(summary_of(markdown), "Who can cause spending")
    assert len(lines) == len(data["spending"])
    assert any("**person: Approver**" in line and "aws:ResourceTag/finetune:stack" in line for line in lines)


def test_the_summary_lists_every_trust_relationship_with_its_conditions(
    written: tuple[str, dict, str],
) -> None:
    markdown, data, _ = written
    lines = _section(summary_of(markdown), "Trust")
    for role in data["roles"]:
        for trust in role["trust"]:
            assert any(
                role["name"] in line and all(c in line for c in [*trust["principals"], *trust["conditions"]])
                for line in lines
            ), role["name"]


def test_the_summary_lists_every_wildcard_with_its_reason(written: tuple[str, dict, str]) -> None:
    """Including the statements of the AWS managed policy CDK attaches, with AWS's documentation page."""
    markdown, data, _ = written
    text = "\n".join(_section(summary_of(markdown), "Wildcards"))
    for wildcard in data["wildcards"]:
        assert wildcard["reason"] in text, wildcard
    managed = [w for w in data["wildcards"] if w["policy"] == "AWS managed"]
    assert {w["wildcard"] for w in managed} == {
        "* for logs:CreateLogGroup",
        "* for logs:CreateLogStream",
        "* for logs:PutLogEvents",
    }
    url = "https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html"
    assert all(url in w["reason"] for w in managed)


def test_the_summary_lists_every_resource_based_permission(written: tuple[str, dict, str]) -> None:
    markdown, data, _ = written
    lines = _section(summary_of(markdown), "Resource-based permissions")
    assert len(lines) == len(data["resource_policies"])
    key_policy = next(line for line in lines if line.startswith("- KMS key policy"))
    assert "`Service logs.us-west-2.amazonaws.com`" in key_policy
    assert "kms:EncryptionContext:aws:logs:arn" in key_policy


def test_the_summary_shows_the_people_and_what_they_can_do(written: tuple[str, dict, str]) -> None:
    markdown, data, _ = written
    lines = _section(summary_of(markdown), "People")
    submitter = next(line for line in lines if line.startswith("- **Submitter** (`SubmitterPolicyArn`)"))
    can, cannot = submitter.split("; cannot ")
    assert "start a run (upload datasets/<run>/train.jsonl)" in can
    assert "answer an approval" in cannot and "start an execution directly" in cannot
    assert {p["output"] for p in data["people"]} == {
        "SubmitterPolicyArn",
        "ApproverPolicyArn",
        "ReaderPolicyArn",
    }


def test_changes_since_the_snapshot_are_listed_by_what_changed(default_synth: IamSynth) -> None:
    """Given one statement added to one role, then the summary names that change and that role."""
    template = json.loads(json.dumps(default_synth.template))
    committed = normalised_iam(template, "s")
    assert snapshot_changes(committed, normalised_iam(template, "s")) == []
    policy_id, policy = next(
        (i, r) for i, r in resources_of(template, "AWS::IAM::Policy") if "NotifyRole" in json.dumps(r)
    )
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::elsewhere/x"}
    )
    assert snapshot_changes(committed, normalised_iam(template, "s")) == [
        {"change": "statements: 1 added, 0 removed", "where": ["NotifyRole"]}
    ], policy_id
    assert snapshot_changes(None, committed) == [
        {"change": "no committed snapshot to compare with", "where": []}
    ]


def test_the_report_is_built_from_the_context_deploy_uses(default_synth: IamSynth, tmp_path: Path) -> None:
    """Given CDK_ARGS with -c values and other CDK options, then -c reaches the synth; the rest is named."""
    with (
        mock.patch.object(report_main, "synthesize", return_value=[default_synth.stack]) as synth,
        mock.patch("sys.stdout.write") as stdout,
    ):
        code = report_main.main(
            ["--outdir", str(tmp_path), "-c", "permissions_boundary_arn=arn:aws:iam::123456789012:policy/B=1",
             "--context=stack_name=Team-b", "--profile", "prod"]
        )  # fmt: skip
    assert code == 0
    synth.assert_called_once_with(
        str(tmp_path),
        permissions_boundary_arn="arn:aws:iam::123456789012:policy/B=1",
        stack_name="Team-b",
    )
    assert "Ignored (they do not change the template): --profile prod" in "".join(
        c.args[0] for c in stdout.call_args_list
    )


@pytest.mark.parametrize("argument", ["no-equals-sign", "aws:cdk:enable-path-metadata=false"])
def test_a_malformed_context_argument_is_refused(argument: str) -> None:
    with pytest.raises(SystemExit), mock.patch("sys.stderr.write"):
        report_main.main(["-c", argument])


def test_the_snapshot_is_only_written_from_cdk_json(tmp_path: Path) -> None:
    with pytest.raises(SystemExit), mock.patch("sys.stderr.write"):
        report_main.main(["--snapshot", "-c", "stack_name=Other"])


def test_context_is_layered_as_the_cdk_cli_layers_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-c over cdk.json's context, over cdk.context.json, over ~/.cdk.json's context."""
    project = tmp_path / "cdk.json"
    project.write_text(json.dumps({"context": {"a": "cdk.json", "b": "cdk.json"}}))
    cached = tmp_path / "cdk.context.json"
    cached.write_text(json.dumps({"b": "cdk.context.json", "c": "cdk.context.json"}))
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"context": {"c": "user", "d": "user"}}))
    monkeypatch.setattr(synth_module, "CDK_JSON", project)
    monkeypatch.setattr(synth_module, "PROJECT_CONTEXT", cached)
    assert cli_context({"a": "-c"}, user_defaults=user) == {
        "a": "-c",
        "b": "cdk.json",
        "c": "cdk.context.json",
        "d": "user",
    }
    assert cli_context(user_defaults=tmp_path / "absent.json")["a"] == "cdk.json"


def test_a_configured_boundary_and_key_are_in_the_header_and_the_key_grants_listed(
    variant_synth: IamSynth, tmp_path: Path
) -> None:
    """Given a permissions boundary and a configured key, then the header names both, and the report
    lists what the key's policy must allow: CloudWatch Logs, and every principal's use through S3, Bedrock
    or SNS."""
    with (
        mock.patch.object(report_main, "synthesize", return_value=[variant_synth.stack]),
        mock.patch("sys.stdout.write"),
    ):
        assert report_main.main(["--outdir", str(tmp_path), "--json"]) == 0
    markdown = (tmp_path / "iam-report.md").read_text()
    data = json.loads((tmp_path / "iam-report.json").read_text())[0]
    header = "\n".join(_configuration(markdown))
    assert f"`{VARIANT_CONTEXT['permissions_boundary_arn']}`" in header
    assert f"`{CONFIGURED_KEY}`" in header
    grants = data["key_grants"]
    logs = grants[0]
    assert logs["principal"] == "Service logs.us-west-2.amazonaws.com"
    assert "kms:GenerateDataKey" in logs["actions"]
    assert logs["conditions"] == [
        "ArnLike kms:EncryptionContext:aws:logs:arn = arn:aws:logs:us-west-2:${AWS::AccountId}:log-group:*"
    ]
    by_principal = {(g["principal"], tuple(g["conditions"])) for g in grants[1:]}
    for principal, service in (
        ("BedrockServiceRole", "bedrock"),
        ("NotifyRole", "sns"),
        ("PeopleSubmitter", "s3"),
    ):
        assert (
            principal,
            (f"StringEquals kms:ViaService = {service}.us-west-2.amazonaws.com",),
        ) in by_principal
    assert "## Key grants" in markdown


def test_an_unknown_aws_managed_policy_is_reported_without_a_reason(default_synth: IamSynth) -> None:
    template = json.loads(json.dumps(default_synth.template))
    _, role = next(resources_of(template, "AWS::IAM::Role"))
    role["Properties"]["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/AdministratorAccess"]
    acks = default_synth.stack.acknowledgments
    unexplained = [w for w in wildcards(template, acks) if w["reason"] == NO_REASON]
    assert [w["wildcard"] for w in unexplained] == [
        "everything in arn:aws:iam::aws:policy/AdministratorAccess (not reviewed)"
    ]


def test_lambda_permissions_are_resource_based_permissions() -> None:
    template = {
        "Resources": {
            "HandlerAB12CD34": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "InvokeAB12CD34": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": {"Fn::GetAtt": ["HandlerAB12CD34", "Arn"]},
                    "Principal": "scheduler.amazonaws.com",
                    "SourceAccount": {"Ref": "AWS::AccountId"},
                },
            },
        }
    }
    (policy,) = review(template, {}, "s")["resource_policies"]
    assert policy["kind"] == "Lambda permission" and policy["resource"] == "<Handler>"
    assert policy["statements"] == [
        {
            "effect": "Allow",
            "principals": ["Service scheduler.amazonaws.com"],
            "actions": ["lambda:InvokeFunction"],
            "resources": ["<Handler>"],
            "conditions": ["StringEquals AWS:SourceAccount = ${AWS::AccountId}"],
        }
    ]


def test_a_broad_grant_is_found_among_the_spenders() -> None:
    """Given a role allowed everything but IAM (NotAction), then it is listed for every spending action."""
    template = {
        "Resources": {
            "AdminRole1234ABCD": {"Type": "AWS::IAM::Role", "Properties": {}},
            "AdminPolicy1234ABCD": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "Roles": [{"Ref": "AdminRole1234ABCD"}],
                    "PolicyDocument": {
                        "Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]
                    },
                },
            },
        }
    }
    (entry,) = review(template, {}, "s")["spending"]
    assert entry["principal"] == "AdminRole" and entry["spends"] == list(SPENDING_ACTIONS.values())
