"""The rules of a run's optional ``evaluation.jsonl``, reported with the validator's codes (file
``evaluation``) in the same validation report.

A record is either in the model's training format (checked with :func:`formats.record_format` and
:func:`formats.parse_record`, the same shapes the training files use; the last assistant turn, when
there is one, is the reference) or ``{"prompt", "system"?, "reference"?, "category"?}``. At most
:data:`MAX_RECORDS` records. The prompts' parsing lives here too, so ``finetune validate`` checks the
file without loading the AWS SDK.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_finetune.catalog import ModelSpec
from bedrock_finetune.dataset import Code, DatasetSource, FileRole, Issue, ValidationReport
from bedrock_finetune.formats import ConversionError, parse_record, record_format

MAX_RECORDS = 1000
PROMPT_KEYS = frozenset({"prompt", "system", "reference", "category"})
FILE: FileRole = "evaluation"
#: Issues listed per code (all are counted), as the validator does for the other files.
MAX_LISTED = 20


@dataclass(frozen=True)
class EvaluationPrompt:
    """One held-out prompt: the conversation up to the answer, and the reference answer."""

    id: str
    system: str
    messages: tuple[dict[str, Any], ...]
    reference: str | None
    category: str | None = None

    @property
    def text(self) -> str:
        """The last user turn, as people read it."""
        return next((text_of(m.get("content")) for m in reversed(self.messages) if m["role"] == "user"), "")


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    return ""


def _system_of(value: Any) -> str:
    return text_of(value) if not isinstance(value, str) else value


def prompt_from_record(record: Any, number: int) -> EvaluationPrompt:
    """An evaluation prompt from one JSONL record (either shape); ValueError says what is wrong."""
    if not isinstance(record, Mapping):
        raise ValueError("the record is not a JSON object")
    pid = f"{number}"
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        turns = []
        for message in messages:
            if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
                raise ValueError("each message needs a role of user or assistant")
            turns.append({"role": str(message["role"]), "text": text_of(message.get("content"))})
        reference = None
        if turns[-1]["role"] == "assistant":
            reference = turns.pop()["text"]
        if not turns or turns[-1]["role"] != "user":
            raise ValueError("the conversation must end with a user turn (before the reference answer)")
        return EvaluationPrompt(
            id=pid,
            system=_system_of(record.get("system") or ""),
            messages=tuple({"role": t["role"], "content": [{"text": t["text"]}]} for t in turns),
            reference=reference,
            category=str(record["category"]) if record.get("category") is not None else None,
        )
    if "prompt" in record:
        unknown = set(record) - PROMPT_KEYS - {"completion"}
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(PROMPT_KEYS))}"
            )
        prompt = record["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        reference = record.get("reference", record.get("completion"))
        return EvaluationPrompt(
            id=pid,
            system=str(record.get("system") or ""),
            messages=({"role": "user", "content": [{"text": prompt}]},),
            reference=str(reference) if reference is not None else None,
            category=str(record["category"]) if record.get("category") is not None else None,
        )
    raise ValueError('the record has neither "messages" (training format) nor "prompt"')


def parse_prompts(lines: Iterable[str]) -> list[EvaluationPrompt]:
    """The prompts of a JSONL file's lines (blank lines skipped); ValueError names the first bad line."""
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            prompts.append(prompt_from_record(json.loads(line), number))
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"line {number}: {exc}") from exc
    return prompts


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def _prompt_issues(record: dict[str, Any]) -> Iterator[tuple[Code, str]]:
    unknown = sorted(set(record) - PROMPT_KEYS)
    if unknown:
        yield (
            Code.UNKNOWN_KEY,
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(PROMPT_KEYS))}",
        )
    for key in ("prompt", "system", "reference", "category"):
        if key in record and not isinstance(record[key], str):
            yield Code.INVALID_TYPE, f"{key} must be a string, not {type(record[key]).__name__}"
    if isinstance(record.get("prompt"), str) and not record["prompt"].strip():
        yield Code.EMPTY_CONTENT, "prompt is empty"


def _training_issues(record: dict[str, Any], model: ModelSpec) -> Iterator[tuple[Code, str]]:
    found = record_format(record)
    if found != model.data_format:
        yield (
            Code.WRONG_FORMAT,
            f"the record is in {found or 'no known'} format; {model.display_name} is trained on "
            f'{model.data_format} (or use the prompt shape {{"prompt", "reference"}})',
        )
        return
    try:
        parse_record(record)
        prompt_from_record(record, 0)
    except (ConversionError, ValueError) as exc:
        yield Code.INVALID_TYPE, str(exc)


def _parsed(line: bytes) -> tuple[dict[str, Any] | None, list[tuple[Code, str]]]:
    """The line's JSON object, or why there is none."""
    if not line.strip():
        return None, [(Code.BLANK_LINE, "blank line")]
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return None, [(Code.ENCODING, "the line is not UTF-8")]
    except ValueError as exc:
        return None, [(Code.INVALID_JSON, f"not JSON: {exc}")]
    if not isinstance(record, dict):
        return None, [(Code.NOT_AN_OBJECT, f"a record is a JSON object, not {type(record).__name__}")]
    return record, []


def record_issues(line: bytes, model: ModelSpec) -> list[tuple[Code, str]]:
    """What is wrong with one line of ``evaluation.jsonl`` (empty when nothing is)."""
    record, issues = _parsed(line)
    if record is None:
        return issues
    # {"prompt", "completion"} is a training record where the model trains on that format.
    prompt_shape = "prompt" in record and (
        set(record) <= PROMPT_KEYS or ("messages" not in record and model.data_format != "prompt-completion")
    )
    if prompt_shape:
        return list(_prompt_issues(record))
    if "messages" not in record and "completion" not in record:
        return [
            (Code.MISSING_FIELD, 'a record needs "prompt" (prompt shape) or "messages" (training format)')
        ]
    return list(_training_issues(record, model))


def check_evaluation_file(source: DatasetSource, model: ModelSpec) -> list[Issue]:
    """Every issue of the evaluation file ``source`` (all counted by the caller; codes as the validator's)."""
    issues: list[Issue] = []
    records = 0
    for number, line in enumerate(_lines(source.open()), start=1):
        if line.strip():
            records += 1
        issues.extend(Issue(code, FILE, number, message) for code, message in record_issues(line, model))
    if records == 0:
        issues.append(Issue(Code.FILE_EMPTY, FILE, None, f"{source.uri} has no records"))
    elif records > MAX_RECORDS:
        issues.append(
            Issue(
                Code.TOO_MANY_RECORDS,
                FILE,
                None,
                f"{records:,} records; an evaluation file holds at most {MAX_RECORDS:,}",
            )
        )
    return issues


def add_to_report(report: ValidationReport, issues: Iterable[Issue]) -> None:
    """Count ``issues`` in the run's validation report (errors: the run is invalid) and list the
    first :data:`MAX_LISTED` of each code."""
    for issue in issues:
        counts = report.error_counts
        listed = sum(1 for i in report.errors if i.code == issue.code and i.file == FILE)
        counts[str(issue.code)] = counts.get(str(issue.code), 0) + 1
        if listed < MAX_LISTED:
            report.errors.append(issue)
