"""Every AWS CLI example in the docs names its Region: Bedrock fine-tuning is in a few Regions only."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: An AWS CLI command: in a code block, or in inline code (`aws bedrock ...`), with a subcommand.
COMMAND = re.compile(r"(?:^|`|\$\(|\| )\s*(aws (?:--[a-z-]+ \S+ )*[a-z0-9-]+ [a-z0-9-]+[^`\n]*)")


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        # A command continued on the next line (a trailing backslash) is one command.
        text = text.replace("\\\n", " ")
        for line in text.splitlines():
            for match in COMMAND.finditer(line):
                found.append((path.name, match.group(1)))
    return found


def test_the_docs_have_aws_cli_examples() -> None:
    assert len(_examples()) >= 5


def test_every_aws_cli_example_carries_region() -> None:
    missing = [
        f"{name}: {command}"
        for name, command in _examples()
        # prose that names a command without running it ("aws stepfunctions stop-execution")
        if "--" in command and "--region" not in command
    ]
    assert missing == []
