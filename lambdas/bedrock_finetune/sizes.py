"""Byte sizes for people: one formatter for the validator's messages and the CLI's summary."""

from __future__ import annotations

_UNITS = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def human_bytes(size: int) -> str:
    """``size`` in the largest binary unit it reaches, one decimal: ``1.5 MiB``, ``512 bytes``."""
    for unit, scale in _UNITS:
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
