"""``python -m iam_review``: synthesize, write the IAM report (and JSON, and the snapshot on request)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iam_review.markdown import to_markdown
from iam_review.review import NO_REASON, normalised_iam, review
from iam_review.synth import synthesize

SNAPSHOT = Path(__file__).resolve().parent.parent.parent / "tests" / "snapshots" / "iam.json"


def snapshot_text(stacks: list[dict[str, object]]) -> str:
    """The snapshot file's exact content (stable key order, trailing newline)."""
    return json.dumps(stacks, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write ``<outdir>/iam-report.md`` (and ``iam-report.json`` with ``--json``); print the paths."""
    parser = argparse.ArgumentParser(prog="iam-report", description=__doc__)
    parser.add_argument("--outdir", default="cdk.out", help="cloud assembly directory (default: cdk.out)")
    parser.add_argument("--json", action="store_true", help="also write iam-report.json for tooling")
    parser.add_argument(
        "--snapshot", action="store_true", help=f"rewrite the IAM snapshot ({SNAPSHOT.name}) instead"
    )
    args = parser.parse_args(argv)

    stacks = synthesize(args.outdir)
    if args.snapshot:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(snapshot_text([normalised_iam(s.template, s.name) for s in stacks]))
        print(f"IAM snapshot written to {SNAPSHOT}")
        return 0

    reviews = [review(s.template, s.acknowledgments, s.name, s.settings) for s in stacks]
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
