"""The run reference: which upload a state-machine execution is about, parsed once from its state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_finetune.layout import FROZEN_PREFIX, RunLocation
from bedrock_finetune.naming import LineNames, RunIdentity, RunNames, line_names, names_for


@dataclass(frozen=True)
class RunRef:
    """One run: the uploaded ``train.jsonl`` version (bucket, key, version) and the run's name."""

    bucket: str
    key: str
    run: str
    version_id: str | None = None
    etag: str | None = None

    @classmethod
    def from_state(cls, run: Mapping[str, Any]) -> RunRef:
        """The ``$.run`` object the state machine's "Identify run" state builds."""
        return cls(
            bucket=str(run["bucket"]),
            key=str(run["key"]),
            run=str(run["run"]),
            version_id=run.get("versionId") or None,
            etag=run.get("etag") or None,
        )

    @classmethod
    def from_execution_input(cls, execution_input: Mapping[str, Any]) -> RunRef:
        """The execution's input (bucket, key, etag, versionId); raises InvalidRunKey or KeyError."""
        location = RunLocation.from_train_key(str(execution_input["bucket"]), str(execution_input["key"]))
        return cls.from_state({**execution_input, "run": location.run})

    def to_state(self) -> dict[str, Any]:
        """The ``$.run`` shape, as the state machine passes it to every task."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "run": self.run,
            "versionId": self.version_id,
            "etag": self.etag,
        }

    @property
    def identity(self) -> RunIdentity:
        return RunIdentity(bucket=self.bucket, key=self.key, version_id=self.version_id, etag=self.etag)

    @property
    def names(self) -> RunNames:
        """Deterministic names and tokens of everything this run creates in Bedrock."""
        return names_for(self.run, self.identity)

    @property
    def line(self) -> LineNames:
        """The run's model line (its folder name) and the names of the line's endpoint."""
        return line_names(self.bucket, self.run)

    @property
    def location(self) -> RunLocation:
        return RunLocation(bucket=self.bucket, run=self.run)

    def frozen_key(self, name: str) -> str:
        """Where this upload's validated ``name`` is frozen for training: one folder per upload."""
        return f"{FROZEN_PREFIX}{self.run}/{self.names.job_name}/{name}"

    @property
    def is_run_key(self) -> bool:
        """Whether the key is exactly ``datasets/<run>/train.jsonl`` for this run's name."""
        return self.key == RunLocation(bucket=self.bucket, run=self.run).train_key

    @property
    def dataset_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def version(self) -> str | None:
        """The version id, or the etag in an unversioned bucket."""
        return self.version_id or self.etag
