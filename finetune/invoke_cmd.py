"""``finetune invoke RUN "prompt"``: call the line's endpoint with the Converse API.

The endpoint is the line's (``reports/<run>/line.json``, ``endpoint.arn``); before a line has one,
the run's endpoint (``reports/<run>/run.json``, ``endpoint``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from finetune import runs
from finetune.output import CommandFailed, UsageError, run_command, write_json
from finetune.stack import add_stack_arguments, connect

DEFAULT_MAX_TOKENS = 512


def register(subparsers: Any) -> None:
    """Add ``invoke``."""
    parser = subparsers.add_parser(
        "invoke",
        help="call a line's endpoint (Converse API) and print the answer with token counts",
        description="Send PROMPT (or each prompt of --file) to the endpoint of line RUN with the Bedrock "
        "Converse API. Exit status 0; 1 when the run has no endpoint or a call fails; 2 for usage errors.",
    )
    parser.add_argument("run", metavar="RUN", help="the run (line) name")
    parser.add_argument("prompt", metavar="PROMPT", nargs="?", help="the user message")
    parser.add_argument("--system", help="a system prompt")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"answer length limit (default {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument(
        "--file",
        metavar="PROMPTS.jsonl",
        type=Path,
        help='one prompt per line: a JSON string, or {"prompt": ..., "system": ...}',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_stack_arguments(parser)
    parser.set_defaults(handler=lambda args: run_command("invoke", _invoke, args))


def endpoint(s3: Any, bucket: str, run: str) -> tuple[str, str]:
    """(ARN, where it was found) of the line's endpoint; CommandFailed when it has none."""
    line = runs.read_report(s3, bucket, run, runs.LINE_RECORD) or {}
    served = line.get("endpoint")
    if isinstance(served, dict) and served.get("arn"):
        return str(served["arn"]), f"reports/{run}/{runs.LINE_RECORD}"
    record = runs.read_report(s3, bucket, run, runs.RUN_RECORD) or {}
    if record.get("endpoint"):
        return str(record["endpoint"]), f"reports/{run}/{runs.RUN_RECORD}"
    raise CommandFailed(
        f"run {run} has no endpoint: neither reports/{run}/{runs.LINE_RECORD} nor reports/{run}/"
        f"{runs.RUN_RECORD} names one. A run is served once it ends 'Model in service': check it with "
        f"finetune status {run}"
    )


def prompts_of(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The prompts to send: PROMPT, or each line of --file."""
    if (args.prompt is None) == (args.file is None):
        raise UsageError("give either PROMPT or --file PROMPTS.jsonl")
    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    if args.prompt is not None:
        return [{"prompt": args.prompt, "system": args.system}]
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--file {args.file}: {exc.strerror}") from exc
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{args.file}:{number}: not JSON ({exc})") from exc
        if isinstance(item, str):
            item = {"prompt": item}
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
            raise UsageError(f'{args.file}:{number}: expected a JSON string or {{"prompt": "..."}}')
        prompts.append({"prompt": item["prompt"], "system": item.get("system", args.system)})
    if not prompts:
        raise UsageError(f"--file {args.file} has no prompts")
    return prompts


def converse(runtime: Any, model_id: str, prompt: str, system: str | None, max_tokens: int) -> dict[str, Any]:
    """One Converse call; returns the answer text, stop reason and token usage."""
    request: dict[str, Any] = {
        "modelId": model_id,
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": {"maxTokens": max_tokens},
    }
    if system:
        request["system"] = [{"text": system}]
    response = runtime.converse(**request)
    content = response.get("output", {}).get("message", {}).get("content", [])
    usage = response.get("usage", {})
    return {
        "prompt": prompt,
        "answer": "".join(block.get("text", "") for block in content if isinstance(block, dict)),
        "stop_reason": response.get("stopReason"),
        "input_tokens": usage.get("inputTokens"),
        "output_tokens": usage.get("outputTokens"),
    }


def _invoke(args: argparse.Namespace, out: TextIO) -> int:
    prompts = prompts_of(args)
    clients, stack = connect(args)
    arn, source = endpoint(clients("s3"), stack.bucket, args.run)
    runtime = clients("bedrock-runtime")
    answers = [converse(runtime, arn, p["prompt"], p["system"], args.max_tokens) for p in prompts]
    if args.json:
        write_json(
            out, "invoke", {"run": args.run, "endpoint": arn, "endpoint_from": source, "answers": answers}
        )
        return 0
    print(f"Endpoint {arn} (from {source})", file=out)
    for answer in answers:
        print("", file=out)
        if len(answers) > 1:
            print(f"> {answer['prompt']}", file=out)
        print(answer["answer"], file=out)
        print(
            f"[tokens: input {answer['input_tokens']}, output {answer['output_tokens']}; "
            f"stop: {answer['stop_reason']}]",
            file=out,
        )
    return 0
