"""``finetune local`` and ``finetune local-server``: the CLI side of the local emulation."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from finetune.local.defaults import DEFAULT_SCALE, SERVER_SCALE
from finetune.local.scenarios import SCENARIOS


def register(subparsers: Any) -> None:
    """Add the ``local`` and ``local-server`` commands to the CLI's sub-parsers."""
    local = subparsers.add_parser(
        "local",
        help="run the real pipeline on a run folder, offline, in an emulated AWS",
        description=(
            "Synthesize the CDK app, deploy the template into an in-process AWS emulation (moto), "
            "upload RUN_DIR to the emulated bucket (the upload of train.jsonl starts the run through "
            "the deployed EventBridge rule) and follow the real state machine and handlers to the end. "
            "With --destroy, the stack is then deleted as 'cdk destroy' does, its teardown included. "
            "Exit status 0 when the execution succeeded (and the stack was deleted), 1 when not, "
            "2 for usage errors."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n" + "\n".join(f"  {s.name:<26}{s.description}" for s in SCENARIOS.values()),
    )
    local.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        type=Path,
        help="folder with train.jsonl (+ optional "
        "validation.jsonl, hyperparameters.json); its name is the run name",
    )
    local.add_argument(
        "--scenario",
        choices=list(SCENARIOS),
        default="ok",
        help="how the emulated Bedrock behaves (default: ok)",
    )
    local.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_SCALE,
        help=f"real seconds per AWS second for waits and back-off (default {DEFAULT_SCALE:g})",
    )
    _add_context_argument(local)
    local.add_argument(
        "--destroy",
        action="store_true",
        help="after the run, delete the stack as 'cdk destroy' does (its teardown custom resource "
        "included) and show what teardown deleted and what provisioned throughput is left",
    )
    local.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object when the run ends, and nothing else, on stdout (execution, "
        "notifications, what is left billing, reports, transitions; see the README); progress goes "
        "to stderr",
    )
    local.set_defaults(handler=run_local_command)

    server = subparsers.add_parser(
        "local-server",
        help="serve the emulated AWS with the pipeline deployed, on 127.0.0.1",
        description=(
            "Start the same emulation as 'finetune local' as an HTTP endpoint on 127.0.0.1, with the "
            "stack deployed. Upload datasets/<run>/train.jsonl with the AWS CLI "
            "(--endpoint-url) to start a run. Stop with Ctrl-C."
        ),
    )
    server.add_argument("--port", type=int, default=4566, help="port on 127.0.0.1 (default 4566)")
    server.add_argument(
        "--scenario",
        choices=list(SCENARIOS),
        default="ok",
        help="how the emulated Bedrock behaves (default: ok)",
    )
    server.add_argument(
        "--time-scale",
        type=float,
        default=SERVER_SCALE,
        help=f"real seconds per AWS second (default {SERVER_SCALE:g})",
    )
    _add_context_argument(server)
    server.set_defaults(handler=run_server_command)


def _add_context_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--context",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="configuration on top of cdk.json, as 'cdk synth -c' takes it "
        "(e.g. -c base_model_id=amazon.nova-lite-v1:0:300k); repeatable",
    )


def _context(command: str, items: list[str]) -> dict[str, str] | None:
    """``-c KEY=VALUE`` items as a mapping; None (after saying why) when one is malformed."""
    context = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"finetune {command}: -c {item!r}: expected KEY=VALUE", file=sys.stderr)
            return None
        context[key] = value
    return context


def run_local_command(args: argparse.Namespace) -> int:
    """``finetune local``: 0 when the execution succeeded (and, with ``--destroy``, the stack was
    deleted), 1 otherwise, 2 for a bad folder."""
    # Imported here so that `finetune --help` does not load the CDK and moto.
    from finetune.local.runner import RunFolderError, run_local  # noqa: PLC0415
    from finetune.local.scenarios import scenario  # noqa: PLC0415
    from finetune.local.summary import build_summary  # noqa: PLC0415

    context = _context("local", args.context)
    if context is None:
        return 2
    as_json = bool(getattr(args, "json", False))
    try:
        # With --json, stdout carries the document only: anything else printed goes to stderr.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result = run_local(
                args.run_dir,
                scenario(args.scenario),
                out=sys.stderr if as_json else None,
                time_scale=args.time_scale,
                destroy=args.destroy,
                summary=not as_json,
                context=context,
            )
    except RunFolderError as exc:
        print(f"finetune local: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(build_summary(result), indent=2, default=str))
    deleted = result.deletion is None or result.deletion.stack_status == "DELETE_COMPLETE"
    return 0 if result.succeeded and deleted else 1


def run_server_command(args: argparse.Namespace) -> int:
    """``finetune local-server``: serve until interrupted."""
    from finetune.local.scenarios import scenario  # noqa: PLC0415
    from finetune.local.server import serve_forever  # noqa: PLC0415

    context = _context("local-server", args.context)
    if context is None:
        return 2
    return serve_forever(args.port, scenario(args.scenario), time_scale=args.time_scale, context=context)
