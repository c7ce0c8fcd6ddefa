"""Any change in permissions shows up as a reviewed diff of tests/snapshots/iam.json."""

from __future__ import annotations

import difflib
import json

from iam_review.main import SNAPSHOT, snapshot_text
from iam_review.review import normalised_iam
from tests.infra.conftest import IamSynth


def test_iam_matches_the_committed_snapshot(default_synth: IamSynth) -> None:
    """Given cdk.json's configuration, then roles, trust and statements equal the committed snapshot."""
    current = snapshot_text([normalised_iam(default_synth.template, default_synth.stack.name)])
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if current != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile="tests/snapshots/iam.json (committed)",
                tofile="synthesized IAM",
                n=4,
            )
        )
        raise AssertionError(
            "The synthesized IAM differs from tests/snapshots/iam.json.\n"
            "If the change is intended, run `make iam-snapshot` and commit the updated snapshot, "
            "so reviewers see this diff:\n\n" + diff
        )


def test_snapshot_ignores_hashes_that_carry_no_permission(default_synth: IamSynth) -> None:
    """Logical-ID hash suffixes and asset hashes are normalised away; permissions are not."""
    template = json.loads(json.dumps(default_synth.template))
    resources = template["Resources"]
    role_id = next(
        i for i, r in resources.items() if r["Type"] == "AWS::IAM::Role" and i.startswith("BedrockService")
    )
    renamed_id = role_id[:-8] + "0BADF00D"
    text = json.dumps(template).replace(role_id, renamed_id)
    renamed = json.loads(text)
    assert normalised_iam(renamed, "s") == normalised_iam(template, "s")

    role = renamed["Resources"][renamed_id]["Properties"]
    role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"].pop("ArnEquals")
    assert normalised_iam(renamed, "s") != normalised_iam(template, "s")
