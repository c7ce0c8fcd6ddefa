"""Entry point of the ``finetune`` command."""

from __future__ import annotations

import argparse
import sys

from finetune import convert_cmd, validate_cmd


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each command registers itself as a sub-parser.

    ``local`` and ``local-server`` are registered only when the emulation's dependencies are
    installed (``requirements-dev.txt``); validate and convert need the runtime package only.
    """
    parser = argparse.ArgumentParser(
        prog="finetune", description="Fine-tune Claude on Amazon Bedrock: validate, convert, run locally."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    validate_cmd.register(subparsers)
    convert_cmd.register(subparsers)
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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on bad arguments and after --help
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
