"""File-level and hyperparameter codes, warnings, and the report's shape."""

from __future__ import annotations

import json

import pytest

from bedrock_finetune.dataset import (
    MAX_HYPERPARAMETERS_BYTES,
    MAX_ISSUES_PER_CODE,
    HyperparametersSource,
    LocalFile,
    max_lines,
    validate_run,
)
from tests.unit.dataset_builders import (
    HAIKU,
    MIN_RECORDS,
    MemorySource,
    conversation,
    dumps,
    found,
    small_model,
    valid_lines,
    validate,
    with_line,
    write_jsonl,
)

# ---- files -------------------------------------------------------------------------------------


def test_empty_training_file(tmp_path):
    report = validate(tmp_path, [])
    assert found(report) == {("FILE_EMPTY", "train", None)}
    assert report.train.records == 0 and report.train.bytes == 0


def test_empty_validation_file(tmp_path):
    report = validate(tmp_path, valid_lines(), validation=[])
    assert found(report) == {("FILE_EMPTY", "validation", None)}


def test_file_of_blank_lines_is_empty_and_each_blank_line_but_the_last_reported(tmp_path):
    report = validate(tmp_path, ["", " ", ""])
    assert found(report) == {
        ("BLANK_LINE", "train", 1),
        ("BLANK_LINE", "train", 2),
        ("FILE_EMPTY", "train", None),
    }


def test_fewer_records_than_the_minimum(tmp_path):
    report = validate(tmp_path, valid_lines(MIN_RECORDS - 1))
    assert found(report) == {("TOO_FEW_RECORDS", "train", None)}
    assert "31 records" in report.errors[0].message and "at least 32" in report.errors[0].message


def test_exactly_the_minimum_is_valid(tmp_path):
    assert validate(tmp_path, valid_lines(MIN_RECORDS)).valid


def test_validation_file_has_no_minimum(tmp_path):
    # The AWS sample applies training limits to the validation file; a single record is fine.
    assert validate(tmp_path, valid_lines(), validation=valid_lines(1, start=900)).valid


def test_too_many_training_records(tmp_path):
    report = validate(tmp_path, valid_lines(HAIKU.limits.max_train_records + 1))
    assert found(report) == {("TOO_MANY_RECORDS", "train", None)}


def test_too_many_validation_records(tmp_path):
    report = validate(
        tmp_path,
        valid_lines(100),
        validation=valid_lines(HAIKU.limits.max_validation_records + 1, start=10_000),
    )
    assert found(report) == {("TOO_MANY_RECORDS", "validation", None)}


def test_too_many_records_in_total(tmp_path):
    report = validate(tmp_path, valid_lines(9_500), validation=valid_lines(600, start=20_000))
    assert found(report) == {("TOO_MANY_TOTAL_RECORDS", "validation", None)}
    assert "10,100" in report.errors[0].message


def test_file_too_large_by_its_declared_size_is_not_read(tmp_path, small_model_factory):
    # Given a model whose training limit is 1 KiB and a file that says it is bigger
    model = small_model_factory(max_train_bytes=1024)
    data = ("\n".join(valid_lines(40)) + "\n").encode()
    source = MemorySource(data)
    # When validated
    report = validate_run(source, None, None, model)
    # Then the size is reported without reading the lines
    assert found(report) == {("FILE_TOO_LARGE", "train", None)}
    assert "not checked" in report.errors[0].message
    assert report.train.bytes == len(data)


def test_file_too_large_by_the_bytes_read(small_model_factory):
    # Given a source that does not know its size, as a stream may not
    model = small_model_factory(max_validation_bytes=1024)
    train = MemorySource(("\n".join(valid_lines()) + "\n").encode())
    data = ("\n".join(valid_lines(40, start=100)) + "\n").encode()
    report = validate_run(train, MemorySource(data, sized=False), None, model)
    # Then the bytes read decide, and the lines were checked too
    assert found(report) == {("FILE_TOO_LARGE", "validation", None)}
    assert report.validation is not None and report.validation.records == 40


class _CountingSource(MemorySource):
    """A source that counts the chunks it hands out and whether it was closed."""

    def __init__(self, data: bytes, **kwargs):
        super().__init__(data, **kwargs)
        self.chunks_read = 0
        self.closed = False

    def open(self):
        try:
            for chunk in super().open():
                self.chunks_read += 1
                yield chunk
        finally:
            self.closed = True


def test_reading_stops_after_twice_the_maximum_records_in_lines(small_model_factory):
    # Given a model that takes at most 40 training records, and a training file of 40 records
    # followed by blank lines far past 80 lines (a billion, in the real case)
    model = small_model_factory(min_train_records=1, max_train_records=40)
    assert max_lines(model, "train") == 80
    data = ("\n".join(valid_lines(40)) + "\n" * 100_000).encode()
    source = _CountingSource(data, chunk=1024)
    # When validated
    report = validate_run(source, None, None, model)
    # Then reading stopped at the bound, long before the end of the file, and closed the source
    assert source.closed
    assert source.chunks_read * 1024 < len(data) // 10
    # with one file-level error that names the bound, and the blank lines before it reported
    assert report.error_counts == {"TOO_MANY_LINES": 1, "BLANK_LINE": 40}
    (too_many,) = [issue for issue in report.errors if issue.code == "TOO_MANY_LINES"]
    assert (too_many.file, too_many.line) == ("train", None)
    assert "more than 80 lines (blank lines included)" in too_many.message
    assert "2 times the 40 records" in too_many.message
    assert "delete blank lines" in too_many.message
    # the records read are counted, with their statistics, and the size is the declared one
    assert report.train.records == 40 and report.train.bytes == len(data)
    assert report.train_statistics is not None and report.train_statistics.records == 40


def test_a_file_at_the_line_bound_is_read_to_the_end(small_model_factory):
    # Given exactly twice the maximum records in lines: 40 records and 40 blank lines
    model = small_model_factory(min_train_records=1, max_train_records=40)
    data = ("\n".join(valid_lines(40)) + "\n" * 41).encode()
    report = validate_run(MemorySource(data), None, None, model)
    # Then every line is checked and the usual codes apply (the last line alone may be blank)
    assert report.error_counts == {"BLANK_LINE": 39}


def test_too_many_records_past_the_line_bound_is_one_error(small_model_factory):
    # Given a validation file of more than twice the maximum records, all valid
    model = small_model_factory(min_train_records=1, max_validation_records=10)
    train = MemorySource(("\n".join(valid_lines(40)) + "\n").encode())
    validation = MemorySource(("\n".join(valid_lines(25, start=100)) + "\n").encode(), sized=False)
    report = validate_run(train, validation, None, model)
    # Then TOO_MANY_LINES says it, without a record count that is only a lower bound
    assert found(report) == {("TOO_MANY_LINES", "validation", None)}
    assert report.validation is not None and report.validation.records == 20
    assert "more than 20 lines" in report.errors[0].message


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        pytest.param(b"", set(), id="no final newline"),
        pytest.param(b"\n", set(), id="one final newline"),
        pytest.param(b"\n\n", set(), id="one trailing blank line"),
        pytest.param(b"\n \r\n", set(), id="one trailing whitespace line"),
        pytest.param(b"\n\n\n", {("BLANK_LINE", "train", 41)}, id="two trailing blank lines"),
        pytest.param(b"\r\n", set(), id="CRLF"),
    ],
)
def test_final_newline(tmp_path, ending, expected):
    body = "\n".join(valid_lines(40)).encode()
    if ending == b"\r\n":
        body = body.replace(b"\n", b"\r\n")
    path = tmp_path / "train.jsonl"
    path.write_bytes(body + ending)
    report = validate_run(LocalFile(path), None, None, HAIKU)
    assert found(report) == expected
    assert report.train.records == 40
    assert report.train.bytes == len(body + ending)


def test_chunk_boundaries_do_not_change_the_report():
    # Given the same bytes served whole and one byte at a time
    data = b"\n".join(with_line(b"\xef\xbb\xbf{}", at=1)) + b"\n\n" + b"caf\xe9\n[]"
    whole = validate_run(MemorySource(data, chunk=1 << 20), None, None, HAIKU)
    tiny = validate_run(MemorySource(data, chunk=1), None, None, HAIKU)
    # Then the reports are identical
    assert tiny.to_dict() == whole.to_dict()
    assert found(whole) >= {
        ("ENCODING", "train", 1),
        ("BLANK_LINE", "train", 41),
        ("NOT_AN_OBJECT", "train", 43),
    }


# ---- hyperparameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b"{", id="broken json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe{}", id="not utf-8"),
        pytest.param(b'{"epochCount": 2}' + b" " * MAX_HYPERPARAMETERS_BYTES, id="too large"),
    ],
)
def test_invalid_hyperparameters_file(tmp_path, data):
    report = validate(tmp_path, valid_lines(), hyperparameters=data)
    assert found(report) == {("INVALID_HYPERPARAMETERS_FILE", "hyperparameters", None)}
    assert "epochCount" in report.errors[0].message  # says what is allowed


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"epochs": 2}, "UNKNOWN_HYPERPARAMETER"),
        ({"epochCount": "two"}, "HYPERPARAMETER_INVALID"),
        ({"epochCount": 2.5}, "HYPERPARAMETER_INVALID"),
        ({"batchSize": True}, "HYPERPARAMETER_INVALID"),
        ({"learningRateMultiplier": None}, "HYPERPARAMETER_INVALID"),
        ({"learningRateMultiplier": 3}, "HYPERPARAMETER_OUT_OF_RANGE"),
        ({"epochCount": "0"}, "HYPERPARAMETER_OUT_OF_RANGE"),
    ],
)
def test_hyperparameter_problems(tmp_path, values, code):
    report = validate(tmp_path, valid_lines(), hyperparameters=values)
    assert found(report) == {(code, "hyperparameters", None)}


def test_each_bad_hyperparameter_is_reported(tmp_path):
    report = validate(tmp_path, valid_lines(), hyperparameters={"foo": 1, "epochCount": 99, "batchSize": "x"})
    assert sorted(str(i.code) for i in report.errors) == [
        "HYPERPARAMETER_INVALID",
        "HYPERPARAMETER_OUT_OF_RANGE",
        "UNKNOWN_HYPERPARAMETER",
    ]


def test_effective_hyperparameters_merge_defaults_with_the_run_and_accept_numeric_strings(tmp_path):
    report = validate(
        tmp_path,
        valid_lines(),
        hyperparameters={"epochCount": "3", "learningRateMultiplier": "0.5"},
        defaults={"epochCount": 1, "batchSize": 16},
    )
    assert report.valid
    assert report.hyperparameters == {"epochCount": 3, "batchSize": 16, "learningRateMultiplier": 0.5}
    assert report.epochs == 3


# ---- warnings -------------------------------------------------------------------------------


def test_duplicate_record_is_reported_at_the_later_line(tmp_path):
    lines = valid_lines(40)
    lines[9] = lines[2]
    report = validate(tmp_path, lines)
    assert found(report) == {("DUPLICATE_RECORD", "train", 10)}
    assert "line 3" in report.warnings[0].message
    assert report.valid


def test_duplicates_are_found_whatever_the_formatting(tmp_path):
    # Given the same record with other key order, whitespace and escapes
    record = conversation(3, system="café")
    other = json.dumps(
        {
            "messages": [{"content": m["content"], "role": m["role"]} for m in record["messages"]],
            "system": "café",
        },
        ensure_ascii=True,
        indent=None,
        separators=(" ,", " : "),
    )
    lines = [*valid_lines(40), dumps(record), other]
    report = validate(tmp_path, lines)
    assert found(report) == {("DUPLICATE_RECORD", "train", 42)}


def test_records_that_differ_only_in_system_are_not_duplicates(tmp_path):
    lines = [*valid_lines(40), dumps(conversation(1, system="a")), dumps(conversation(1, system="b"))]
    assert found(validate(tmp_path, lines)) == set()


def test_validation_overlap_is_reported_at_the_validation_line(tmp_path):
    train = valid_lines(40)
    validation = [*valid_lines(3, start=1000), train[7]]
    report = validate(tmp_path, train, validation=validation)
    assert found(report) == {("VALIDATION_OVERLAP", "validation", 4)}
    assert "training line 8" in report.warnings[0].message


class CountedSource(MemorySource):
    """A source that counts how many times it is read."""

    def __init__(self, data: bytes, uri: str = "memory.jsonl") -> None:
        super().__init__(data, uri=uri)
        self.reads = 0

    def open(self):
        self.reads += 1
        return super().open()


def long_record(i: int, text: str) -> str:
    """A record whose user text is long (longer than a sketch keeps whole)."""
    return dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": f"a{i}"}]})


def test_a_file_without_repeated_records_is_read_once_and_one_with_them_twice():
    # Given a file of distinct records, and the same file with one record repeated
    lines = valid_lines(40)
    distinct, repeated = (
        CountedSource("\n".join(lines).encode()),
        CountedSource("\n".join([*lines, lines[4]]).encode()),
    )
    # When both are validated
    assert not validate_run(distinct, None, None, HAIKU).warnings
    report = validate_run(repeated, None, None, HAIKU)
    # Then the first is read once, the second a second time to compare the candidates in full
    assert (distinct.reads, repeated.reads) == (1, 2)
    assert found(report) == {("DUPLICATE_RECORD", "train", 41)}


def test_long_texts_of_the_same_length_are_compared_in_full():
    # Given long texts that differ only in their middle, and one true copy
    base = "x" * 100 + "{}" + "y" * 100
    lines = [*valid_lines(40), long_record(0, base.format("ab")), long_record(0, base.format("cd"))]
    lines.append(long_record(0, base.format("ab")))
    report = validate_run(MemorySource("\n".join(lines).encode()), None, None, HAIKU)
    # Then only the copy is a duplicate, of the record it copies
    assert found(report) == {("DUPLICATE_RECORD", "train", 43)}
    assert "line 41" in report.warnings[0].message


def test_warnings_keep_the_order_of_reading(tmp_path):
    # Given duplicates and records near the token limit on interleaved lines, in both files
    model = small_model(max_tokens_per_record=30)
    near = dumps(conversation(0, system="s" * 60))  # 82 characters: 28 tokens of 30
    lines = [*valid_lines(40), near, valid_lines(1)[0], near, valid_lines(1, start=3)[0]]
    report = validate(tmp_path, lines, validation=[valid_lines(1, start=3)[0], near], model=model)
    # Then the warnings are listed by file, then line, then as one record's checks run
    assert [(w.code, w.file, w.line) for w in report.warnings] == [
        ("NEAR_TOKEN_LIMIT", "train", 41),
        ("DUPLICATE_RECORD", "train", 42),
        ("NEAR_TOKEN_LIMIT", "train", 43),
        ("DUPLICATE_RECORD", "train", 43),
        ("DUPLICATE_RECORD", "train", 44),
        ("VALIDATION_OVERLAP", "validation", 1),
        ("NEAR_TOKEN_LIMIT", "validation", 2),
        ("VALIDATION_OVERLAP", "validation", 2),
    ]


def test_early_stopping_without_validation(tmp_path):
    report = validate(tmp_path, valid_lines(), hyperparameters={"earlyStoppingThreshold": 0.01})
    assert found(report) == {("EARLY_STOPPING_WITHOUT_VALIDATION", "hyperparameters", None)}
    assert report.valid


def test_early_stopping_with_validation_is_fine(tmp_path):
    report = validate(
        tmp_path,
        valid_lines(),
        validation=valid_lines(5, start=100),
        hyperparameters={"earlyStoppingPatience": 3},
    )
    assert found(report) == set()


def test_early_stopping_from_configured_defaults_also_warns(tmp_path):
    report = validate(tmp_path, valid_lines(), defaults={"earlyStoppingPatience": 3})
    assert found(report) == {("EARLY_STOPPING_WITHOUT_VALIDATION", "hyperparameters", None)}


# ---- report ---------------------------------------------------------------------------------


def test_lists_are_capped_per_code_but_counts_are_complete(tmp_path):
    # Given 150 lines that are not JSON and 120 duplicates
    lines = valid_lines(40) + ["{"] * 150 + [valid_lines(1)[0]] * 120
    report = validate(tmp_path, lines)
    data = report.to_dict()
    assert data["error_counts"] == {"INVALID_JSON": 150}
    assert data["warning_counts"] == {"DUPLICATE_RECORD": 120}
    assert len(data["errors"]) == MAX_ISSUES_PER_CODE
    assert len(data["warnings"]) == MAX_ISSUES_PER_CODE
    assert data["errors"][0]["line"] == 41


def test_report_shape(tmp_path):
    # Given a run with three records of known size: 30, 60 and 90 characters
    def turn(question: int, answer: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": "q" * question}, {"role": "assistant", "content": "a" * answer}]

    lines = [
        dumps({"messages": turn(10, 20)}),
        dumps({"system": "s" * 30, "messages": turn(10, 20)}),
        dumps({"messages": turn(30, 30) + turn(10, 20)}),
    ]
    report = validate(tmp_path, lines, hyperparameters={"epochCount": 4})
    data = report.to_dict()
    # Then it has every documented part
    assert set(data) == {
        "valid", "model", "chars_per_token", "files", "errors", "warnings", "error_counts",
        "warning_counts", "hyperparameters", "statistics", "epochs", "estimated_billable_tokens",
    }  # fmt: skip
    assert data["valid"] is False  # three records are too few
    assert data["model"] == HAIKU.model_id
    assert data["files"]["train"] == {
        "path": str(tmp_path / "train.jsonl"),
        "records": 3,
        "bytes": report.train.bytes,
    }
    assert data["files"]["validation"] is None
    assert data["files"]["hyperparameters"] == {"path": "hyperparameters.json"}
    assert data["errors"] == [
        {"code": "TOO_FEW_RECORDS", "file": "train", "line": None, "message": report.errors[0].message}
    ]
    stats = data["statistics"]["train"]
    assert stats["records"] == 3
    assert stats["messages_per_record"] == {"min": 2, "mean": 2.67, "max": 4}
    assert stats["estimated_tokens_per_record"] == {"min": 10, "median": 20, "p95": 30, "max": 30}
    assert stats["estimated_tokens_total"] == 60
    assert data["statistics"]["validation"] is None
    assert data["hyperparameters"] == {"epochCount": 4}
    assert data["estimated_billable_tokens"] == 60 * 4


def test_billable_tokens_use_the_model_default_epochs(tmp_path):
    report = validate(tmp_path, valid_lines(40))
    assert report.epochs == 2  # Claude 3 Haiku's documented default
    assert report.train_statistics is not None
    assert report.estimated_billable_tokens == report.train_statistics.tokens_total * 2


def test_summary_is_small(tmp_path):
    lines = valid_lines(40) + ["{"] * 20
    summary = validate(tmp_path, lines).summary()
    assert summary["valid"] is False
    assert summary["error_counts"] == {"INVALID_JSON": 20}
    assert len(summary["first_errors"]) == 5
    assert len(json.dumps(summary)) < 4000


def test_hyperparameters_source_reads_at_most_just_over_the_limit(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_bytes(b" " * (MAX_HYPERPARAMETERS_BYTES * 3))
    assert len(HyperparametersSource.from_path(path).data) == MAX_HYPERPARAMETERS_BYTES + 1


def test_local_file_reports_its_size(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", valid_lines(3))
    assert LocalFile(path).size == path.stat().st_size
    assert LocalFile(tmp_path / "missing.jsonl").size is None


def test_percentiles_past_the_sample_size_come_from_a_repeatable_sample(monkeypatch):
    # Given a sample size smaller than the file
    import bedrock_finetune.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "STATISTICS_SAMPLE_SIZE", 10)
    data = ("\n".join(dumps(conversation(i, turns=1 + i % 4)) for i in range(60)) + "\n").encode()
    first = validate_run(MemorySource(data), None, None, HAIKU).train_statistics
    second = validate_run(MemorySource(data), None, None, HAIKU).train_statistics
    # Then the statistics say so, the totals stay exact, and the sample is the same every time
    assert first is not None and first.sampled and first.records == 60
    assert first == second
    assert first.messages_min == 2 and first.messages_max == 8
