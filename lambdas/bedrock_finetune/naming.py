"""Deterministic names and idempotency tokens derived from a run's identity.

A run is one uploaded object version: bucket, key, and version id (or etag when the bucket is not
versioned). Retries and duplicate events for the same upload derive the same names, so they find
what the first attempt created; a new upload of the same key is a new version and gets new names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MAX_NAME = 63
_DIGEST_CHARS = 12


@dataclass(frozen=True)
class RunIdentity:
    """The S3 object version that started a run."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None

    @property
    def version(self) -> str:
        """The version id when there is one, else the etag (unversioned buckets)."""
        return self.version_id or (self.etag or "").strip('"')

    @property
    def digest(self) -> str:
        material = f"{self.bucket}\n{self.key}\n{self.version}"
        return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class RunNames:
    """Names for everything a run creates in Bedrock."""

    job_name: str
    custom_model_name: str
    provisioned_model_name: str
    job_token: str
    throughput_token: str


def _slug(run: str, max_len: int) -> str:
    """Letters and digits with single hyphens: valid in job, model and provisioned model names."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", run).strip("-")[:max_len].strip("-")
    return slug or "run"


def names_for(run: str, identity: RunIdentity) -> RunNames:
    """Deterministic Bedrock names for ``run`` (the folder name) and its object version.

    Every name is at most 63 characters and matches the botocore patterns for jobName,
    customModelName and provisionedModelName; tokens match the IdempotencyToken pattern.
    """
    short = identity.digest[:_DIGEST_CHARS]
    # "ft-" + slug + "-" + digest + the longest suffix ("-model") must fit in 63 characters.
    slug = _slug(run, _MAX_NAME - len("ft--") - _DIGEST_CHARS - len("-model"))
    base = f"ft-{slug}-{short}"
    return RunNames(
        job_name=base,
        custom_model_name=f"{base}-model",
        provisioned_model_name=f"{base}-pt",
        job_token=f"job-{identity.digest[:60]}",
        throughput_token=f"pt-{identity.digest[:60]}",
    )


def identity_from_run(run: Mapping[str, Any]) -> RunIdentity:
    """The run's object identity from the state machine's ``run`` input."""
    return RunIdentity(
        bucket=str(run["bucket"]),
        key=str(run["key"]),
        version_id=run.get("versionId") or None,
        etag=run.get("etag") or None,
    )


@dataclass(frozen=True)
class LineNames:
    """Names for a model line's one endpoint: the same for every version of the line."""

    #: The line: the run folder's name.
    line: str
    #: The Provisioned Throughput's name (``provisioned`` lines).
    throughput_name: str
    #: The custom model deployment's name (``on_demand`` lines).
    deployment_name: str


def line_names(bucket: str, line: str) -> LineNames:
    """Deterministic endpoint names for ``line`` of the dataset ``bucket`` (one stack's bucket).

    Two stacks (two buckets) with a line of the same name get different names; every version of
    one line gets the same, so a later version finds the line's endpoint and replaces its model.
    """
    digest = hashlib.sha256(f"{bucket}\n{line}".encode()).hexdigest()[:_DIGEST_CHARS]
    slug = _slug(line, _MAX_NAME - len("line--") - _DIGEST_CHARS - len("-pt"))
    base = f"line-{slug}-{digest}"
    return LineNames(line=line, throughput_name=f"{base}-pt", deployment_name=f"{base}-od")


def evaluation_deployment_name(line: LineNames, identity: RunIdentity) -> str:
    """The temporary deployment a candidate of an on-demand line is scored on: one per run (upload),
    deleted when its evaluation ends, or by the run's clean-up."""
    digest = hashlib.sha256(f"{line.deployment_name}\n{identity.digest}".encode()).hexdigest()[:8]
    return f"{line.deployment_name.removesuffix('-od')[:50]}-ev-{digest}"


def serving_token(endpoint_name: str, identity: RunIdentity) -> str:
    """The idempotency token for creating ``endpoint_name`` for one run (object version): retries of
    the run reuse it; a later version that must create the endpoint again gets a new one."""
    digest = hashlib.sha256(f"{endpoint_name}\n{identity.digest}".encode()).hexdigest()
    return f"ep-{digest[:60]}"
