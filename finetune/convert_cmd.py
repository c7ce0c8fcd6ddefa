"""``finetune convert``: turn ``{"prompt", "completion"}`` JSONL into Claude's conversation format.

The prompt/completion format is the one Bedrock uses for other models' fine-tuning. Each line
becomes ``{"system"?: TEXT, "messages": [{"role": "user", "content": prompt},
{"role": "assistant", "content": completion}]}``, as in the AWS blog's conversion. Output is
written only when every line converts: a bad line is reported with its number and OUT is left
untouched, so a half-converted file never reaches a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

_KEYS = frozenset({"prompt", "completion"})
#: Bad lines listed before the rest are only counted.
SHOWN_PROBLEMS = 50


class ConversionError(ValueError):
    """One input line that cannot be converted; the message says why and how to fix it."""


def register(subparsers: Any) -> None:
    """Add the ``convert`` command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "convert",
        help='convert {"prompt", "completion"} JSONL into the Claude conversation format',
        description=(
            'Convert a {"prompt", "completion"} JSONL file into Claude\'s {"system", "messages"} '
            "format. Bad lines are reported with their line numbers; OUT is written only when every "
            "line converts. Exit status: 0 converted, 1 bad lines, 2 usage error."
        ),
    )
    parser.add_argument("input", metavar="IN", help="prompt/completion JSONL file")
    parser.add_argument("output", metavar="OUT", help="file to write (Claude conversation JSONL)")
    parser.add_argument("--system", metavar="TEXT", help="system prompt to put in every record")
    parser.set_defaults(handler=run)


def convert_line(text: str, system: str | None) -> dict[str, Any]:
    """One prompt/completion record as a Claude conversation record; ConversionError if bad."""
    try:
        source = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConversionError(f"not valid JSON ({exc}); each line must be one JSON object") from exc
    if type(source) is not dict:
        raise ConversionError('not a JSON object; expected {"prompt": "...", "completion": "..."}')
    missing = sorted(_KEYS - source.keys())
    extra = sorted(source.keys() - _KEYS)
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(map(repr, extra))}"] if extra else []
        )
        raise ConversionError(f"{'; '.join(parts)}: a line must have exactly 'prompt' and 'completion'")
    for key in ("prompt", "completion"):
        value = source[key]
        if type(value) is not str:
            raise ConversionError(f"'{key}' is not a string; make it text")
        if not value.strip():
            raise ConversionError(f"'{key}' is empty; give it text or drop the line")
    record: dict[str, Any] = {} if system is None else {"system": system}
    record["messages"] = [
        {"role": "user", "content": source["prompt"]},
        {"role": "assistant", "content": source["completion"]},
    ]
    return record


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            yield number, raw.rstrip(b"\r\n")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        print(f"finetune convert: {source}: no such file", file=err)
        return 2
    if target.exists() and target.resolve() == source.resolve():
        print("finetune convert: OUT must differ from IN", file=err)
        return 2
    if not target.parent.is_dir():
        print(f"finetune convert: {target.parent}: no such folder for OUT", file=err)
        return 2

    bad = 0
    converted = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as sink:
            for number, raw in _lines(source):
                if not raw.strip():
                    continue  # blank lines carry nothing; the output has none
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                    record = convert_line(text, args.system)
                except (UnicodeDecodeError, ConversionError) as exc:
                    bad += 1
                    if bad <= SHOWN_PROBLEMS:
                        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
                        print(f"{source}:{number}: {reason}", file=err)
                    continue
                sink.write(json.dumps(record, ensure_ascii=False))
                sink.write("\n")
                converted += 1
        if bad:
            if bad > SHOWN_PROBLEMS:
                print(f"... and {bad - SHOWN_PROBLEMS:,} more bad lines", file=err)
            print(
                f"finetune convert: {bad:,} bad line(s); fix them and run again ({target} not written)",
                file=err,
            )
            return 1
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"Converted {converted:,} records to {target}. Check it with: finetune validate {target}", file=out)
    return 0
