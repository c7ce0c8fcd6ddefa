"""``finetune convert`` between formats, and the properties: convert then validate round-trips,
and the typed (msgspec), fast (orjson) and full (standard library) paths agree."""

from __future__ import annotations

import importlib
import io
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bedrock_finetune.dataset as dataset_module
from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU, LLAMA_31_8B, NOVA_LITE, NOVA_MICRO
from bedrock_finetune.dataset import validate_run
from bedrock_finetune.formats import (
    FORMAT_CLAUDE,
    FORMAT_CONVERSE,
    FORMAT_PROMPT_COMPLETION,
    convert_record,
    read_records,
)
from finetune.main import main
from tests.unit.dataset_builders import MemorySource, conversation, small_model

HAIKU_SPEC = BUILTIN_MODELS[CLAUDE_3_HAIKU]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def openai(i: int) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "Reply in JSON."},
            {"role": "user", "content": [{"type": "text", "text": f"q{i}"}]},
            {"role": "assistant", "content": f"a{i}"},
        ]
    }


def test_openai_chat_becomes_nova_with_the_system_message_on_top(tmp_path, capsys):
    source = tmp_path / "chat.jsonl"
    source.write_text("\n".join(json.dumps(openai(i)) for i in range(10)) + "\n")
    target = tmp_path / "train.jsonl"
    assert main(["convert", str(source), str(target), "--model", NOVA_LITE]) == 0
    first = json.loads(target.read_text().splitlines()[0])
    assert first == {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "Reply in JSON."}],
        "messages": [
            {"role": "user", "content": [{"text": "q0"}]},
            {"role": "assistant", "content": [{"text": "a0"}]},
        ],
    }
    captured = capsys.readouterr()
    assert f"{source}:1: moved the system message to the top-level system" in captured.err
    assert "Read 10 openai-chat" in captured.out
    assert main(["validate", str(target), "--model", NOVA_LITE]) == 0


def test_without_model_or_to_it_writes_the_format_of_the_deployments_model(tmp_path, monkeypatch):
    """Given a deployment of Nova Lite (its cdk.json), when converting with neither --model nor --to,
    then the output is in Nova's format, and it validates for that deployment."""
    deployment = tmp_path / "deployment"
    deployment.mkdir()
    (deployment / "cdk.json").write_text(json.dumps({"context": {"base_model_id": NOVA_LITE}}))
    monkeypatch.chdir(deployment)
    source = tmp_path / "chat.jsonl"
    source.write_text("\n".join(json.dumps(openai(i)) for i in range(10)) + "\n")
    target = tmp_path / "train.jsonl"
    assert main(["convert", str(source), str(target)]) == 0
    assert json.loads(target.read_text().splitlines()[0])["schemaVersion"] == "bedrock-conversation-2024"


def test_csv_with_named_columns_becomes_claude(tmp_path):
    source = tmp_path / "data.csv"
    rows = ["prompt,completion,system"] + [f'"What is {i}, really?",{i},Be exact.' for i in range(40)]
    source.write_text("\n".join(rows) + "\n")
    target = tmp_path / "train.jsonl"
    assert main(["convert", str(source), str(target), "--model", CLAUDE_3_HAIKU]) == 0
    first = json.loads(target.read_text().splitlines()[0])
    assert first == {
        "system": "Be exact.",
        "messages": [
            {"role": "user", "content": "What is 0, really?"},
            {"role": "assistant", "content": "0"},
        ],
    }
    assert main(["validate", str(target), "--model", CLAUDE_3_HAIKU]) == 0


def test_a_json_array_becomes_prompt_completion_for_llama_31(tmp_path):
    source = tmp_path / "data.json"
    source.write_text(
        json.dumps(
            [
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": f"a{i}"},
                    ]
                }
                for i in range(100)
            ],
            indent=2,
        )
    )
    target = tmp_path / "train.jsonl"
    assert main(["convert", str(source), str(target), "--model", LLAMA_31_8B]) == 0
    assert json.loads(target.read_text().splitlines()[5]) == {"prompt": "q5", "completion": "a5"}
    assert main(["validate", str(target), "--model", LLAMA_31_8B]) == 0


def test_what_cannot_be_converted_is_reported_by_line_and_nothing_is_written(tmp_path, capsys):
    multi_turn = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}] * 2}
    with_image = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "see"},
                    {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/i.png"}}}},
                ],
            },
            {"role": "assistant", "content": [{"text": "a cat"}]},
        ]
    }
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in (multi_turn, with_image, {"x": 1})) + "\n")
    target = tmp_path / "out.jsonl"
    assert main(["convert", str(source), str(target), "--to", FORMAT_PROMPT_COMPLETION]) == 1
    err = capsys.readouterr().err
    assert f"{source}:1: the conversation has 4 turns" in err
    assert f"{source}:2: the record has images or videos" in err
    assert f"{source}:3: not a record in a known format" in err
    assert not target.exists()
    # Media stay media for a model that takes them, and are refused for a text-only one
    assert main(["convert", str(source), str(target), "--model", NOVA_MICRO]) == 1
    assert (
        f"{source}:2: the record has images or videos, and Amazon Nova Micro takes text only"
        in capsys.readouterr().err
    )


def test_an_unknown_model_is_a_usage_error(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "q", "completion": "a"}\n')
    assert main(["convert", str(source), str(tmp_path / "o.jsonl"), "--model", "acme.model"]) == 2
    assert "not in the model catalog" in capsys.readouterr().err


class CountingReader(io.RawIOBase):
    """A file whose reads are counted, to see how much of it a reader has consumed."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._data.readinto(buffer)
        self.consumed += count
        return count


BUFFER = 64 * 1024


def _prompt_rows(count: int) -> list[dict]:
    return [{"prompt": f"question {i} " + "x" * 200, "completion": f"answer {i}"} for i in range(count)]


@pytest.mark.parametrize("layout", ["jsonl", "csv"])
def test_jsonl_and_csv_are_streamed_one_record_at_a_time(layout):
    # Given a file of about 5 MB
    rows = _prompt_rows(20_000)
    if layout == "jsonl":
        data = "\n".join(json.dumps(row) for row in rows).encode()
    else:
        data = ("prompt,completion\n" + "\n".join(f"{r['prompt']},{r['completion']}" for r in rows)).encode()
    raw = CountingReader(data)
    # When the first record is read
    records = read_records(io.BufferedReader(raw, buffer_size=BUFFER))
    assert next(records) == (1 + (layout == "csv"), rows[0], None)
    # Then only the first buffer of the file has been read, and the rest follows record by record
    assert raw.consumed <= BUFFER < len(data) // 50
    assert sum(1 for _ in records) == len(rows) - 1
    assert raw.consumed == len(data)


def test_a_json_array_is_read_whole_as_the_help_says(capsys):
    data = json.dumps(_prompt_rows(1_000)).encode()
    raw = CountingReader(data)
    records = read_records(io.BufferedReader(raw, buffer_size=BUFFER))
    assert next(records) == (1, _prompt_rows(1)[0], None)
    assert raw.consumed == len(data)
    main(["convert", "--help"])
    assert "a JSON array is read into memory whole" in " ".join(capsys.readouterr().out.split())


def test_a_csv_line_that_is_not_utf8_is_reported_by_its_line(tmp_path, capsys):
    source = tmp_path / "data.csv"
    source.write_bytes(b"prompt,completion\nq1,a1\nq2,caf\xe9\nq3,a3\n")
    target = tmp_path / "train.jsonl"
    assert main(["convert", str(source), str(target), "--model", CLAUDE_3_HAIKU]) == 1
    assert f"{source}:3: not UTF-8 text" in capsys.readouterr().err
    assert not target.exists()


# ---- properties ------------------------------------------------------------------------------------

# Text without reserved strings or whitespace-only values: the converter's job is the format.
words = st.text(alphabet=st.sampled_from('abcdefgh xyz.,!?é東🙂\n{}"\\'), min_size=1, max_size=30).filter(
    lambda t: not t.isspace()
)
turn_texts = st.lists(st.tuples(words, words), min_size=1, max_size=3)


def _render_source(kind: str, system: str | None, turns: list[tuple[str, str]]) -> object:
    messages: list[dict] = []
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    if kind == "claude":
        return {**({"system": system} if system else {}), "messages": messages}
    if kind == "openai":
        return {"messages": ([{"role": "system", "content": system}] if system else []) + messages}
    if kind == "nova":
        record = convert_record({"messages": messages}, FORMAT_CONVERSE)[0]
        return {**record, **({"system": [{"text": system}]} if system else {})}
    return {"prompt": turns[0][0], "completion": turns[0][1], **({"system": system} if system else {})}


@SETTINGS
@given(
    records=st.lists(
        st.tuples(st.sampled_from(["claude", "openai", "nova", "prompt"]), st.none() | words, turn_texts),
        min_size=1,
        max_size=12,
    ),
    target=st.sampled_from([CLAUDE_3_HAIKU, NOVA_LITE, LLAMA_31_8B]),
)
def test_convert_then_validate_gives_no_format_errors(records, target):
    model = BUILTIN_MODELS[target]
    relaxed = small_model(min_train_records=1)
    relaxed = type(relaxed)(**{**model.__dict__, "limits": relaxed.limits})
    lines = []
    for kind, system, turns in records:
        try:
            converted, _ = convert_record(_render_source(kind, system, turns), model.data_format, model)
        except ValueError:
            # Only a multi-turn conversation has no prompt/completion form
            assert model.data_format == FORMAT_PROMPT_COMPLETION and (len(turns) > 1 or kind != "prompt")
            continue
        lines.append(json.dumps(converted, ensure_ascii=False))
    data = "\n".join(lines).encode()
    report = validate_run(MemorySource(data), None, None, relaxed)
    format_errors = {c for c in report.error_counts if c not in ("RESERVED_STRING", "FILE_EMPTY")}
    assert not format_errors, report.errors[:3]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": json_values,
        "system": st.text(max_size=10)
        | st.lists(st.fixed_dictionaries({"text": st.text(max_size=10)}))
        | json_values,
        "messages": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "role": st.sampled_from(["user", "assistant", "system"]) | json_values,
                    "content": st.text(max_size=10)
                    | st.lists(
                        st.fixed_dictionaries({"text": st.text(max_size=10)}) | json_values, max_size=3
                    )
                    | json_values,
                },
            ),
            max_size=4,
        ),
        "prompt": json_values,
        "completion": json_values,
    },
)
raw_lines = st.lists(
    record_like.map(lambda r: json.dumps(r, ensure_ascii=False).encode())
    | st.sampled_from(
        [b"NaN", b'{"a": Infinity}', b'{"a": "\\ud800"}', b'{"a": 1' + b"0" * 30 + b"}", b'{"a":1,"a":2}']
    )
    | st.binary(max_size=40),
    min_size=1,
    max_size=15,
)


#: Texts that put the typed fast path's own checks to work: blank and whitespace-only texts,
#: every model's reserved strings and their trigger characters, escapes and wide characters.
plain_texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).filter(lambda t: not t.isspace())
edge_texts = (
    plain_texts
    | plain_texts
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            " ",
            "\n\t",
            "\u3000",
            "a",
            "a\nHuman: b",
            "x\nAssistant:",
            "User: hi",
            "Bot:",
            "[EOS]",
            "<image>",
            "<video>",
            "a]b",
            "a:b",
            "a>b",
            "caf\u00e9",
            "\U0001f642",
            "\x7f",
            "\\",
            '"',
            "/",
        ]
    )
)
#: Mostly one block per turn (the typed path's shape), sometimes two.
_blocks = (
    edge_texts.map(lambda text: [text])
    | edge_texts.map(lambda text: [text])
    | st.lists(edge_texts, min_size=2, max_size=2)
)
#: User/assistant pairs (a flaw may drop the last turn).
turn_lists = st.lists(st.tuples(_blocks, _blocks), max_size=3).map(
    lambda pairs: [b for pair in pairs for b in pair]
)


def _shaped_record(kind: str, system: list[str] | None, turns: list[list[str]], flaw: int) -> dict:
    """A record near the common shape of a format: alternating turns, and at most one flaw."""
    roles = ["user" if index % 2 == 0 else "assistant" for index in range(len(turns))]
    if roles and flaw == 1:
        roles[flaw % len(roles)] = "system"
    elif len(roles) > 1 and flaw == 2:
        roles[1] = "user"
    elif len(roles) % 2 == 0 and flaw == 3:
        turns = turns[:-1]
        roles = roles[:-1]
    if kind == "prompt":
        texts = [text for blocks in turns for text in blocks] + ["", ""]
        return {"prompt": texts[0], "completion": texts[1]}
    if kind == "claude":
        record: dict = {
            "messages": [{"role": r, "content": blocks[0]} for r, blocks in zip(roles, turns, strict=True)]
        }
        return {"system": system[0], **record} if system else record
    record = {
        "messages": [
            {"role": r, "content": [{"text": t} for t in blocks]}
            for r, blocks in zip(roles, turns, strict=True)
        ]
    }
    if system is not None:
        record = {"system": [{"text": t} for t in system], **record}
    return {"schemaVersion": "bedrock-conversation-2024", **record} if flaw == 4 else record


def _render(record: dict, style: int) -> bytes:
    """One record in one of several writings (key order, spacing, escapes)."""
    if style == 1:
        record = dict(reversed(list(record.items())))
    return json.dumps(
        record, ensure_ascii=style == 2, separators=(" , ", " : ") if style == 3 else None
    ).encode("utf-8", "surrogatepass")


_NATIVE_KIND = {FORMAT_CLAUDE: "claude", FORMAT_CONVERSE: "nova", FORMAT_PROMPT_COMPLETION: "prompt"}


@st.composite
def shaped_files(draw, data_format: str) -> bytes:
    """A file of records near the common shape, mostly in the model's own format, with copies
    of some records written another way and copies with another system prompt."""
    native = _NATIVE_KIND[data_format]
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from([native] * 4 + ["claude", "nova", "prompt"]),
                st.none() | st.lists(edge_texts, max_size=2),
                turn_lists,
                st.integers(0, 9),
                st.integers(0, 3),
            ),
            min_size=1,
            max_size=10,
        )
    )
    for kind, system, turns, flaw, style in draw(st.lists(st.sampled_from(specs), max_size=4)):
        specs.append((kind, system, turns, flaw, (style + 1) % 4))  # the same record, written otherwise
        specs.append((kind, (system or []) + ["other"], turns, flaw, style))  # another system prompt
    order = draw(st.permutations(range(len(specs))))
    return b"\n".join(_render(_shaped_record(*specs[index][:4]), specs[index][4]) for index in order)


def _reports_by_path(data: bytes, model, validation: bytes | None = None) -> list[dict]:
    """The report of every parsing path: typed (msgspec), orjson, and the standard library only."""
    saved = dataset_module._typed_decoders, dataset_module._fast_loads
    reports = []
    try:
        for typed, fast in ((saved[0], saved[1]), (None, saved[1]), (None, None)):
            dataset_module._typed_decoders, dataset_module._fast_loads = typed, fast
            other = MemorySource(validation, uri="validation.jsonl") if validation is not None else None
            reports.append(validate_run(MemorySource(data), other, None, model).to_dict())
    finally:
        dataset_module._typed_decoders, dataset_module._fast_loads = saved
    return reports


@SETTINGS
@given(lines=raw_lines, model_id=st.sampled_from([CLAUDE_3_HAIKU, NOVA_LITE, LLAMA_31_8B]))
def test_the_fast_path_and_the_full_path_agree(lines, model_id):
    assert dataset_module._fast_loads is not None, "orjson is pinned in requirements-lambda.txt"
    assert dataset_module._typed_decoders is not None, "msgspec is pinned in requirements-lambda.txt"
    typed, fast, full = _reports_by_path(b"\n".join(lines), BUILTIN_MODELS[model_id])
    assert typed == fast == full


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model_id=st.sampled_from([CLAUDE_3_HAIKU, NOVA_LITE, NOVA_MICRO, LLAMA_31_8B]))
def test_the_paths_agree_on_records_near_the_common_shape(data, model_id):
    # Records that the typed path takes, or nearly: every check it does itself (roles, blank
    # texts, reserved strings, tokens, duplicates and overlap whatever the formatting) must say
    # what the dict paths say.
    builtin = BUILTIN_MODELS[model_id]
    limits = small_model(min_train_records=1, max_tokens_per_record=30).limits
    model = type(builtin)(**{**builtin.__dict__, "limits": limits})
    train = data.draw(shaped_files(builtin.data_format))
    validation = data.draw(st.none() | shaped_files(builtin.data_format))
    typed, fast, full = _reports_by_path(train, model, validation)
    assert typed == fast == full


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model_id=st.sampled_from([CLAUDE_3_HAIKU, NOVA_LITE, LLAMA_31_8B]))
def test_duplicates_found_from_sketches_are_those_a_full_comparison_finds(data, model_id):
    # Duplicates and overlap are first narrowed by cheap sketches, then compared in full in a
    # second read. With a sketch that every record shares, every record is compared in full (one
    # hash of its whole canonical form each, the plain algorithm): the reports must not differ.
    builtin = BUILTIN_MODELS[model_id]
    model = type(builtin)(**{**builtin.__dict__, "limits": small_model(min_train_records=1).limits})
    train = data.draw(shaped_files(builtin.data_format))
    validation = data.draw(st.none() | shaped_files(builtin.data_format))
    sketched = _reports_by_path(train, model, validation)[0]
    saved = dataset_module._sketch
    try:
        dataset_module._sketch = lambda canonical: 0
        compared_in_full = _reports_by_path(train, model, validation)[0]
    finally:
        dataset_module._sketch = saved
    assert sketched == compared_in_full


def _expected_repeats(files: list[bytes], report: dict) -> set[tuple[str, str, int]]:
    """DUPLICATE_RECORD and VALIDATION_OVERLAP as defined for Claude records, computed plainly:
    among the lines without errors, a record is its system prompt and its contents in order."""
    errors = {(e["file"], e["line"]) for e in report["errors"]}
    expected: set[tuple[str, str, int]] = set()
    first_train: dict[tuple, int] = {}
    for role, data in zip(("train", "validation"), files, strict=False):
        first: dict[tuple, int] = {}
        for number, line in enumerate(data.split(b"\n"), start=1):
            if (role, number) in errors:
                continue
            record = json.loads(line)
            key = (record.get("system", ""), *(m["content"] for m in record["messages"]))
            if first.setdefault(key, number) != number:
                expected.add(("DUPLICATE_RECORD", role, number))
            if role == "validation" and key in first_train:
                expected.add(("VALIDATION_OVERLAP", role, number))
        if role == "train":
            first_train = first
    return expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_duplicates_and_overlap_are_what_a_plain_comparison_finds(data):
    model = type(HAIKU_SPEC)(**{**HAIKU_SPEC.__dict__, "limits": small_model(min_train_records=1).limits})
    train = data.draw(shaped_files(FORMAT_CLAUDE))
    validation = data.draw(st.none() | shaped_files(FORMAT_CLAUDE))
    # Every line with an error must be listed, to be left out below: no cap on the list per code
    # (a file of many bad messages has more than 100 of one code).
    cap = dataset_module.MAX_ISSUES_PER_CODE
    try:
        dataset_module.MAX_ISSUES_PER_CODE = 1_000_000
        report = _reports_by_path(train, model, validation)[0]
    finally:
        dataset_module.MAX_ISSUES_PER_CODE = cap
    files = [train] if validation is None else [train, validation]
    repeats = {
        (w["code"], w["file"], w["line"])
        for w in report["warnings"]
        if w["code"] in ("DUPLICATE_RECORD", "VALIDATION_OVERLAP")
    }
    assert repeats == _expected_repeats(files, report)


def test_the_validator_works_without_orjson(monkeypatch, tmp_path):
    # Given an environment without orjson (as a Lambda without the parsers layer)
    monkeypatch.setitem(sys.modules, "orjson", None)
    module = importlib.reload(dataset_module)
    try:
        assert module._fast_loads is None
        lines = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(100)]
        lines[3] = "{not json"
        report = module.validate_run(
            MemorySource("\n".join(lines).encode()), None, None, BUILTIN_MODELS[LLAMA_31_8B]
        )
        assert report.error_counts == {"INVALID_JSON": 1}
    finally:
        monkeypatch.delitem(sys.modules, "orjson")
        importlib.reload(dataset_module)


def test_the_validator_works_without_msgspec(monkeypatch):
    # Given an environment without msgspec (as a Lambda without the parsers layer)
    monkeypatch.setitem(sys.modules, "msgspec", None)
    module = importlib.reload(dataset_module)
    try:
        assert module._typed_decoders is None
        lines = [json.dumps(conversation(i)) for i in range(40)] + [json.dumps(conversation(3))]
        lines[5] = '{"messages": []}'
        report = module.validate_run(
            MemorySource("\n".join(lines).encode()), None, None, BUILTIN_MODELS[CLAUDE_3_HAIKU]
        )
        assert report.error_counts == {"TOO_FEW_MESSAGES": 1}
        assert report.warning_counts == {"DUPLICATE_RECORD": 1}
    finally:
        monkeypatch.delitem(sys.modules, "msgspec")
        importlib.reload(dataset_module)


@pytest.mark.parametrize("fmt", [FORMAT_CLAUDE, FORMAT_CONVERSE, FORMAT_PROMPT_COMPLETION])
def test_each_target_format_round_trips_a_simple_record(fmt):
    record = {
        "system": "s",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    }
    converted, _ = convert_record(record, fmt)
    back, _ = convert_record(converted, FORMAT_CLAUDE)
    expected = (
        record
        if fmt != FORMAT_PROMPT_COMPLETION
        else {"messages": [{"role": "user", "content": "s\n\nq"}, {"role": "assistant", "content": "a"}]}
    )
    assert back == expected
