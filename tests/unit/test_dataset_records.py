"""Record-level codes: each bad line gives exactly the expected codes, at its file and line."""

from __future__ import annotations

import json
import math

import pytest

from bedrock_finetune.dataset import Code, max_line_bytes
from tests.unit.dataset_builders import (
    HAIKU,
    conversation,
    dumps,
    found,
    issues,
    valid_lines,
    validate,
    with_line,
)

U, A = "user", "assistant"


def msgs(*pairs: tuple[str, object]) -> dict[str, object]:
    return {"messages": [{"role": role, "content": content} for role, content in pairs]}


OK_PAIR = ((U, "hi"), (A, "hello"))
REPLY = {"role": A, "content": "ok"}
REPLY_JSON = b'{"role": "assistant", "content": "ok"}]}'

# (id, line as it appears in the file, the codes expected on that line)
CASES: list[tuple[str, str | bytes, set[str]]] = [
    ("invalid json", '{"messages": [', {"INVALID_JSON"}),
    ("trailing comma", '{"messages": [],}', {"INVALID_JSON"}),
    ("two objects on a line", dumps(conversation(900)) + dumps(conversation(901)), {"INVALID_JSON"}),
    ("huge integer", "1" * 5000, {"INVALID_JSON"}),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, {"INVALID_JSON"}),
    ("empty line", "", {"BLANK_LINE"}),
    ("whitespace line", " \t\r", {"BLANK_LINE"}),
    ("array", "[]", {"NOT_AN_OBJECT"}),
    ("string", '"hello"', {"NOT_AN_OBJECT"}),
    ("null", "null", {"NOT_AN_OBJECT"}),
    ("top-level extra key", dumps({**msgs(*OK_PAIR), "id": 7}), {"UNKNOWN_KEY"}),
    (
        "message extra key",
        dumps({"messages": [{"role": U, "content": "hi", "name": "bob"}, {"role": A, "content": "yo"}]}),
        {"UNKNOWN_KEY"},
    ),
    ("no messages", dumps({"system": "be brief"}), {"MISSING_MESSAGES"}),
    ("empty object", "{}", {"MISSING_MESSAGES"}),
    ("messages not a list", dumps({"messages": "hi"}), {"INVALID_TYPE"}),
    ("messages null", dumps({"messages": None}), {"INVALID_TYPE"}),
    ("message not an object", dumps({"messages": [{"role": U, "content": "hi"}, "hello"]}), {"INVALID_TYPE"}),
    ("system null", dumps({"system": None, **msgs(*OK_PAIR)}), {"INVALID_TYPE"}),
    ("system number", dumps({"system": 3, **msgs(*OK_PAIR)}), {"INVALID_TYPE"}),
    ("content null", dumps(msgs((U, None), (A, "ok"))), {"INVALID_TYPE"}),
    ("content blocks", dumps(msgs((U, [{"type": "text", "text": "hi"}]), (A, "ok"))), {"INVALID_TYPE"}),
    ("role null", dumps({"messages": [{"role": None, "content": "hi"}, REPLY]}), {"INVALID_TYPE"}),
    ("no role", dumps({"messages": [{"content": "hi"}, REPLY]}), {"MISSING_FIELD"}),
    ("no content", dumps({"messages": [{"role": U}, REPLY]}), {"MISSING_FIELD"}),
    ("role system", dumps(msgs(("system", "rules"), (U, "hi"), (A, "ok"))), {"INVALID_ROLE"}),
    ("role capitalised", dumps(msgs(("User", "hi"), (A, "ok"))), {"INVALID_ROLE"}),
    ("role unhashable", dumps({"messages": [{"role": [U], "content": "hi"}, REPLY]}), {"INVALID_TYPE"}),
    ("no messages at all", dumps({"messages": []}), {"TOO_FEW_MESSAGES"}),
    ("only a user message", dumps(msgs((U, "hi"))), {"TOO_FEW_MESSAGES", "LAST_NOT_ASSISTANT"}),
    ("starts with assistant", dumps(msgs((A, "hello"), (U, "hi"), (A, "ok"))), {"FIRST_NOT_USER"}),
    ("ends with user", dumps(msgs((U, "hi"), (A, "hello"), (U, "bye"))), {"LAST_NOT_ASSISTANT"}),
    ("two user turns", dumps(msgs((U, "hi"), (U, "again"), (A, "ok"))), {"NOT_ALTERNATING"}),
    ("empty content", dumps(msgs((U, ""), (A, "ok"))), {"EMPTY_CONTENT"}),
    ("whitespace content", dumps(msgs((U, "hi"), (A, " \n\t"))), {"EMPTY_CONTENT"}),
    ("reserved in content", dumps(msgs((U, "a\nHuman: b"), (A, "ok"))), {"RESERVED_STRING"}),
    ("reserved in system", dumps({"system": "x\nAssistant: y", **msgs(*OK_PAIR)}), {"RESERVED_STRING"}),
    # The same reserved strings written with JSON \u escapes: the raw bytes do not show them.
    ("reserved, escaped newline", '{"messages": [{"role": "user", "content": "a\\u000aHuman: b"}, '
     '{"role": "assistant", "content": "ok"}]}', {"RESERVED_STRING"}),
    ("reserved, escaped letter", '{"messages": [{"role": "user", "content": "hi"}, '
     '{"role": "assistant", "content": "a\\nAssist\\u0061nt: b"}]}', {"RESERVED_STRING"}),
    ("invalid utf-8", b'{"messages": [{"role": "user", "content": "caf\xe9"}, ' + REPLY_JSON, {"ENCODING"}),
    ("surrogate", b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}, ' + REPLY_JSON, {"ENCODING"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "codes"), [pytest.param(line, codes, id=name) for name, line, codes in CASES]
)
def test_bad_line_reports_exactly_its_codes_at_its_line(tmp_path, line, codes):
    # Given a training file of valid records with one bad line at line 5
    # When the run is validated
    report = validate(tmp_path, with_line(line, at=5))
    # Then exactly the expected codes are reported, in the train file, at line 5
    assert found(report) == {(code, "train", 5) for code in codes}
    assert not report.valid
    # And each message says what to do
    assert all(len(issue.message) > 30 for issue in report.errors)


def test_valid_data_reports_nothing(tmp_path):
    # Given valid records, with a system prompt, multi-turn conversations and non-ASCII text
    lines = valid_lines(40)
    lines.append(dumps(conversation(100, turns=3, system="Réponds en français 🙂")))
    lines.append(
        dumps(
            {
                "system": "",
                "messages": [{"content": "Human: hi", "role": "user"}, {"role": A, "content": "ok:\nfine"}],
            }
        )
    )
    # When validated
    report = validate(tmp_path, lines, validation=valid_lines(5, start=500))
    # Then nothing is reported
    assert report.valid
    assert report.errors == [] and report.warnings == []
    assert report.train.records == 42


def test_a_record_with_several_problems_reports_each(tmp_path):
    # Given one record with an unknown key, a null system, a bad role, an empty content and a reserved string
    record = {
        "id": 1,
        "system": None,
        "messages": [
            {"role": "bot", "content": "hi"},
            {"role": A, "content": ""},
            {"role": A, "content": "x\nHuman: y", "extra": True},
        ],
    }
    # When validated
    report = validate(tmp_path, with_line(dumps(record), at=3))
    # Then every problem is reported on line 3
    codes = sorted(str(i.code) for i in report.errors)
    assert codes == sorted(
        [
            "UNKNOWN_KEY",
            "UNKNOWN_KEY",
            "INVALID_TYPE",
            "INVALID_ROLE",
            "EMPTY_CONTENT",
            "RESERVED_STRING",
            "NOT_ALTERNATING",
        ]
    )
    assert {i.line for i in report.errors} == {3}


def test_one_broken_record_does_not_hide_others(tmp_path):
    # Given bad lines at 2, 10 and 30
    lines = with_line("{", at=2)
    lines[9] = b"[]"
    lines[29] = dumps(msgs((A, "x"), (U, "y"))).encode()
    # When validated
    report = validate(tmp_path, lines)
    # Then all three are reported at their lines
    assert found(report) == {
        ("INVALID_JSON", "train", 2),
        ("NOT_AN_OBJECT", "train", 10),
        ("FIRST_NOT_USER", "train", 30),
        ("LAST_NOT_ASSISTANT", "train", 30),
    }


def test_byte_order_mark_on_line_one_is_reported_and_the_record_still_checked(tmp_path):
    # Given a file that starts with a UTF-8 BOM, and whose first record also lacks messages
    lines = with_line(b"\xef\xbb\xbf" + dumps({"system": "s"}).encode(), at=1)
    # When validated
    report = validate(tmp_path, lines)
    # Then both the encoding and the record problem are reported on line 1
    assert found(report) == {("ENCODING", "train", 1), ("MISSING_MESSAGES", "train", 1)}
    assert "byte-order mark" in issues(report, "ENCODING")[0].message


def test_token_limit_uses_ceil_of_characters_over_chars_per_token(tmp_path):
    limit = HAIKU.limits.max_tokens_per_record
    system = "s" * 100
    # Given records whose system + contents are exactly at, and one character over, the limit
    at_limit = limit * 3 - 100 - 1  # system + "q" + this = exactly limit * 3 characters
    lines = valid_lines(40)
    lines[0] = dumps({"system": system, **msgs((U, "q"), (A, "a" * at_limit))})
    lines[1] = dumps({"system": system, **msgs((U, "q"), (A, "a" * (at_limit + 1)))})
    # When validated with the default 3 characters per token
    report = validate(tmp_path, lines)
    # Then only the second is over the limit; the first is near it
    assert found(report) == {("NEAR_TOKEN_LIMIT", "train", 1), ("TOO_MANY_TOKENS", "train", 2)}
    assert f"{limit + 1:,} tokens" in issues(report, "TOO_MANY_TOKENS")[0].message


def test_near_token_limit_starts_at_ninety_percent(tmp_path):
    limit = HAIKU.limits.max_tokens_per_record
    chars_at_90 = math.ceil(limit * 0.9) * 3
    lines = valid_lines(40)
    lines[0] = dumps(msgs((U, "q"), (A, "a" * (chars_at_90 - 1 - 3))))  # one token short of 90 %
    lines[1] = dumps(msgs((U, "q"), (A, "a" * (chars_at_90 - 1))))
    report = validate(tmp_path, lines)
    assert found(report) == {("NEAR_TOKEN_LIMIT", "train", 2)}
    assert report.valid  # a warning does not make the run invalid


def test_chars_per_token_is_configurable(tmp_path):
    # Given a record of 100,000 characters: over the limit at 3 characters per token
    lines = valid_lines(40)
    lines[0] = dumps(msgs((U, "q"), (A, "a" * 99_999)))
    assert found(validate(tmp_path, lines)) == {("TOO_MANY_TOKENS", "train", 1)}
    # When the ratio is set to 6, as AWS plans with, it is within the limit and not near it
    assert validate(tmp_path, lines, chars_per_token=6).valid
    assert found(validate(tmp_path, lines, chars_per_token=6)) == set()


def test_chars_per_token_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="chars_per_token"):
        validate(tmp_path, valid_lines(), chars_per_token=0)


def test_a_line_too_long_to_be_a_record_is_counted_not_parsed(tmp_path):
    # Given a line longer than any record within the token limit could be
    cap = max_line_bytes(HAIKU)
    huge = b'{"messages": "' + b"x" * cap + b'"}'
    # When validated
    report = validate(tmp_path, with_line(huge, at=4))
    # Then it is one over-the-limit record and the lines after it are still checked in order
    assert found(report) == {("TOO_MANY_TOKENS", "train", 4)}
    assert report.train.records == 40
    assert report.train.bytes == sum(len(x) + 1 for x in with_line(huge, at=4))


def test_messages_are_numbered_from_one_in_messages(tmp_path):
    report = validate(tmp_path, with_line(dumps(msgs((U, "hi"), (A, ""))), at=6))
    assert "message 2 " in issues(report, "EMPTY_CONTENT")[0].message


def test_every_code_has_a_test_here_or_in_the_file_level_tests():
    covered = {code for _, _, codes in CASES for code in codes} | {
        "TOO_MANY_TOKENS",
        "NEAR_TOKEN_LIMIT",
    }
    record_codes = {
        "INVALID_JSON", "BLANK_LINE", "NOT_AN_OBJECT", "UNKNOWN_KEY", "MISSING_MESSAGES", "INVALID_TYPE",
        "MISSING_FIELD", "INVALID_ROLE", "TOO_FEW_MESSAGES", "FIRST_NOT_USER", "LAST_NOT_ASSISTANT",
        "NOT_ALTERNATING", "EMPTY_CONTENT", "RESERVED_STRING", "TOO_MANY_TOKENS", "ENCODING",
    }  # fmt: skip
    assert record_codes <= covered
    assert record_codes <= {str(c) for c in Code}


def test_report_is_json_serialisable(tmp_path):
    report = validate(tmp_path, with_line("[1, 2]", at=1))
    assert json.loads(json.dumps(report.to_dict()))["errors"][0]["code"] == "NOT_AN_OBJECT"
