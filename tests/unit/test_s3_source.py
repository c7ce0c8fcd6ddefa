"""The S3 source streams: validating a large object uses a small fraction of its size in memory.

The memory test talks to a moto S3 server in a child process over HTTP, as the Lambda talks to S3.
In-process ``moto.mock_aws`` cannot show streaming: it hands over a body that already holds the
whole object, and reading it all allocates nothing new, so a full read and a streamed read would
measure the same. Over HTTP a full read must allocate the object, and the test checks it does.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bedrock_finetune.dataset import MAX_HYPERPARAMETERS_BYTES, validate_run
from bedrock_finetune.s3_source import S3Object, read_hyperparameters
from tests.unit.dataset_builders import HAIKU

BUCKET = "datasets-bucket"
MB = 1024 * 1024


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client


def big_jsonl(target_bytes: int) -> tuple[bytes, int]:
    """Distinct ~10 KB conversations up to ``target_bytes``; returns (data, records)."""
    filler = "lorem ipsum dolor sit amet, " * 180
    lines = []
    size = 0
    while size < target_bytes:
        n = len(lines)
        record = {
            "messages": [
                {"role": "user", "content": f"[{n}] {filler}"},
                {"role": "assistant", "content": filler},
            ]
        }
        line = json.dumps(record).encode()
        lines.append(line)
        size += len(line) + 1
    return b"\n".join(lines) + b"\n", len(lines)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[Any]:
    """An S3 client for a moto server running in a child process (its memory is not ours)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the moto server did not start")
                time.sleep(0.1)
        client = boto3.client(
            "s3",
            region_name="us-west-2",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # moto's dummy credentials
        )
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client
    finally:
        server.terminate()
        server.wait(timeout=10)


def peak_while(action: Any) -> tuple[Any, int]:
    """Run ``action`` and return its result and the peak of Python allocations it caused."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        result = action()
        return result, tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_validation_streams_the_object(s3_server):
    # Given a 64 MB training object in S3
    data, records = big_jsonl(64 * MB)
    s3_server.put_object(Bucket=BUCKET, Key="datasets/big/train.jsonl", Body=data)
    size = len(data)
    del data
    source = S3Object(s3_server, BUCKET, "datasets/big/train.jsonl")
    # When it is validated through an S3Object source
    report, used = peak_while(lambda: validate_run(source, None, None, HAIKU))
    # Then every record was read and checked
    assert report.train.records == records
    assert report.train.bytes == size
    assert report.train.path == f"s3://{BUCKET}/datasets/big/train.jsonl"
    assert report.valid, report.errors[:3]
    # And the memory it took is far below the object's size
    assert used < size / 10, f"peak {used / MB:.1f} MB for a {size / MB:.0f} MB object"
    # While the same probe sees a naive full read take at least the object's size
    _, naive = peak_while(
        lambda: len(s3_server.get_object(Bucket=BUCKET, Key="datasets/big/train.jsonl")["Body"].read())
    )
    assert naive >= size


def test_s3_object_uses_the_version_and_learns_its_size(s3):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=BUCKET, Key="train.jsonl", Body=b"old\n")["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="train.jsonl", Body=b"newer content\n")
    source = S3Object(s3, BUCKET, "train.jsonl", version_id=first, chunk_size=2)
    assert source.size is None
    assert b"".join(source.open()) == b"old\n"
    assert source.size == 4
    assert source.uri == f"s3://{BUCKET}/train.jsonl"


def test_read_hyperparameters_stops_after_the_limit(s3):
    s3.put_object(Bucket=BUCKET, Key="hp.json", Body=b'{"epochCount": 2}')
    s3.put_object(Bucket=BUCKET, Key="huge.json", Body=b" " * (MAX_HYPERPARAMETERS_BYTES * 4))
    assert read_hyperparameters(s3, BUCKET, "hp.json").data == b'{"epochCount": 2}'
    huge = read_hyperparameters(s3, BUCKET, "huge.json")
    assert len(huge.data) == MAX_HYPERPARAMETERS_BYTES + 1
    assert huge.uri == f"s3://{BUCKET}/huge.json"
