"""Dataset formats: which family a record is in, and conversion between the families.

One source of truth for the shapes of records. The validator (:mod:`bedrock_finetune.dataset`)
uses :func:`record_format` to say which format a file is really in (``WRONG_FORMAT``), and
``finetune convert`` uses :func:`convert_records` to rewrite a file into the format of a model.

Formats a model is trained on (``catalog.DATA_FORMATS``):

* ``claude-messages``: ``{"system"?: str, "messages": [{"role", "content": str}, ...]}``
  (Claude 3 Haiku);
* ``bedrock-conversation-2024``: ``{"schemaVersion"?: str, "system"?: [{"text"}], "messages":
  [{"role", "content": [{"text"} | {"image"} | {"video"}, ...]}, ...]}`` (Nova, Llama 3.2);
* ``prompt-completion``: ``{"prompt": str, "completion": str}`` (Llama 3.1).

Formats that are only read (converted from): OpenAI chat (a ``system`` message inside
``messages``), a JSON array of records, and CSV with named columns.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import GenericAlias
from typing import Any, BinaryIO, Literal

from bedrock_finetune.catalog import (
    FORMAT_CLAUDE,
    FORMAT_CONVERSE,
    FORMAT_PROMPT_COMPLETION,
    ModelSpec,
)

FORMAT_OPENAI = "openai-chat"
FORMAT_JSON_ARRAY = "json-array"
FORMAT_CSV = "csv"

#: Readable names, used in messages.
FORMAT_NAMES: dict[str, str] = {
    FORMAT_CLAUDE: "Claude messages (string contents, top-level system string)",
    FORMAT_CONVERSE: "bedrock-conversation-2024 (content blocks, system list)",
    FORMAT_PROMPT_COMPLETION: 'prompt/completion ({"prompt": ..., "completion": ...})',
    FORMAT_OPENAI: "OpenAI chat (a 'system' message inside 'messages')",
    FORMAT_JSON_ARRAY: "a JSON array of records (not JSON Lines)",
    FORMAT_CSV: "CSV with named columns",
}

#: Output formats of ``finetune convert --to``.
TARGET_FORMATS = (FORMAT_CLAUDE, FORMAT_CONVERSE, FORMAT_PROMPT_COMPLETION)

#: Column names read from CSV: the prompt, the completion and an optional system prompt.
CSV_PROMPT_COLUMNS = ("prompt", "input", "question", "user")
CSV_COMPLETION_COLUMNS = ("completion", "output", "answer", "assistant", "response")
CSV_SYSTEM_COLUMNS = ("system",)

_MEDIA_KEYS = ("image", "video")


def record_format(record: object) -> str | None:  # noqa: PLR0911 - one answer per shape
    """The family a parsed record belongs to, or None when it has no recognisable shape.

    Cheap: looks at keys and the first message only, as the validator calls it for every record.
    """
    if type(record) is not dict:
        return None
    messages = record.get("messages")
    if type(messages) is list:
        if "schemaVersion" in record or type(record.get("system")) is list:
            return FORMAT_CONVERSE
        first_content: object = None
        for message in messages:
            if type(message) is dict:
                if message.get("role") == "system":
                    return FORMAT_OPENAI
                if first_content is None:
                    first_content = message.get("content")
        if type(first_content) is list:
            return FORMAT_CONVERSE
        if type(first_content) is str:
            return FORMAT_CLAUDE
        return None
    if "prompt" in record or "completion" in record:
        return FORMAT_PROMPT_COMPLETION
    return None


_CSV_HEADER = re.compile(rb"^\s*[\"']?[A-Za-z_][\w ]*[\"']?\s*(?:[,;\t]\s*[\"']?[A-Za-z_][\w ]*[\"']?\s*)+$")


def looks_like_csv_header(line: bytes) -> bool:
    """A first line like ``prompt,completion``: names separated by commas, semicolons or tabs."""
    return bool(_CSV_HEADER.match(line.strip(b"\r\n\xef\xbb\xbf")))


def looks_like_json_array(line: bytes) -> bool:
    """A first line that opens a JSON array of records (``[`` or ``[{...``)."""
    return line.lstrip(b"\xef\xbb\xbf \t").startswith(b"[")


def convert_command(path: str, model: ModelSpec) -> str:
    """The exact ``finetune convert`` command that rewrites ``path`` for ``model``."""
    name = path.rsplit("/", 1)[-1] if path.startswith("s3://") else path
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name.rsplit(".", 1)[0]
    return f"finetune convert {name} {stem}.converted.jsonl --model {model.model_id}"


def reserved_prefilter(reserved: Iterable[str]) -> Callable[[bytes], bool] | None:
    """A test over a raw JSON line: true whenever a decoded string in it may hold a reserved string.

    A reserved string can only be in a decoded string if the raw line has it as JSON writes it
    (a newline as the two bytes ``\\n``), unless a character is escaped as ``\\u00XX``; both
    cases answer true, and lines it answers false for need no exact check. One regex pass is
    cheap when every alternative starts with the same character (Claude's all start with a
    backslash), as the regex engine then skips to that character.
    """
    items = [re.escape(json.dumps(r, ensure_ascii=False)[1:-1].encode()) for r in reserved]
    if not items:
        return None
    pattern = re.compile(b"|".join([*items, rb"\\u00"]))

    def may_hold_reserved(line: bytes) -> bool:
        return pattern.search(line) is not None

    return may_hold_reserved


def reserved_triggers(reserved: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """Reserved strings grouped under a single character each of them holds, or None.

    A text can hold a reserved string only if it holds that string's character, and a search
    for one character is several times faster than one for a string. The character is
    punctuation where there is some (rare in prose), one already picked where possible, so
    Nova's seven strings fall under three (``:``, ``>``, ``]``). None when a reserved string is
    empty (every text "holds" it).
    """
    groups: dict[str, list[str]] = {}
    for text in reserved:
        if not text:
            return None
        picked = next((char for char in groups if char in text), None)
        if picked is None:
            punctuation = [char for char in reversed(text) if not (char.isalnum() or char.isspace())]
            picked = punctuation[0] if punctuation else text[-1]
        groups.setdefault(picked, []).append(text)
    return tuple((char, tuple(texts)) for char, texts in groups.items())


def typed_record_decoders() -> dict[str, Callable[[bytes], Any]]:
    """Decoders of the common, well-formed record shape of each format, one C call per line.

    Built on msgspec (pinned in requirements-lambda.txt); raises ImportError without it. Each
    decoder returns an object with the record's fields as attributes, or raises ``ValueError``
    (``msgspec.DecodeError``, ``UnicodeDecodeError``) for anything else: invalid JSON or UTF-8,
    another shape, an unknown key, a wrong type, a role other than user/assistant. The shapes:

    * ``claude-messages``: ``messages`` (objects with exactly ``role`` and a string ``content``),
      optional string ``system`` (``""`` when absent);
    * ``bedrock-conversation-2024``: ``messages`` (``role`` and a list of ``{"text"}`` blocks),
      optional ``system`` (a list of ``{"text"}``, empty when absent) and string ``schemaVersion``;
    * ``prompt-completion``: string ``prompt`` and ``completion``.

    Everything else a record must satisfy (alternation, non-empty texts, limits) is left to the
    caller, as is every report: these shapes only pick the lines that take the fast path. The
    decoded objects hold no reference cycles, so the garbage collector need not track them.
    """
    import msgspec  # noqa: PLC0415 - optional: the caller falls back without it

    def list_of(item: type) -> object:  # list[item], for a type made at run time
        return GenericAlias(list, (item,))

    role = Literal["user", "assistant"]
    options: dict[str, Any] = {"forbid_unknown_fields": True, "gc": False}
    claude_message = msgspec.defstruct("ClaudeMessage", [("role", role), ("content", str)], **options)
    claude = msgspec.defstruct(
        "ClaudeRecord", [("messages", list_of(claude_message)), ("system", str, "")], **options
    )
    text_block = msgspec.defstruct("TextBlock", [("text", str)], **options)
    converse_message = msgspec.defstruct(
        "ConverseMessage", [("role", role), ("content", list_of(text_block))], **options
    )
    converse = msgspec.defstruct(
        "ConverseRecord",
        [
            ("messages", list_of(converse_message)),
            ("system", list_of(text_block), msgspec.field(default_factory=list)),
            ("schemaVersion", str, ""),
        ],
        **options,
    )
    prompt_completion = msgspec.defstruct(
        "PromptCompletionRecord", [("prompt", str), ("completion", str)], **options
    )
    return {
        FORMAT_CLAUDE: msgspec.json.Decoder(claude).decode,
        FORMAT_CONVERSE: msgspec.json.Decoder(converse).decode,
        FORMAT_PROMPT_COMPLETION: msgspec.json.Decoder(prompt_completion).decode,
    }


# --------------------------------------------------------------------------------------------
# Conversion


class ConversionError(ValueError):
    """One record that cannot be converted; the message says why and how to fix it."""


@dataclass
class Conversation:
    """The format-neutral form of one record: an optional system prompt and alternating turns.

    A turn's ``blocks`` are text strings or media blocks (``{"image": ...}``/``{"video": ...}``)
    as the Converse format writes them.
    """

    system: str | None
    turns: list[tuple[str, list[str | dict[str, Any]]]]
    changes: list[str] = field(default_factory=list)


def _text_of(value: object, where: str) -> str:
    if type(value) is not str:
        raise ConversionError(f"{where} is not a string")
    if not value.strip():
        raise ConversionError(f"{where} is empty; give it text or drop the record")
    return value


def _blocks_from_openai(content: object, where: str) -> list[str | dict[str, Any]]:
    if type(content) is str:
        return [_text_of(content, where)]
    if type(content) is list:
        blocks: list[str | dict[str, Any]] = []
        for part in content:
            if type(part) is dict and part.get("type") == "text":
                blocks.append(_text_of(part.get("text"), where))
            else:
                raise ConversionError(f"{where} has a part that is not text; only text converts")
        if blocks:
            return blocks
    raise ConversionError(f"{where} must be a string or a list of text parts")


def _blocks_from_converse(content: object, where: str) -> list[str | dict[str, Any]]:
    if type(content) is not list or not content:
        raise ConversionError(f"{where} must be a non-empty list of content blocks")
    blocks: list[str | dict[str, Any]] = []
    for block in content:
        if type(block) is dict and len(block) == 1 and "text" in block:
            blocks.append(_text_of(block["text"], where))
        elif type(block) is dict and len(block) == 1 and next(iter(block)) in _MEDIA_KEYS:
            blocks.append(dict(block))
        else:
            raise ConversionError(f"{where} has a block that is not one of text, image, video")
    return blocks


def parse_record(record: object) -> Conversation:  # noqa: PLR0912 - one branch per shape
    """Any supported record as a :class:`Conversation`; ConversionError when it has no known shape."""
    kind = record_format(record)
    if kind is None or type(record) is not dict:
        raise ConversionError(
            "not a record in a known format (Claude, bedrock-conversation-2024, OpenAI chat or "
            "prompt/completion)"
        )
    changes: list[str] = []
    if kind == FORMAT_PROMPT_COMPLETION:
        missing = sorted({"prompt", "completion"} - record.keys())
        extra = sorted(record.keys() - {"prompt", "completion", "system"})
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unexpected {', '.join(map(repr, extra))}"] if extra else []
            )
            raise ConversionError(f"{'; '.join(parts)}: a line must have exactly 'prompt' and 'completion'")
        system = record.get("system")
        return Conversation(
            system=_text_of(system, "'system'") if system is not None else None,
            turns=[
                ("user", [_text_of(record["prompt"], "'prompt'")]),
                ("assistant", [_text_of(record["completion"], "'completion'")]),
            ],
            changes=changes,
        )
    messages = record["messages"]
    system_parts: list[str] = []
    raw_system = record.get("system")
    if kind == FORMAT_CONVERSE:
        if raw_system is not None:
            if type(raw_system) is not list:
                raise ConversionError("'system' must be a list of {\"text\": ...} blocks")
            system_parts = [
                _text_of(b.get("text") if type(b) is dict else None, "'system'") for b in raw_system
            ]
    elif raw_system is not None:
        system_parts = [_text_of(raw_system, "'system'")]
    turns: list[tuple[str, list[str | dict[str, Any]]]] = []
    for index, message in enumerate(messages, start=1):
        where = f"message {index}"
        if type(message) is not dict:
            raise ConversionError(f"{where} is not an object")
        role = message.get("role")
        if role == "system":
            if turns:
                raise ConversionError(f"{where} is a system message after the conversation started")
            system_parts.extend(
                b for b in _blocks_from_openai(message.get("content"), where) if type(b) is str
            )
            changes.append("moved the system message to the top-level system")
            continue
        if role not in ("user", "assistant"):
            raise ConversionError(f"{where} has role {role!r}; only user, assistant (and a leading system)")
        content = message.get("content")
        blocks = (
            _blocks_from_converse(content, where)
            if kind == FORMAT_CONVERSE
            else _blocks_from_openai(content, where)
        )
        if turns and turns[-1][0] == role:
            raise ConversionError(f"messages {index - 1} and {index} are both from {role!r}")
        turns.append((role, blocks))
    if len(turns) < 2 or turns[0][0] != "user" or turns[-1][0] != "assistant":
        raise ConversionError("a conversation needs a user turn first and an assistant turn last")
    return Conversation("\n\n".join(system_parts) if system_parts else None, turns, changes)


def render(conversation: Conversation, target: str, model: ModelSpec | None = None) -> dict[str, Any]:
    """The conversation as one record of format ``target``; ConversionError if it does not fit."""
    media = [b for _, blocks in conversation.turns for b in blocks if type(b) is dict]
    if media and (target != FORMAT_CONVERSE or (model is not None and model.media.text_only)):
        what = model.display_name if model is not None and target == FORMAT_CONVERSE else target
        raise ConversionError(f"the record has images or videos, and {what} takes text only")
    if target == FORMAT_CONVERSE:
        record: dict[str, Any] = {"schemaVersion": "bedrock-conversation-2024"}
        if conversation.system is not None:
            record["system"] = [{"text": conversation.system}]
        record["messages"] = [
            {"role": role, "content": [{"text": b} if type(b) is str else b for b in blocks]}
            for role, blocks in conversation.turns
        ]
        return record
    texts = [(role, "\n".join(b for b in blocks if type(b) is str)) for role, blocks in conversation.turns]
    if target == FORMAT_CLAUDE:
        out: dict[str, Any] = {} if conversation.system is None else {"system": conversation.system}
        out["messages"] = [{"role": role, "content": text} for role, text in texts]
        return out
    if target == FORMAT_PROMPT_COMPLETION:
        if len(texts) != 2:
            raise ConversionError(
                f"the conversation has {len(texts)} turns; prompt/completion holds exactly one user "
                "turn and one assistant turn"
            )
        prompt = texts[0][1]
        if conversation.system is not None:
            prompt = f"{conversation.system}\n\n{prompt}"
            conversation.changes.append("put the system prompt in front of the prompt")
        return {"prompt": prompt, "completion": texts[1][1]}
    raise ValueError(f"unknown target format {target!r}")


def convert_record(
    record: object, target: str, model: ModelSpec | None = None, system: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """One record in ``target`` format, with what was changed; ConversionError when it cannot be."""
    conversation = parse_record(record)
    if system is not None:
        if conversation.system is not None and conversation.system != system:
            conversation.changes.append("replaced the record's system prompt with --system")
        conversation.system = system
    return render(conversation, target, model), conversation.changes


@dataclass(frozen=True)
class LineResult:
    """What happened to one input record (``line`` is 1-based: a file line, CSV row or array item)."""

    line: int
    record: dict[str, Any] | None
    changes: tuple[str, ...] = ()
    error: str | None = None
    #: The format the record was read in (None when it could not be read).
    source_format: str | None = None


_BOM = b"\xef\xbb\xbf"


def read_records(
    source: BinaryIO | bytes, source_format: str | None = None
) -> Iterator[tuple[int, object | None, str | None]]:
    """``(line, parsed record or None, error or None)`` for each record of a file in any input format.

    ``source`` is a binary stream (or the file's bytes). ``source_format`` forces CSV or a JSON
    array; by default they are detected from the first line. JSON Lines and CSV are streamed:
    one line (one CSV row) is held at a time, whatever the size of the file. A JSON array is read
    whole, as the standard library parses a JSON document only once it is complete.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    first_line = stream.readline()
    if first_line.startswith(_BOM):
        first_line = first_line[len(_BOM) :]
    if source_format == FORMAT_JSON_ARRAY or (source_format is None and looks_like_json_array(first_line)):
        yield from _json_array_records(first_line + stream.read())
    elif source_format == FORMAT_CSV or (source_format is None and looks_like_csv_header(first_line)):
        yield from _csv_records(itertools.chain((first_line,), stream))
    else:
        for number, raw in enumerate(itertools.chain((first_line,), stream), start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw.decode("utf-8")), None
            except UnicodeDecodeError:
                yield number, None, "not UTF-8 text"
            except (ValueError, RecursionError) as exc:
                yield number, None, f"not valid JSON ({exc})"


def _json_array_records(data: bytes) -> Iterator[tuple[int, object | None, str | None]]:
    try:
        items = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        yield 1, None, f"the file starts like a JSON array but is not valid JSON ({exc})"
        return
    if type(items) is not list:
        yield 1, None, "the file is JSON but not an array of records"
        return
    for index, item in enumerate(items, start=1):
        yield index, item, None


def _pick(columns: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((columns[n] for n in names if n in columns), None)


class _NotUtf8(Exception):
    """A line of a CSV file that is not UTF-8 (its 1-based number)."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _decoded(lines: Iterable[bytes]) -> Iterator[str]:
    """Each line as text, with a Windows line end made ``\\n``; :class:`_NotUtf8` when it is not UTF-8."""
    for number, raw in enumerate(lines, start=1):
        try:
            yield (raw[:-2] + b"\n" if raw.endswith(b"\r\n") else raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _NotUtf8(number) from None


#: The dialect of a CSV file is guessed from its first characters.
_CSV_SAMPLE_CHARS = 4096


def _csv_records(lines: Iterable[bytes]) -> Iterator[tuple[int, object | None, str | None]]:
    text = _decoded(lines)
    head: list[str] = []
    try:
        while sum(map(len, head)) < _CSV_SAMPLE_CHARS and (line := next(text, None)) is not None:
            head.append(line)
        try:
            dialect: Any = csv.Sniffer().sniff("".join(head)[:_CSV_SAMPLE_CHARS], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(itertools.chain(head, text), dialect=dialect)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        prompt_col = _pick(columns, CSV_PROMPT_COLUMNS)
        completion_col = _pick(columns, CSV_COMPLETION_COLUMNS)
        system_col = _pick(columns, CSV_SYSTEM_COLUMNS)
        if prompt_col is None or completion_col is None:
            yield (
                1,
                None,
                f"the CSV header {list(reader.fieldnames or [])} needs a prompt column (one of "
                f"{', '.join(CSV_PROMPT_COLUMNS)}) and a completion column (one of "
                f"{', '.join(CSV_COMPLETION_COLUMNS)})",
            )
            return
        for row in reader:
            record = {"prompt": row.get(prompt_col), "completion": row.get(completion_col)}
            if system_col is not None and (row.get(system_col) or "").strip():
                record["system"] = row[system_col]
            yield reader.line_num, record, None
    except _NotUtf8 as exc:
        yield exc.line, None, "not UTF-8 text; save the file as UTF-8 (the rest of it was not read)"


def convert_records(
    records: Iterable[tuple[int, object | None, str | None]],
    target: str,
    model: ModelSpec | None = None,
    system: str | None = None,
) -> Iterator[LineResult]:
    """Convert each record, reporting per line what changed or why it could not be converted."""
    for line, record, error in records:
        if error is not None:
            yield LineResult(line, None, error=error)
            continue
        try:
            converted, changes = convert_record(record, target, model, system)
        except ConversionError as exc:
            yield LineResult(line, None, error=str(exc))
        else:
            yield LineResult(line, converted, tuple(changes), source_format=record_format(record))
