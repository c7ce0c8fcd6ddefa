"""What a principal can do with the pipeline, decided by :mod:`iam_review.evaluate` on its policies.

Each ability is one or more requests (all must be allowed): starting a run is uploading
``datasets/<run>/train.jsonl`` *and* encrypting it with the bucket's key through S3. The requests name
resources by a :class:`Layout`: the readable names of the report (``arn:aws:s3:::<DataBucket>``) when
built from a template, or real ARNs when built from a deployment (the emulation's tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_finetune.layout import REPORTS_PREFIX
from bedrock_finetune.lineage import TAG_STACK
from iam_review.evaluate import Request, evaluate
from iam_review.render import Renderer, as_list
from stacks.people import serving_schedule_group

#: Names used in the example requests.
EXAMPLE_RUN = "example-run"
EXAMPLE_ID = "example-id"
OTHER_STACK = "arn:aws:cloudformation:us-east-1:444455556666:stack/SomeoneElses/example"


@dataclass(frozen=True)
class Layout:
    """Where the pipeline's resources are, in one naming (readable or real)."""

    bucket_arn: str
    #: ``datasets/<run>/train.jsonl`` for an example run (an upload of it starts a run).
    train_key: str
    #: The state machine the upload trigger starts.
    pipeline_arn: str
    #: The name used in the pipeline's execution ARNs.
    pipeline_name: str
    key_arn: str
    #: The log group the pipeline's state machine logs to.
    log_group_arn: str
    region: str
    account: str
    stack_name: str
    #: The value of this stack's ownership tag (``finetune:stack``) on what its runs create.
    stack_tag: str
    partition: str = "aws"

    @property
    def serving_group(self) -> str:
        return serving_schedule_group(self.stack_name)

    def objects(self, key: str) -> str:
        return f"{self.bucket_arn}/{key}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def via(self, service: str) -> dict[str, str]:
        return {"kms:ViaService": f"{service}.{self.region}.amazonaws.com"}


def _upload(layout: Layout, key: str) -> list[Request]:
    return [
        Request("s3:PutObject", layout.objects(key)),
        Request("kms:GenerateDataKey", layout.key_arn, layout.via("s3")),
    ]


def _read(layout: Layout, key: str) -> list[Request]:
    return [
        Request("s3:GetObject", layout.objects(key)),
        Request("kms:Decrypt", layout.key_arn, layout.via("s3")),
    ]


def _tagged(layout: Layout, action: str, resource: str, tag: str) -> list[Request]:
    return [Request(action, layout.arn("bedrock", resource), {f"aws:ResourceTag/{TAG_STACK}": tag})]


_RUN_REPORTS = f"{REPORTS_PREFIX}{EXAMPLE_RUN}/"
_UPDATE_THROUGHPUT = "bedrock:UpdateProvisionedModelThroughput"

#: Ability -> the requests it takes. The order is the report's.
ABILITIES: dict[str, Callable[[Layout], list[Request]]] = {
    "start a run (upload datasets/<run>/train.jsonl)": lambda la: _upload(la, la.train_key),
    "start an execution directly": lambda la: [Request("states:StartExecution", la.pipeline_arn)],
    "read a run's reports": lambda la: _read(la, f"{_RUN_REPORTS}run.json"),
    "answer an approval (send the task token back)": lambda la: [Request("states:SendTaskSuccess", "*")],
    "record a decision (reports/<run>/approval.json)": lambda la: _upload(la, f"{_RUN_REPORTS}approval.json"),
    # Swapping the model behind a line's throughput: the throughput and the model it swaps to.
    "roll back a line of this stack": lambda la: [
        *_tagged(la, _UPDATE_THROUGHPUT, f"provisioned-model/{EXAMPLE_ID}", la.stack_tag),
        *_tagged(la, _UPDATE_THROUGHPUT, f"custom-model/{EXAMPLE_ID}", la.stack_tag),
    ],
    "roll back another stack's line": lambda la: _tagged(
        la, _UPDATE_THROUGHPUT, f"provisioned-model/{EXAMPLE_ID}", OTHER_STACK
    ),
    "extend a line's serving schedule": lambda la: [
        Request("scheduler:UpdateSchedule", la.arn("scheduler", f"schedule/{la.serving_group}/{EXAMPLE_RUN}"))
    ],
    "read the pipeline's logs": lambda la: [Request("logs:FilterLogEvents", la.log_group_arn)],
    "follow an execution": lambda la: [
        Request("states:GetExecutionHistory", la.arn("states", f"execution:{la.pipeline_name}:{EXAMPLE_RUN}"))
    ],
    "use the key outside S3": lambda la: [Request("kms:Decrypt", la.key_arn)],
}  # fmt: skip


def can(statements: Iterable[Mapping[str, Any]], layout: Layout, ability: str) -> bool:
    """Whether every request of ``ability`` is allowed by ``statements`` (one principal's policies)."""
    listed = list(statements)
    return all(evaluate(listed, request).allowed for request in ABILITIES[ability](layout))


def abilities(statements: Iterable[Mapping[str, Any]], layout: Layout) -> dict[str, bool]:
    """Every ability of :data:`ABILITIES`, decided for one principal."""
    listed = list(statements)
    return {ability: can(listed, layout, ability) for ability in ABILITIES}


def layout_of(
    template: Mapping[str, Any], *, region: str, account: str | None, stack_name: str
) -> Layout | None:
    """The readable layout of a synthesized stack, found through its upload trigger (None without one)."""
    resources = template.get("Resources", {})
    renderer = Renderer(resources)
    for rule in resources.values():
        if rule.get("Type") != "AWS::Events::Rule":
            continue
        props = rule.get("Properties", {})
        pattern = props.get("EventPattern") or {}
        if pattern.get("source") != ["aws.s3"]:
            continue
        bucket_ref = pattern["detail"]["bucket"]["name"][0]
        key_pattern = str(pattern["detail"]["object"]["key"][0]["wildcard"])
        bucket_id = str(bucket_ref["Ref"])
        target = as_list(props.get("Targets"))[0]["Arn"]
        machine_id = str(target["Ref"])
        logging = resources[machine_id]["Properties"]["LoggingConfiguration"]["Destinations"][0]
        encryption = resources[bucket_id]["Properties"]["BucketEncryption"]
        key = encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        return Layout(
            bucket_arn=f"arn:aws:s3:::<{renderer.name(bucket_id)}>",
            train_key=key_pattern.replace("*", EXAMPLE_RUN),
            pipeline_arn=renderer.readable(target),
            pipeline_name=f"<{renderer.name(machine_id)}.Name>",
            key_arn=renderer.readable(key["KMSMasterKeyID"]),
            log_group_arn=renderer.readable(logging["CloudWatchLogsLogGroup"]["LogGroupArn"]),
            region=region,
            account=account or "${AWS::AccountId}",
            stack_name=stack_name,
            stack_tag="${AWS::StackId}",
        )
    return None
