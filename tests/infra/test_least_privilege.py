"""Least privilege, checked on the synthesized template: every role, every statement, both configurations.

Roles are found by what they are (trusted principal, the function they run), never by logical ID.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bedrock_finetune.layout import DATASETS_PREFIX, FROZEN_PREFIX, OUTPUTS_PREFIX, REPORTS_PREFIX
from bedrock_finetune.lineage import LINEAGE_TAG_KEYS, TAG_STACK
from iam_review.evaluate import Request, evaluate
from iam_review.render import Renderer, as_list, readable_statement
from iam_review.review import (
    NO_REASON,
    Statement,
    identity_statements,
    people_policies,
    resources_of,
    review,
    wildcards,
)
from stacks.application import cdk_json_context
from stacks.nag import ACTIONS_WITHOUT_RESOURCE_TYPE
from tests.infra.conftest import IamSynth

BASE_MODEL_ID = cdk_json_context()["base_model_id"]
BEDROCK = "arn:aws:bedrock:us-west-2:${AWS::AccountId}:"
FOUNDATION_MODEL = f"arn:aws:bedrock:us-west-2::foundation-model/{BASE_MODEL_ID}"
S3_OBJECT_ACTIONS = ("s3:GetObject*", "s3:PutObject*", "s3:DeleteObject*", "s3:*Object", "s3:*")


def allowed(template: Mapping[str, Any]) -> Iterator[Statement]:
    return (s for s in identity_statements(template) if s.effect == "Allow")


def grants(statement: Statement, action: str) -> bool:
    """Whether the statement's actions (with their wildcards) include ``action``."""
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in statement.actions)


def readable(template: Mapping[str, Any], value: Any) -> str:
    return Renderer(template["Resources"]).readable(value)


def role_named(
    template: Mapping[str, Any], *, trusted_by: str | None = None, handler: str | None = None
) -> str:
    """The readable name of the role trusted by a service, or of the role a Lambda handler runs as."""
    renderer = Renderer(template["Resources"])
    matches = []
    for logical_id, role in resources_of(template, "AWS::IAM::Role"):
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if trusted_by and any(trusted_by in as_list(t["Principal"].get("Service")) for t in trust):
            matches.append(renderer.name(logical_id))
    if handler:
        for _, fn in resources_of(template, "AWS::Lambda::Function"):
            if fn["Properties"].get("Handler") == handler:
                matches.append(renderer.name(fn["Properties"]["Role"]["Fn::GetAtt"][0]))
    assert len(matches) == 1, (trusted_by, handler, matches)
    return matches[0]


def test_resource_star_only_for_actions_without_a_resource_type(iam_synth: IamSynth) -> None:
    """Given every Allow statement, then Resource "*" appears only with actions listed in stacks/nag.py."""
    offending = [
        (s.owner, action)
        for s in allowed(iam_synth.template)
        if "*" in s.resources
        for action in s.actions
        if action not in ACTIONS_WITHOUT_RESOURCE_TYPE
    ]
    assert not offending, f"Resource '*' with actions that have a resource type: {offending}"


def test_no_allow_uses_not_action_or_not_resource(iam_synth: IamSynth) -> None:
    loose = [s.owner for s in allowed(iam_synth.template) if {"NotAction", "NotResource"} & set(s.raw)]
    assert not loose


def test_pass_role_names_one_role_and_the_service(iam_synth: IamSynth) -> None:
    """iam:PassRole only on a specific role ARN of this stack, and only to the service that needs it."""
    template = iam_synth.template
    role_ids = {i for i, _ in resources_of(template, "AWS::IAM::Role")}
    passes = [s for s in allowed(template) if grants(s, "iam:PassRole")]
    assert passes, "the job starter must be able to pass the service role"
    for statement in passes:
        assert statement.actions == ["iam:PassRole"], statement.raw
        for resource in statement.resources:
            assert isinstance(resource, dict) and resource.get("Fn::GetAtt", [None])[0] in role_ids, resource
        passed_to = statement.conditions.get("StringEquals", {}).get("iam:PassedToService")
        (role,) = (r["Fn::GetAtt"][0] for r in statement.resources)
        trusted = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        # the role goes only to the service that assumes it (Bedrock's service role; Scheduler's)
        assert [passed_to] == [t["Principal"]["Service"] for t in trusted], statement.raw


@pytest.mark.parametrize("verb", ["Create", "Delete", "Stop"])
def test_bedrock_mutations_stay_in_this_account_and_base_model(iam_synth: IamSynth, verb: str) -> None:
    """Create*/Delete*/Stop* only on this account's Bedrock ARNs and the configured foundation model."""
    template = iam_synth.template
    statements = [s for s in allowed(template) if any(a.startswith(f"bedrock:{verb}") for a in s.actions)]
    assert statements, f"no bedrock:{verb}* grant found; the pipeline needs one"
    for statement in statements:
        assert not any(a in ("bedrock:*", "*") for a in statement.actions), statement.raw
        for resource in (readable(template, r) for r in statement.resources):
            assert resource.startswith(BEDROCK) or resource == FOUNDATION_MODEL, (statement.owner, resource)
        if verb in ("Delete", "Stop"):
            # Only what this stack created: resources carry the stack's tag.
            assert any(k.startswith("aws:ResourceTag/") for k in statement.conditions.get("StringEquals", {}))


def _s3_object_grants(template: Mapping[str, Any], role: str, action: str) -> set[str]:
    return {
        readable(template, r)
        for s in allowed(template)
        if s.owner == role and grants(s, action)
        for r in s.resources
    }


@pytest.mark.parametrize(
    ("who", "reads", "writes"),
    [
        # Bedrock trains on the frozen copies of what was validated, never on datasets/.
        ({"trusted_by": "bedrock.amazonaws.com"}, FROZEN_PREFIX, (OUTPUTS_PREFIX,)),
        ({"handler": "handlers.validate_dataset.handler"}, DATASETS_PREFIX, (REPORTS_PREFIX, FROZEN_PREFIX)),
    ],
    ids=["bedrock-service-role", "validator"],
)
def test_s3_access_is_limited_to_the_prefixes_each_role_needs(
    iam_synth: IamSynth, who: dict[str, str], reads: str, writes: tuple[str, ...]
) -> None:
    template = iam_synth.template
    role = role_named(template, **who)
    assert _s3_object_grants(template, role, "s3:GetObject") == {f"arn:aws:s3:::<DataBucket>/{reads}*"}
    assert _s3_object_grants(template, role, "s3:PutObject") == {
        f"arn:aws:s3:::<DataBucket>/{w}*" for w in writes
    }
    listed = [s for s in allowed(template) if s.owner == role and grants(s, "s3:ListBucket")]
    for statement in listed:
        assert set(as_list(statement.conditions["StringLike"]["s3:prefix"])) <= {
            f"{DATASETS_PREFIX}*",
            f"{FROZEN_PREFIX}*",
            f"{OUTPUTS_PREFIX}*",
            f"{REPORTS_PREFIX}*",
        }
        assert f"{reads}*" in as_list(statement.conditions["StringLike"]["s3:prefix"])


def test_no_role_reaches_objects_outside_the_pipeline_prefixes(iam_synth: IamSynth) -> None:
    """Every object-level S3 grant names a prefix; listing always carries an s3:prefix condition."""
    template = iam_synth.template
    prefixes = tuple(f"/{p}" for p in (DATASETS_PREFIX, FROZEN_PREFIX, OUTPUTS_PREFIX, REPORTS_PREFIX))
    for statement in allowed(template):
        if any(grants(statement, a) for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")):
            for resource in (readable(template, r) for r in statement.resources):
                bucket, _, key = resource.partition("/")
                assert bucket.startswith("arn:aws:s3:::<") and f"/{key}".startswith(prefixes), (
                    statement.owner,
                    resource,
                )
        if grants(statement, "s3:ListBucket"):
            assert "s3:prefix" in statement.conditions.get("StringLike", {}), statement.raw


def test_kms_use_goes_through_the_service_that_needs_it(iam_synth: IamSynth) -> None:
    """Every KMS grant to a role names the key and the service (kms:ViaService) it is used through."""
    template = iam_synth.template
    kms = [s for s in allowed(template) if any(a.startswith("kms:") for a in s.actions)]
    assert kms
    for statement in kms:
        via = statement.conditions.get("StringEquals", {}).get("kms:ViaService", "")
        assert via.endswith(".us-west-2.amazonaws.com"), (statement.owner, statement.raw)
        assert "*" not in statement.resources, statement.raw


def test_bedrock_service_role_is_guarded_against_confused_deputies(iam_synth: IamSynth) -> None:
    template = iam_synth.template
    trusts = [
        t
        for _, role in resources_of(template, "AWS::IAM::Role")
        for t in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if "bedrock.amazonaws.com" in as_list(t["Principal"].get("Service"))
    ]
    assert trusts
    for trust in trusts:
        conditions = trust["Condition"]
        assert readable(template, conditions["StringEquals"]["aws:SourceAccount"]) == "${AWS::AccountId}"
        assert (
            readable(template, conditions["ArnEquals"]["aws:SourceArn"])
            == f"{BEDROCK}model-customization-job/*"
        )


def test_every_role_says_what_it_is_for(iam_synth: IamSynth) -> None:
    """CDK-generated roles included: the report's purpose column is never empty."""
    undescribed = [
        r["path"] for r in review(iam_synth.template, {}, "s")["roles"] if r["purpose"] == "(no description)"
    ]
    assert not undescribed


#: AWS managed policies a role may carry, and why. CDK attaches this one to its own handler functions
#: (bucket notifications, S3 auto-delete) and offers no option to replace it.
ALLOWED_MANAGED_POLICIES = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


def test_managed_policies_are_only_the_reviewed_ones(iam_synth: IamSynth) -> None:
    attached = {p for r in review(iam_synth.template, {}, "s")["roles"] for p in r["managed_policies"]}
    assert attached <= ALLOWED_MANAGED_POLICIES


def test_every_remaining_wildcard_has_a_reason(iam_synth: IamSynth) -> None:
    """Given the report's wildcard list, then each entry carries the reason recorded in the code."""
    found = wildcards(iam_synth.template, iam_synth.stack.acknowledgments)
    assert found
    unexplained = [w for w in found if w["reason"] == NO_REASON]
    assert not unexplained, unexplained


def test_permissions_boundary_reaches_every_role_when_configured(variant_synth: IamSynth) -> None:
    boundary = variant_synth.context["permissions_boundary_arn"]
    roles = review(variant_synth.template, {}, "s")["roles"]
    assert {r["path"]: r["permissions_boundary"] for r in roles} == {r["path"]: boundary for r in roles}


def test_only_bedrock_reads_and_only_the_validator_writes_the_frozen_copies(iam_synth: IamSynth) -> None:
    """What a job trains on cannot be read by anyone but the service role, nor changed by anyone but the
    validator: the bucket policy denies everyone else, whatever their IAM policies say."""
    template = iam_synth.template
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and "DataBucket" in json.dumps(r["Properties"]["Bucket"])
    ]
    (statements,) = policies
    denies = {s["Sid"]: s for s in statements if s["Effect"] == "Deny" and "Sid" in s}
    service_role = role_named(template, trusted_by="bedrock.amazonaws.com")
    validator = role_named(template, handler="handlers.validate_dataset.handler")
    read = denies["OnlyBedrockReadsFrozenDatasets"]
    assert read["Principal"] == {"AWS": "*"}
    assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert readable(template, read["Resource"]) == "arn:aws:s3:::<DataBucket>/frozen/*"
    assert readable(template, read["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == f"<{service_role}>"
    write = denies["OnlyTheValidatorWritesFrozenDatasets"]
    assert set(write["Action"]) == {"s3:PutObject", "s3:DeleteObject*"}
    assert readable(template, write["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == f"<{validator}>"


def test_tagging_is_limited_to_known_keys_and_this_stacks_ownership_value(iam_synth: IamSynth) -> None:
    """Clean-up and teardown trust the stack tag: no role may stamp it (or an unknown tag) on anything."""
    template = iam_synth.template
    taggers = [s for s in allowed(template) if grants(s, "bedrock:TagResource")]
    assert {s.owner for s in taggers} == {
        role_named(template, handler="handlers.start_customization_job.handler"),
        role_named(template, handler="handlers.serve_model.handler"),
        # the candidate's temporary deployment, on an on-demand line
        role_named(template, handler="handlers.evaluate_candidate.handler"),
    }
    for statement in taggers:
        assert statement.raw["Action"] == "bedrock:TagResource"
        keys = set(as_list(statement.conditions["ForAllValues:StringEquals"]["aws:TagKeys"]))
        assert keys == {*LINEAGE_TAG_KEYS, *cdk_json_context()["tags"]}
        assert statement.conditions["StringEquals"]["aws:RequestTag/finetune:stack"] == {
            "Ref": "AWS::StackId"
        }


def _key(synth: IamSynth) -> str:
    return str(synth.context.get("kms_key_arn", "<Key>"))


def _person(synth: IamSynth, name: str) -> dict[str, dict[str, Any]]:
    """The statements of one of the people's policies, by Sid (readable values)."""
    (person,) = [p for p in people_policies(synth.template) if p["name"] == name]
    return {s.pop("sid"): s for s in person["statements"]}


def _allow(actions: list[str], resources: list[str], conditions: list[str] | None = None) -> dict[str, Any]:
    return {
        "effect": "Allow",
        "actions": sorted(actions),
        "resources": sorted(resources),
        "conditions": conditions or [],
    }


BUCKET = "arn:aws:s3:::<DataBucket>"
VIA_S3 = ["StringEquals kms:ViaService = s3.us-west-2.amazonaws.com"]
OWNED = ["StringEquals aws:ResourceTag/finetune:stack = ${AWS::StackId}"]


def test_the_submitter_uploads_runs_reads_reports_and_nothing_else(iam_synth: IamSynth) -> None:
    """Put under datasets/, read reports/, the key through S3 only: no Step Functions, no Bedrock."""
    assert _person(iam_synth, "Submitter") == {
        "UploadRunFolders": _allow(["s3:PutObject"], [f"{BUCKET}/datasets/*"]),
        "ReadReports": _allow(["s3:GetObject"], [f"{BUCKET}/reports/*"]),
        "ListRunFoldersAndReports": _allow(
            ["s3:ListBucket"], [BUCKET], ["StringLike s3:prefix = datasets/* | reports/*"]
        ),
        "UseKeyThroughS3": _allow(["kms:GenerateDataKey", "kms:Decrypt"], [_key(iam_synth)], VIA_S3),
    }


def test_the_approver_answers_approvals_and_changes_only_this_stacks_lines(iam_synth: IamSynth) -> None:
    """Rollback and reads only on resources tagged with this stack; schedules of this stack's group only;
    the task-token actions on "*" (they have no resource type); decisions written to two file names."""
    bedrock = "arn:aws:bedrock:us-west-2:${AWS::AccountId}:"
    # With a time to live (the variant), extending passes the Scheduler's role, to Scheduler only
    pass_role = (
        {
            "PassSchedulerRole": _allow(
                ["iam:PassRole"],
                ["<LinesSchedulerRole>"],
                ["StringEquals iam:PassedToService = scheduler.amazonaws.com"],
            )
        }
        if iam_synth.label == "variant"
        else {}
    )
    assert _person(iam_synth, "Approver") == {
        **pass_role,
        "ReadReports": _allow(["s3:GetObject"], [f"{BUCKET}/reports/*"]),
        "ListReports": _allow(["s3:ListBucket"], [BUCKET], ["StringLike s3:prefix = reports/*"]),
        "RecordDecisions": _allow(
            ["s3:PutObject"], [f"{BUCKET}/reports/*/line.json", f"{BUCKET}/reports/*/approval.json"]
        ),
        "UseKeyThroughS3": _allow(["kms:GenerateDataKey", "kms:Decrypt"], [_key(iam_synth)], VIA_S3),
        "AnswerApprovals": _allow(["states:SendTaskSuccess", "states:SendTaskFailure"], ["*"]),
        "RollBackLinesOfThisStack": _allow(
            ["bedrock:UpdateProvisionedModelThroughput", "bedrock:UpdateCustomModelDeployment"],
            [
                f"{bedrock}provisioned-model/*",
                f"{bedrock}custom-model-deployment/*",
                f"{bedrock}custom-model/*",
            ],
            OWNED,
        ),
        "ReadLinesOfThisStack": _allow(
            ["bedrock:GetProvisionedModelThroughput", "bedrock:GetCustomModelDeployment"],
            [f"{bedrock}provisioned-model/*", f"{bedrock}custom-model-deployment/*"],
            OWNED,
        ),
        "ExtendServingSchedules": _allow(
            ["scheduler:GetSchedule", "scheduler:UpdateSchedule"],
            ["arn:aws:scheduler:us-west-2:${AWS::AccountId}:schedule/BedrockFineTuning-serving/*"],
        ),
    }
    for action in ("states:SendTaskSuccess", "states:SendTaskFailure"):
        assert action in ACTIONS_WITHOUT_RESOURCE_TYPE


def test_the_reader_reads_reports_executions_the_pipelines_logs_and_the_training_queue(
    iam_synth: IamSynth,
) -> None:
    template = iam_synth.template
    reader = _person(iam_synth, "Reader")
    executions = "arn:aws:states:us-west-2:${AWS::AccountId}:execution:"
    machines = ["<CleanUpEndedExecutionCleanUpMachine>", "<WorkflowStateMachine>"]
    log_groups = [
        f"<{Renderer(template['Resources']).name(i)}>"
        for i, _ in resources_of(template, "AWS::Logs::LogGroup")
    ]
    assert reader == {
        "ReadReports": _allow(["s3:GetObject"], [f"{BUCKET}/reports/*"]),
        "ListReports": _allow(["s3:ListBucket"], [BUCKET], ["StringLike s3:prefix = reports/*"]),
        "UseKeyThroughS3": _allow(["kms:Decrypt"], [_key(iam_synth)], VIA_S3),
        "ListExecutions": _allow(["states:ListExecutions", "states:DescribeStateMachine"], machines),
        "FollowExecutions": _allow(
            [
                "states:DescribeExecution",
                "states:DescribeStateMachineForExecution",
                "states:GetExecutionHistory",
            ],
            [f"{executions}{m[:-1]}.Name>:*" for m in machines],
        ),
        "ReadPipelineLogs": _allow(
            ["logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents"],
            [g for g in log_groups if "Provider" not in g],
        ),
        # finetune runs / status show the training queue: its one item, read, through DynamoDB's key use
        "ReadTrainingQueue": _allow(["dynamodb:GetItem"], ["<TrainingQueueTable>"]),
        "UseKeyThroughDynamoDB": _allow(
            ["kms:Decrypt"],
            [_key(iam_synth)],
            ["StringEquals kms:ViaService = dynamodb.us-west-2.amazonaws.com"],
        ),
    }


def test_the_approver_may_pass_the_schedulers_role_to_the_scheduler_only() -> None:
    """Given the serving schedules' role, then the approver may pass it, to scheduler.amazonaws.com only."""
    from aws_cdk import App, Environment, Stack
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_logs as logs
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template

    from stacks.people import People
    from stacks.permissions import BedrockArns

    stack = Stack(App(), "Team", env=Environment(account="111122223333", region="us-west-2"))
    key = kms.Key(stack, "Key")
    role = "arn:aws:iam::111122223333:role/serving-schedules"
    People(
        stack,
        "People",
        bucket=s3.Bucket(stack, "Bucket", encryption_key=key),
        key=key,
        arns=BedrockArns(stack, BASE_MODEL_ID),
        state_machines=[
            sfn.StateMachine(
                stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "P"))
            )
        ],
        log_groups=[logs.LogGroup(stack, "Logs")],
        scheduler_role_arn=role,
    )
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in Template.from_stack(stack).to_json()["Resources"].values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
    ]
    (approver,) = [p for p in policies if any(s.get("Sid") == "AnswerApprovals" for s in p)]
    (passing,) = [s for s in approver if s.get("Sid") == "PassSchedulerRole"]
    assert passing == {
        "Sid": "PassSchedulerRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": role,
        "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
    }


def _tagging(template: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    renderer = Renderer(template["Resources"])
    return {
        s.owner: [readable_statement(renderer, t.raw) for t in allowed(template) if t.owner == s.owner]
        for s in allowed(template)
        if grants(s, "bedrock:TagResource")
    }


@pytest.mark.parametrize(
    ("keys", "stack_value", "expected"),
    [
        ("own", "${AWS::StackId}", True),
        ("own+owner", "${AWS::StackId}", False),  # a key the pipeline does not write
        (
            "own",
            "arn:aws:cloudformation:us-west-2:111122223333:stack/Other/1",
            False,
        ),  # another stack's value
        ("run-only", None, False),  # every tagging request must carry this stack's ownership tag
    ],
)
def test_tagging_sets_only_the_pipelines_keys_with_this_stacks_value(
    default_synth: IamSynth, keys: str, stack_value: str | None, expected: bool
) -> None:
    """Decided by the report's evaluator for each role that may tag, on what it creates."""
    own = [*LINEAGE_TAG_KEYS, *cdk_json_context()["tags"]]
    tag_keys = {"own": own, "own+owner": [*own, "owner"], "run-only": ["finetune:run"]}[keys]
    context: dict[str, Any] = {"aws:TagKeys": tag_keys}
    if stack_value is not None:
        context[f"aws:RequestTag/{TAG_STACK}"] = stack_value
    taggers = _tagging(default_synth.template)
    assert len(taggers) == 3  # StartCustomizationJob, ServeModel, EvaluateCandidate
    for statements in taggers.values():
        tagged = [r for s in statements if "bedrock:TagResource" in s["Action"] for r in s["Resource"]]
        for resource in tagged:
            request = Request("bedrock:TagResource", resource.replace("*", "example"), context)
            assert evaluate(statements, request).allowed is expected, (resource, context)
