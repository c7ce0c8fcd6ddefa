"""Dataset sources in S3 for the validator: the object is streamed, never downloaded whole.

The ValidateDataset Lambda passes :class:`S3Object` sources to
:func:`bedrock_finetune.dataset.validate_run`. Each ``open()`` is one ``GetObject`` whose body is
read in chunks of ``chunk_size`` bytes (``StreamingBody.iter_chunks``), so memory stays at about
one chunk plus one line whatever the object's size, and nothing is written to /tmp.
``iter_lines()`` is deliberately not used: it splits on ``\\r`` and other line breaks too and drops
the information the validator needs (blank lines, the final newline).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from bedrock_finetune.dataset import MAX_HYPERPARAMETERS_BYTES, HyperparametersSource

__all__ = ["S3Client", "S3Object", "read_hyperparameters"]

_CHUNK_SIZE = 1024 * 1024


class S3Client(Protocol):
    """The one call the sources make; a boto3 S3 client (real, moto or stubbed) satisfies it."""

    def get_object(self, **kwargs: Any) -> Mapping[str, Any]: ...


class S3Object:
    """A JSONL object in S3, streamed chunk by chunk.

    ``size`` is the object's size when known up front (for example ``detail.object.size`` from
    the S3 event); it lets the validator reject an oversized file without reading it. After
    ``open()`` it is updated from the response's ``ContentLength``.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        size: int | None = None,
        chunk_size: int = _CHUNK_SIZE,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        self._size = size
        self._chunk_size = chunk_size

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def size(self) -> int | None:
        return self._size

    def open(self) -> Iterator[bytes]:
        """Yield the object's bytes in chunks; the connection is released when iteration ends."""
        response = self._client.get_object(**self._request())
        length = response.get("ContentLength")
        if isinstance(length, int):
            self._size = length
        body = response["Body"]
        try:
            yield from body.iter_chunks(self._chunk_size)
        finally:
            body.close()

    def _request(self) -> dict[str, str]:
        request = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            request["VersionId"] = self.version_id
        return request

    def __repr__(self) -> str:
        version = f", version_id={self.version_id!r}" if self.version_id else ""
        return f"S3Object({self.uri!r}{version})"


def read_hyperparameters(
    client: S3Client, bucket: str, key: str, version_id: str | None = None
) -> HyperparametersSource:
    """Read a run's ``hyperparameters.json``, at most one byte past the validator's size limit.

    An object bigger than the limit is not read further; the validator reports it as
    INVALID_HYPERPARAMETERS_FILE. S3 errors (for example NoSuchKey) propagate to the caller.
    """
    request = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    body = client.get_object(**request)["Body"]
    try:
        data = body.read(MAX_HYPERPARAMETERS_BYTES + 1)
    finally:
        body.close()
    return HyperparametersSource(uri=f"s3://{bucket}/{key}", data=data)
