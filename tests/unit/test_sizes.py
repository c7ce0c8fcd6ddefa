"""One byte formatter for the validator's messages and the CLI's summary."""

from __future__ import annotations

import pytest

from bedrock_finetune.sizes import human_bytes


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024**2, "10.0 MiB"),
        (10 * 1024**3, "10.0 GiB"),
    ],
)
def test_byte_sizes_read_in_binary_units(size, text):
    assert human_bytes(size) == text
