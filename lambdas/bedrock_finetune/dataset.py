"""Dataset validation: the gate every run passes before any money is spent.

Pure logic, no AWS: the ValidateDataset Lambda passes S3 sources (see ``s3_source``), the
``finetune validate`` CLI passes :class:`LocalFile` sources. Rules and limits come from the model
catalog (:mod:`bedrock_finetune.catalog`); the public codes are the :class:`Code` members.

How it works, and why:

* A file is streamed once, in raw chunks, and split on ``b"\\n"`` here, so blank lines, a
  byte-order mark and invalid UTF-8 are seen per line; a final newline, and one blank line
  after it, are fine.
  Memory stays bounded: a line is held only while it is checked, and a line over
  :func:`max_line_bytes` is counted but never held or parsed (it cannot be within the token limit).
* With msgspec installed, each line is first decoded in one C call into typed structs of the
  format's common record shape; only the checks that shape leaves (alternation, blank texts,
  reserved strings, tokens, duplicates) run in Python. Any other line gets one ``json.loads``
  (orjson where installed) and cheap type and membership tests, rule by rule. Every line is
  checked and every problem reported; nothing stops at the first error.
* Reading stops after :func:`max_lines` lines (twice the file's maximum records): no file can
  keep the validation Lambda reading until it times out without a report (``TOO_MANY_LINES``).
* Tokens are estimated as ``ceil(characters / chars_per_token)`` over ``system`` plus every
  ``content`` (characters are Unicode code points). The default of 3 characters per token is
  deliberately conservative (AWS plans with about 6), so records near the limit are flagged
  rather than rejected by Bedrock hours later.
* Duplicates and train/validation overlap are found in two steps. While reading, each
  error-free record gets a cheap sketch of its canonical form (its ``system`` and its contents
  in order; key order, whitespace and JSON escapes do not matter): the length of each text and
  the ends of the last exchange. Only records whose sketches match another's can be
  duplicates; when there are any, their lines alone are checked again in a second read of the
  file and compared by a 64-bit hash of the whole canonical form. Hashing every text of every
  record (hundreds of MB of decoded characters for a large file) was the validator's largest
  single cost; a file without repeats is read once. Only a sketch and a line number are kept
  per record.
* Lists in the report are capped at :data:`MAX_ISSUES_PER_CODE` items per code; the counts are
  always complete.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bedrock_finetune.catalog import (
    CLAUDE_RESERVED_STRINGS,
    DEFAULT_CHARS_PER_TOKEN,
    FORMAT_CLAUDE,
    FORMAT_CONVERSE,
    FORMAT_PROMPT_COMPLETION,
    ModelSpec,
    check_hyperparameters,
    effective_hyperparameters,
)
from bedrock_finetune.formats import (
    FORMAT_CSV,
    FORMAT_JSON_ARRAY,
    FORMAT_NAMES,
    convert_command,
    looks_like_csv_header,
    looks_like_json_array,
    record_format,
    reserved_prefilter,
    reserved_triggers,
    typed_record_decoders,
)
from bedrock_finetune.sizes import human_bytes

if TYPE_CHECKING:
    from random import Random


def _orjson_loads(line: bytes) -> Any:
    """``orjson.loads``, imported at the first line that needs it: with msgspec, a valid file has
    none, and importing orjson (its library and the modules it loads) is a share of a start."""
    global _fast_loads  # noqa: PLW0603 - replaces itself with the function it imports
    from orjson import loads  # noqa: PLC0415 - see the docstring

    _fast_loads = loads
    return loads(line)


#: The fast path's parser: orjson where installed (pinned in requirements-lambda.txt), else None and
#: every line takes the standard library's path. Whatever orjson rejects is re-parsed by the
#: standard library, so both paths give the same report (a property test checks it).
_fast_loads: Callable[[bytes], Any] | None = _orjson_loads if find_spec("orjson") else None

#: The typed fast path: msgspec decoders of each format's common, well-formed record shape (see
#: ``formats.typed_record_decoders``), where msgspec is installed (pinned in
#: requirements-lambda.txt). A line they decode is checked without building a dict; a line they
#: reject, or a record off the common path, is checked by the paths above from scratch, so every
#: path gives the same report (a property test checks it).
_typed_decoders: dict[str, Callable[[bytes], Any]] | None
try:
    _typed_decoders = typed_record_decoders()
except ImportError:  # pragma: no cover - exercised by the tests that hide msgspec
    _typed_decoders = None

__all__ = [
    "DEFAULT_CHARS_PER_TOKEN",
    "ERROR_CODES",
    "MAX_HYPERPARAMETERS_BYTES",
    "MAX_ISSUES_PER_CODE",
    "RESERVED_STRINGS",
    "WARNING_CODES",
    "Code",
    "DatasetSource",
    "FileStatistics",
    "FileSummary",
    "HyperparametersSource",
    "Issue",
    "LocalFile",
    "ValidationReport",
    "estimate_tokens",
    "max_line_bytes",
    "max_lines",
    "validate_run",
]

FileRole = Literal["train", "validation", "hyperparameters", "evaluation"]


class Code(StrEnum):
    """The public validation codes. Spelled exactly as documented; renaming one is a breaking change."""

    # Record level (file and 1-based line)
    INVALID_JSON = "INVALID_JSON"
    BLANK_LINE = "BLANK_LINE"
    NOT_AN_OBJECT = "NOT_AN_OBJECT"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    MISSING_MESSAGES = "MISSING_MESSAGES"
    INVALID_TYPE = "INVALID_TYPE"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_ROLE = "INVALID_ROLE"
    TOO_FEW_MESSAGES = "TOO_FEW_MESSAGES"
    FIRST_NOT_USER = "FIRST_NOT_USER"
    LAST_NOT_ASSISTANT = "LAST_NOT_ASSISTANT"
    NOT_ALTERNATING = "NOT_ALTERNATING"
    EMPTY_CONTENT = "EMPTY_CONTENT"
    RESERVED_STRING = "RESERVED_STRING"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    ENCODING = "ENCODING"
    INVALID_CONTENT_BLOCK = "INVALID_CONTENT_BLOCK"
    UNSUPPORTED_MEDIA = "UNSUPPORTED_MEDIA"
    TOO_MANY_MEDIA = "TOO_MANY_MEDIA"
    MEDIA_OUTSIDE_BUCKET = "MEDIA_OUTSIDE_BUCKET"
    # File level (line is null)
    WRONG_FORMAT = "WRONG_FORMAT"
    MIXED_MEDIA = "MIXED_MEDIA"
    VALIDATION_NOT_SUPPORTED = "VALIDATION_NOT_SUPPORTED"
    FILE_EMPTY = "FILE_EMPTY"
    TOO_FEW_RECORDS = "TOO_FEW_RECORDS"
    TOO_MANY_RECORDS = "TOO_MANY_RECORDS"
    TOO_MANY_TOTAL_RECORDS = "TOO_MANY_TOTAL_RECORDS"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    TOO_MANY_LINES = "TOO_MANY_LINES"
    # Hyperparameters (file "hyperparameters")
    INVALID_HYPERPARAMETERS_FILE = "INVALID_HYPERPARAMETERS_FILE"
    UNKNOWN_HYPERPARAMETER = "UNKNOWN_HYPERPARAMETER"
    HYPERPARAMETER_INVALID = "HYPERPARAMETER_INVALID"
    HYPERPARAMETER_OUT_OF_RANGE = "HYPERPARAMETER_OUT_OF_RANGE"
    # Warnings: they do not make a run invalid
    DUPLICATE_RECORD = "DUPLICATE_RECORD"
    VALIDATION_OVERLAP = "VALIDATION_OVERLAP"
    NEAR_TOKEN_LIMIT = "NEAR_TOKEN_LIMIT"  # noqa: S105 - a code, not a password
    EARLY_STOPPING_WITHOUT_VALIDATION = "EARLY_STOPPING_WITHOUT_VALIDATION"


WARNING_CODES: frozenset[Code] = frozenset(
    {
        Code.DUPLICATE_RECORD,
        Code.VALIDATION_OVERLAP,
        Code.NEAR_TOKEN_LIMIT,
        Code.EARLY_STOPPING_WITHOUT_VALIDATION,
    }
)
ERROR_CODES: frozenset[Code] = frozenset(Code) - WARNING_CODES

#: Strings Bedrock reserves in Claude 3 Haiku records; each model's are ``ModelSpec.reserved_strings``.
RESERVED_STRINGS: tuple[str, ...] = CLAUDE_RESERVED_STRINGS

#: At most this many items per code in ``errors`` / ``warnings``; the counts stay complete.
MAX_ISSUES_PER_CODE = 100

#: A record at or above this share of the token limit gets a NEAR_TOKEN_LIMIT warning.
NEAR_LIMIT_RATIO = 0.9

#: ``hyperparameters.json`` is a handful of numbers; anything bigger is not one.
MAX_HYPERPARAMETERS_BYTES = 64 * 1024

#: Percentiles are exact up to this many records per file, from a uniform sample beyond.
STATISTICS_SAMPLE_SIZE = 100_000

#: Duplicate detection remembers at most this many records per file (a few MB); a file this big
#: is far over every documented record limit and already invalid.
MAX_TRACKED_RECORDS = 200_000

#: How many characters of the last exchange a record's duplicate sketch holds (records whose
#: sketches match are compared in full in a second read).
SKETCH_CHARS = 24

#: Reading a file stops after this many times its maximum records, counted in lines (blank
#: lines included): a file of a billion blank lines would otherwise outlast the 15-minute
#: validation Lambda and end the run without a report. A valid file is never that long.
MAX_LINES_PER_RECORD = 2

_CHUNK_SIZE = 1024 * 1024
_MIN_LINE_CAP = 8 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_TOP_KEYS = frozenset({"system", "messages"})
_MESSAGE_KEYS = frozenset({"role", "content"})
_ROLES = frozenset({"user", "assistant"})
_CONVERSE_TOP_KEYS = frozenset({"schemaVersion", "system", "messages"})
_PROMPT_COMPLETION_KEYS = frozenset({"prompt", "completion"})
_MEDIA_BLOCK_KEYS = frozenset({"format", "source"})
_S3_LOCATION_KEYS = frozenset({"uri", "bucketOwner"})
#: Marks a line that the fast parser did not accept (the full path decides).
_UNPARSED = object()


# --------------------------------------------------------------------------------------------
# Sources


class DatasetSource(Protocol):
    """A JSONL file to validate: a display ``uri``, its ``size`` if known, and its raw bytes.

    ``open()`` returns an iterable of raw byte chunks with arbitrary boundaries (file reads, an S3
    ``StreamingBody.iter_chunks()``); the validator splits lines itself. It should release its
    resources when the iteration ends or the iterator is closed. It is called a second time when
    some records may be duplicates (their lines are checked again), and must then give the same
    bytes: a local file, or an S3 object read at a pinned version.
    """

    @property
    def uri(self) -> str: ...

    @property
    def size(self) -> int | None: ...

    def open(self) -> Iterable[bytes]: ...


@dataclass(frozen=True)
class LocalFile:
    """A dataset file on the local disk, read in chunks."""

    path: Path | str
    chunk_size: int = _CHUNK_SIZE

    @property
    def uri(self) -> str:
        return str(self.path)

    @property
    def size(self) -> int | None:
        try:
            return Path(self.path).stat().st_size
        except OSError:
            return None

    def open(self) -> Iterator[bytes]:
        with Path(self.path).open("rb") as stream:
            while chunk := stream.read(self.chunk_size):
                yield chunk


@dataclass(frozen=True)
class HyperparametersSource:
    """The run's ``hyperparameters.json``: tiny, so held as bytes."""

    uri: str
    data: bytes

    @classmethod
    def from_path(cls, path: Path | str) -> HyperparametersSource:
        """Read a local hyperparameters file (at most a little more than the size limit)."""
        with Path(path).open("rb") as stream:
            return cls(uri=str(path), data=stream.read(MAX_HYPERPARAMETERS_BYTES + 1))


# --------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class Issue:
    """One error or warning. ``line`` is 1-based, or None for file-level and hyperparameter issues."""

    code: Code
    file: FileRole
    line: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "file": self.file, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class FileSummary:
    """What was read: where, how many records (non-blank lines) and how many bytes."""

    path: str
    records: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "records": self.records, "bytes": self.bytes}


@dataclass(frozen=True)
class FileStatistics:
    """Size statistics over the records that have a ``messages`` list.

    Percentiles use the nearest-rank method; ``sampled`` is true when the file had more than
    :data:`STATISTICS_SAMPLE_SIZE` such records and the percentiles come from a uniform sample.
    """

    records: int
    messages_min: int
    messages_mean: float
    messages_max: int
    tokens_min: int
    tokens_median: int
    tokens_p95: int
    tokens_max: int
    tokens_total: int
    sampled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "messages_per_record": {
                "min": self.messages_min,
                "mean": round(self.messages_mean, 2),
                "max": self.messages_max,
            },
            "estimated_tokens_per_record": {
                "min": self.tokens_min,
                "median": self.tokens_median,
                "p95": self.tokens_p95,
                "max": self.tokens_max,
            },
            "estimated_tokens_total": self.tokens_total,
            "sampled": self.sampled,
        }


@dataclass
class ValidationReport:
    """The full result of validating a run. :meth:`to_dict` is the JSON report."""

    model: str
    chars_per_token: float
    train: FileSummary
    validation: FileSummary | None
    hyperparameters_path: str | None
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    warning_counts: dict[str, int] = field(default_factory=dict)
    hyperparameters: dict[str, int | float] = field(default_factory=dict)
    epochs: int = 1
    train_statistics: FileStatistics | None = None
    validation_statistics: FileStatistics | None = None

    @property
    def valid(self) -> bool:
        """True when there is no error (warnings are allowed)."""
        return not self.error_counts

    @property
    def error_count(self) -> int:
        return sum(self.error_counts.values())

    @property
    def warning_count(self) -> int:
        return sum(self.warning_counts.values())

    @property
    def estimated_billable_tokens(self) -> int:
        """Estimated training tokens times epochs (validation data is not billed as training)."""
        total = self.train_statistics.tokens_total if self.train_statistics else 0
        return total * self.epochs

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (see docs/validation.md for the shape)."""
        return {
            "valid": self.valid,
            "model": self.model,
            "chars_per_token": self.chars_per_token,
            "files": {
                "train": self.train.to_dict(),
                "validation": self.validation.to_dict() if self.validation else None,
                "hyperparameters": (
                    {"path": self.hyperparameters_path} if self.hyperparameters_path else None
                ),
            },
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "error_counts": dict(self.error_counts),
            "warning_counts": dict(self.warning_counts),
            "hyperparameters": dict(self.hyperparameters),
            "statistics": {
                "train": self.train_statistics.to_dict() if self.train_statistics else None,
                "validation": (self.validation_statistics.to_dict() if self.validation_statistics else None),
            },
            "epochs": self.epochs,
            "estimated_billable_tokens": self.estimated_billable_tokens,
        }

    def summary(self, max_errors: int = 5) -> dict[str, Any]:
        """The small dict the ValidateDataset Lambda returns: verdict, counts, first errors."""
        return {
            "valid": self.valid,
            "model": self.model,
            "error_count": self.error_count,
            "warning_count": self.warning_count,
            "error_counts": dict(self.error_counts),
            "warning_counts": dict(self.warning_counts),
            "first_errors": [issue.to_dict() for issue in self.errors[:max_errors]],
            "hyperparameters": dict(self.hyperparameters),
            "estimated_billable_tokens": self.estimated_billable_tokens,
        }


# --------------------------------------------------------------------------------------------
# Public helpers


def estimate_tokens(characters: int, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> int:
    """The token estimate for ``characters`` characters: ``ceil(characters / chars_per_token)``."""
    return math.ceil(characters / chars_per_token)


def max_lines(model: ModelSpec, role: Literal["train", "validation"]) -> int:
    """The most lines of a file that are read: :data:`MAX_LINES_PER_RECORD` times the model's
    maximum records for that file (at least 1). A longer file gets ``TOO_MANY_LINES``."""
    limits = model.limits
    records = limits.max_train_records if role == "train" else limits.max_validation_records
    return max(1, MAX_LINES_PER_RECORD * records)


def max_line_bytes(model: ModelSpec, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> int:
    """Lines longer than this are counted but not held or parsed: no record within the token
    limit can be that long (a character is at most 6 bytes of JSON, ``\\uXXXX``; the margin covers
    keys and punctuation). At least 8 MiB.
    """
    max_chars = math.ceil(model.limits.max_tokens_per_record * chars_per_token)
    return max(_MIN_LINE_CAP, 8 * max_chars)


# --------------------------------------------------------------------------------------------
# Validation


class _Collector:
    """Errors and warnings with complete counts and lists capped per code."""

    def __init__(self) -> None:
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.error_counts: Counter[str] = Counter()
        self.warning_counts: Counter[str] = Counter()
        self.total_errors = 0

    def add(self, code: Code, file: FileRole, line: int | None, message: str) -> None:
        if code in WARNING_CODES:
            counts, items = self.warning_counts, self.warnings
        else:
            counts, items = self.error_counts, self.errors
            self.total_errors += 1
        counts[code] += 1
        if code == Code.WRONG_FORMAT:  # the one fix for most of the other errors: list it first
            items.insert(0, Issue(code, file, line, message))
        elif counts[code] <= MAX_ISSUES_PER_CODE:
            items.append(Issue(code, file, line, message))


class _FileResult:
    """What checking one file gave: its summary and statistics. (The private result types are
    plain classes: the dataclass decorator compiles several methods for each, at every start.)"""

    __slots__ = ("checked", "statistics", "summary", "truncated")

    def __init__(
        self,
        summary: FileSummary,
        statistics: FileStatistics | None,
        *,
        checked: bool,
        truncated: bool = False,
    ) -> None:
        self.summary = summary
        self.statistics = statistics
        self.checked = checked
        #: Reading stopped at the line bound (TOO_MANY_LINES): the record count is a lower bound.
        self.truncated = truncated


class _ByteCounter:
    """Passes chunks through, counting their bytes, and closes the source's iterator."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.count += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if callable(close):
            close()


class _Stats:
    """Running statistics with bounded memory (reservoir sample of token counts)."""

    def __init__(self) -> None:
        self.count = 0
        self.tokens_total = 0
        self.messages_total = 0
        self.messages_min = 0
        self.messages_max = 0
        self.sample: array[int] = array("q")
        self._rng: Random | None = None  # past the sample size only (imported then: starts faster)

    def add(self, messages: int, tokens: int) -> None:
        if self.count == 0:
            self.messages_min = self.messages_max = messages
        elif messages < self.messages_min:
            self.messages_min = messages
        elif messages > self.messages_max:
            self.messages_max = messages
        self.count += 1
        self.messages_total += messages
        self.tokens_total += tokens
        if len(self.sample) < STATISTICS_SAMPLE_SIZE:
            self.sample.append(tokens)
        else:
            if self._rng is None:
                from random import Random  # noqa: PLC0415 - see __init__

                self._rng = Random(0)  # noqa: S311 - sampling for statistics, not security
            slot = self._rng.randrange(self.count)
            if slot < STATISTICS_SAMPLE_SIZE:
                self.sample[slot] = tokens

    def result(self) -> FileStatistics | None:
        if self.count == 0:
            return None
        ordered = sorted(self.sample)
        return FileStatistics(
            records=self.count,
            messages_min=self.messages_min,
            messages_mean=self.messages_total / self.count,
            messages_max=self.messages_max,
            tokens_min=ordered[0],
            tokens_median=_nearest_rank(ordered, 0.5),
            tokens_p95=_nearest_rank(ordered, 0.95),
            tokens_max=ordered[-1],
            tokens_total=self.tokens_total,
            sampled=self.count > len(ordered),
        )


def _nearest_rank(ordered: list[int], quantile: float) -> int:
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def _split_lines(chunks: Iterable[bytes], cap: int) -> Iterator[tuple[bytes | None, int]]:
    """Yield ``(line, length)`` for each ``\\n``-separated line, without the newline.

    ``line`` is None when the line is longer than ``cap`` bytes: it is then counted, not kept.
    A final newline does not start another line; text after the last newline is a line.
    """
    pending: list[bytes] = []
    pending_len = 0
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            if pending_len:
                total = pending_len + end - start
                if total > cap or pending_len > cap:
                    yield None, total
                else:
                    pending.append(chunk[start:end])
                    yield b"".join(pending), total
                pending.clear()
                pending_len = 0
            elif end - start > cap:
                yield None, end - start
            else:
                yield chunk[start:end], end - start
            start = end + 1
        if start < len(chunk):
            rest = len(chunk) - start
            if pending_len + rest <= cap:
                pending.append(chunk[start:] if start else chunk)
            else:
                pending.clear()  # over the cap: keep counting, stop holding
            pending_len += rest
    if pending_len:
        yield (None if pending_len > cap else b"".join(pending)), pending_len


def _wanted_lines(chunks: Iterable[bytes], wanted: set[int], cap: int) -> Iterator[tuple[int, bytes]]:
    """``(number, line)`` for each line whose 1-based number is in ``wanted``, split as
    :func:`_split_lines` splits, without copying the other lines (a second read wants few of
    them); a wanted line over ``cap`` bytes is skipped. Stops after the last wanted line."""
    last = max(wanted, default=0)
    number = 1
    pending: list[bytes] = []  # the wanted line read so far, when it spans chunks
    pending_len = 0
    for chunk in chunks:
        start = 0
        while number <= last:
            end = chunk.find(b"\n", start)
            if number in wanted:
                piece = chunk[start:] if end < 0 else chunk[start:end]
                if pending_len + len(piece) <= cap:
                    pending.append(piece)
                pending_len += len(piece)
                if end >= 0:
                    if pending_len <= cap:
                        yield number, b"".join(pending)
                    pending.clear()
                    pending_len = 0
            if end < 0:
                break
            number += 1
            start = end + 1
        if number > last:
            return
    if pending_len and pending_len <= cap:
        yield number, b"".join(pending)


_JSON_TYPE_NAMES: dict[type, str] = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def _type_name(value: object) -> str:
    """How a parsed JSON value is called in messages: 'null', 'a number', 'a list'..."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _sketch(canonical: list[Any]) -> int:
    """A record's duplicate sketch: the length of each part of its canonical form, the first
    characters of the last prompt and the last characters of the last reply. Equal records have
    equal sketches; the second read tells records of equal sketches apart. Built-ins only: it
    runs for every record."""
    return hash((*map(len, canonical), canonical[-2][:SKETCH_CHARS], canonical[-1][-SKETCH_CHARS:]))


class _MediaCount:
    """Images and videos in one record."""

    __slots__ = ("images", "videos")

    def __init__(self) -> None:
        self.images = 0
        self.videos = 0


def _media_uri(value: object) -> str | None:
    """The S3 URI of a well-formed image/video block value, else None."""
    if type(value) is not dict or set(value) != _MEDIA_BLOCK_KEYS or type(value["format"]) is not str:
        return None
    source = value["source"]
    if type(source) is not dict or set(source) != {"s3Location"}:
        return None
    location = source["s3Location"]
    if type(location) is not dict or "uri" not in location or not set(location) <= _S3_LOCATION_KEYS:
        return None
    uri = location["uri"]
    if type(uri) is not str or not uri.startswith("s3://") or len(uri) <= len("s3://"):
        return None
    return uri


def _bucket_of(uri: str) -> str:
    return uri[len("s3://") :].split("/", 1)[0]


def _reasoning_text(value: object) -> str | None:
    """The text of ``{"reasoningText": {"text": ...}}`` (Converse ReasoningContentBlock), else None."""
    if type(value) is not dict or set(value) != {"reasoningText"}:
        return None
    inner = value["reasoningText"]
    if (
        type(inner) is not dict
        or type(inner.get("text")) is not str
        or not set(inner) <= {"text", "signature"}
    ):
        return None
    return str(inner["text"])


class _FileValidator:
    """Checks one JSONL file line by line, feeding a shared collector."""

    def __init__(
        self,
        role: Literal["train", "validation"],
        model: ModelSpec,
        chars_per_token: float,
        out: _Collector,
        train: _FileValidator | None,
        *,
        bucket: str | None = None,
    ) -> None:
        self.role: Literal["train", "validation"] = role
        self.model = model
        self.chars_per_token = chars_per_token
        self.out = out
        #: The training file's validator, when this one checks the validation file (overlap).
        self.train = train
        self.bucket = bucket
        self.max_tokens = model.limits.max_tokens_per_record
        self.near_tokens = math.ceil(self.max_tokens * NEAR_LIMIT_RATIO)
        self.stats = _Stats()
        #: Duplicates, first read: the first line of each sketch, the lines whose sketch was
        #: already seen, and the lines whose sketch is a training record's.
        self.first_by_sketch: dict[int, int] = {}
        self.repeats: list[tuple[int, int]] = []
        self.overlaps: list[tuple[int, int]] = []
        #: The second read: the full canonical hash by line (None during the first read).
        self.full_hashes: dict[int, int] | None = None
        self.source: DatasetSource | None = None
        self.reserved = model.reserved_strings
        # One regex pass over the raw bytes rules out nearly every line; it costs less than
        # searching each decoded string for each reserved string.
        self.prefilter = reserved_prefilter(self.reserved) if model.data_format == FORMAT_CLAUDE else None
        #: The reserved strings grouped under a character each holds (a cheap search first).
        self.triggers = reserved_triggers(self.reserved)
        self.check_record = {
            FORMAT_CLAUDE: self._check_record,
            FORMAT_CONVERSE: self._check_converse,
            FORMAT_PROMPT_COMPLETION: self._check_prompt_completion,
        }[model.data_format]
        self.typed_decode = _typed_decoders.get(model.data_format) if _typed_decoders else None
        self.check_typed = {
            FORMAT_CLAUDE: self._typed_claude,
            FORMAT_CONVERSE: self._typed_converse,
            FORMAT_PROMPT_COMPLETION: self._typed_prompt_completion,
        }[model.data_format]
        #: Records with errors that are in another family's format, by format.
        self.foreign: Counter[str] = Counter()
        self.first_line_format: str | None = None
        #: First line holding an image and a video (MIXED_MEDIA is decided over the whole run).
        self.first_image: int | None = None
        self.first_video: int | None = None

    def run(self, source: DatasetSource, max_bytes: int) -> _FileResult:
        declared = source.size
        if declared is not None and declared > max_bytes:
            # Streaming many gigabytes only to say "too large" could outlast a Lambda; the file
            # must shrink first, and its lines are checked after that.
            self._too_large(declared, max_bytes, checked=False)
            return _FileResult(FileSummary(source.uri, 0, declared), None, checked=False)
        records = 0
        read = _ByteCounter(source.open())
        cap = max_line_bytes(self.model, self.chars_per_token)
        limit = max_lines(self.model, self.role)
        truncated = False
        number = 0
        # A blank line is reported when a later line shows it is not the file's last: one blank
        # line may end the file (editors add it). Blank lines are rare: the record loop is unchanged.
        blank: int | None = None
        try:
            for number, (line, length) in enumerate(_split_lines(read, cap), start=1):
                if number > limit:
                    truncated = True  # the rest is neither read nor checked: TOO_MANY_LINES
                    break
                if line is None:
                    records += 1
                    self._oversized(number, length, cap)
                elif not line or line.isspace():
                    if blank is not None:
                        self._blank_line(blank)
                    blank = number
                else:
                    records += 1
                    self._check_line(line, number)
        finally:
            read.close()
        if blank is not None and (truncated or blank != number):
            self._blank_line(blank)
        if truncated:
            self._too_many_lines(limit)
        if read.count > max_bytes:
            self._too_large(read.count, max_bytes, checked=True)
        self._check_format(source.uri, records)
        size = declared if truncated and declared is not None else read.count
        self.source = source
        return _FileResult(
            FileSummary(source.uri, records, size), self.stats.result(), checked=True, truncated=truncated
        )

    # ---- line checks -----------------------------------------------------------------------

    def _add(self, code: Code, line: int | None, message: str) -> None:
        self.out.add(code, self.role, line, message)

    def _blank_line(self, number: int) -> None:
        self._add(
            Code.BLANK_LINE,
            number,
            "blank line; delete it (records are one per line; only the file's last line may be blank)",
        )

    def _too_large(self, size: int, limit: int, *, checked: bool) -> None:
        what = "training" if self.role == "train" else "validation"
        self._add(
            Code.FILE_TOO_LARGE,
            None,
            f"the {what} file is {human_bytes(size)}, over the {human_bytes(limit)} limit for "
            f"{self.model.display_name}; remove or shorten records"
            + ("" if checked else " (its lines were not checked: shrink it first, then validate again)"),
        )

    def _too_many_lines(self, limit: int) -> None:
        what, records = (
            ("training", self.model.limits.max_train_records)
            if self.role == "train"
            else ("validation", self.model.limits.max_validation_records)
        )
        self._add(
            Code.TOO_MANY_LINES,
            None,
            f"the {what} file has more than {limit:,} lines (blank lines included), "
            f"{MAX_LINES_PER_RECORD} times the {records:,} records {self.model.display_name} takes in "
            f"it; reading stopped after line {limit:,} and the rest was not checked: delete blank "
            "lines and extra records (or split the data across runs), then validate again",
        )

    def _oversized(self, number: int, length: int, cap: int) -> None:
        self._add(
            Code.TOO_MANY_TOKENS,
            number,
            f"the line is {human_bytes(length)}, far longer than any record within the "
            f"{self.max_tokens:,}-token limit can be (lines over {human_bytes(cap)} are not parsed); "
            "shorten the conversation or split it into several records",
        )

    def _check_format(self, uri: str, records: int) -> None:
        """WRONG_FORMAT when the file is in another family's format, with the command that fixes it."""
        found = self.first_line_format
        if found is None and self.foreign:
            fmt, count = self.foreign.most_common(1)[0]
            if count * 2 > records:
                found = fmt
        if found is None:
            return
        self._add(
            Code.WRONG_FORMAT,
            None,
            f"the records are in {FORMAT_NAMES[found]}, but {self.model.display_name} is trained on "
            f"{FORMAT_NAMES[self.model.data_format]}; convert the file with: "
            f"{convert_command(uri, self.model)}",
        )

    def _check_line(self, line: bytes, number: int) -> None:
        if self.typed_decode is not None and self._check_typed_line(self.typed_decode, line, number):
            return
        errors_before = self.out.total_errors
        record: Any = _UNPARSED
        if _fast_loads is not None and not line.startswith(_BOM):
            try:
                record = _fast_loads(line)
            except ValueError:  # orjson.JSONDecodeError; the full path below reports it exactly
                record = _UNPARSED
        if record is _UNPARSED:
            record = self._parse_full(line, number)
            if record is _UNPARSED:
                if number == 1:
                    self._first_line_hint(line)
                return
        if type(record) is not dict:
            if number == 1 and type(record) is list and record and all(type(r) is dict for r in record):
                self.first_line_format = FORMAT_JSON_ARRAY  # a whole JSON array of records on one line
            self._add(
                Code.NOT_AN_OBJECT,
                number,
                f"the line is {_type_name(record)}, not a JSON object; each line must be one "
                "object, one record per line (JSON Lines)",
            )
            return
        maybe_reserved = self.prefilter is not None and self.prefilter(line)  # Claude's records only
        self.check_record(record, number, errors_before, maybe_reserved=maybe_reserved)
        if self.out.total_errors != errors_before:
            found = record_format(record)
            if found is not None and found != self.model.data_format:
                self.foreign[found] += 1

    # ---- typed fast path --------------------------------------------------------------------
    # A record the typed decoder accepted has the right keys and types. These check the rest of
    # the common case (alternating roles from "user" to "assistant", non-blank texts, one text
    # block per Nova turn) and return False, having reported nothing, for any other record: the
    # dict paths then check it from scratch. Otherwise only the checks that can still find
    # something run (reserved strings, tokens, duplicates), with the same messages, statistics
    # and canonical form as the dict paths, and the record is in the model's own format (no
    # WRONG_FORMAT count).

    def _check_typed_line(self, decode: Callable[[bytes], Any], line: bytes, number: int) -> bool:
        """True when the line took the fast path (and is checked); False when it must take the others."""
        try:
            record = decode(line)
        except (ValueError, RecursionError):  # another shape, or not JSON: the other paths decide
            return False
        return self.check_typed(record, line, number)

    def _typed_claude(self, record: Any, line: bytes, number: int) -> bool:
        messages = record.messages
        system = record.system
        contents = [system]
        chars = len(system)
        expected = "user"
        for message in messages:
            content = message.content
            if message.role != expected or not content or content.isspace():
                return False
            expected = "assistant" if expected == "user" else "user"
            chars += len(content)
            contents.append(content)
        if expected != "user" or len(messages) < 2:
            return False
        errors_before = self.out.total_errors
        # On decoded texts, a search for one character (":") is cheaper than the raw-line regex.
        if self.reserved and self._holds_reserved(contents):
            self._check_reserved(
                [("'system'", system)]
                + [(f"message {index}", text) for index, text in enumerate(contents[1:], start=1)],
                number,
            )
        self._record_done(chars, len(messages), contents, number, errors_before)
        return True

    def _typed_converse(self, record: Any, line: bytes, number: int) -> bool:
        messages = record.messages
        system_texts = [block.text for block in record.system] if record.system else []
        user_texts: list[str] = []
        canonical: list[object] = [tuple(system_texts)]
        chars = sum(map(len, system_texts)) if system_texts else 0
        expected = "user"
        for message in messages:
            content = message.content
            if message.role != expected or len(content) != 1:
                return False
            text = content[0].text
            if not text or text.isspace():
                return False
            if expected == "user":
                user_texts.append(text)
                expected = "assistant"
            else:
                expected = "user"
            chars += len(text)
            canonical.append(text)
        if expected != "user" or len(messages) < 2:
            return False
        errors_before = self.out.total_errors
        if self.reserved and self._holds_reserved(system_texts + user_texts):
            self._check_reserved_in(
                [("'system'", t) for t in system_texts] + [("a user message", t) for t in user_texts], number
            )
        self._record_done(chars, len(messages), canonical, number, errors_before)
        return True

    def _typed_prompt_completion(self, record: Any, line: bytes, number: int) -> bool:
        prompt, completion = record.prompt, record.completion
        if not prompt or prompt.isspace() or not completion or completion.isspace():
            return False
        errors_before = self.out.total_errors
        if self.reserved:
            self._check_reserved_in([("'prompt'", prompt)], number)
        texts = [prompt, completion]
        self._record_done(len(prompt) + len(completion), 2, texts, number, errors_before)
        return True

    def _record_done(
        self, chars: int, messages: int, canonical: list[Any], number: int, errors_before: int
    ) -> None:
        """Tokens, statistics and, for an error-free record, duplicate tracking."""
        tokens = math.ceil(chars / self.chars_per_token)
        if tokens >= self.near_tokens:
            self._check_tokens(tokens, number)
        self.stats.add(messages, tokens)
        if self.out.total_errors == errors_before:
            self._track(canonical, number)

    def _holds_reserved(self, texts: list[str]) -> bool:
        """Whether any of the texts holds a reserved string: a search for a single character
        first, a search for the strings that hold it only in the texts where it is found."""
        groups = self.triggers
        if groups is None:
            return any(reserved in text for text in texts for reserved in self.reserved)
        for text in texts:
            for trigger, candidates in groups:
                if trigger in text:
                    for reserved in candidates:
                        if reserved in text:
                            return True
        return False

    def _first_line_hint(self, line: bytes) -> None:
        if looks_like_json_array(line):
            self.first_line_format = FORMAT_JSON_ARRAY
        elif looks_like_csv_header(line):
            self.first_line_format = FORMAT_CSV

    def _parse_full(self, line: bytes, number: int) -> Any:
        """The reference path: BOM and UTF-8 checks, then the standard library's parser."""
        if line.startswith(_BOM):
            self._add(
                Code.ENCODING,
                number,
                "the line starts with a UTF-8 byte-order mark (BOM); save the file as UTF-8 "
                "without BOM (for example 'UTF-8' rather than 'UTF-8 with BOM' in your editor)",
            )
            line = line[3:]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._add(
                Code.ENCODING,
                number,
                f"invalid UTF-8 at byte {exc.start + 1} of the line ({exc.reason}); save the file "
                "as UTF-8 (it may be Latin-1, Windows-1252 or UTF-16)",
            )
            text = line.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except RecursionError:
            self._add(Code.INVALID_JSON, number, "the line is nested too deeply to be a record; fix it")
        except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
            detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            self._add(
                Code.INVALID_JSON,
                number,
                f"the line is not valid JSON ({detail}); each line must be one complete JSON object: "
                "check quotes, commas and brackets, and that no record spans several lines",
            )
        return _UNPARSED

    def _check_record(
        self, record: dict[str, Any], number: int, errors_before: int, *, maybe_reserved: bool
    ) -> None:
        system_text = self._check_top_level(record, number)
        messages = record.get("messages")
        if type(messages) is not list:
            self._invalid_messages(number, messages, present="messages" in record)
            return
        # The common case, a well-formed message in its expected place, costs a few type checks;
        # anything else goes to _check_message, which reports each problem, and _check_order.
        roles: list[str | None] = []
        contents: list[str] = [system_text]
        chars = len(system_text)
        in_order = True
        expected = "user"
        for index, message in enumerate(messages, start=1):
            if type(message) is dict and len(message) == 2:
                role = message.get("role")
                content = message.get("content")
                if type(content) is str and type(role) is str and content and not content.isspace():
                    if role == expected:
                        expected = "assistant" if role == "user" else "user"
                        roles.append(role)
                        chars += len(content)
                        contents.append(content)
                        continue
                    if role in _ROLES:
                        in_order = False
                        expected = "assistant" if role == "user" else "user"
                        roles.append(role)
                        chars += len(content)
                        contents.append(content)
                        continue
            in_order = False
            roles.append(self._check_message(message, index, number))
            if type(message) is dict and type(content := message.get("content")) is str:
                chars += len(content)

        if maybe_reserved:
            self._check_reserved(
                [("'system'", system_text)]
                + [
                    (f"message {index}", message["content"])
                    for index, message in enumerate(messages, start=1)
                    if type(message) is dict and type(message.get("content")) is str
                ],
                number,
            )
        if not in_order or expected != "user" or len(roles) < 2:
            self._check_order(roles, number)
        tokens = math.ceil(chars / self.chars_per_token)
        if tokens >= self.near_tokens:
            self._check_tokens(tokens, number)
        self.stats.add(len(messages), tokens)
        if self.out.total_errors == errors_before:
            # Only error-free records take part in duplicate and overlap detection. Their roles
            # alternate from "user", so system and contents are the whole canonical form.
            self._track(contents, number)

    # ---- bedrock-conversation-2024 (Nova, Llama 3.2) ------------------------------------------

    def _check_converse(  # noqa: PLR0912, PLR0915 - one flat pass over the record, common case inline
        self, record: dict[str, Any], number: int, errors_before: int, *, maybe_reserved: bool
    ) -> None:
        for key in record:
            if key not in _CONVERSE_TOP_KEYS:
                self._add(
                    Code.UNKNOWN_KEY,
                    number,
                    f"unknown top-level key {key!r}; a record may only have 'schemaVersion', 'system' "
                    "and 'messages': remove it",
                )
        if "schemaVersion" in record and type(record["schemaVersion"]) is not str:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"'schemaVersion' is {_type_name(record['schemaVersion'])}, not a string; use "
                '"bedrock-conversation-2024" or leave it out',
            )
        system_texts = self._converse_system(record, number)
        messages = record.get("messages")
        if type(messages) is not list:
            self._invalid_messages(number, messages, present="messages" in record)
            return
        roles: list[str | None] = []
        user_texts: list[str] = []
        # Canonical form for duplicates: system texts, then each turn's texts (roles alternate
        # from "user" in an error-free record, so they need not be part of it).
        canonical: list[object] = [tuple(system_texts)]
        chars = sum(map(len, system_texts))
        media = _MediaCount()
        in_order = True
        expected = "user"
        for index, message in enumerate(messages, start=1):
            # The common case, {"role": <expected>, "content": [{"text": "..."}]}, costs a few
            # type checks; anything else gets every check below.
            if type(message) is dict and len(message) == 2:
                content = message.get("content")
                if message.get("role") == expected and type(content) is list and len(content) == 1:
                    block = content[0]
                    if type(block) is dict and len(block) == 1:
                        text = block.get("text")
                        if type(text) is str and text and not text.isspace():
                            roles.append(expected)
                            if expected == "user":
                                user_texts.append(text)
                                expected = "assistant"
                            else:
                                expected = "user"
                            chars += len(text)
                            canonical.append(text)
                            continue
            in_order = False
            role = self._converse_message(message, index, number)
            roles.append(role)
            if role is not None:
                expected = "assistant" if role == "user" else "user"
            if type(message) is dict:
                texts = self._converse_content(message, role, index, number, media)
                chars += sum(map(len, texts))
                canonical.append(tuple(texts))
                if role == "user":
                    user_texts.extend(texts)
        if media.images or media.videos:
            self._check_media_counts(media, number)
        if self.reserved:
            self._check_reserved_in(
                [("'system'", t) for t in system_texts] + [("a user message", t) for t in user_texts], number
            )
        if not in_order or expected != "user" or len(roles) < 2:
            self._check_order(roles, number)
        tokens = math.ceil(chars / self.chars_per_token)
        if tokens >= self.near_tokens:
            self._check_tokens(tokens, number)
        self.stats.add(len(messages), tokens)
        if media.images and self.first_image is None:
            self.first_image = number
        if media.videos and self.first_video is None:
            self.first_video = number
        if self.out.total_errors == errors_before:
            self._track(canonical, number)

    def _converse_message(self, message: object, index: int, number: int) -> str | None:
        """Type, keys and role of a message off the common path; its role if valid."""
        if type(message) is not dict:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"message {index} is {_type_name(message)}, not an object; write it as "
                '{"role": "user" or "assistant", "content": [{"text": "..."}]}',
            )
            return None
        for key in message:
            if key not in _MESSAGE_KEYS:
                self._add(
                    Code.UNKNOWN_KEY,
                    number,
                    f"message {index} has unknown key {key!r}; a message may only have 'role' "
                    "and 'content': remove it",
                )
        return self._check_role(message, index, number)

    def _converse_system(self, record: dict[str, Any], number: int) -> list[str]:
        if "system" not in record:
            return []
        system = record["system"]
        if type(system) is not list:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"'system' is {_type_name(system)}, not a list; write it as "
                '"system": [{"text": "..."}], or leave it out',
            )
            return []
        texts = []
        for index, block in enumerate(system, start=1):
            if type(block) is dict and len(block) == 1 and type(block.get("text")) is str:
                texts.append(block["text"])
            else:
                self._add(
                    Code.INVALID_CONTENT_BLOCK,
                    number,
                    f'\'system\' block {index} is not {{"text": "..."}}; each system block holds '
                    "exactly one 'text' string",
                )
        return texts

    def _converse_content(
        self, message: dict[str, Any], role: str | None, index: int, number: int, media: _MediaCount
    ) -> list[str]:
        """Check one message's content blocks; return its texts."""
        if "content" not in message:
            self._add(
                Code.MISSING_FIELD,
                number,
                f'message {index} has no \'content\'; add "content": [{{"text": "..."}}]',
            )
            return []
        content = message["content"]
        if type(content) is not list:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"message {index} has 'content' that is {_type_name(content)}, not a list of content "
                'blocks; write it as "content": [{"text": "..."}]',
            )
            return []
        if not content:
            self._add(Code.EMPTY_CONTENT, number, f"message {index} has no content blocks; add a text block")
            return []
        texts: list[str] = []
        has_media = False
        has_text = False
        for position, block in enumerate(content, start=1):
            # The common case, one text block, costs a few type checks.
            if type(block) is dict and len(block) == 1:
                text = block.get("text")
                if type(text) is str:
                    texts.append(text)
                    if not has_text and text and not text.isspace():
                        has_text = True
                    continue
                key, value = next(iter(block.items()))
                if key in ("image", "video"):
                    has_media = True
                    self._check_media(
                        key, value, role, f"message {index}, block {position}", number=number, media=media
                    )
                    continue
                if key == "reasoningContent" and self.model.reasoning_content and role == "assistant":
                    reasoning = _reasoning_text(value)
                    if reasoning is not None:
                        texts.append(reasoning)
                        continue
            self._add(
                Code.INVALID_CONTENT_BLOCK,
                number,
                f"message {index}, block {position} is not a content block: each block is exactly one of "
                + (
                    '{"text": "..."}, {"image": ...}, {"video": ...} (or {"reasoningContent": '
                    '{"reasoningText": {"text": "..."}}} in an assistant turn)'
                    if self.model.reasoning_content
                    else '{"text": "..."}, {"image": ...}, {"video": ...}'
                ),
            )
        if not has_media and not has_text and len(texts) == len(content):  # bad blocks: reported above
            self._add(Code.EMPTY_CONTENT, number, f"message {index} has no text; give it text or remove it")
        return texts

    def _check_media(
        self, kind: str, value: object, role: str | None, where: str, *, number: int, media: _MediaCount
    ) -> None:
        uri = _media_uri(value)
        if uri is None:
            self._add(
                Code.INVALID_CONTENT_BLOCK,
                number,
                f"{where}: a {kind} block must be "
                f'{{"{kind}": {{"format": "...", "source": {{"s3Location": {{"uri": "s3://..."}}}}}}}}',
            )
            return
        if role == "assistant":
            self._add(
                Code.INVALID_CONTENT_BLOCK,
                number,
                f"{where}: an assistant turn holds a {kind}; images and videos go in user turns only",
            )
        spec = self.model.media
        allowed = spec.image_formats if kind == "image" else spec.video_formats
        fmt = str(value["format"]).lower()  # type: ignore[index]
        if not allowed:
            self._add(
                Code.UNSUPPORTED_MEDIA,
                number,
                f"{where}: {self.model.display_name} is not fine-tuned on {kind}s"
                + (" (it takes text only)" if spec.text_only else "")
                + "; remove the block or choose a model that takes them",
            )
        elif fmt not in allowed:
            self._add(
                Code.UNSUPPORTED_MEDIA,
                number,
                f"{where}: {kind} format {_short(fmt)} is not accepted; use one of {', '.join(allowed)}",
            )
        if self.bucket is not None and _bucket_of(uri) != self.bucket:
            self._add(
                Code.MEDIA_OUTSIDE_BUCKET,
                number,
                f"{where}: {_short(uri, 80)} is outside the dataset's bucket {self.bucket!r}; Bedrock "
                "reads media from the dataset's bucket only: copy it there",
            )
        if kind == "image":
            media.images += 1
        else:
            media.videos += 1

    def _check_media_counts(self, media: _MediaCount, number: int) -> None:
        spec = self.model.media
        if media.videos > 1 and spec.video_formats:
            self._add(
                Code.TOO_MANY_MEDIA,
                number,
                f"the record has {media.videos} videos; a record may hold one video: split it",
            )
        if spec.max_images_per_record and media.images > spec.max_images_per_record:
            self._add(
                Code.TOO_MANY_MEDIA,
                number,
                f"the record has {media.images} images; {self.model.display_name} takes at most "
                f"{spec.max_images_per_record} per record: split it",
            )

    # ---- prompt/completion (Llama 3.1) ----------------------------------------------------------

    def _check_prompt_completion(
        self, record: dict[str, Any], number: int, errors_before: int, *, maybe_reserved: bool
    ) -> None:
        for key in record:
            if key not in _PROMPT_COMPLETION_KEYS:
                self._add(
                    Code.UNKNOWN_KEY,
                    number,
                    f"unknown key {key!r}; a record has exactly 'prompt' and 'completion': remove it",
                )
        texts: list[str] = []
        for key in ("prompt", "completion"):
            if key not in record:
                self._add(Code.MISSING_FIELD, number, f'the record has no {key!r}; add "{key}": "..."')
                continue
            value = record[key]
            if type(value) is not str:
                self._add(
                    Code.INVALID_TYPE,
                    number,
                    f"{key!r} is {_type_name(value)}, not a string; make it text",
                )
            elif not value or value.isspace():
                self._add(Code.EMPTY_CONTENT, number, f"{key!r} is empty; give it text or drop the record")
            else:
                texts.append(value)
        if self.reserved and "prompt" in record and type(record["prompt"]) is str:
            self._check_reserved_in([("'prompt'", record["prompt"])], number)
        tokens = math.ceil(sum(map(len, texts)) / self.chars_per_token)
        if tokens >= self.near_tokens:
            self._check_tokens(tokens, number)
        self.stats.add(2, tokens)
        if self.out.total_errors == errors_before:
            self._track(texts, number)

    def _check_reserved_in(self, texts: list[tuple[str, str]], number: int) -> None:
        """The exact check on decoded texts: :meth:`_holds_reserved` rules out nearly every record
        cheaply; only when something matched, a search per text and reserved string says where."""
        if not self._holds_reserved([text for _, text in texts]):
            return
        for where, text in texts:
            for reserved in self.reserved:
                if reserved in text:
                    self._add(
                        Code.RESERVED_STRING,
                        number,
                        f"{where} contains the reserved string {reserved!r}; {self.model.display_name} "
                        "fails the job on it: reword it (e.g. 'Customer -' instead of 'User:')",
                    )

    # ---- Claude 3 Haiku -------------------------------------------------------------------------

    def _check_top_level(self, record: dict[str, Any], number: int) -> str:
        """Unknown keys and the ``system`` prompt; returns the system text ("" if none or invalid)."""
        if len(record) > 2 or not _TOP_KEYS.issuperset(record):
            for key in record:
                if key not in _TOP_KEYS:
                    self._add(
                        Code.UNKNOWN_KEY,
                        number,
                        f"unknown top-level key {key!r}; a record may only have 'system' and "
                        "'messages': remove it",
                    )
        system = record.get("system")
        if type(system) is str:
            return system
        if "system" in record:
            self._invalid_system(number, system)
        return ""

    def _invalid_system(self, number: int, system: object) -> None:
        self._add(
            Code.INVALID_TYPE,
            number,
            f"'system' is {_type_name(system)}, not a string; make it a string, or leave the key "
            "out when there is no system prompt",
        )

    def _invalid_messages(self, number: int, messages: object, *, present: bool) -> None:
        if not present:
            self._add(
                Code.MISSING_MESSAGES,
                number,
                "the record has no 'messages'; add a list of alternating user/assistant messages, "
                'e.g. "messages": [{"role": "user", "content": "..."}, '
                '{"role": "assistant", "content": "..."}]',
            )
        else:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"'messages' is {_type_name(messages)}, not a list; make it a list of "
                '{"role": ..., "content": ...} objects',
            )

    def _check_order(self, roles: list[str | None], number: int) -> None:
        """Count and order of turns. Messages with a missing or invalid role are skipped here:
        their own error already says what to fix."""
        count = len(roles)
        if count < 2:
            self._add(
                Code.TOO_FEW_MESSAGES,
                number,
                f"the record has {count} message{'' if count == 1 else 's'}; it needs at least 2: "
                "a user message and the assistant's reply",
            )
        if not roles:
            return
        if roles[0] == "assistant":
            self._add(
                Code.FIRST_NOT_USER,
                number,
                "the first message is from 'assistant'; a conversation must start with a 'user' "
                "message: add the user turn or drop the leading assistant turn",
            )
        if roles[-1] == "user":
            self._add(
                Code.LAST_NOT_ASSISTANT,
                number,
                "the last message is from 'user'; a conversation must end with the 'assistant' "
                "reply to train on: add it or drop the trailing user turn",
            )
        for index in range(1, count):
            current = roles[index]
            if current is not None and current == roles[index - 1]:
                self._add(
                    Code.NOT_ALTERNATING,
                    number,
                    f"messages {index} and {index + 1} are both from {current!r}; roles must "
                    "alternate user/assistant: merge the two messages or add the missing turn",
                )

    def _check_tokens(self, tokens: int, number: int) -> None:
        if tokens > self.max_tokens:
            self._add(
                Code.TOO_MANY_TOKENS,
                number,
                f"the record is about {tokens:,} tokens (estimated at {self.chars_per_token:g} "
                f"characters per token), over the {self.max_tokens:,}-token limit; shorten it or "
                "split the conversation into several records",
            )
        elif tokens >= self.near_tokens:
            self._add(
                Code.NEAR_TOKEN_LIMIT,
                number,
                f"the record is about {tokens:,} tokens, {100 * tokens // self.max_tokens}% of the "
                f"{self.max_tokens:,}-token limit; the estimate is approximate, so consider "
                "shortening it",
            )

    def _track(self, canonical: list[Any], number: int) -> None:
        """Remember an error-free record for duplicate and overlap detection (see the module's
        docstring): its sketch in the first read, its full hash in the second."""
        if self.full_hashes is not None:
            self.full_hashes[number] = hash(tuple(canonical))
            return
        sketch = _sketch(canonical)
        first = self.first_by_sketch.get(sketch)
        if first is not None:
            self.repeats.append((number, sketch))
        elif len(self.first_by_sketch) < MAX_TRACKED_RECORDS:
            self.first_by_sketch[sketch] = number
        if self.train is not None and sketch in self.train.first_by_sketch:
            self.overlaps.append((number, sketch))

    def find_duplicates(
        self, overlap_sketches: set[int], train_records: Mapping[int, int] | None
    ) -> dict[int, int]:
        """The second step of duplicate detection: read again the lines whose sketch another
        line shares (and, for the training file, those whose sketch a validation line shares;
        ``overlap_sketches``), compare them by their full hash and report DUPLICATE_RECORD and,
        for the validation file, VALIDATION_OVERLAP against ``train_records``. Returns the first
        line of each full hash read (what a validation line is compared with)."""
        sketches = {sketch for _, sketch in self.repeats} | overlap_sketches
        wanted = {line for line, _ in self.repeats} | {line for line, _ in self.overlaps}
        wanted.update(line for sketch, line in self.first_by_sketch.items() if sketch in sketches)
        if not wanted or self.source is None:
            return {}
        full = self._full_hashes(self.source, wanted)
        overlapping = {line for line, _ in self.overlaps}
        first_by_hash: dict[int, int] = {}
        for number in sorted(full):
            digest = full[number]
            first = first_by_hash.setdefault(digest, number)
            if first != number:
                self._add(
                    Code.DUPLICATE_RECORD,
                    number,
                    f"the same record as line {first}; remove the duplicate (repeats over-weight an example)",
                )
            if train_records is not None and number in overlapping and digest in train_records:
                self._add(
                    Code.VALIDATION_OVERLAP,
                    number,
                    f"identical to training line {train_records[digest]}; remove it from one of the "
                    "files so the validation loss measures unseen data",
                )
        return first_by_hash

    def _full_hashes(self, source: DatasetSource, wanted: set[int]) -> dict[int, int]:
        """Read ``source`` again and check the ``wanted`` lines as the first read did, on a
        validator of their own (nothing is reported twice), keeping each one's full hash."""
        again = _FileValidator(
            self.role, self.model, self.chars_per_token, _Collector(), None, bucket=self.bucket
        )
        again.full_hashes = {}
        read = _ByteCounter(source.open())
        try:
            for number, line in _wanted_lines(read, wanted, max_line_bytes(self.model, self.chars_per_token)):
                again._check_line(line, number)
        finally:
            read.close()
        return again.full_hashes

    def _check_message(self, message: object, index: int, number: int) -> str | None:
        """Report every problem with one message; return its role if it is a valid one."""
        if type(message) is not dict:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"message {index} is {_type_name(message)}, not an object; write it as "
                '{"role": "user" or "assistant", "content": "..."}',
            )
            return None
        for key in message:
            if key not in _MESSAGE_KEYS:
                self._add(
                    Code.UNKNOWN_KEY,
                    number,
                    f"message {index} has unknown key {key!r}; a message may only have 'role' and "
                    "'content': remove it",
                )
        self._check_content(message, index, number)
        return self._check_role(message, index, number)

    def _check_role(self, message: dict[str, Any], index: int, number: int) -> str | None:
        if "role" not in message:
            self._add(
                Code.MISSING_FIELD,
                number,
                f'message {index} has no \'role\'; add "role": "user" or "role": "assistant"',
            )
            return None
        role = message["role"]
        if type(role) is not str:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"message {index} has a 'role' that is {_type_name(role)}, not a string; use "
                '"user" or "assistant"',
            )
            return None
        if role not in _ROLES:
            self._add(
                Code.INVALID_ROLE,
                number,
                f"message {index} has role {_short(role)}; use 'user' or 'assistant' (put a "
                "system prompt in the top-level 'system' field)",
            )
            return None
        return role

    def _check_content(self, message: dict[str, Any], index: int, number: int) -> None:
        if "content" not in message:
            self._add(
                Code.MISSING_FIELD,
                number,
                f'message {index} has no \'content\'; add the message text as "content": "..."',
            )
            return
        content = message["content"]
        if type(content) is not str:
            self._add(
                Code.INVALID_TYPE,
                number,
                f"message {index} has 'content' that is {_type_name(content)}, not a string; "
                "fine-tuning takes plain text: make it a string",
            )
        elif not content or content.isspace():
            self._add(
                Code.EMPTY_CONTENT,
                number,
                f"message {index} has empty content; give it text or remove the message",
            )

    def _check_reserved(self, texts: list[tuple[str, str]], number: int) -> None:
        """The exact reserved-string check, for lines the raw-bytes prefilter flagged."""
        for where, text in texts:
            for reserved in self.reserved:
                if reserved in text:
                    self._add(
                        Code.RESERVED_STRING,
                        number,
                        f"{where} contains the reserved string {reserved!r} (a newline followed by "
                        f"{reserved.strip()!r}); Bedrock rejects it: reword it, e.g. remove the "
                        "newline or the colon",
                    )


def validate_run(  # noqa: PLR0917 - the signature the handlers and the CLI share
    train: DatasetSource,
    validation: DatasetSource | None,
    hyperparameters: HyperparametersSource | None,
    model: ModelSpec,
    defaults: Mapping[str, object] | None = None,
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN,
    *,
    bucket: str | None = None,
) -> ValidationReport:
    """Validate a whole run (training file, optional validation file, optional hyperparameters).

    Never raises for bad data: every problem becomes an error or warning in the report. Errors
    from reading a source (a missing file, an S3 error) propagate to the caller.
    ``defaults`` are configured hyperparameter defaults; the run's file overrides them.
    ``bucket`` is the dataset's bucket, where known: media URIs outside it are errors.
    """
    if not chars_per_token > 0 or not math.isfinite(chars_per_token):
        raise ValueError(f"chars_per_token must be a positive number, not {chars_per_token!r}")
    out = _Collector()
    limits = model.limits

    train_check = _FileValidator("train", model, chars_per_token, out, None, bucket=bucket)
    train_result = train_check.run(train, limits.max_train_bytes)
    validation_result: _FileResult | None = None
    checks = [train_check]
    if validation is not None and not model.takes_validation_file:
        out.add(
            Code.VALIDATION_NOT_SUPPORTED,
            "validation",
            None,
            f"{model.display_name} takes no validation file in fine-tuning; remove "
            f"{validation.uri} (or merge its records into the training file)",
        )
    elif validation is not None:
        validation_check = _FileValidator(
            "validation", model, chars_per_token, out, train_check, bucket=bucket
        )
        validation_result = validation_check.run(validation, limits.max_validation_bytes)
        checks.append(validation_check)
    train_records = train_check.find_duplicates({sketch for c in checks for _, sketch in c.overlaps}, None)
    for check in checks[1:]:
        check.find_duplicates(set(), train_records)
    # The second step's warnings go where the first read would have put them: by file and line.
    out.warnings.sort(key=_reading_order)
    _check_mixed_media(checks, out)
    _check_record_counts(train_result, validation_result, model, out)

    overrides = _check_hyperparameters(hyperparameters, model, out)
    effective = effective_hyperparameters(model, defaults, overrides)
    early = [
        name
        for name in {**(defaults or {}), **overrides}
        if (hp := model.hyperparameter(name)) and hp.early_stopping
    ]
    if early and (validation_result is None or validation_result.summary.records == 0):
        out.add(
            Code.EARLY_STOPPING_WITHOUT_VALIDATION,
            "hyperparameters",
            None,
            f"{', '.join(early)} {'is' if len(early) == 1 else 'are'} set but the run has no "
            "validation data, so early stopping cannot take effect; add a validation file "
            "(validation.jsonl) or remove the early-stopping settings",
        )

    epoch_spec = model.hyperparameter("epochCount")
    epochs = effective.get("epochCount", epoch_spec.default if epoch_spec else 1)
    return ValidationReport(
        model=model.model_id,
        chars_per_token=chars_per_token,
        train=train_result.summary,
        validation=validation_result.summary if validation_result else None,
        hyperparameters_path=hyperparameters.uri if hyperparameters else None,
        errors=out.errors,
        warnings=out.warnings,
        error_counts=dict(out.error_counts),
        warning_counts=dict(out.warning_counts),
        hyperparameters=effective,
        epochs=int(epochs),
        train_statistics=train_result.statistics,
        validation_statistics=validation_result.statistics if validation_result else None,
    )


_FILE_ORDER = {"train": 0, "validation": 1, "hyperparameters": 2, "evaluation": 3}
_LINE_WARNING_ORDER = {Code.NEAR_TOKEN_LIMIT: 0, Code.DUPLICATE_RECORD: 1, Code.VALIDATION_OVERLAP: 2}


def _reading_order(issue: Issue) -> tuple[int, float, int]:
    """Warnings in the order of reading: by file, then line (file-level last), then as one
    record's checks run (tokens, then duplicates, then overlap)."""
    line = math.inf if issue.line is None else issue.line
    return _FILE_ORDER[issue.file], line, _LINE_WARNING_ORDER.get(issue.code, 3)


def _check_mixed_media(checks: list[_FileValidator], out: _Collector) -> None:
    """MIXED_MEDIA: a dataset holds images or videos, never both (over the whole run)."""
    image = next(((c.role, c.first_image) for c in checks if c.first_image is not None), None)
    video = next(((c.role, c.first_video) for c in checks if c.first_video is not None), None)
    if image is None or video is None:
        return
    out.add(
        Code.MIXED_MEDIA,
        video[0],
        None,
        f"the dataset holds images ({image[0]} line {image[1]}) and videos ({video[0]} line "
        f"{video[1]}); a dataset may hold one kind of media: split it into two runs",
    )


def _check_record_counts(
    train: _FileResult, validation: _FileResult | None, model: ModelSpec, out: _Collector
) -> None:
    """FILE_EMPTY, TOO_FEW_RECORDS, TOO_MANY_RECORDS and TOO_MANY_TOTAL_RECORDS; not for a file
    whose reading stopped at the line bound (its count is a lower bound; TOO_MANY_LINES says it)."""
    limits = model.limits
    name = model.display_name
    records = train.summary.records
    if train.truncated:
        pass
    elif train.checked and records == 0:
        out.add(
            Code.FILE_EMPTY,
            "train",
            None,
            f"the training file has no records; add at least {limits.min_train_records} "
            "conversations, one JSON object per line",
        )
    elif 0 < records < limits.min_train_records:
        out.add(
            Code.TOO_FEW_RECORDS,
            "train",
            None,
            f"the training file has {records} records; {name} needs at least "
            f"{limits.min_train_records}: add more examples",
        )
    if records > limits.max_train_records and not train.truncated:
        out.add(
            Code.TOO_MANY_RECORDS,
            "train",
            None,
            f"the training file has {records:,} records; the maximum for {name} is "
            f"{limits.max_train_records:,}: remove records or split them across runs",
        )
    if validation is None or validation.truncated:
        return
    v_records = validation.summary.records
    if validation.checked and v_records == 0:
        out.add(
            Code.FILE_EMPTY,
            "validation",
            None,
            "the validation file has no records; add conversations to it, or leave the validation file out",
        )
    if v_records > limits.max_validation_records:
        out.add(
            Code.TOO_MANY_RECORDS,
            "validation",
            None,
            f"the validation file has {v_records:,} records; the maximum for {name} is "
            f"{limits.max_validation_records:,}: remove records",
        )
    if records + v_records > limits.max_total_records and not train.truncated:
        out.add(
            Code.TOO_MANY_TOTAL_RECORDS,
            "validation",
            None,
            f"training and validation files have {records + v_records:,} records together; the "
            f"maximum for {name} is {limits.max_total_records:,} (a service quota you can ask to "
            "raise): remove records from either file",
        )


def _check_hyperparameters(
    source: HyperparametersSource | None, model: ModelSpec, out: _Collector
) -> dict[str, object]:
    """Report problems with the run's hyperparameters file; return its values (empty if unusable)."""
    if source is None:
        return {}
    how = (
        'it must be one JSON object of name to value, e.g. {"epochCount": 3, "learningRateMultiplier": '
        f'"0.5"}}; allowed names: {", ".join(model.hyperparameter_names)}'
    )
    problem: str | None = None
    values: object = None
    if len(source.data) > MAX_HYPERPARAMETERS_BYTES:
        problem = f"the file is larger than {human_bytes(MAX_HYPERPARAMETERS_BYTES)}"
    else:
        try:
            values = json.loads(source.data.decode("utf-8"))
        except UnicodeDecodeError:
            problem = "the file is not UTF-8 text (or starts with a byte-order mark)"
        except RecursionError:
            problem = "the file is nested too deeply"
        except ValueError as exc:
            problem = f"the file is not valid JSON ({exc})"
        else:
            if type(values) is not dict:
                problem = f"the file holds {_type_name(values)}, not an object"
    if problem is not None or not isinstance(values, dict):
        out.add(Code.INVALID_HYPERPARAMETERS_FILE, "hyperparameters", None, f"{problem}; {how}")
        return {}
    for found in check_hyperparameters(values, model):
        out.add(Code(found.code), "hyperparameters", None, found.message)
    return values


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
