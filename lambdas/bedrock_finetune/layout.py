"""The bucket layout: which prefix holds what. Shared by the stack, the handlers and the CLI."""

from __future__ import annotations

import re
from dataclasses import dataclass

DATASETS_PREFIX = "datasets/"
REPORTS_PREFIX = "reports/"
OUTPUTS_PREFIX = "outputs/"
#: The validated versions of a run's data files, copied for training (see validate_dataset.freeze).
FROZEN_PREFIX = "frozen/"
TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"
#: Held-out prompts a new version is scored on before it is served (optional).
EVALUATION_FILE = "evaluation.jsonl"
HYPERPARAMETERS_FILE = "hyperparameters.json"

#: Run names become part of S3 URIs that Bedrock accepts and of job and model names, so they are
#: limited to characters all of those allow.
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class InvalidRunKey(ValueError):
    """The object key is not ``datasets/<run>/train.jsonl`` with a usable run name."""


@dataclass(frozen=True)
class RunLocation:
    """Where one run's files live in the bucket."""

    bucket: str
    run: str

    @classmethod
    def from_train_key(cls, bucket: str, key: str) -> RunLocation:
        """Parse ``datasets/<run>/train.jsonl``; raise InvalidRunKey with guidance otherwise."""
        parts = key.split("/")
        if len(parts) != 3 or parts[0] + "/" != DATASETS_PREFIX or parts[2] != TRAIN_FILE:
            raise InvalidRunKey(f"{key!r} is not datasets/<run>/{TRAIN_FILE}")
        run = parts[1]
        if not RUN_NAME_PATTERN.match(run):
            raise InvalidRunKey(
                f"run name {run!r} (from s3://{bucket}/{key}) may only contain letters, digits, '.', '_' "
                "and '-', start with a letter or digit, and be at most 100 characters: Bedrock rejects "
                "other characters in S3 URIs. Rename the folder and upload again."
            )
        return cls(bucket=bucket, run=run)

    def key(self, name: str) -> str:
        return f"{DATASETS_PREFIX}{self.run}/{name}"

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    @property
    def train_key(self) -> str:
        return self.key(TRAIN_FILE)

    @property
    def validation_key(self) -> str:
        return self.key(VALIDATION_FILE)

    @property
    def hyperparameters_key(self) -> str:
        return self.key(HYPERPARAMETERS_FILE)

    @property
    def report_key(self) -> str:
        return f"{REPORTS_PREFIX}{self.run}/validation.json"

    @property
    def training_report_key(self) -> str:
        return f"{REPORTS_PREFIX}{self.run}/training.json"

    @property
    def line_record_key(self) -> str:
        """The model line's record: its versions, which one is served, and how to roll back."""
        return f"{REPORTS_PREFIX}{self.run}/line.json"

    @property
    def approval_key(self) -> str:
        """The open approval request of the line (with the task token that answers it)."""
        return f"{REPORTS_PREFIX}{self.run}/approval.json"

    @property
    def run_record_key(self) -> str:
        return f"{REPORTS_PREFIX}{self.run}/run.json"

    @property
    def output_uri(self) -> str:
        return f"s3://{self.bucket}/{OUTPUTS_PREFIX}{self.run}/"
