"""``python -m iam_review``: synthesize, write the IAM report (and JSON, and the snapshot on request).

It reads the context ``cdk synth`` reads, and takes the same ``-c key=value`` arguments, so
``make iam-report CDK_ARGS="..."`` reviews what ``make deploy CDK_ARGS="..."`` deploys. Other CDK CLI
arguments in ``CDK_ARGS`` (``--profile``, ``--require-approval``...) do not change the template; they
are named and ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from iam_review.markdown import to_markdown
from iam_review.review import NO_REASON, normalised_iam, review
from iam_review.summary import snapshot_changes
from iam_review.synth import synthesize
from stacks.config import ConfigError

SNAPSHOT = Path(__file__).resolve().parent.parent.parent / "tests" / "snapshots" / "iam.json"


def snapshot_text(stacks: list[dict[str, object]]) -> str:
    """The snapshot file's exact content (stable key order, trailing newline)."""
    return json.dumps(stacks, indent=2, sort_keys=True) + "\n"


def context_arguments(values: list[str]) -> dict[str, str]:
    """``-c key=value`` arguments as the CDK CLI reads them: the value is the text after the first ``=``."""
    context: dict[str, str] = {}
    for assignment in values:
        key, equals, value = assignment.partition("=")
        if not equals or not key:
            raise ValueError(f"-c {assignment!r}: expected key=value")
        if key.startswith("aws:"):
            raise ValueError(f"-c {assignment!r}: keys starting with 'aws:' are reserved by the CDK")
        context[key] = value
    return context


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iam-report", description=__doc__)
    parser.add_argument("--outdir", default="cdk.out", help="cloud assembly directory (default: cdk.out)")
    parser.add_argument("--json", action="store_true", help="also write iam-report.json for tooling")
    parser.add_argument(
        "--snapshot", action="store_true", help=f"rewrite the IAM snapshot ({SNAPSHOT.name}) instead"
    )
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a configuration value, as for cdk synth and cdk deploy (repeatable)",
    )
    return parser


def _committed_snapshot() -> list[dict[str, Any]]:
    return list(json.loads(SNAPSHOT.read_text())) if SNAPSHOT.exists() else []


def main(argv: list[str] | None = None) -> int:
    """Write ``<outdir>/iam-report.md`` (and ``iam-report.json`` with ``--json``); print the paths."""
    parser = _parser()
    args, ignored = parser.parse_known_args(argv)
    try:
        overrides = context_arguments(args.context)
    except ValueError as exc:
        parser.error(str(exc))
    if ignored:
        print(f"Ignored (they do not change the template): {' '.join(ignored)}")
    if args.snapshot and overrides:
        parser.error("the snapshot holds cdk.json's configuration; run --snapshot without -c")

    try:
        stacks = synthesize(args.outdir, **overrides)
    except ConfigError as exc:
        print(f"Configuration error (cdk.json context or -c): {exc}", file=sys.stderr)
        return 2
    if args.snapshot:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(snapshot_text([normalised_iam(s.template, s.name) for s in stacks]))
        print(f"IAM snapshot written to {SNAPSHOT}")
        return 0

    committed = {str(s.get("stack")): s for s in _committed_snapshot()}
    reviews = []
    for stack in stacks:
        data = review(stack.template, stack.acknowledgments, stack.name, stack.settings, stack.config)
        data["changes"] = snapshot_changes(
            committed.get(stack.name), normalised_iam(stack.template, stack.name)
        )
        reviews.append(data)
    out = Path(args.outdir)
    report = out / "iam-report.md"
    report.write_text(to_markdown(reviews))
    print(f"IAM report written to {report.resolve()}")
    if args.json:
        json_path = out / "iam-report.json"
        json_path.write_text(json.dumps(reviews, indent=2) + "\n")
        print(f"IAM report (JSON) written to {json_path.resolve()}")
    unexplained = [w for r in reviews for w in r["wildcards"] if w["reason"] == NO_REASON]
    if unexplained:
        print(f"{len(unexplained)} wildcard(s) have no recorded reason; see the end of the report.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
