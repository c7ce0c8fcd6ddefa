"""``finetune convert`` between formats, and the properties: convert then validate round-trips,
and the fast (orjson) path and the full (standard library) path agree."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bedrock_finetune.dataset as dataset_module
from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU, LLAMA_31_8B, NOVA_LITE, NOVA_MICRO
from bedrock_finetune.dataset import validate_run
from bedrock_finetune.formats import FORMAT_CLAUDE, FORMAT_CONVERSE, FORMAT_PROMPT_COMPLETION, convert_record
from finetune.main import main
from tests.unit.dataset_builders import MemorySource, small_model

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


@SETTINGS
@given(lines=raw_lines, model_id=st.sampled_from([CLAUDE_3_HAIKU, NOVA_LITE, LLAMA_31_8B]))
def test_the_fast_path_and_the_full_path_agree(lines, model_id):
    model = BUILTIN_MODELS[model_id]
    data = b"\n".join(lines)
    assert dataset_module._fast_loads is not None, "orjson is pinned in requirements-lambda.txt"
    fast = validate_run(MemorySource(data), None, None, model).to_dict()
    saved = dataset_module._fast_loads
    dataset_module._fast_loads = None
    try:
        full = validate_run(MemorySource(data), None, None, model).to_dict()
    finally:
        dataset_module._fast_loads = saved
    assert fast == full


def test_the_validator_works_without_orjson(monkeypatch, tmp_path):
    # Given an environment without orjson (as the Lambda asset may be)
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
