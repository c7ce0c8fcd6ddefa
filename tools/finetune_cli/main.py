"""Entry point of the ``finetune`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each command registers itself as a sub-parser."""
    parser = argparse.ArgumentParser(
        prog="finetune", description="Fine-tune Claude on Amazon Bedrock: validate, convert, run locally."
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
