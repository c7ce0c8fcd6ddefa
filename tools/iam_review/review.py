"""Turn a synthesized template into an IAM review: roles, resource policies, remaining wildcards.

Everything here reads plain template JSON (plus cdk-nag acknowledgments collected from the construct
tree), so the same code serves the report, the snapshot and the least-privilege tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from iam_review.abilities import Layout, abilities, layout_of
from iam_review.render import ASSET_HASH, Renderer, as_list, nag_flat, readable_statement, strip_hash
from iam_review.spending import spending
from stacks.config import PipelineConfig
from stacks.encryption import LOGS_KEY_ACTIONS
from stacks.nag import ACTIONS_WITHOUT_RESOURCE_TYPE, GENERATED_POLICY_WILDCARDS

Template = Mapping[str, Any]
#: construct path -> {rule id: reason}, as acknowledged with :mod:`stacks.nag`.
Acknowledgments = Mapping[str, Mapping[str, str]]

PATH_METADATA = "aws:cdk:path"
IDENTITY_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
#: Resource policies shown in the report: type -> (title, property holding the document).
RESOURCE_POLICY_TYPES = {
    "AWS::KMS::Key": ("KMS key policy", "KeyPolicy"),
    "AWS::S3::BucketPolicy": ("Bucket policy", "PolicyDocument"),
    "AWS::SNS::TopicPolicy": ("SNS topic policy", "PolicyDocument"),
    "AWS::SQS::QueuePolicy": ("SQS queue policy", "PolicyDocument"),
}
#: Which property of a resource policy names the resource it protects.
_PROTECTED_BY = {
    "AWS::S3::BucketPolicy": "Bucket",
    "AWS::SNS::TopicPolicy": "Topics",
    "AWS::SQS::QueuePolicy": "Queues",
}
KEY_POLICY_STAR = "In a key policy, Resource '*' means this key and nothing else."
KEY_POLICY_ROOT = (
    "CDK's default key-administration statement for this account: it lets IAM policies grant use of the "
    "key (each role's own statements above, scoped with kms:ViaService) and keeps the key manageable."
)
ACCOUNT_ROOT = "AWS arn:aws:iam::${AWS::AccountId}:root"
BUCKET_POLICY_OBJECTS = "Objects of this bucket only: a bucket policy can only grant on its own bucket."
NO_REASON = "NO REASON RECORDED"

#: AWS managed policies a role of the stack may carry: their documented statements, where AWS documents
#: them, and why the stack has them. Any other attached AWS managed policy is reported without a reason.
AWS_MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "name": "AWSLambdaBasicExecutionRole",
        "url": "https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html",
        "statements": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
        "reason": (
            "AWS managed policy AWSLambdaBasicExecutionRole, which CDK attaches to the roles of its own "
            "helper functions (bucket notifications; S3 auto-delete with removal_policy=destroy) with no "
            "option to replace it: those functions create and write their /aws/lambda/<name> log group."
        ),
    },
}


@dataclass(frozen=True)
class Statement:
    """One policy statement, with where it came from."""

    owner: str  # readable name of the role or protected resource
    policy: str  # readable name of the policy document's resource
    path: str  # construct path of the policy's resource (acknowledgments are looked up from here)
    document_kind: str  # "identity" or a RESOURCE_POLICY_TYPES title
    raw: Mapping[str, Any]

    @property
    def effect(self) -> str:
        return str(self.raw.get("Effect", ""))

    @property
    def actions(self) -> list[str]:
        return [str(a) for a in as_list(self.raw.get("Action"))]

    @property
    def resources(self) -> list[Any]:
        return as_list(self.raw.get("Resource"))

    @property
    def conditions(self) -> Mapping[str, Mapping[str, Any]]:
        return self.raw.get("Condition") or {}


def construct_path(resource: Mapping[str, Any]) -> str:
    """The ``aws:cdk:path`` metadata CDK writes on every resource (path metadata is on in the CLI)."""
    return str((resource.get("Metadata") or {}).get(PATH_METADATA, ""))


def resources_of(template: Template, *types: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(logical ID, resource) of the given types, in template order."""
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") in types:
            yield logical_id, resource


def _policy_targets(policy: Mapping[str, Any]) -> list[str]:
    """Logical IDs of the roles an AWS::IAM::Policy / ManagedPolicy is attached to."""
    targets = []
    for role in as_list(policy.get("Properties", {}).get("Roles")):
        if isinstance(role, Mapping) and "Ref" in role:
            targets.append(str(role["Ref"]))
    return targets


def identity_statements(template: Template) -> Iterator[Statement]:
    """Every statement of every role's permissions (inline, attached and customer-managed policies)."""
    renderer = Renderer(template.get("Resources", {}))
    for logical_id, role in resources_of(template, "AWS::IAM::Role"):
        for index, policy in enumerate(role.get("Properties", {}).get("Policies") or []):
            for raw in as_list(policy.get("PolicyDocument", {}).get("Statement")):
                yield Statement(
                    renderer.name(logical_id),
                    f"{renderer.name(logical_id)} inline policy {policy.get('PolicyName', index)}",
                    construct_path(role),
                    "identity",
                    raw,
                )
    for logical_id, policy in resources_of(template, *IDENTITY_POLICY_TYPES):
        for target in _policy_targets(policy) or [logical_id]:
            for raw in as_list(policy.get("Properties", {}).get("PolicyDocument", {}).get("Statement")):
                yield Statement(
                    renderer.name(target), renderer.name(logical_id), construct_path(policy), "identity", raw
                )


def resource_policy_statements(template: Template) -> Iterator[Statement]:
    """Every statement of the key, bucket, topic and queue policies."""
    renderer = Renderer(template.get("Resources", {}))
    for logical_id, resource in resources_of(template, *RESOURCE_POLICY_TYPES):
        title, document = RESOURCE_POLICY_TYPES[str(resource["Type"])]
        props = resource.get("Properties", {})
        protected = props.get(_PROTECTED_BY.get(str(resource["Type"]), ""), {"Ref": logical_id})
        owner = renderer.readable(protected)
        for raw in as_list(props.get(document, {}).get("Statement")):
            yield Statement(owner, renderer.name(logical_id), construct_path(resource), title, raw)
    for logical_id, permission in resources_of(template, "AWS::Lambda::Permission"):
        yield Statement(
            renderer.readable(permission.get("Properties", {}).get("FunctionName")),
            renderer.name(logical_id),
            construct_path(permission),
            LAMBDA_PERMISSION,
            lambda_permission_statement(permission.get("Properties", {})),
        )


LAMBDA_PERMISSION = "Lambda permission"


def lambda_permission_statement(props: Mapping[str, Any]) -> dict[str, Any]:
    """An ``AWS::Lambda::Permission`` as the resource-policy statement Lambda makes of it."""
    principal = props.get("Principal")
    kind = "Service" if isinstance(principal, str) and principal.endswith(".amazonaws.com") else "AWS"
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal if principal == "*" else {kind: principal},
        "Action": props.get("Action"),
        "Resource": props.get("FunctionName"),
    }
    conditions: dict[str, dict[str, Any]] = {}
    if "SourceArn" in props:
        conditions.setdefault("ArnLike", {})["AWS:SourceArn"] = props["SourceArn"]
    if "SourceAccount" in props:
        conditions.setdefault("StringEquals", {})["AWS:SourceAccount"] = props["SourceAccount"]
    if "PrincipalOrgID" in props:
        conditions.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = props["PrincipalOrgID"]
    if conditions:
        statement["Condition"] = conditions
    return statement


def _ancestors(path: str) -> Iterator[str]:
    parts = path.split("/")
    for end in range(len(parts), 0, -1):
        yield "/".join(parts[:end])


def acknowledged_reason(acks: Acknowledgments, path: str, rule: str) -> str | None:
    """The reason ``rule`` was acknowledged on ``path`` or one of its parents (as cdk-nag looks it up)."""
    for candidate in _ancestors(path):
        reason = acks.get(candidate, {}).get(rule)
        if reason:
            return reason
    return None


def _grantee_roles(statement: Statement) -> list[str]:
    """Logical IDs of this stack's roles named as principals of a resource-policy statement."""
    principal = statement.raw.get("Principal")
    if not isinstance(principal, Mapping):
        return []
    return [
        str(p["Fn::GetAtt"][0])
        for p in as_list(principal.get("AWS"))
        if isinstance(p, Mapping) and "Fn::GetAtt" in p
    ]


def _provider_wildcard_reasons(template: Template, statement: Statement) -> Mapping[str, str]:
    """Reasons from GENERATED_POLICY_WILDCARDS when the grantee is that CDK provider's role."""
    resources = template.get("Resources", {})
    for role_id in _grantee_roles(statement):
        segments = construct_path(resources.get(role_id, {})).split("/")
        for provider, reasons in GENERATED_POLICY_WILDCARDS.items():
            if provider in segments:
                return reasons
    return {}


def _service_of(statement: Statement, kind: str, value: str) -> str:
    """The service a wildcard concerns: its action's prefix, else the statement's first action's."""
    action = value.removeprefix("* for ") if kind == "action" or value.startswith("* for ") else None
    if action is None:
        action = statement.actions[0] if statement.actions else "iam:"
    return action.split(":", 1)[0]


def wildcards(template: Template, acks: Acknowledgments) -> list[dict[str, str]]:
    """Every ``*`` left in an Allow statement (action or resource), each with its recorded reason."""
    renderer = Renderer(template.get("Resources", {}))
    found: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()

    def add(statement: Statement, kind: str, value: str, reason: str | None) -> None:
        key = (statement.owner, kind, value)
        if key not in seen:
            seen.add(key)
            found.append(
                {
                    "where": statement.owner,
                    "policy": statement.document_kind,
                    "service": _service_of(statement, kind, value),
                    "kind": kind,
                    "wildcard": value,
                    "reason": reason or NO_REASON,
                }
            )

    for statement in [*identity_statements(template), *resource_policy_statements(template)]:
        if statement.effect != "Allow":
            continue
        account_root = renderer.principals(statement.raw.get("Principal")) == [ACCOUNT_ROOT]
        generated = _provider_wildcard_reasons(template, statement)
        for action in statement.actions:
            if action == "kms:*" and statement.document_kind == "KMS key policy" and account_root:
                add(statement, "action", action, KEY_POLICY_ROOT)
            elif "*" in action:
                reason = acknowledged_reason(acks, statement.path, f"AwsSolutions-IAM5[Action::{action}]")
                add(statement, "action", action, reason or generated.get(action))
        for resource in statement.resources:
            for value, reason in _resource_wildcards(statement, resource, acks, renderer):
                add(statement, "resource", value, reason)
    for statement in managed_policy_statements(template):
        for kind, value, reason in _managed_policy_wildcards(statement):
            add(statement, kind, value, reason)
    return found


def _resource_wildcards(
    statement: Statement, resource: Any, acks: Acknowledgments, renderer: Renderer
) -> Iterator[tuple[str, str | None]]:
    """(wildcard, reason) for one resource of an Allow statement, if it has a ``*``."""
    flat = nag_flat(resource)
    if "*" not in flat:
        return
    if flat == "*" and statement.document_kind == "identity":
        for action in statement.actions:
            yield f"* for {action}", ACTIONS_WITHOUT_RESOURCE_TYPE.get(action)
    elif flat == "*" and statement.document_kind == "KMS key policy":
        yield "*", KEY_POLICY_STAR
    elif statement.document_kind == "Bucket policy":
        yield renderer.readable(resource), BUCKET_POLICY_OBJECTS
    else:
        yield (
            renderer.readable(resource),
            acknowledged_reason(acks, statement.path, f"AwsSolutions-IAM5[Resource::{flat}]"),
        )


def _managed_policy_wildcards(statement: Statement) -> Iterator[tuple[str, str, str | None]]:
    """(kind, wildcard, reason) in a statement of an AWS managed policy; an unknown policy is one item."""
    known = AWS_MANAGED_POLICIES.get(statement.policy)
    if known is None:
        yield "managed", f"everything in {statement.policy} (not reviewed)", None
        return
    reason = f"{known['reason']} Documented at {known['url']}"
    for action in statement.actions:
        if "*" in action:
            yield "action", action, reason
        if "*" in statement.resources:
            yield "resource", f"* for {action}", reason


def managed_policy_statements(template: Template) -> Iterator[Statement]:
    """The documented statements of the AWS managed policies attached to the stack's roles. A policy
    the review does not know yields one empty statement, so it is still listed."""
    renderer = Renderer(template.get("Resources", {}))
    for logical_id, role in resources_of(template, "AWS::IAM::Role"):
        for arn in (
            renderer.readable(a) for a in as_list(role.get("Properties", {}).get("ManagedPolicyArns"))
        ):
            if not arn.startswith("arn:aws:iam::aws:policy/"):
                continue
            known = AWS_MANAGED_POLICIES.get(arn, {"statements": [{"Effect": "Allow"}]})
            for raw in known["statements"]:
                yield Statement(renderer.name(logical_id), arn, construct_path(role), "AWS managed", raw)


def _statement_view(renderer: Renderer, statement: Statement) -> dict[str, Any]:
    raw = statement.raw
    view: dict[str, Any] = {"effect": statement.effect}
    if "Sid" in raw:
        view["sid"] = raw["Sid"]
    if "Principal" in raw or "NotPrincipal" in raw:
        view["principals"] = renderer.principals(raw.get("Principal", raw.get("NotPrincipal")))
    view["actions"] = sorted(statement.actions) if "Action" in raw else []
    if "NotAction" in raw:
        view["not_actions"] = sorted(str(a) for a in as_list(raw["NotAction"]))
    view["resources"] = sorted(renderer.readable(r) for r in statement.resources)
    if "NotResource" in raw:
        view["not_resources"] = sorted(renderer.readable(r) for r in as_list(raw["NotResource"]))
    view["conditions"] = renderer.conditions(statement.conditions)
    return view


def _role_view(
    template: Template, renderer: Renderer, logical_id: str, role: Mapping[str, Any]
) -> dict[str, Any]:
    props = role.get("Properties", {})
    name = renderer.name(logical_id)
    trust = [
        {
            "effect": raw.get("Effect"),
            "principals": renderer.principals(raw.get("Principal")),
            "actions": sorted(str(a) for a in as_list(raw.get("Action"))),
            "conditions": renderer.conditions(raw.get("Condition")),
        }
        for raw in as_list(props.get("AssumeRolePolicyDocument", {}).get("Statement"))
    ]
    statements = [s for s in identity_statements(template) if s.owner == name]
    granted_elsewhere = [
        {
            "policy": f"{s.document_kind} of {s.owner}",
            "actions": sorted(s.actions),
            "resources": sorted(renderer.readable(r) for r in s.resources),
            "conditions": renderer.conditions(s.conditions),
        }
        for s in resource_policy_statements(template)
        if s.effect == "Allow" and logical_id in _grantee_roles(s)
    ]
    return {
        "name": name,
        "path": construct_path(role),
        "purpose": props.get("Description") or "(no description)",
        "trust": trust,
        "managed_policies": sorted(renderer.readable(p) for p in as_list(props.get("ManagedPolicyArns"))),
        "permissions_boundary": renderer.readable(props["PermissionsBoundary"])
        if "PermissionsBoundary" in props
        else None,
        "statements": [dict(_statement_view(renderer, s), policy=s.policy) for s in statements],
        "granted_by_resource_policies": granted_elsewhere,
    }


def _is_attached(policy: Mapping[str, Any]) -> bool:
    return any(policy.get("Properties", {}).get(k) for k in ("Roles", "Users", "Groups"))


def _output_of(template: Template, logical_id: str) -> str | None:
    return next(
        (name for name, o in template.get("Outputs", {}).items() if o.get("Value") == {"Ref": logical_id}),
        None,
    )


def people_policies(template: Template, layout: Layout | None = None) -> list[dict[str, Any]]:
    """The customer-managed policies attached to no role of the stack: the ones for people. With the
    stack's layout, each also says what it allows (see :mod:`iam_review.abilities`)."""
    renderer = Renderer(template.get("Resources", {}))
    found = []
    for logical_id, policy in resources_of(template, "AWS::IAM::ManagedPolicy"):
        if _is_attached(policy):
            continue
        path = construct_path(policy)
        statements = [s for s in identity_statements(template) if s.policy == renderer.name(logical_id)]
        readable = [readable_statement(renderer, s.raw) for s in statements]
        found.append(
            {
                "name": path.removesuffix("/Resource").rsplit("/", 1)[-1] or renderer.name(logical_id),
                "policy": renderer.name(logical_id),
                "path": path,
                "description": policy.get("Properties", {}).get("Description", ""),
                "output": _output_of(template, logical_id),
                "statements": [_statement_view(renderer, s) for s in statements],
                "abilities": abilities(readable, layout) if layout is not None else {},
            }
        )
    return found


def key_grants(template: Template, config: PipelineConfig) -> list[dict[str, Any]]:
    """What the policy of a configured key (``kms_key_arn``) must let happen.

    CloudWatch Logs encrypts the stack's log groups with it (the stack cannot add that statement to a
    key it does not own), and every principal below uses it through its IAM policies, which take effect
    only if the key policy lets this account's IAM policies grant use of the key.
    """
    renderer = Renderer(template.get("Resources", {}))
    account = config.account or "${AWS::AccountId}"
    grants: list[dict[str, Any]] = [
        {
            "principal": f"Service logs.{config.region}.amazonaws.com",
            "actions": list(LOGS_KEY_ACTIONS),
            "conditions": [
                "ArnLike kms:EncryptionContext:aws:logs:arn = "
                f"arn:aws:logs:{config.region}:{account}:log-group:*"
            ],
        }
    ]
    for statement in identity_statements(template):
        if statement.effect != "Allow":
            continue
        if config.kms_key_arn not in [renderer.readable(r) for r in statement.resources]:
            continue
        grants.append(
            {
                "principal": statement.owner,
                "actions": sorted(a for a in statement.actions if a.startswith("kms:")),
                "conditions": renderer.conditions(statement.conditions),
            }
        )
    return grants


def review(
    template: Template,
    acks: Acknowledgments,
    stack_name: str,
    settings: Mapping[str, Any] | None = None,
    config: PipelineConfig | None = None,
) -> dict[str, Any]:
    """The whole review of one stack's template, as plain data (the JSON report). With the
    configuration it was built from, the people's abilities and (for a configured key) its grants."""
    renderer = Renderer(template.get("Resources", {}))
    roles = [_role_view(template, renderer, i, r) for i, r in resources_of(template, "AWS::IAM::Role")]
    policies: dict[str, dict[str, Any]] = {}
    for statement in resource_policy_statements(template):
        entry = policies.setdefault(
            statement.policy,
            {
                "kind": statement.document_kind,
                "resource": statement.owner,
                "path": statement.path,
                "statements": [],
            },
        )
        entry["statements"].append(_statement_view(renderer, statement))
    layout = (
        layout_of(template, region=config.region, account=config.account, stack_name=config.stack_name)
        if config is not None
        else None
    )
    people = people_policies(template, layout)
    by_principal: dict[str, list[Statement]] = {}
    for statement in identity_statements(template):
        by_principal.setdefault(statement.owner, []).append(statement)
    return {
        "stack": stack_name,
        "settings": dict(settings or {}),
        "roles": sorted(roles, key=lambda r: str(r["path"])),
        "resource_policies": sorted(policies.values(), key=lambda p: (str(p["kind"]), str(p["path"]))),
        "people": people,
        "spending": spending(renderer, by_principal, {p["policy"]: p["name"] for p in people}, layout),
        "key_grants": key_grants(template, config) if config is not None and config.kms_key_arn else [],
        "wildcards": wildcards(template, acks),
    }


def _normalise_text(value: Any) -> Any:
    """Asset hashes change with every code edit; they carry no permission, so they are masked."""
    if isinstance(value, str):
        return ASSET_HASH.sub("<asset-hash>", value)
    if isinstance(value, list):
        return [_normalise_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise_text(v) for k, v in value.items()}
    return value


def normalised_iam(template: Template, stack_name: str) -> dict[str, Any]:
    """What the snapshot holds: every role's trust and statements, the people's policies, and every
    resource policy.

    Names are logical IDs without CDK's hash suffix and statements are sorted, so only a change in
    permissions (not a refactor that moves a construct's hash or an asset's content) changes it.
    """
    data = review(template, {}, stack_name)
    # CDK-generated Sids end in a hash of the construct path, like logical IDs.
    for statement in [*(s for r in data["roles"] for s in r["statements"]),
                      *(s for p in data["people"] for s in p["statements"]),
                      *(s for p in data["resource_policies"] for s in p["statements"])]:  # fmt: skip
        if "sid" in statement:
            statement["sid"] = strip_hash(str(statement["sid"]))
    roles = {
        role["name"]: {
            "trust": role["trust"],
            "managed_policies": role["managed_policies"],
            "permissions_boundary": role["permissions_boundary"],
            "statements": sorted(
                ({k: v for k, v in s.items() if k != "policy"} for s in role["statements"]),
                key=lambda s: (str(s.get("sid", "")), s["actions"], s["resources"]),
            ),
        }
        for role in data["roles"]
    }
    policies = {
        f"{p['kind']} of {p['resource']}": sorted(
            p["statements"], key=lambda s: (str(s.get("sid", "")), s["actions"], s["resources"])
        )
        for p in data["resource_policies"]
    }
    people = {
        p["name"]: sorted(
            p["statements"], key=lambda s: (str(s.get("sid", "")), s["actions"], s["resources"])
        )
        for p in data["people"]
    }
    return _normalise_text(
        {"stack": stack_name, "roles": roles, "people": people, "resource_policies": policies}
    )
