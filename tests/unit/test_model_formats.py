"""The validator speaks each model's format with one set of codes: a test per code and per format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bedrock_finetune.catalog import (
    CLAUDE_3_HAIKU,
    LLAMA_31_8B,
    LLAMA_32_1B,
    LLAMA_32_11B,
    NOVA_2_LITE,
    NOVA_LITE,
    NOVA_MICRO,
    resolve_model,
)
from tests.unit.dataset_builders import conversation, found, issues, validate

NOVA = resolve_model(NOVA_LITE)
MICRO = resolve_model(NOVA_MICRO)
NOVA2 = resolve_model(NOVA_2_LITE)
LLAMA31 = resolve_model(LLAMA_31_8B)
LLAMA32_TEXT = resolve_model(LLAMA_32_1B)
LLAMA32_VISION = resolve_model(LLAMA_32_11B)
HAIKU = resolve_model(CLAUDE_3_HAIKU)


def nova_record(i: int = 0, turns: int = 1, system: str | None = None) -> dict[str, Any]:
    messages = []
    for turn in range(turns):
        messages.append({"role": "user", "content": [{"text": f"question {i}.{turn}"}]})
        messages.append({"role": "assistant", "content": [{"text": f"answer {i}.{turn}"}]})
    record: dict[str, Any] = {"schemaVersion": "bedrock-conversation-2024", "messages": messages}
    if system is not None:
        record["system"] = [{"text": system}]
    return record


def image(uri: str = "s3://data-bucket/images/a.png", fmt: str = "png") -> dict[str, Any]:
    return {"image": {"format": fmt, "source": {"s3Location": {"uri": uri}}}}


def video(uri: str = "s3://data-bucket/videos/a.mp4", fmt: str = "mp4") -> dict[str, Any]:
    return {"video": {"format": fmt, "source": {"s3Location": {"uri": uri}}}}


def lines_with(record: dict[str, Any] | str, count: int, make=nova_record, at: int = 3) -> list[str]:
    lines = [json.dumps(make(i)) for i in range(count)]
    lines[at - 1] = record if isinstance(record, str) else json.dumps(record)
    return lines


def with_user_content(*blocks: dict[str, Any]) -> dict[str, Any]:
    record = nova_record(999)
    record["messages"][0]["content"] = [{"text": "look at this"}, *blocks]
    return record


# ---- valid data for each format ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "make"),
    [
        (NOVA, nova_record),
        (MICRO, nova_record),
        (NOVA2, nova_record),
        (LLAMA32_TEXT, nova_record),
        (LLAMA31, lambda i: {"prompt": f"question {i}", "completion": f"answer {i}"}),
        (HAIKU, conversation),
    ],
    ids=["nova-lite", "nova-micro", "nova-2-lite", "llama-3.2", "llama-3.1", "claude"],
)
def test_valid_records_of_each_format_pass(tmp_path, model, make):
    count = max(model.limits.min_train_records, 8)
    report = validate(tmp_path, [json.dumps(make(i)) for i in range(count)], model=model)
    assert report.valid, report.errors[:3]
    assert report.train.records == count


def test_nova_sample_run_is_valid_for_nova_lite(tmp_path):
    from pathlib import Path

    from bedrock_finetune.dataset import HyperparametersSource, LocalFile, validate_run

    run = Path(__file__).resolve().parents[2] / "datasets" / "json-mode-nova"
    report = validate_run(
        LocalFile(run / "train.jsonl"),
        LocalFile(run / "validation.jsonl"),
        HyperparametersSource.from_path(run / "hyperparameters.json"),
        NOVA,
    )
    assert report.valid, report.errors[:3]
    assert report.train.records >= 64


# ---- Nova record codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "record", "codes"),
    [
        (
            "string content",
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"text": "a"}]},
                ]
            },
            {"INVALID_TYPE"},
        ),
        (
            "empty content list",
            {
                "messages": [
                    {"role": "user", "content": []},
                    {"role": "assistant", "content": [{"text": "a"}]},
                ]
            },
            {"EMPTY_CONTENT"},
        ),
        ("system string", {**nova_record(1), "system": "be nice"}, {"INVALID_TYPE"}),
        ("system block shape", {**nova_record(1), "system": [{"txt": "be nice"}]}, {"INVALID_CONTENT_BLOCK"}),
        ("schemaVersion not a string", {**nova_record(1), "schemaVersion": 2024}, {"INVALID_TYPE"}),
        ("unknown top-level key", {**nova_record(1), "id": 7}, {"UNKNOWN_KEY"}),
        ("two keys in a block", with_user_content({"text": "a", "image": {}}), {"INVALID_CONTENT_BLOCK"}),
        ("unknown block", with_user_content({"document": {}}), {"INVALID_CONTENT_BLOCK"}),
        ("text not a string", with_user_content({"text": 5}), {"INVALID_CONTENT_BLOCK"}),
        ("image inner shape", with_user_content({"image": {"format": "png"}}), {"INVALID_CONTENT_BLOCK"}),
        ("image not s3", with_user_content(image(uri="https://x/y.png")), {"INVALID_CONTENT_BLOCK"}),
        ("image format", with_user_content(image(fmt="bmp")), {"UNSUPPORTED_MEDIA"}),
        ("video format", with_user_content(video(fmt="avi")), {"UNSUPPORTED_MEDIA"}),
        ("two videos", with_user_content(video(), video()), {"TOO_MANY_MEDIA"}),
        ("eleven images", with_user_content(*[image()] * 11), {"TOO_MANY_MEDIA"}),
        ("reserved in user text", with_user_content({"text": "User: hello"}), {"RESERVED_STRING"}),
        (
            "reserved in system",
            {**nova_record(1), "system": [{"text": "End with [EOS]"}]},
            {"RESERVED_STRING"},
        ),
        (
            "reasoning for a Nova 1 model",
            {
                "messages": [
                    {"role": "user", "content": [{"text": "q"}]},
                    {
                        "role": "assistant",
                        "content": [{"reasoningContent": {"reasoningText": {"text": "t"}}}],
                    },
                ]
            },
            {"INVALID_CONTENT_BLOCK"},
        ),
        (
            "roles out of order",
            {
                "messages": [
                    {"role": "assistant", "content": [{"text": "a"}]},
                    {"role": "user", "content": [{"text": "q"}]},
                ]
            },
            {"FIRST_NOT_USER", "LAST_NOT_ASSISTANT"},
        ),
        ("prompt/completion", {"prompt": "q", "completion": "a"}, {"MISSING_MESSAGES", "UNKNOWN_KEY"}),
    ],
)
def test_nova_record_codes(tmp_path, name, record, codes):
    report = validate(tmp_path, lines_with(record, 12), model=NOVA)
    assert {code for code, _, line in found(report) if line == 3} == codes


def test_media_in_an_assistant_turn_is_an_invalid_block(tmp_path):
    record = nova_record(5)
    record["messages"][1]["content"].append(image())
    report = validate(tmp_path, lines_with(record, 12), model=NOVA)
    [issue] = issues(report, "INVALID_CONTENT_BLOCK")
    assert "assistant turn" in issue.message


def test_reserved_strings_in_assistant_text_are_allowed(tmp_path):
    record = nova_record(5)
    record["messages"][1]["content"] = [{"text": "User: this is fine in a reply"}]
    assert validate(tmp_path, lines_with(record, 12), model=NOVA).valid


def test_escaped_reserved_strings_are_found(tmp_path):
    line = json.dumps(with_user_content({"text": "<image> here"})).replace("<", "\\u003c")
    report = validate(tmp_path, lines_with(line, 12), model=NOVA)
    assert {c for c, _, n in found(report) if n == 3} == {"RESERVED_STRING"}


def test_media_for_a_text_only_model_is_unsupported(tmp_path):
    report = validate(tmp_path, lines_with(with_user_content(image()), 12), model=MICRO)
    [issue] = issues(report, "UNSUPPORTED_MEDIA")
    assert "text only" in issue.message


def test_nova_2_takes_reasoning_content_in_assistant_turns(tmp_path):
    record = nova_record(5)
    record["messages"][1]["content"].insert(0, {"reasoningContent": {"reasoningText": {"text": "think"}}})
    assert validate(tmp_path, lines_with(record, 12), model=NOVA2).valid


def test_a_validation_file_for_nova_2_is_not_supported(tmp_path):
    lines = [json.dumps(nova_record(i)) for i in range(12)]
    report = validate(tmp_path, lines, validation=[json.dumps(nova_record(100))], model=NOVA2)
    assert found(report) == {("VALIDATION_NOT_SUPPORTED", "validation", None)}


def test_images_and_videos_in_one_dataset_are_mixed_media(tmp_path):
    lines = lines_with(with_user_content(image()), 12)
    lines[7] = json.dumps(with_user_content(video()))
    report = validate(tmp_path, lines, model=NOVA)
    [issue] = issues(report, "MIXED_MEDIA")
    assert issue.line is None and "train line 3" in issue.message and "train line 8" in issue.message


def test_media_outside_the_dataset_bucket(tmp_path):
    lines = lines_with(with_user_content(image(uri="s3://other-bucket/a.png")), 12)
    assert validate(tmp_path, lines, model=NOVA).valid  # bucket unknown: not checked
    report = validate(tmp_path, lines, model=NOVA, bucket="data-bucket")
    assert {c for c, _, n in found(report) if n == 3} == {"MEDIA_OUTSIDE_BUCKET"}
    assert validate(
        tmp_path, lines_with(with_user_content(image()), 12), model=NOVA, bucket="data-bucket"
    ).valid


# ---- Llama ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "codes"),
    [
        ({"prompt": "q"}, {"MISSING_FIELD"}),
        ({"prompt": "q", "completion": 3}, {"INVALID_TYPE"}),
        ({"prompt": " ", "completion": "a"}, {"EMPTY_CONTENT"}),
        ({"prompt": "q", "completion": "a", "label": 1}, {"UNKNOWN_KEY"}),
    ],
)
def test_llama_31_prompt_completion_codes(tmp_path, record, codes):
    lines = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(100)]
    lines[2] = json.dumps(record)
    report = validate(tmp_path, lines, model=LLAMA31)
    assert {c for c, _, n in found(report) if n == 3} == codes


def test_llama_32_vision_takes_images_and_the_small_models_do_not(tmp_path):
    lines = [json.dumps(nova_record(i)) for i in range(100)]
    lines[2] = json.dumps(with_user_content(image(fmt="webp")))
    assert validate(tmp_path, lines, model=LLAMA32_VISION).valid
    report = validate(tmp_path, lines, model=LLAMA32_TEXT)
    assert {c for c, _, n in found(report) if n == 3} == {"UNSUPPORTED_MEDIA"}
    lines[2] = json.dumps(with_user_content(video()))
    assert {c for c, _, n in found(validate(tmp_path, lines, model=LLAMA32_VISION)) if n == 3} == {
        "UNSUPPORTED_MEDIA"
    }


# ---- WRONG_FORMAT ----------------------------------------------------------------------------------


def openai_record(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"a{i}"},
        ]
    }


@pytest.mark.parametrize(
    ("model", "make", "found_name"),
    [
        (HAIKU, lambda i: {"prompt": f"q{i}", "completion": f"a{i}"}, "prompt/completion"),
        (HAIKU, openai_record, "OpenAI chat"),
        (HAIKU, nova_record, "bedrock-conversation-2024"),
        (NOVA, conversation, "Claude messages"),
        (NOVA, openai_record, "OpenAI chat"),
        (LLAMA31, conversation, "Claude messages"),
    ],
)
def test_records_in_another_family_are_wrong_format_with_the_command(tmp_path, model, make, found_name):
    lines = [json.dumps(make(i)) for i in range(40)]
    report = validate(tmp_path, lines, model=model)
    wrong = issues(report, "WRONG_FORMAT")
    assert len(wrong) == 1 and wrong[0].line is None and report.errors[0] == wrong[0]
    train = tmp_path / "train.jsonl"
    assert found_name in wrong[0].message
    assert f"finetune convert {train} {tmp_path / 'train.converted.jsonl'} --model {model.model_id}" in (
        wrong[0].message
    )
    # Per-line errors are still reported
    assert report.error_count > 1


@pytest.mark.parametrize(
    ("content", "found_name"),
    [
        (b'[\n{"prompt": "q", "completion": "a"},\n{"prompt": "q2", "completion": "a2"}\n]\n', "JSON array"),
        (b'[{"prompt": "q", "completion": "a"}, {"prompt": "q2", "completion": "a2"}]\n', "JSON array"),
        (b"prompt,completion\nq,a\nq2,a2\n", "CSV"),
    ],
)
def test_json_arrays_and_csv_are_wrong_format(tmp_path, content, found_name):
    report = validate(tmp_path, [content.rstrip(b"\n")], model=NOVA)
    [wrong] = issues(report, "WRONG_FORMAT")
    assert found_name in wrong.message and "finetune convert" in wrong.message


def test_a_few_foreign_records_are_not_a_wrong_format(tmp_path):
    report = validate(tmp_path, lines_with({"prompt": "q", "completion": "a"}, 20), model=NOVA)
    assert not issues(report, "WRONG_FORMAT")
    assert {c for c, _, n in found(report) if n == 3} == {"MISSING_MESSAGES", "UNKNOWN_KEY"}


def test_claude_keeps_its_reserved_strings_and_codes(tmp_path):
    lines = [json.dumps(conversation(i)) for i in range(40)]
    lines[2] = json.dumps(
        {"messages": [{"role": "user", "content": "x\nHuman: y"}, {"role": "assistant", "content": "a"}]}
    )
    lines[4] = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "User: fine for Claude"},
                {"role": "assistant", "content": "a"},
            ]
        }
    )
    report = validate(tmp_path, lines, model=HAIKU)
    assert found(report) == {("RESERVED_STRING", "train", 3)}
