"""Entry point of the ``finetune`` command."""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

#: The commands of the runtime package, by the module that registers each. ``finetune validate``
#: imports only its own module (no convert, no emulation), so the command starts quickly.
_COMMANDS = {
    "validate": "finetune.validate_cmd",
    "convert": "finetune.convert_cmd",
    # Against a deployed stack (or finetune local-server), found by its CloudFormation outputs.
    "submit": "finetune.submit_cmd",
    "runs": "finetune.status_cmd",
    "status": "finetune.status_cmd",
    "report": "finetune.report_cmd",
    "invoke": "finetune.invoke_cmd",
    "logs": "finetune.logs_cmd",
    "approve": "finetune.serving_cmd",
    "reject": "finetune.serving_cmd",
    "extend": "finetune.serving_cmd",
    "rollback": "finetune.serving_cmd",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; each command registers itself as a sub-parser.

    ``command`` "validate" or "convert" limits the registration to that command's module (any
    other value, or None: every command, as help and error messages list them all). ``local``
    and ``local-server`` are registered only when the emulation's dependencies are installed
    (``requirements-dev.txt``); validate and convert need the runtime package only.
    """
    parser = argparse.ArgumentParser(
        prog="finetune",
        description="Fine-tune models on Amazon Bedrock: validate and convert data, submit runs, follow "
        "them, see their curves, call the result, approve and roll back; and run the pipeline locally.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    only = command if command in _COMMANDS else None
    for module in dict.fromkeys(m for name, m in _COMMANDS.items() if only in (None, name)):
        importlib.import_module(module).register(subparsers)
    if only is not None:
        return parser
    try:
        from finetune.local import cli as local_cmd  # noqa: PLC0415 - optional, see the docstring
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "finetune":
            raise  # our own module is missing: a packaging bug, not an optional dependency
        parser.epilog = f"The local and local-server commands are not available: {exc}."
    else:
        local_cmd.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for usage errors, as argparse does)."""
    args_in = sys.argv[1:] if argv is None else argv
    if argv is None:  # the process's own command line: see _start_quickly
        parser = _start_quickly(args_in[0] if args_in else None)
    else:
        parser = build_parser(args_in[0] if args_in else None)
    try:
        args = parser.parse_args(args_in)
    except SystemExit as exc:  # argparse exits on bad arguments and after --help
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.handler(args)
    return status


def _start_quickly(command: str | None) -> argparse.ArgumentParser:
    """``build_parser`` for a process of its own, without garbage collection while it imports.

    Importing a command creates tens of thousands of objects that live as long as the process
    (classes, functions, the model catalog); the collector would scan them several times while
    they load and once more at exit, finding nothing (about a tenth of ``finetune validate``'s
    start). They are frozen instead: later collections, and the one at exit, skip them. Not for
    ``main(argv)`` calls inside another program (tests), whose older objects it would freeze too.
    """
    gc.disable()
    try:
        return build_parser(command)
    finally:
        gc.freeze()
        gc.enable()


if __name__ == "__main__":
    sys.exit(main())
