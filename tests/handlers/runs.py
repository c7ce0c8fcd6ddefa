"""The run every handler test is about: one upload of datasets/run-1/train.jsonl, one execution."""

EXECUTION_ARN = "arn:aws:states:us-west-2:123456789012:execution:Pipeline:exec-1"
RUN = {
    "bucket": "data-bucket",
    "key": "datasets/run-1/train.jsonl",
    "etag": '"etag1"',
    "versionId": "v1",
    "run": "run-1",
}
