"""Reports under ``reports/<run>/``: one writer for every JSON document the pipeline keeps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def write_json(s3: Any, bucket: str, key: str, document: Mapping[str, Any]) -> str:
    """Write ``document`` as indented JSON to ``s3://bucket/key``; returns that URI."""
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=2, default=str).encode(),
        ContentType="application/json",
    )
    return f"s3://{bucket}/{key}"
