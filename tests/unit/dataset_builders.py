"""Builders for validator tests: conversations, JSONL files and in-memory sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bedrock_finetune.catalog import CLAUDE_3_HAIKU, DatasetLimits, ModelSpec, resolve_model
from bedrock_finetune.dataset import (
    HyperparametersSource,
    Issue,
    LocalFile,
    ValidationReport,
    validate_run,
)

HAIKU = resolve_model(CLAUDE_3_HAIKU)
MIN_RECORDS = HAIKU.limits.min_train_records


def conversation(i: int = 0, turns: int = 1, system: str | None = None) -> dict[str, Any]:
    """A valid record, distinct for each ``i``."""
    messages = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"question {i}.{turn}"})
        messages.append({"role": "assistant", "content": f"answer {i}.{turn}"})
    record: dict[str, Any] = {"messages": messages}
    if system is not None:
        record = {"system": system, **record}
    return record


def dumps(record: object) -> str:
    return json.dumps(record, ensure_ascii=False)


def valid_lines(count: int = MIN_RECORDS + 8, start: int = 0) -> list[str]:
    return [dumps(conversation(i)) for i in range(start, start + count)]


def write_jsonl(path: Path, lines: list[str] | list[bytes], *, final_newline: bool = True) -> Path:
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    data = b"\n".join(raw) + (b"\n" if final_newline and raw else b"")
    path.write_bytes(data)
    return path


def with_line(line: str | bytes, at: int = 5, total: int = MIN_RECORDS + 8) -> list[bytes]:
    """``total`` valid lines with ``line`` replacing line number ``at`` (1-based)."""
    lines: list[bytes] = [text.encode() for text in valid_lines(total)]
    lines[at - 1] = line.encode() if isinstance(line, str) else line
    return lines


class MemorySource:
    """A dataset in memory, served in chunks of ``chunk`` bytes; ``size`` may be withheld."""

    def __init__(self, data: bytes, uri: str = "memory.jsonl", chunk: int = 64 * 1024, sized: bool = True):
        self.data = data
        self.uri = uri
        self.chunk = chunk
        self.size = len(data) if sized else None

    def open(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            yield self.data[start : start + self.chunk]


def validate(
    tmp_path: Path,
    train: list[str] | list[bytes],
    validation: list[str] | list[bytes] | None = None,
    hyperparameters: dict[str, Any] | bytes | None = None,
    model: ModelSpec = HAIKU,
    **kwargs: Any,
) -> ValidationReport:
    """Write the given lines to files in ``tmp_path`` and validate them as a run."""
    train_file = LocalFile(write_jsonl(tmp_path / "train.jsonl", train))
    validation_file = (
        LocalFile(write_jsonl(tmp_path / "validation.jsonl", validation)) if validation is not None else None
    )
    hp: HyperparametersSource | None = None
    if hyperparameters is not None:
        data = hyperparameters if isinstance(hyperparameters, bytes) else json.dumps(hyperparameters).encode()
        hp = HyperparametersSource("hyperparameters.json", data)
    return validate_run(train_file, validation_file, hp, model, **kwargs)


def found(report: ValidationReport) -> set[tuple[str, str, int | None]]:
    """Every (code, file, line) reported, errors and warnings together."""
    return {(str(i.code), i.file, i.line) for i in [*report.errors, *report.warnings]}


def issues(report: ValidationReport, code: str) -> list[Issue]:
    return [i for i in [*report.errors, *report.warnings] if i.code == code]


def small_model(**limits: int) -> ModelSpec:
    """Claude 3 Haiku with some limits replaced, to test limits without huge files."""
    values = {**HAIKU.limits.__dict__, **limits}
    return ModelSpec(
        model_id="test-model",
        display_name="Test model",
        regions=("us-west-2",),
        limits=DatasetLimits(**values),
        hyperparameters=HAIKU.hyperparameters,
    )
