"""Property tests: whatever the input, the validator returns a consistent report and never crashes."""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_finetune.dataset import (
    ERROR_CODES,
    WARNING_CODES,
    HyperparametersSource,
    _split_lines,
    _wanted_lines,
    validate_run,
)
from tests.unit.dataset_builders import HAIKU, MemorySource

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "User", ""]) | json_values
contents = st.text(max_size=30) | st.sampled_from(["\nHuman: x", "ok\nAssistant: y", " ", ""]) | json_values
messages = st.fixed_dictionaries({}, optional={"role": roles, "content": contents, "name": json_values})
records = st.fixed_dictionaries(
    {},
    optional={
        "system": st.text(max_size=20) | json_values,
        "messages": st.lists(messages | json_values, max_size=5) | json_values,
        "extra": json_values,
    },
)


def check_report(report, lines_hint: int | None = None) -> None:
    data = report.to_dict()
    json.dumps(data)  # serialisable
    assert data["valid"] == (not data["error_counts"])
    assert {i["code"] for i in data["errors"]} <= {str(c) for c in ERROR_CODES}
    assert {i["code"] for i in data["warnings"]} <= {str(c) for c in WARNING_CODES}
    for key, items in (("error_counts", data["errors"]), ("warning_counts", data["warnings"])):
        for code, count in data[key].items():
            assert min(count, 100) == sum(1 for i in items if i["code"] == code)
    if lines_hint is not None:
        assert all(i["line"] is None or 1 <= i["line"] <= lines_hint for i in data["errors"])


@SETTINGS
@given(data=st.binary(max_size=3000), chunk=st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_always_give_a_report(data, chunk):
    report = validate_run(MemorySource(data, chunk=chunk), MemorySource(data[::-1]), None, HAIKU)
    check_report(report, lines_hint=data.count(b"\n") + 1)
    assert report.train.bytes == len(data)


@SETTINGS
@given(values=st.lists(json_values, max_size=20))
def test_arbitrary_json_lines_always_give_a_report(values):
    data = "\n".join(json.dumps(v) for v in values).encode()
    check_report(validate_run(MemorySource(data), None, None, HAIKU), lines_hint=max(1, len(values)))


@SETTINGS
@given(values=st.lists(records, min_size=1, max_size=20), chunk=st.integers(min_value=1, max_value=200))
def test_arbitrary_record_like_objects_always_give_a_report(values, chunk):
    data = "\n".join(json.dumps(v, ensure_ascii=False) for v in values).encode()
    report = validate_run(MemorySource(data, chunk=chunk), None, None, HAIKU)
    check_report(report, lines_hint=len(values))
    # Chunking never changes the verdict
    assert report.to_dict() == validate_run(MemorySource(data), None, None, HAIKU).to_dict()


@SETTINGS
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_hyperparameters_always_give_a_report(raw):
    train = MemorySource(b'{"messages": []}')
    check_report(validate_run(train, None, HyperparametersSource("hp.json", raw), HAIKU))


@st.composite
def chunked(draw, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary places."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@SETTINGS
@given(data=st.data(), raw=st.lists(st.binary(max_size=12), max_size=12), cap=st.integers(1, 16))
def test_the_second_read_finds_the_same_lines_as_the_first(data, raw, cap):
    # The second read of duplicate detection walks to the lines it wants without copying the
    # others: whatever the chunking, it yields exactly what the first read's splitter yields.
    blob = b"\n".join(line.replace(b"\n", b"") for line in raw) + data.draw(st.sampled_from([b"", b"\n"]))
    lines = list(enumerate(_split_lines([blob], cap), start=1))
    wanted = data.draw(st.sets(st.integers(1, len(lines) + 2)))
    expected = [(number, line) for number, (line, _) in lines if number in wanted and line is not None]
    assert list(_wanted_lines(data.draw(chunked(blob)), wanted, cap)) == expected
