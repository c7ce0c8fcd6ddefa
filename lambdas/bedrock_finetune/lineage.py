"""Lineage tags: every job, custom model and Provisioned Throughput names the run that made it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from bedrock_finetune.naming import RunIdentity
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import TaggingSettings

TAG_RUN = "finetune:run"
TAG_DATASET = "finetune:dataset"
TAG_DATASET_VERSION = "finetune:dataset-version"
TAG_EXECUTION = "finetune:execution"
#: Marks resources made by one deployed stack; teardown finds them by this tag.
TAG_STACK = "finetune:stack"

#: Every tag key the pipeline writes itself (the configured resource tags come on top).
LINEAGE_TAG_KEYS = (TAG_RUN, TAG_DATASET, TAG_DATASET_VERSION, TAG_EXECUTION, TAG_STACK)

_TAG_UNSAFE = re.compile(r"[^a-zA-Z0-9\s._:/=+@-]")


def tag_value(value: str) -> str:
    """Bedrock tag values allow ``[a-zA-Z0-9\\s._:/=+@-]`` up to 256 characters."""
    return _TAG_UNSAFE.sub("_", value)[:256]


def lineage_tags(
    *,
    run: str,
    identity: RunIdentity,
    execution_arn: str,
    stack_tag: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Tags for what a run creates: configured resource tags plus the lineage tags."""
    tags = {k: tag_value(v) for k, v in (extra or {}).items()}
    tags.update(
        {
            TAG_RUN: tag_value(run),
            TAG_DATASET: tag_value(f"s3://{identity.bucket}/{identity.key}"),
            TAG_DATASET_VERSION: tag_value(identity.version or "unknown"),
            TAG_EXECUTION: tag_value(execution_arn),
            TAG_STACK: tag_value(stack_tag),
        }
    )
    return tags


def run_tags(run: RunRef, execution_arn: str, tagging: TaggingSettings) -> dict[str, str]:
    """The tags of everything ``run`` creates in Bedrock, for the execution ``execution_arn``."""
    return lineage_tags(
        run=run.run,
        identity=run.identity,
        execution_arn=execution_arn,
        stack_tag=tagging.stack_tag,
        extra=tagging.resource_tags,
    )
