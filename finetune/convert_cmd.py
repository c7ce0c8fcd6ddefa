"""``finetune convert``: rewrite a dataset into the format of the configured model.

Reads OpenAI chat, prompt/completion, Claude, bedrock-conversation-2024 (Nova, Llama 3.2) JSONL,
a JSON array of records, or CSV with named columns; writes the format of ``--model`` (or
``--to``). JSONL and CSV are streamed (one record in memory at a time); a JSON array is read
whole. The rules live in :mod:`bedrock_finetune.formats`; this module reads arguments and
files and prints the per-line report. OUT is written only when every record converts, so a
half-converted file never reaches a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU, CatalogError, ModelSpec
from bedrock_finetune.formats import (
    FORMAT_CSV,
    FORMAT_JSON_ARRAY,
    TARGET_FORMATS,
    convert_records,
    read_records,
)
from finetune.validate_cmd import UsageError, deployment_target

#: Lines listed in the report before the rest are only counted.
SHOWN_PROBLEMS = 50


def register(subparsers: Any) -> None:
    """Add the ``convert`` command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "convert",
        help="convert a dataset into the format of a model (Claude, Nova, Llama)",
        description=(
            "Convert OpenAI chat, prompt/completion, Claude, bedrock-conversation-2024 JSONL, a JSON "
            "array of records or CSV with named columns into the format of --model (or --to). Each "
            "line's changes and each line that cannot be converted are reported with its number; OUT "
            "is written only when every line converts. JSON Lines and CSV are streamed, one record at a "
            "time, whatever their size; a JSON array is read into memory whole (split a very large one "
            "into JSON Lines first). Exit status: 0 converted, 1 bad lines, 2 usage error."
        ),
    )
    parser.add_argument("input", metavar="IN", help="dataset file to read")
    parser.add_argument("output", metavar="OUT", help="JSONL file to write")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--model",
        metavar="MODEL_ID",
        help="write the format this base model is trained on (default: the deployment's base_model_id "
        f"from cdk.json, else {CLAUDE_3_HAIKU})",
    )
    target.add_argument("--to", choices=TARGET_FORMATS, help="write this format")
    parser.add_argument(
        "--from",
        dest="source_format",
        choices=("jsonl", FORMAT_JSON_ARRAY, FORMAT_CSV),
        help="input layout (default: detected from the first line); jsonl and csv are streamed, a "
        "json-array is read whole",
    )
    parser.add_argument("--system", metavar="TEXT", help="system prompt to put in every record")
    parser.add_argument(
        "--config",
        metavar="CDK_JSON",
        help="the deployment's cdk.json, for its base model and configured models (default: ./cdk.json)",
    )
    parser.set_defaults(handler=run)


def _target(args: argparse.Namespace) -> tuple[str, ModelSpec | None]:
    """The format to write: ``--to``, else that of ``--model``, else that of the deployment's model."""
    if args.to:
        return args.to, None
    model = deployment_target(getattr(args, "config", None), args.model).model
    return model.data_format, model


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
    try:
        fmt, model = _target(args)
    except (CatalogError, UsageError) as exc:
        print(f"finetune convert: {exc} (built-in: {', '.join(BUILTIN_MODELS)})", file=err)
        return 2
    layout = None if args.source_format in (None, "jsonl") else args.source_format

    bad = converted = 0
    changes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    shown = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        # Streamed: one record in memory at a time (a JSON array excepted, see read_records).
        with source.open("rb") as stream, os.fdopen(fd, "w", encoding="utf-8", newline="\n") as sink:
            for result in convert_records(read_records(stream, layout), fmt, model, args.system):
                if result.record is None:
                    bad += 1
                    if shown < SHOWN_PROBLEMS:
                        shown += 1
                        print(f"{source}:{result.line}: {result.error}", file=err)
                    continue
                formats[result.source_format or "?"] += 1
                for change in result.changes:
                    changes[change] += 1
                    if shown < SHOWN_PROBLEMS:
                        shown += 1
                        print(f"{source}:{result.line}: {change}", file=err)
                sink.write(json.dumps(result.record, ensure_ascii=False))
                sink.write("\n")
                converted += 1
        if bad:
            print(
                f"finetune convert: {bad:,} record(s) could not be converted; fix them and run again "
                f"({target} not written)",
                file=err,
            )
            return 1
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    read = ", ".join(f"{count:,} {name}" for name, count in formats.most_common()) or "nothing"
    summary = f"Read {read}" + "".join(f"; {what}: {count:,}" for what, count in changes.most_common())
    check = f"finetune validate {target}" + (f" --model {model.model_id}" if model else "")
    print(f"Converted {converted:,} records to {target} ({fmt}). {summary}. Check it with: {check}", file=out)
    return 0
