"""The project stands alone: no file cites material outside the repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def test_no_file_refers_to_material_outside_the_repository() -> None:
    """Facts cite public pages; nothing points at a sibling folder users never have."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outside = ("../" + "shared", "shared/" + "reference")  # split so that this file does not match itself
    offenders = [
        name
        for name in files
        if (REPOSITORY / name).is_file()
        and any(marker in (REPOSITORY / name).read_text(errors="replace") for marker in outside)
    ]
    assert offenders == []
